"""The pull-request preview's gate, as the stack declares it: the GitHub Environment with required
reviewers, the GitHub OIDC provider, the role's trust policy (evaluated against the `sub` claims GitHub
issues) and its permissions (evaluated against the actions that read secrets or write)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra.ci_preview import DENIED_ACTIONS, PUBLIC_PARAMETERS
from tests.infra.conftest import (
    ACCOUNT,
    DELETE,
    GITHUB_REPO_ID,
    GITHUB_USER_IDS,
    PULUMI_ORG,
    InvokeFailure,
    Program,
    config_error,
    run_program,
)

ENVIRONMENT = "github:index/repositoryEnvironment:RepositoryEnvironment"
OIDC = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
VARIABLE = "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable"
EXISTING_OIDC = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
GET_USER = "github:index/getUser:getUser"
GET_REPOSITORY = "github:index/getRepository:getRepository"
GET_OIDC_PROVIDER = "aws:iam/getOpenIdConnectProvider:getOpenIdConnectProvider"


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


# GitHub docs, "Managing environments for deployment" (and the REST page "Deployment environments"):
# environments and their protection rules are available in public repositories on every current plan; in
# private ones, environments need Pro, Team or Enterprise, and required reviewers need GitHub Enterprise.
PRIVATE_GATE = (
    "gitops-eks:preview.githubEnterprise: example-org/hello-private is private, and GitHub enforces an "
    "environment's required reviewers on a private repository only on GitHub Enterprise Cloud (Free has no "
    "environments there, Pro and Team ignore the reviewers), so every pull request's preview would run "
    "unapproved with the preview role; set it to true if the owner is on GitHub Enterprise Cloud, or turn "
    "previews off: `pulumi config set --path 'gitops-eks:preview.enabled' false`"
)


def test_a_private_repository_off_enterprise_gets_no_preview_that_would_run_unapproved() -> None:
    """Used to be a warning, after which the stack declared a gate GitHub would not hold. Now nothing is
    declared, and the one line says why and names both keys that decide it."""
    assert config_error({"repository": "example-org/hello-private"}, reads=True) == PRIVATE_GATE


def test_a_private_repository_on_enterprise_or_an_internal_one_keeps_its_gate() -> None:
    """`internal` exists only in organizations of a GitHub Enterprise Cloud account (REST "Create an
    organization repository", `visibility`), where required reviewers are enforced."""
    for overrides in (
        {"repository": "example-org/hello-private", "preview.githubEnterprise": True},
        {"repository": "example-org/hello-internal"},
    ):
        program = run_program(overrides)
        assert program.one(ENVIRONMENT).inputs["reviewers"] == [
            {"users": [GITHUB_USER_IDS["example-maintainer"]]}
        ]


def test_previews_off_declare_no_gate_and_need_no_reviewer() -> None:
    program = run_program({"preview.enabled": False, "preview.reviewers": DELETE})
    assert program.of_type(ENVIRONMENT) == program.of_type(VARIABLE) == program.of_type(OIDC) == []
    assert [r for r in program.resources if r.name.startswith("preview")] == []
    assert "previewRoleArn" not in program.outputs
    read = {i.token for i in program.invokes}
    assert not read & {GET_USER, GET_REPOSITORY, GET_OIDC_PROVIDER}


def test_a_reviewer_github_does_not_know_is_refused_naming_the_key() -> None:
    """terraform-provider-github data_source_github_user.go returns the client's error for GET
    /users/{username}: go-github's "GET <url>: 404 Not Found []"."""

    def unknown(args: dict[str, Any]) -> dict[str, Any]:
        raise InvokeFailure(f"GET https://api.github.com/users/{args['username']}: 404 Not Found []")

    message = config_error(
        {"preview.reviewers": ["octocat", "no-such-user-x"]},
        reads=True,
        invoke_results={
            GET_USER: lambda args: unknown(args) if args["username"] == "no-such-user-x" else {"id": "583231"}
        },
    )
    assert message.startswith(
        "gitops-eks:preview.reviewers[1]: GitHub did not return the user 'no-such-user-x' ("
    )
    assert "404 Not Found" in message and "\n" not in message
    assert message.endswith("`pulumi config set --path 'gitops-eks:preview.reviewers[1]' <login>`")


def test_an_unknown_repository_is_refused_naming_the_key() -> None:
    """terraform-provider-github data_source_github_repository.go: on a 404 the data source is empty
    (no error), which would otherwise reach the environment and the trust policy as repository id 0."""
    message = config_error(
        {},
        reads=True,
        invoke_results={GET_REPOSITORY: lambda args: {"id": "", "fullName": args["fullName"]}},
    )
    assert message == (
        "gitops-eks:repository: example-org/hello-gitops was not found with github:token; check the name and "
        "that the token's repository access includes it"
    )


def github_answers_as(full_name: str) -> dict[str, Any]:
    """getRepository as terraform-provider-github v6.13.0 data_source_github_repository.go fills it:
    `full_name` from GitHub's answer (`repo.GetFullName()`), not from the name asked for. GitHub answers a
    renamed or transferred repository's old name with the repository under its new one (REST "Get a
    repository": 301 Moved Permanently, which the client follows), and names are case-insensitive there."""
    return {
        GET_REPOSITORY: lambda args: {
            "id": full_name.split("/")[1],
            "fullName": full_name,
            "repoId": GITHUB_REPO_ID,
            "visibility": "public",
        }
    }


def test_a_renamed_or_transferred_repository_is_refused_naming_the_key() -> None:
    """Deploy keys, webhooks and the environment would be written under the old path, and the `sub` GitHub
    puts in the preview's token carries the new name: the trust policy would never match it."""
    message = config_error({}, reads=True, invoke_results=github_answers_as("new-org/hello-gitops"))
    assert message == (
        "gitops-eks:repository: GitHub answers for example-org/hello-gitops with new-org/hello-gitops (the "
        "repository was renamed or transferred); set it and its owner to that: `pulumi config set "
        "gitops-eks:repository new-org/hello-gitops` and `pulumi config set github:owner new-org`"
    )


def test_the_trust_policy_pins_githubs_spelling_of_the_repository() -> None:
    """GitHub puts the repository's own spelling in the token's `sub` (the case-preserved `full_name` of
    GET /repos/{owner}/{repo}; npm/documentation#1792, fullsend-ai/fullsend#3678), and IAM's StringEquals
    and StringLike compare case-sensitively. The API itself takes any case, so a config in another case
    gets past every other step and leaves a role no preview can assume."""
    program = run_program(
        {"repository": "Example-Org/Hello-GitOps", "github:owner": "Example-Org"},
        invoke_results=github_answers_as("example-org/hello-gitops"),
    )
    assert may_assume(program, claims("repo:example-org/hello-gitops:environment:preview"))
    immutable = f"repo:example-org@42/hello-gitops@{GITHUB_REPO_ID}:environment:preview"
    assert may_assume(program, claims(immutable))


def test_a_repository_github_refuses_to_read_is_refused_naming_the_token() -> None:
    """A wrong or expired token, or one without this repository, fails the data source with go-github's
    error (data_source_github_repository.go returns it for anything but a 404): one line, what to do."""

    def refused(args: dict[str, Any]) -> dict[str, Any]:
        raise InvokeFailure(
            "GET https://api.github.com/repos/example-org/hello-gitops: 401 Bad credentials []"
        )

    message = config_error({}, reads=True, invoke_results={GET_REPOSITORY: refused})
    assert message.startswith("github:token: GitHub refused reading example-org/hello-gitops (")
    assert "401 Bad credentials" in message and "\n" not in message
    assert message.endswith("the permissions the README lists: `pulumi config set --secret github:token`")


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
    audience sts.amazonaws.com; the thumbprint is ignored for this issuer, so none is declared. Created
    only when the account has none (the mocks' default), and kept when the stack goes: it is the account's."""
    (lookup,) = dev_program.invokes_of(GET_OIDC_PROVIDER)
    assert lookup.args == {"url": "https://token.actions.githubusercontent.com"}
    provider = dev_program.one(OIDC)
    assert provider.inputs == {
        "url": "https://token.actions.githubusercontent.com",
        "clientIdLists": ["sts.amazonaws.com"],
    }
    assert provider.options["retainOnDelete"] is True
    (statement,) = trust(dev_program)["Statement"]
    assert statement["Principal"] == {"Federated": provider.outputs["arn"]}


def existing_provider(audiences: list[str], thumbprints: tuple[str, ...] = ()) -> dict[str, Any]:
    """The data source's answer for an account that has GitHub's provider (its schema: arn, url,
    client_id_list, thumbprint_list, tags)."""
    return {
        GET_OIDC_PROVIDER: lambda args: {
            "id": EXISTING_OIDC,
            "arn": EXISTING_OIDC,
            "url": "token.actions.githubusercontent.com",
            "clientIdLists": audiences,
            "thumbprintLists": list(thumbprints),
            "tags": {},
        }
    }


def test_an_existing_oidc_provider_is_found_and_reused_with_no_configuration() -> None:
    """IAM keeps one provider per URL: declaring a second fails with EntityAlreadyExists."""
    program = run_program(invoke_results=existing_provider(["sts.amazonaws.com"]))
    assert program.of_type(OIDC) == []
    (statement,) = trust(program)["Statement"]
    assert statement["Principal"] == {"Federated": EXISTING_OIDC}


def test_a_provider_this_stack_created_is_read_under_its_name_so_the_engine_keeps_it() -> None:
    """A stack whose earlier run created the provider finds it on the next run. Were it merely no longer
    declared, the engine would delete it (a resource created before it was declared `retainOnDelete`
    has no such flag in the state) and every role trusting it with it. Read with `get` under the URN it
    was created with and the same id, the engine relinquishes it instead: pulumi/pulumi
    pkg/resource/deploy/step_generator.go (commit 1b59498), GenerateReadSteps: a read whose old state is
    managed and has the same ID is a "relinquish", with no delete step (a different ID would replace it)."""
    created = run_program().one(OIDC)
    found = run_program(invoke_results=existing_provider(["sts.amazonaws.com"]))
    (read,) = [r for r in found.reads if r.type == OIDC]
    assert (read.urn, read.id) == (created.urn, EXISTING_OIDC)
    assert found.of_type(OIDC) == []


def test_a_provider_another_tool_set_up_with_more_audiences_and_thumbprints_is_left_as_it_is() -> None:
    """Another stack or tool in the account may have added audiences (sigstore) or thumbprints. A read
    takes the provider as it is: nothing is declared that could diff against it or take them away."""
    found = run_program(
        invoke_results=existing_provider(
            ["sts.amazonaws.com", "sigstore"], ("6938fd4d98bab03faadb97b34396831e3780aea1",)
        )
    )
    assert found.of_type(OIDC) == []
    assert [(r.type, r.id) for r in found.reads] == [(OIDC, EXISTING_OIDC)]
    (statement,) = trust(found)["Statement"]
    assert statement["Principal"] == {"Federated": EXISTING_OIDC}


def test_a_configured_oidc_provider_is_used_without_a_lookup() -> None:
    program = run_program({"preview.oidcProviderArn": EXISTING_OIDC})
    assert program.of_type(OIDC) == [] and program.invokes_of(GET_OIDC_PROVIDER) == []
    (statement,) = trust(program)["Statement"]
    assert statement["Principal"] == {"Federated": EXISTING_OIDC}


def test_an_existing_provider_without_the_sts_audience_is_refused() -> None:
    message = config_error({}, reads=True, invoke_results=existing_provider(["sigstore"]))
    assert message.startswith(
        f"gitops-eks:preview.oidcProviderArn: the account's provider {EXISTING_OIDC} does not list the "
        "audience sts.amazonaws.com"
    )
    assert "aws iam add-client-id-to-open-id-connect-provider --client-id sts.amazonaws.com" in message


def test_a_lookup_that_fails_for_another_reason_is_not_taken_for_no_provider() -> None:
    """Creating a provider because the caller may not list them would fail later with EntityAlreadyExists;
    the error names the permission and the key that skips the lookup."""

    def denied(args: dict[str, Any]) -> dict[str, Any]:
        raise InvokeFailure(
            "reading IAM OIDC Provider (https://token.actions.githubusercontent.com): operation error IAM: "
            "ListOpenIDConnectProviders, https response error StatusCode: 403, api error AccessDenied"
        )

    message = config_error({}, reads=True, invoke_results={GET_OIDC_PROVIDER: denied})
    assert message.startswith("gitops-eks:preview.oidcProviderArn: could not look up")
    assert "iam:ListOpenIDConnectProviders" in message and "AccessDenied" in message


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
        # The lookup of the account's GitHub OIDC provider by URL (the data source lists, then gets).
        "iam:ListOpenIDConnectProviders",
        "iam:GetOpenIDConnectProvider",
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
