"""Stack configuration is parsed in one place: `infra.config` depends on no component that consumes it.

Components (infra/jenkins/, ...) import typed config objects from `infra.config`; the reverse edge would
put parsing back beside a consumer and make the two import each other.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What `infra.config` may load from this project: the error type it raises, and nothing else.
ALLOWED = {"infra", "infra.config", "infra.errors"}


def test_infra_config_imports_nothing_from_infra_jenkins() -> None:
    # A fresh interpreter: in this one, other tests have already imported infra.jenkins.
    probe = (
        "import json, sys; import infra.config; "
        "print(json.dumps(sorted(m for m in sys.modules if m == 'infra' or m.startswith('infra.'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    project_modules = set(json.loads(loaded))
    assert not {m for m in project_modules if m.startswith("infra.jenkins")}
    assert project_modules <= ALLOWED, f"infra.config loads {sorted(project_modules - ALLOWED)}"


def test_infra_jenkins_takes_agents_config_from_infra_config() -> None:
    from infra import config
    from infra.jenkins import agents, clouds

    assert agents.AgentsConfig is config.AgentsConfig
    assert clouds.AgentsConfig is config.AgentsConfig
    assert not (ROOT / "infra" / "jenkins" / "agents_config.py").exists()
