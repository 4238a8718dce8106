"""`main`'s ruleset: reviewed pull requests with a green CI check for people, deploy keys (Jenkins' is the
only one that can push) as the only bypass."""

from __future__ import annotations

import pytest
import yaml

from infra.branch_protection import REQUIRED_CHECK
from tests.infra.conftest import ROOT, Program, run_program

RULESET = "github:index/repositoryRuleset:RepositoryRuleset"
DEPLOY_KEY = "github:index/repositoryDeployKey:RepositoryDeployKey"
PROTECTION, HISTORY = "branch-protection-ruleset", "branch-protection-history"


def test_the_followed_branch_is_protected(dev_program: Program) -> None:
    ruleset = dev_program.one(RULESET, PROTECTION).inputs
    assert ruleset["repository"] == "hello-gitops"
    assert (ruleset["target"], ruleset["enforcement"]) == ("branch", "active")
    assert ruleset["conditions"] == {"refName": {"includes": ["refs/heads/main"], "excludes": []}}
    other = run_program({"branch": "release"}).one(RULESET, PROTECTION).inputs
    assert other["conditions"]["refName"]["includes"] == ["refs/heads/release"]


def test_people_need_a_reviewed_pull_request_and_a_green_check(dev_program: Program) -> None:
    rules = dev_program.one(RULESET, PROTECTION).inputs["rules"]
    assert rules["deletion"] is True and rules["nonFastForward"] is True
    assert rules["pullRequest"] == {
        "requiredApprovingReviewCount": 1,  # the default: one reviewer besides the author
        "dismissStaleReviewsOnPush": True,
        "requireLastPushApproval": True,
        "requiredReviewThreadResolution": True,
        "requireCodeOwnerReview": True,
        "allowedMergeMethods": ["merge", "squash"],
    }
    assert rules["requiredStatusChecks"] == {
        "requiredChecks": [{"context": REQUIRED_CHECK, "integrationId": GITHUB_ACTIONS_APP_ID}],
        "strictRequiredStatusChecksPolicy": True,
    }


def test_a_team_sets_how_many_approvals_a_pull_request_needs() -> None:
    # 10: GitHub's maximum.
    rules = run_program({"requiredApprovals": 10}).one(RULESET, PROTECTION).inputs["rules"]
    assert rules["pullRequest"]["requiredApprovingReviewCount"] == 10
    assert rules["pullRequest"]["requireLastPushApproval"] is True
    assert rules["pullRequest"]["requireCodeOwnerReview"] is True


def test_a_one_person_trial_can_merge_and_the_stack_warns(caplog: pytest.LogCaptureFixture) -> None:
    """With 0 approvals nothing may still need a second person: `require_last_push_approval` ("the most
    recent reviewable push must be approved by someone other than the person who pushed it", GitHub
    REST API, OpenAPI schema repository-rule-pull-request) would block every pull request of a solo
    maintainer. The other protections stay."""
    rules = run_program({"requiredApprovals": 0}).one(RULESET, PROTECTION).inputs["rules"]
    assert rules["pullRequest"]["requiredApprovingReviewCount"] == 0
    assert rules["pullRequest"]["requireLastPushApproval"] is False
    assert rules["pullRequest"]["requireCodeOwnerReview"] is False
    assert rules["deletion"] is True and rules["nonFastForward"] is True
    assert rules["requiredStatusChecks"]["requiredChecks"][0]["context"] == REQUIRED_CHECK
    assert "gitops-eks:requiredApprovals is 0" in caplog.text


def test_only_the_trial_warns(caplog: pytest.LogCaptureFixture, dev_program: Program) -> None:
    assert "requiredApprovals" not in caplog.text


def test_pull_requests_land_only_by_the_merge_methods_that_add_one_commit(dev_program: Program) -> None:
    """The bot vouches only for the commit GitHub names as a merged pull request's `merge_commit_sha`:
    "If merged as a merge commit, merge_commit_sha represents the SHA of the merge commit. If merged
    via a squash, [...] the SHA of the squashed commit on the base branch. If rebased, [...] the commit
    that the base branch was updated to" (github/rest-api-description, operationId pulls/get; jenkins/
    pulls.py), so a rebase merge's earlier commits would stop releases. The provider's field takes
    `merge`, `squash`, `rebase` (pulumi-github 6.15.0,
    RepositoryRulesetRulesPullRequestArgs.allowed_merge_methods)."""
    methods = dev_program.one(RULESET, PROTECTION).inputs["rules"]["pullRequest"]["allowedMergeMethods"]
    assert sorted(methods) == ["merge", "squash"]


# GitHub Actions' app id, as GitHub reports it in a check run's `app.id` (GET /repos/{owner}/{repo}/
# commits/{ref}/check-runs) and as rulesets pin it (github/rest-api-description: `integration_id`, "The
# optional integration ID that this status check must originate from"); widely recorded as 15368
# (joshjohanning/github-misc-scripts#57: "GitHub Actions (`15368`)").
GITHUB_ACTIONS_APP_ID = 15368


def test_the_required_check_only_counts_from_github_actions(dev_program: Program) -> None:
    """Without an integration id, any commit status named `make test` satisfies the rule: anyone with
    write access (`POST /repos/{owner}/{repo}/statuses/{sha}`), or Flux's commit-status token, which
    pods in the app's namespace can mount (docs/security.md), could mark an untested pull request
    green."""
    (check,) = dev_program.one(RULESET, PROTECTION).inputs["rules"]["requiredStatusChecks"]["requiredChecks"]
    assert check.get("integrationId") == GITHUB_ACTIONS_APP_ID


def test_no_one_rewrites_or_deletes_the_branch_not_even_a_deploy_key(dev_program: Program) -> None:
    """A bypass actor bypasses every rule of its ruleset (pulumi-github 6.15.0, `bypass_actors`: "The actors
    that can bypass the rules in this ruleset"), so force pushes and deletion sit in a ruleset with no
    bypass: a stolen write key cannot move the branch back to an older bot-signed commit."""
    history = dev_program.one(RULESET, HISTORY).inputs
    assert "bypassActors" not in history or history["bypassActors"] == []
    assert history["rules"] == {"deletion": True, "nonFastForward": True}
    protection = dev_program.one(RULESET, PROTECTION).inputs
    assert (history["target"], history["enforcement"]) == ("branch", "active")
    assert history["conditions"] == protection["conditions"]


def test_the_required_check_is_the_workflows_test_job() -> None:
    """A GitHub Actions job reports its check under its `name:`."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "pull-request.yaml").read_text())
    assert workflow["jobs"]["test"]["name"] == REQUIRED_CHECK


def test_only_deploy_keys_bypass_and_only_jenkins_key_can_push(dev_program: Program) -> None:
    """GitHub REST API (OpenAPI schema repository-ruleset-bypass-actor): a DeployKey actor has no id
    and no `pull_request` mode, so it admits every deploy key with write access; the stack registers
    one (Jenkins'), Flux's is read-only."""
    bypass = dev_program.one(RULESET, PROTECTION).inputs["bypassActors"]
    assert bypass == [{"actorType": "DeployKey", "bypassMode": "always"}]
    writable = [k.name for k in dev_program.of_type(DEPLOY_KEY) if k.inputs["readOnly"] is False]
    assert writable == ["deploy-keys-jenkins"]


def test_no_workflow_can_approve_a_pull_request(dev_program: Program) -> None:
    """pulumi-github 6.15.0, sdk/python/pulumi_github/workflow_repository_permissions.py:
    `can_approve_pull_request_reviews` ("Whether GitHub Actions can approve pull requests") and
    `default_workflow_permissions` ("Can be one of: `read` or `write`")."""
    (permissions,) = dev_program.of_type(
        "github:index/workflowRepositoryPermissions:WorkflowRepositoryPermissions"
    )
    assert permissions.inputs == {
        "repository": "hello-gitops",
        "canApprovePullRequestReviews": False,
        "defaultWorkflowPermissions": "read",
    }
