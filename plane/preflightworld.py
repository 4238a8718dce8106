"""A world for `make preflight` without AWS or GitHub, shared by its tests and `make demo`: moto's server as
the AWS API, plane/fakeaws.py for the two AWS calls moto lacks, plane/fakegithubapi.py as GitHub, and a
stack file that sets every key the stack requires. `environment()` is what points preflight at them.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from infra import codeowners
from infra.github_permissions import API_NAMES, token_permissions
from plane.fakeaws import FakeAWS, standard_support_until
from plane.fakeaws import serve as serve_aws
from plane.fakegithubapi import FakeGitHubAPI, Repository
from plane.fakegithubapi import serve as serve_github

ROOT = Path(__file__).resolve().parent.parent
STACK = "preflight"
REPOSITORY = "example-org/hello-gitops"
REVIEWER = "octo-reviewer"
TOKEN = "github_pat_preflight_world"  # noqa: S105 - the fake GitHub's own token, nothing real
PULLS_TOKEN = "github_pat_preflight_pulls"  # noqa: S105 - likewise: the release's, Pull requests and Commit statuses: read
# How `pulumi config set --secret` writes a value to the stack file; only the Pulumi CLI decrypts it.
CIPHERTEXT = {"secure": "v1:cHVsbHMtdG9rZW4tY2lwaGVydGV4dA=="}
# Every permission the stack's GitHub resources need, as the README lists them (GitHub's API names).
ALL_PERMISSIONS = {f"{API_NAMES[name]}={access}" for name, access in token_permissions().items()}
# AWS's defaults for the quotas preflight reads (docs/verified-identifiers.md): VPCs and NAT gateways per
# zone as moto's own table has them (moto/servicequotas/resources/default_quotas/vpc.py), five Elastic IPs,
# and 5 vCPUs of On-Demand standard instances (the AWS CLI's get-aws-default-service-quota example).
DEFAULT_QUOTAS = {
    ("vpc", "L-F678F1CE"): 5.0,
    ("vpc", "L-FE5A380F"): 5.0,
    ("ec2", "L-0263D0A3"): 5.0,
    ("ec2", "L-1216C47A"): 5.0,
}
# What the world's account asked for: 5 vCPUs do not run the dev stack (nodes, Jenkins and its agents).
RAISED_QUOTAS = {("ec2", "L-1216C47A"): 32.0}


@dataclass
class World:
    root: Path
    aws: FakeAWS
    github: FakeGitHubAPI
    moto: str

    def environment(self) -> dict[str, str]:
        """The variables that send preflight's boto3 and GitHub calls here (and nowhere else)."""
        return {
            "AWS_ENDPOINT_URL": self.moto,
            "AWS_ENDPOINT_URL_EKS": self.aws.url,
            "AWS_ENDPOINT_URL_SERVICE_QUOTAS": self.aws.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "GITHUB_API_URL": self.github.url,
            "GITHUB_TOKEN": TOKEN,
        }

    def stack_file(self) -> Path:
        return self.root / f"Pulumi.{STACK}.yaml"

    def set_config(self, key: str, value: object) -> None:
        """Set (or, with None, remove) one top-level key of the world's stack file."""
        document = yaml.safe_load(self.stack_file().read_text())
        if value is None:
            document["config"].pop(key, None)
        else:
            document["config"][key] = value
        self.stack_file().write_text(yaml.safe_dump(document, sort_keys=False))


def _stack_file(path: Path) -> None:
    """The repository's Pulumi.dev.yaml, with the keys a user sets before the first run (its header) and the
    release's pull-request token, encrypted as `pulumi config set --secret` leaves it."""
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    config = document["config"]
    config["gitops-eks:repository"] = REPOSITORY
    # The stack is not named like an environment of k8s/environments.yaml: it names the one it deploys.
    config["gitops-eks:environment"] = "dev"
    config["github:owner"] = REPOSITORY.split("/")[0]
    config["gitops-eks:cluster"]["publicAccessCidrs"] = ["52.94.0.10/32"]
    config["gitops-eks:jenkins"]["allowedCidrs"] = ["52.94.0.10/32"]
    config.setdefault("gitops-eks:preview", {})["reviewers"] = [REVIEWER]
    config["gitops-eks:pullsToken"] = CIPHERTEXT
    path.write_text(yaml.safe_dump(document, sort_keys=False))


@contextlib.contextmanager
def world(moto_endpoint: str) -> Iterator[World]:
    """A ready world in which nothing blocks, except what the caller then changes."""
    scratch = Path(tempfile.mkdtemp(prefix="preflight-world-"))
    try:
        shutil.copy(ROOT / "Pulumi.yaml", scratch / "Pulumi.yaml")
        _stack_file(scratch / f"Pulumi.{STACK}.yaml")
        aws = FakeAWS(
            versions={"1.35": standard_support_until(2027, 3, 27)},
            applied=dict(RAISED_QUOTAS),
            defaults=dict(DEFAULT_QUOTAS),
        )
        owner = REPOSITORY.split("/")[0]
        github = FakeGitHubAPI(
            tokens={
                TOKEN: set(ALL_PERMISSIONS),
                PULLS_TOKEN: {"pull_requests=read", "statuses=read", "metadata=read"},
            },
            users={REVIEWER, "octo-admin"},
            organizations={owner: "free"},
            repositories={
                REPOSITORY: Repository(
                    private=False,
                    collaborators={REVIEWER: "write"},
                    files={codeowners.RELATIVE_PATH: codeowners.render([REVIEWER])},
                    variables={"PULUMI_PREVIEW_TEAM": "preview-readers"},
                )
            },
        )
        with serve_aws(aws), serve_github(github):
            yield World(scratch, aws, github, moto_endpoint)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
