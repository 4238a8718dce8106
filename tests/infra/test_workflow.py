"""The pull-request workflow: tests and a policy-checked `pulumi preview` commented on the PR, with
short-lived AWS credentials and actions pinned to commits."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.infra.conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "pull-request.yaml"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def step(job: dict[str, Any], action: str) -> dict[str, Any]:
    (found,) = [s for s in job["steps"] if s.get("uses", "").startswith(f"{action}@")]
    return found


def test_runs_on_every_pull_request_with_read_only_default_permissions(workflow: dict[str, Any]) -> None:
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the `on` key as True
    assert workflow["permissions"] == {"contents": "read"}


def test_every_action_is_pinned_to_a_commit_with_its_version_noted(workflow: dict[str, Any]) -> None:
    uses = [s["uses"] for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses
    assert [u for u in uses if not PINNED.match(u)] == []
    lines = [line for line in WORKFLOW.read_text().splitlines() if "uses:" in line]
    assert all(re.search(r"# v\d+\.\d+\.\d+$", line) for line in lines)


def test_test_job_runs_the_ci_entry_point(workflow: dict[str, Any]) -> None:
    runs = [s.get("run", "") for s in workflow["jobs"]["test"]["steps"]]
    assert ".ci/run" in runs
    assert (ROOT / ".ci" / "run").exists()


def test_preview_uses_oidc_role_not_stored_keys(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["preview"]
    assert job["permissions"]["id-token"] == "write"
    aws = step(job, "aws-actions/configure-aws-credentials")["with"]
    assert aws["role-to-assume"].startswith("${{ vars.")
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(aws)


def test_preview_comments_on_the_pr_and_enforces_the_policy_pack(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["preview"]
    assert job["permissions"]["pull-requests"] == "write"
    pulumi = step(job, "pulumi/actions")
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["comment-on-pr"] is True
    assert (ROOT / pulumi["with"]["policyPacks"] / "PulumiPolicy.yaml").exists()
    assert "'dev'" in pulumi["with"]["stack-name"] and (ROOT / "Pulumi.dev.yaml").exists()
    assert pulumi["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    # Forks get no secrets; the job must not run (and fail) for them.
    assert "head.repo.full_name == github.repository" in job["if"]
