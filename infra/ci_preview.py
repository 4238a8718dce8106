"""The pull-request preview's trust boundary: a GitHub Environment that waits for a maintainer, and an
AWS role that only a job running in that environment can assume, which can read and not write.

Why the gate holds even against a pull request that edits the workflow: the role's trust policy pins
the OIDC token's `sub` to `repo:<owner>/<repo>:environment:<env>`, and GitHub issues that `sub` only to a
job that references the environment, which waits for a required reviewer (GitHub docs, "OpenID Connect
reference" and "Managing environments for deployment"). A job without the environment gets
`...:pull_request` and is refused by AWS. Pulumi Cloud's OIDC policy pins the same `sub`
(docs/security.md). The policy pack the preview enforces is checked out from the base branch. The gate
holds only where GitHub enforces required reviewers: `check_gate` refuses it elsewhere before anything
is declared.

Sources (2026-12-01): aws-actions/configure-aws-credentials README ("Configuring OIDC", "Claims and
scoping permissions"): issuer URL `https://token.actions.githubusercontent.com`, audience
`sts.amazonaws.com`, the thumbprint is ignored for this issuer (IAM uses its trusted CA library), and
repositories created on or after 15 July 2026 emit an immutable `sub`
(`repo:<owner>@<owner id>/<repo>@<repo id>:...`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_github as github

from infra.config import PROJECT, PreviewConfig
from infra.errors import ConfigError

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"
# Every branch name (GitHub matches these patterns as Ruby's File.fnmatch with FNM_PATHNAME: `**/`
# spans zero or more `/`-separated parts), and no tag (tags would need a `tag_pattern` policy).
PREVIEW_BRANCHES = "**/*"
SESSION_SECONDS = 3600  # the minimum IAM allows for a role; a preview takes minutes

# What `pulumi preview` of this stack reads: the data sources (availability zones, AMIs, subnets, the
# caller), the providers' configure calls, and the refresh of what the stack declares (EC2/VPC, ELB,
# Auto Scaling, EKS, ECR, IAM, KMS, Secrets Manager metadata, CloudWatch Logs, ACM). Describe, List and
# Get of configuration only: nothing that returns a secret's value or decrypts.
READ_ACTIONS = (
    "sts:GetCallerIdentity",
    "ec2:Describe*",
    "elasticloadbalancing:Describe*",
    "autoscaling:Describe*",
    "eks:Describe*",
    "eks:List*",
    "ecr:DescribeRepositories",
    "ecr:DescribeImages",
    "ecr:ListImages",
    "ecr:ListTagsForResource",
    "ecr:GetLifecyclePolicy",
    "ecr:GetRepositoryPolicy",
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:ListRolePolicies",
    "iam:ListAttachedRolePolicies",
    "iam:ListRoleTags",
    "iam:GetInstanceProfile",
    "iam:ListInstanceProfilesForRole",
    "iam:GetOpenIDConnectProvider",
    "iam:ListOpenIDConnectProviders",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListResourceTags",
    "kms:ListAliases",
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetResourcePolicy",
    "logs:DescribeLogGroups",
    "logs:ListTagsForResource",
    "acm:DescribeCertificate",
    "acm:ListTagsForCertificate",
)
# AWS's public parameters (EKS-optimised and Amazon Linux AMI ids) are the only SSM reads: the
# account's own parameters may be SecureStrings.
PUBLIC_PARAMETERS = "arn:aws:ssm:*::parameter/aws/service/*"
PUBLIC_PARAMETER_ACTIONS = ("ssm:GetParameter", "ssm:GetParameters")
# Reads that return secrets, credentials or data, denied outright: an explicit Deny wins over any
# Allow, so a policy attached to this role later (ReadOnlyAccess, say) cannot reopen them.
DENIED_ACTIONS = (
    "secretsmanager:GetSecretValue",
    "kms:Decrypt",
    "kms:GenerateDataKey*",
    "ec2:GetPasswordData",
    "ecr:GetAuthorizationToken",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "s3:GetObject*",
    "sts:AssumeRole",
)


# Our `sub` holds exactly one `/` (between owner and repository: neither the names nor the environment,
# `_ENVIRONMENT` in infra/config.py, may contain one). IAM's `*` matches any run of characters, `/`
# included, so without this a sibling repository of the owner whose `sub` ends in a forged copy of our
# tail (an environment or a workflow name in a custom `sub` template may hold `/`, `@` and `:`) would
# match the immutable form's owner-id wildcard.
SECOND_SLASH = "*/*/*"


def trust_policy(provider_arn: str, subjects: list[str]) -> str:
    """Only GitHub's OIDC tokens for STS, and only for the given `sub` values (wildcards never
    spanning a second `/`)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE},
                        "StringLike": {f"{GITHUB_OIDC_HOST}:sub": subjects},
                        "StringNotLike": {f"{GITHUB_OIDC_HOST}:sub": SECOND_SLASH},
                    },
                }
            ],
        }
    )


def environment_subjects(owner: str, repository: str, repository_id: int, environment: str) -> list[str]:
    """The `sub` a job in the environment carries: the name-only form, and the immutable form that
    repositories created since 15 July 2026 emit. The immutable form is pinned by the repository's
    numeric id (permanent and unique on GitHub), so a recycled owner or repository name never matches;
    the owner's id is left as `*`, which `trust_policy` keeps from spanning a `/`."""
    suffix = f":environment:{environment}"
    return [f"repo:{owner}/{repository}{suffix}", f"repo:{owner}@*/{repository}@{repository_id}{suffix}"]


def permission_policy() -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadWhatPreviewReads",
                    "Effect": "Allow",
                    "Action": list(READ_ACTIONS),
                    "Resource": "*",
                },
                {
                    "Sid": "ReadPublicParameters",
                    "Effect": "Allow",
                    "Action": list(PUBLIC_PARAMETER_ACTIONS),
                    "Resource": PUBLIC_PARAMETERS,
                },
                {
                    "Sid": "NeverReadSecrets",
                    "Effect": "Deny",
                    "Action": list(DENIED_ACTIONS),
                    "Resource": "*",
                },
                {
                    "Sid": "NeverReadPrivateParameters",
                    "Effect": "Deny",
                    "Action": ["ssm:GetParameter*"],
                    "NotResource": PUBLIC_PARAMETERS,
                },
            ],
        }
    )


# terraform-provider-aws internal/service/iam/openid_connect_provider_data_source.go: a URL no provider of
# the account has ends in `retry.NotFoundError`, whose text (internal/retry/error.go) is this.
PROVIDER_NOT_FOUND = "couldn't find resource"


@dataclass(frozen=True)
class PreviewGate:
    """What GitHub and AWS say about the gate, read before any resource is declared."""

    repository_id: int
    full_name: str
    """`owner/name` as GitHub spells it: what the `sub` of the preview's token carries."""
    reviewer_ids: tuple[int, ...]
    oidc_provider_arn: str | None
    """The account's GitHub Actions OIDC provider (configured or found), None when there is none yet."""


def check_gate(config: PreviewConfig, owner: str, repository_name: str) -> PreviewGate:
    """Refuse a preview GitHub would not hold (a private repository off GitHub Enterprise), naming the keys
    that decide it; find the account's OIDC provider. Reads data sources only: nothing is declared."""
    full_name = f"{owner}/{repository_name}"
    try:
        repository = github.get_repository(full_name=full_name)
    except Exception as error:  # the invoke's failure carries the provider's message only
        raise ConfigError(
            f"github:token: GitHub refused reading {full_name} ({error}); set a token that is valid and "
            "whose repository access includes it, with the permissions the README lists: "
            "`pulumi config set --secret github:token`"
        ) from None
    # terraform-provider-github data_source_github_repository.go: a 404 leaves the data source empty.
    if not repository.repo_id:
        raise ConfigError(
            f"{PROJECT}:repository: {full_name} was not found with github:token; check the name and that the "
            "token's repository access includes it"
        )
    # The data source's full_name is GitHub's answer: a renamed or transferred repository answers under its
    # new name, which the stack's writes and the token's `sub` would not match.
    if repository.full_name.lower() != full_name.lower():
        raise ConfigError(
            f"{PROJECT}:repository: GitHub answers for {full_name} with {repository.full_name} (the "
            "repository was renamed or transferred); set it and its owner to that: "
            f"`pulumi config set {PROJECT}:repository {repository.full_name}` and "
            f"`pulumi config set github:owner {repository.full_name.split('/')[0]}`"
        )
    # GitHub docs, "Managing environments for deployment": on Free, Pro and Team, required reviewers are
    # available for public repositories only (Free has no environments on private ones at all). `internal`
    # exists only under GitHub Enterprise Cloud (REST "Create an organization repository", `visibility`).
    if repository.visibility == "private" and not config.github_enterprise:
        raise ConfigError(
            f"{PROJECT}:preview.githubEnterprise: {full_name} is private, and GitHub enforces an "
            "environment's required reviewers on a private repository only on GitHub Enterprise Cloud (Free "
            "has no environments there, Pro and Team ignore the reviewers), so every pull request's preview "
            "would run unapproved with the preview role; set it to true if the owner is on GitHub Enterprise "
            f"Cloud, or turn previews off: `pulumi config set --path '{PROJECT}:preview.enabled' false`"
        )
    return PreviewGate(
        repository.repo_id,
        repository.full_name,
        _reviewer_ids(config.reviewers),
        config.oidc_provider_arn or _existing_provider(),
    )


def _reviewer_ids(logins: tuple[str, ...]) -> tuple[int, ...]:
    """GitHub's numeric id of each reviewer (the environment takes ids), naming the login GitHub refuses."""
    ids = []
    for i, login in enumerate(logins):
        try:
            ids.append(int(github.get_user(username=login).id))
        except Exception as error:  # the invoke's failure carries the provider's message only
            raise ConfigError(
                f"{PROJECT}:preview.reviewers[{i}]: GitHub did not return the user {login!r} ({error}); "
                "list the logins of the people who approve previews: "
                f"`pulumi config set --path '{PROJECT}:preview.reviewers[{i}]' <login>`"
            ) from None
    return tuple(ids)


def _existing_provider() -> str | None:
    """The ARN of the account's OIDC provider for GitHub Actions, None when it has none: IAM keeps one
    provider per URL (CreateOpenIDConnectProvider fails with EntityAlreadyExists on a second)."""
    try:
        provider = aws.iam.get_open_id_connect_provider(url=GITHUB_OIDC_URL)
    except Exception as error:  # the invoke's failure carries the provider's message only
        if PROVIDER_NOT_FOUND in str(error):
            return None
        raise ConfigError(
            f"{PROJECT}:preview.oidcProviderArn: could not look up the account's OIDC provider for "
            f"{GITHUB_OIDC_HOST} ({error}); allow iam:ListOpenIDConnectProviders and "
            "iam:GetOpenIDConnectProvider, or set the provider's ARN"
        ) from None
    if STS_AUDIENCE not in provider.client_id_lists:
        raise ConfigError(
            f"{PROJECT}:preview.oidcProviderArn: the account's provider {provider.arn} does not list the "
            f"audience {STS_AUDIENCE}, so STS refuses GitHub's tokens; add it "
            f"(`aws iam add-client-id-to-open-id-connect-provider --client-id {STS_AUDIENCE} "
            f"--open-id-connect-provider-arn {provider.arn}`)"
        )
    return provider.arn


@dataclass(frozen=True)
class PreviewAccessArgs:
    config: PreviewConfig
    gate: PreviewGate
    owner: str
    repository_name: str
    region: str


class PreviewAccess(pulumi.ComponentResource):
    """The `preview` GitHub Environment (required reviewers) and the read-only AWS role pinned to it."""

    def __init__(
        self, name: str, args: PreviewAccessArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("gitops:infra:PreviewAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config, gate = args.config, args.gate
        self.environment = github.RepositoryEnvironment(
            f"{name}-environment",
            repository=args.repository_name,
            environment=config.environment,
            reviewers=[github.RepositoryEnvironmentReviewerArgs(users=list(gate.reviewer_ids))],
            # The author of a pull request cannot approve the run of their own code, and admins
            # cannot skip the review.
            prevent_self_review=True,
            can_admins_bypass=False,
            deployment_branch_policy=github.RepositoryEnvironmentDeploymentBranchPolicyArgs(
                protected_branches=False, custom_branch_policies=True
            ),
            opts=child,
        )
        # Branches only: no tag can deploy, so neither a pushed tag nor a workflow run on one ever asks
        # for the preview's credentials. GitHub matches a pull request's run by its head branch.
        self.branch_policy = github.RepositoryEnvironmentDeploymentPolicy(
            f"{name}-branches",
            repository=args.repository_name,
            environment=self.environment.environment,
            branch_pattern=PREVIEW_BRANCHES,
            opts=child,
        )
        provider_arn: pulumi.Input[str]
        if gate.oidc_provider_arn is None:
            # Account-wide and shared by whatever else trusts GitHub Actions: kept when the stack goes. The
            # next run finds it by its URL and reuses it, so it is never declared twice.
            provider = aws.iam.OpenIdConnectProvider(
                f"{name}-github-oidc",
                url=GITHUB_OIDC_URL,
                client_id_lists=[STS_AUDIENCE],
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
            provider_arn = provider.arn
        else:
            # Read, not managed, under the name it is created with: when an earlier run of this stack created
            # it, the engine sees the same URN and ID and relinquishes it, where merely not declaring it
            # would delete it (and a provider created before `retain_on_delete` has no such flag in the
            # state). pulumi/pulumi pkg/resource/deploy/step_generator.go, GenerateReadSteps.
            aws.iam.OpenIdConnectProvider.get(f"{name}-github-oidc", gate.oidc_provider_arn, opts=child)
            provider_arn = gate.oidc_provider_arn
        owner, repository_name = gate.full_name.split("/")
        subjects = environment_subjects(owner, repository_name, gate.repository_id, config.environment)
        self.role = aws.iam.Role(
            f"{name}-role",
            description=f"pulumi preview of {args.owner}/{args.repository_name} pull requests (read-only)",
            assume_role_policy=pulumi.Output.from_input(provider_arn).apply(
                lambda arn: trust_policy(arn, subjects)
            ),
            max_session_duration=SESSION_SECONDS,
            opts=child,
        )
        self.policy = aws.iam.RolePolicy(
            f"{name}-read", role=self.role.id, policy=permission_policy(), opts=child
        )
        # What the workflow reads as `vars.*` inside the environment: no value here is a secret.
        self.variables = [
            github.ActionsEnvironmentVariable(
                f"{name}-{variable.lower().replace('_', '-')}",
                repository=args.repository_name,
                environment=self.environment.environment,
                variable_name=variable,
                value=value,
                opts=child,
            )
            for variable, value in (
                ("AWS_PREVIEW_ROLE_ARN", self.role.arn),
                ("AWS_REGION", args.region),
                ("PULUMI_ORGANIZATION", pulumi.get_organization()),
                ("PULUMI_STACK", f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"),
            )
        ]
        self.register_outputs({"role_arn": self.role.arn, "environment": self.environment.environment})
