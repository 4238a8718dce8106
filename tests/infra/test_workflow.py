"""The pull-request workflow: tests for every PR, and a `pulumi preview` that holds no credential before a
maintainer approves it, then only short-lived read-only ones; actions pinned to verified commits."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from infra.config import PreviewConfig
from tests.infra.conftest import ROOT, dev_config

WORKFLOW = ROOT / ".github" / "workflows" / "pull-request.yaml"
PINNED = re.compile(r"^(?P<action>[\w.-]+/[\w.-]+)@(?P<sha>[0-9a-f]{40})$")
# Each pin checked against the action repository's tag (git rev-parse <tag>^{commit} in a snapshot of
# the repository, 2026-12-01; docs/security.md lists them).
VERIFIED = {
    "actions/checkout": ("11bd71901bbe5b1630ceea73d27597364c9af683", "v4.2.2"),
    "actions/setup-python": ("a26af69be951a213d495a4c3e4e4022e16d87065", "v5.6.0"),
    "aws-actions/configure-aws-credentials": ("e3dd6a429d7300a6a4c196c26e071d42e0343502", "v4.0.2"),
    "pulumi/auth-actions": ("141415910c3beb54e03b48e9057c204c97b956f2", "v2.1.0"),
    "pulumi/actions": ("8582a9e8cc630786854029b4e09281acd6794b58", "v6.6.1"),
}


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if s.get("uses", "").startswith(f"{action}@")]


def step(job: dict[str, Any], action: str) -> dict[str, Any]:
    (found,) = steps(job, action)
    return found


def job_text(name: str) -> str:
    """The job's own lines in the file (to search for expressions YAML parsing hides in strings)."""
    text = WORKFLOW.read_text()
    start = text.index(f"\n  {name}:\n")
    following = re.search(r"\n  [\w-]+:\n", text[start + 1 :])
    return text[start : start + 1 + following.start()] if following else text[start:]


def test_runs_on_pull_requests_only_never_with_the_base_repositorys_secrets(workflow: dict[str, Any]) -> None:
    """`pull_request_target` runs with the base repository's secrets and a write token: never here."""
    assert set(workflow[True]) == {"pull_request"}  # YAML 1.1 reads the `on` key as True
    assert workflow["permissions"] == {}


def test_every_action_is_pinned_to_a_verified_commit_with_its_version_noted(workflow: dict[str, Any]) -> None:
    uses = [s["uses"] for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses
    for use in uses:
        pinned = PINNED.match(use)
        assert pinned, use
        assert VERIFIED[pinned["action"]][0] == pinned["sha"], use
    for line in (line for line in WORKFLOW.read_text().splitlines() if "uses:" in line):
        action = line.split("uses:")[1].split("@")[0].strip()
        assert line.endswith(f"# {VERIFIED[action][1]}"), line


def test_no_checkout_leaves_the_token_in_git_config(workflow: dict[str, Any]) -> None:
    checkouts = [s for job in workflow["jobs"].values() for s in steps(job, "actions/checkout")]
    assert len(checkouts) == 3
    assert all(s["with"]["persist-credentials"] is False for s in checkouts)


def test_test_job_runs_the_ci_entry_point_with_read_only_contents(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["test"]
    assert job["permissions"] == {"contents": "read"}
    assert ".ci/run" in [s.get("run", "") for s in job["steps"]]
    assert (ROOT / ".ci" / "run").exists()
    assert "secrets." not in job_text("test")


def test_preview_waits_in_the_environment_the_stack_declares(workflow: dict[str, Any]) -> None:
    """The job references the environment, so it waits for its required reviewers before anything runs,
    and its OIDC `sub` is `repo:<owner>/<repo>:environment:<name>` (what the role trusts)."""
    job = workflow["jobs"]["preview"]
    configured = dev_config()["gitops-eks:preview"].get("environment", PreviewConfig(("x",)).environment)
    assert job["environment"] == configured == "preview"
    assert "head.repo.full_name == github.repository" in job["if"]


def test_a_new_push_cancels_the_run_still_waiting_for_approval(workflow: dict[str, Any]) -> None:
    """GitHub docs, "Control the concurrency of workflows and jobs": `cancel-in-progress: true` also
    cancels the running (here: waiting) run of the group, and `queue` would keep older pending runs.
    Keyed by the pull request, a reviewer is never left an older commit's run to approve by mistake
    (a pull request can still drop this block in its own copy: docs/security.md)."""
    concurrency = workflow["concurrency"]
    assert concurrency["group"] == "pull-request-${{ github.event.pull_request.number }}"
    assert concurrency["cancel-in-progress"] is True
    assert "queue" not in concurrency


def test_preview_holds_no_stored_secret_and_no_write_permission(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["preview"]
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    assert "secrets." not in job_text("preview")
    aws = step(job, "aws-actions/configure-aws-credentials")["with"]
    assert aws["role-to-assume"] == "${{ vars.AWS_PREVIEW_ROLE_ARN }}"
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(aws)


def test_pulumi_access_is_a_short_lived_token_from_oidc_not_a_stored_one(workflow: dict[str, Any]) -> None:
    """pulumi/auth-actions (action.yml, v2.1.0) exchanges the job's OIDC token for a Pulumi access token
    and exports PULUMI_ACCESS_TOKEN; a team token carries only the team's stack permissions."""
    job = workflow["jobs"]["preview"]
    auth = step(job, "pulumi/auth-actions")["with"]
    assert auth["requested-token-type"] == "urn:pulumi:token-type:access_token:team"
    assert auth["scope"].startswith("team:")
    assert int(auth["token-expiration"]) <= 3600
    names = [s.get("uses", "").split("@")[0] for s in job["steps"]]
    assert names.index("pulumi/auth-actions") < names.index("pulumi/actions")
    assert "PULUMI_ACCESS_TOKEN" not in job_text("preview")


def test_preview_is_judged_by_the_base_branchs_policy_pack(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["preview"]
    pr, base = steps(job, "actions/checkout")
    assert "ref" not in pr["with"] and pr["with"]["path"] == "pr"
    assert base["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    # The pack imports ../infra/policies.py: the whole base tree, not just policy/.
    assert "sparse-checkout" not in base["with"]
    pulumi = step(job, "pulumi/actions")["with"]
    assert pulumi["command"] == "preview"
    assert pulumi["work-dir"] == pr["with"]["path"]
    assert pulumi["policyPacks"] == "${{ github.workspace }}/" + base["with"]["path"] + "/policy"
    assert (ROOT / "policy" / "PulumiPolicy.yaml").exists()
    assert pulumi["comment-on-pr"] is False


def test_the_comment_is_posted_by_a_job_that_runs_no_pull_request_code(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["comment"]
    assert job["needs"] == "preview"
    assert job["permissions"] == {"pull-requests": "write"}
    assert all("uses" not in s for s in job["steps"])  # no checkout, no third-party action
    run = job["steps"][0]
    assert run["env"]["PREVIEW"] == "${{ needs.preview.outputs.preview }}"
    # Untrusted text reaches the shell as an environment variable, never spliced into the script.
    assert "${{" not in run["run"]
