"""What the release agent's role must allow is what `promote` really calls: a real promote against moto's
ECR records every API operation it makes, and each must be one of the release pool's ECR actions (an
ECR IAM action is `ecr:` plus the API operation's name: AWS Service Authorization Reference, "Actions
defined by Amazon Elastic Container Registry"). The role can upload no layer: it has none of the layer
actions of AWS's own push policy (ECR User Guide, image-push-iam.html)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.jenkins.agents import agent_role_policy
from infra.jenkins.pools import BUILD, RELEASE
from jenkins import cli, ecr
from tests.jenkins.conftest import GitopsRepo
from tests.jenkins.test_registry_ecr import deployed_digest, protected_repository, put_commit_image

__all__ = ["protected_repository"]  # the fixture, used by name below

# AWS's push policy for one repository (image-push-iam.html): what a push needs beyond BatchGetImage.
LAYER_UPLOAD = {
    "ecr:CompleteLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:InitiateLayerUpload",
    "ecr:BatchCheckLayerAvailability",
}


@pytest.fixture
def ecr_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ECR operation the release module makes, as the IAM action it needs."""
    calls: list[str] = []
    original = ecr.client

    def recording(region: str) -> Any:
        client = original(region)
        client.meta.events.register("before-call.ecr.*", lambda model, **_: calls.append(f"ecr:{model.name}"))
        return client

    monkeypatch.setattr(ecr, "client", recording)
    return calls


def test_promote_needs_only_the_release_pools_actions(
    protected_repository: str,
    gitops_repo: GitopsRepo,
    ecr_calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    sha = gitops_repo.app_commit("v1")
    digest = put_commit_image(protected_repository, sha)
    monkeypatch.chdir(gitops_repo.workspace(sha))
    argv = ["promote", "--image-repository", protected_repository, "--commit", sha, "--digest", digest]
    assert cli.main([*argv, "--json"]) == 0, capsys.readouterr()
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["outcome"] == "changed"
    assert deployed_digest(protected_repository) == digest  # the mark happened, through these calls
    assert set(ecr_calls) == {"ecr:DescribeImages", "ecr:BatchGetImage", "ecr:PutImage"}
    assert set(ecr_calls) <= set(RELEASE.ecr_actions)


def test_the_release_role_can_push_no_layer_and_gets_no_login() -> None:
    arn = "arn:aws:ecr:us-east-1:123456789012:repository/app"
    statements = agent_role_policy(arn, RELEASE)["Statement"]
    actions = {action for statement in statements for action in statement["Action"]}
    assert not actions & LAYER_UPLOAD
    assert "ecr:GetAuthorizationToken" not in actions
    assert {statement["Resource"] for statement in statements} == {arn}
    # The build pool keeps AWS's whole push list and the login.
    build = {a for s in agent_role_policy(arn, BUILD)["Statement"] for a in s["Action"]}
    assert LAYER_UPLOAD | {"ecr:PutImage", "ecr:BatchGetImage", "ecr:GetAuthorizationToken"} <= build
