"""Policy pack entry point: the checks live in infra/policies.py, where tests call them directly."""

import sys
from pathlib import Path

# Pulumi runs the pack from this directory; the checks are in the project's `infra` package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from infra.policies import all_policies

PolicyPack(name="gitops-eks-security", enforcement_level=EnforcementLevel.MANDATORY, policies=all_policies())
