"""The pull-request preview's gate, as the stack declares it: the GitHub Environment with required
reviewers, the GitHub OIDC provider, the role's trust policy (evaluated against the `sub` claims GitHub
issues) and its permissions (evaluated against the actions that read secrets or write)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest

from infra.ci_preview import DENIED_ACTIONS, PUBLIC_PARAMETERS
from tests.infra.conftest import ACCOUNT, GITHUB_REPO_ID, GITHUB_USER_IDS, PULUMI_ORG, Program, run_program

ENVIRONMENT = "github:index/repositoryEnvironment:RepositoryEnvironment"
OIDC = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
VARIABLE = "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable"
EXISTING_OIDC = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"


def role(program: Program) -> Any:
    return program.named("preview-role")


def policy(program: Program) -> dict[str, Any]:
    return json.loads(program.named("preview-read").inputs["policy"])


def trust(program: Program) -> dict[str, Any]:
    return json.loads(role(program).inputs["assumeRolePolicy"])


def like(pattern: str, value: str) -> bool:
    """IAM's StringLike / action matching: `*` any run of characters, `?` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value) is not None


def action_like(pattern: str, action: str) -> bool:
    """Action names are case-insensitive in IAM."""
    return like(pattern.lower(), action.lower())


def may_assume(program: Program, claims: dict[str, str]) -> bool:
    """Evaluate the trust policy for an AssumeRoleWithWebIdentity call with these token claims."""
    for statement in trust(program)["Statement"]:
        if statement["Effect"] != "Allow" or statement["Action"] != "sts:AssumeRoleWithWebIdentity":
            continue
        conditions = statement["Condition"]
        ok = (
            all(
                claims.get(key) in ([v] if isinstance(v, str) else v)
                for key, v in conditions.get("StringEquals", {}).items()
            )
            and all(
                key in claims and any(like(p, claims[key]) for p in ([v] if isinstance(v, str) else v))
                for key, v in conditions.get("StringLike", {}).items()
            )
            and all(
                not any(like(p, claims.get(key, "")) for p in ([v] if isinstance(v, str) else v))
                for key, v in conditions.get("StringNotLike", {}).items()
            )
        )
        if ok:
            return True
    return False


def claims(sub: str, aud: str = "sts.amazonaws.com") -> dict[str, str]:
    return {"token.actions.githubusercontent.com:sub": sub, "token.actions.githubusercontent.com:aud": aud}


def allowed_action(program: Program, action: str, resource: str = "*") -> bool:
    """Identity-policy evaluation (explicit Deny wins, then any Allow) for one action and resource."""

    def applies(statement: dict[str, Any]) -> bool:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if not any(action_like(a, action) for a in actions):
            return False
        if "NotResource" in statement:
            return not like(statement["NotResource"], resource)
        return like(statement["Resource"], resource)

    statements = policy(program)["Statement"]
    if any(s["Effect"] == "Deny" and applies(s) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and applies(s) for s in statements)


# --- the gate ----------------------------------------------------------------------------------------


def test_environment_requires_a_reviewer_who_is_not_the_author(dev_program: Program) -> None:
    """pulumi-github RepositoryEnvironment: reviewers.users are numeric user ids (resolved from the
    configured logins), prevent_self_review, can_admins_bypass (defaults to true)."""
    environment = dev_program.one(ENVIRONMENT)
    assert environment.inputs == {
        "repository": "hello-gitops",
        "environment": "preview",
        "reviewers": [{"users": [GITHUB_USER_IDS["example-maintainer"]]}],
        "preventSelfReview": True,
        "canAdminsBypass": False,
        "deploymentBranchPolicy": {"protectedBranches": False, "customBranchPolicies": True},
    }
    looked_up = [i.args["username"] for i in dev_program.invokes_of("github:index/getUser:getUser")]
    assert looked_up == ["example-maintainer"]


def test_only_branches_may_request_the_environment(dev_program: Program) -> None:
    """GitHub REST API ("Create a deployment branch policy"): with `custom_branch_policies`, only refs
    matching a policy can deploy; a policy has a `type` of branch or tag. We declare one branch policy
    (pulumi-github RepositoryEnvironmentDeploymentPolicy: branch_pattern xor tag_pattern) and none for
    tags."""
    (policy,) = dev_program.of_type(
        "github:index/repositoryEnvironmentDeploymentPolicy:RepositoryEnvironmentDeploymentPolicy"
    )
    assert policy.inputs == {"repository": "hello-gitops", "environment": "preview", "branchPattern": "**/*"}
    assert policy.parent == dev_program.one(ENVIRONMENT).parent


def test_a_private_repository_is_warned_that_its_gate_may_be_open(
    dev_program: Program, caplog: pytest.LogCaptureFixture
) -> None:
    """GitHub docs ("Deployments and environments", "Reviewing deployments"): required reviewers in
    private or internal repositories need GitHub Enterprise; on other plans they are ignored (a public
    repository made private keeps its rules but GitHub ignores them). The preview would then run
    without approval and hold the role and the Pulumi token: the operator must hear it."""
    assert not [r for r in caplog.records if "required reviewers" in r.getMessage()]
    with caplog.at_level(logging.WARNING):
        run_program({"repository": "example-org/hello-private"})
    (warning,) = [r for r in caplog.records if "required reviewers" in r.getMessage()]
    assert "example-org/hello-private" in warning.getMessage()
    assert "GitHub Enterprise" in warning.getMessage()


def test_workflow_variables_live_in_the_environment_and_hold_no_secret(dev_program: Program) -> None:
    variables = {v.inputs["variableName"]: v.inputs for v in dev_program.of_type(VARIABLE)}
    assert {v["environment"] for v in variables.values()} == {"preview"}
    assert variables["AWS_PREVIEW_ROLE_ARN"]["value"] == role(dev_program).outputs["arn"]
    assert variables["AWS_REGION"]["value"] == "us-east-1"
    assert variables["PULUMI_ORGANIZATION"]["value"] == PULUMI_ORG
    assert variables["PULUMI_STACK"]["value"] == f"{PULUMI_ORG}/gitops-eks/dev"
    assert not any(v.secret_inputs for v in dev_program.of_type(VARIABLE))
    assert dev_program.outputs["previewRoleArn"] == role(dev_program).outputs["arn"]


def test_github_oidc_provider_for_sts(dev_program: Program) -> None:
    """aws-actions/configure-aws-credentials README: provider URL token.actions.githubusercontent.com,
    audience sts.amazonaws.com; the thumbprint is ignored for this issuer, so none is declared."""
    provider = dev_program.one(OIDC)
    assert provider.inputs == {
        "url": "https://token.actions.githubusercontent.com",
        "clientIdLists": ["sts.amazonaws.com"],
    }
    (statement,) = trust(dev_program)["Statement"]
    assert statement["Principal"] == {"Federated": provider.outputs["arn"]}


def test_an_existing_oidc_provider_is_reused_not_duplicated() -> None:
    program = run_program({"preview.oidcProviderArn": EXISTING_OIDC})
    assert program.of_type(OIDC) == []
    (statement,) = trust(program)["Statement"]
    assert statement["Principal"] == {"Federated": EXISTING_OIDC}


SUB = "repo:example-org/hello-gitops:environment:preview"
IMMUTABLE_SUB = f"repo:example-org@1234567/hello-gitops@{GITHUB_REPO_ID}:environment:preview"
REFUSED_SUBS = {
    "the pull request without the environment": "repo:example-org/hello-gitops:pull_request",
    "a branch push": "repo:example-org/hello-gitops:ref:refs/heads/main",
    "another environment": "repo:example-org/hello-gitops:environment:production",
    "an environment sharing the prefix": "repo:example-org/hello-gitops:environment:preview-2",
    "another repository of the owner": "repo:example-org/other:environment:preview",
    "a recycled repository name": "repo:example-org@1234567/hello-gitops@55:environment:preview",
    "a fork's owner": "repo:attacker/hello-gitops:environment:preview",
    # A repository admin may replace the repository's `sub` template (REST `PUT /repos/{owner}/{repo}/
    # actions/oidc/customization/sub`, `use_default: false`, `include_claim_keys`), and claims such as
    # `workflow` (the workflow's free-text `name:`) or `environment` may carry `/`, `@` and `:`. Any
    # member who can create a repository under the owner could then end their `sub` with ours; a `*`
    # that spans `/` would let it through.
    "a sibling repository whose workflow name forges the tail": (
        f"repo:example-org@1234567/evil@42:workflow:x/hello-gitops@{GITHUB_REPO_ID}:environment:preview"
    ),
    "a sibling repository whose environment name forges the tail": (
        f"repo:example-org@1234567/evil@42:environment:x/hello-gitops@{GITHUB_REPO_ID}:environment:preview"
    ),
}


def test_trust_policy_admits_only_jobs_in_the_environment(dev_program: Program) -> None:
    assert may_assume(dev_program, claims(SUB))
    assert may_assume(dev_program, claims(IMMUTABLE_SUB))


@pytest.mark.parametrize("sub", REFUSED_SUBS.values(), ids=REFUSED_SUBS.keys())
def test_trust_policy_refuses_every_other_subject(dev_program: Program, sub: str) -> None:
    assert not may_assume(dev_program, claims(sub))


def test_trust_policy_refuses_another_audience(dev_program: Program) -> None:
    assert not may_assume(dev_program, claims(SUB, aud="https://github.com/example-org"))
    assert not may_assume(dev_program, {"token.actions.githubusercontent.com:sub": SUB})


def test_trust_policy_pins_aud_and_sub_with_no_open_wildcard(dev_program: Program) -> None:
    (statement,) = trust(dev_program)["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"]["StringEquals"] == {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com"
    }
    subjects = statement["Condition"]["StringLike"]["token.actions.githubusercontent.com:sub"]
    assert subjects[0] == SUB and "*" not in subjects[0]
    # The only wildcard stands for the owner's numeric id; the repository's id is fixed.
    assert subjects[1] == f"repo:example-org@*/hello-gitops@{GITHUB_REPO_ID}:environment:preview"
    # ...and cannot run past the owner's id: a `sub` with a second `/` is refused outright.
    assert statement["Condition"]["StringNotLike"] == {"token.actions.githubusercontent.com:sub": "*/*/*"}
    assert "ForAllValues" not in json.dumps(statement)  # true on a missing claim (AWS warns)
    assert role(dev_program).inputs["maxSessionDuration"] == 3600


# --- what the role can do ----------------------------------------------------------------------------

SECRET_READS = [
    ("secretsmanager:GetSecretValue", "*"),
    ("kms:Decrypt", "*"),
    ("kms:GenerateDataKey", "*"),
    ("ssm:GetParameter", f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/jenkins/admin-password"),
    ("ssm:GetParameters", f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/anything"),
    ("ssm:GetParametersByPath", f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/"),
    ("ec2:GetPasswordData", "*"),
    ("ecr:GetAuthorizationToken", "*"),
    ("ecr:BatchGetImage", "*"),
    ("s3:GetObject", "*"),
    ("sts:AssumeRole", "*"),
]
WRITES = [
    "ec2:RunInstances",
    "ec2:CreateTags",
    "ec2:AuthorizeSecurityGroupIngress",
    "iam:CreateRole",
    "iam:PassRole",
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "eks:UpdateClusterConfig",
    "eks:CreateAccessEntry",
    "ecr:PutImage",
    "kms:ScheduleKeyDeletion",
    "secretsmanager:PutSecretValue",
    "ssm:StartSession",
    "ssm:PutParameter",
    "elasticloadbalancing:ModifyListener",
]


@pytest.mark.parametrize(("action", "resource"), SECRET_READS, ids=[a for a, _ in SECRET_READS])
def test_the_role_cannot_read_a_secret(dev_program: Program, action: str, resource: str) -> None:
    assert not allowed_action(dev_program, action, resource)


@pytest.mark.parametrize("action", WRITES)
def test_the_role_cannot_write(dev_program: Program, action: str) -> None:
    assert not allowed_action(dev_program, action)


def test_the_role_reads_what_a_preview_reads(dev_program: Program) -> None:
    for action in (
        "ec2:DescribeAvailabilityZones",
        "ec2:DescribeImages",
        "ec2:DescribeSubnets",
        "eks:DescribeCluster",
        "iam:GetRole",
        "ecr:DescribeRepositories",
        "secretsmanager:DescribeSecret",
        "sts:GetCallerIdentity",
    ):
        assert allowed_action(dev_program, action), action
    public = "arn:aws:ssm:us-east-1::parameter/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/x86_64"
    assert allowed_action(dev_program, "ssm:GetParameter", public)


def test_every_allowed_action_is_a_describe_list_or_get(dev_program: Program) -> None:
    for statement in policy(dev_program)["Statement"]:
        if statement["Effect"] == "Allow":
            for action in statement["Action"]:
                verb = action.split(":")[1]
                assert re.match(r"^(Describe|List|Get)", verb), action
                assert action != "*" and not action.endswith(":*"), action


def test_the_denies_cover_what_a_later_policy_could_reopen(dev_program: Program) -> None:
    denies = [s for s in policy(dev_program)["Statement"] if s["Effect"] == "Deny"]
    assert set(denies[0]["Action"]) == set(DENIED_ACTIONS) and denies[0]["Resource"] == "*"
    assert denies[1] == {
        "Sid": "NeverReadPrivateParameters",
        "Effect": "Deny",
        "Action": ["ssm:GetParameter*"],
        "NotResource": PUBLIC_PARAMETERS,
    }


def test_policies_fit_iam_size_limits(dev_program: Program) -> None:
    """IAM quotas (AWS IAM user guide, "IAM and AWS STS quotas"): a role's trust policy 2,048
    characters by default, inline role policies 10,240 in total; whitespace does not count."""
    compact = json.dumps(trust(dev_program), separators=(",", ":"))
    assert len(compact) <= 2048
    assert len(json.dumps(policy(dev_program), separators=(",", ":"))) <= 10240
