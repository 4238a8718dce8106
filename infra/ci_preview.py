"""The pull-request preview's trust boundary: a GitHub Environment that waits for a maintainer, and an
AWS role that only a job running in that environment can assume, which can read and not write.

Why the gate holds even against a pull request that edits the workflow: the role's trust policy pins
the OIDC token's `sub` to `repo:<owner>/<repo>:environment:<env>`, and GitHub issues that `sub` only to a
job that references the environment, which waits for a required reviewer (GitHub docs, "OpenID Connect
reference" and "Managing environments for deployment"). A job without the environment gets
`...:pull_request` and is refused by AWS. Pulumi Cloud's OIDC policy pins the same `sub`
(docs/security.md). The policy pack the preview enforces is checked out from the base branch.

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

from infra.config import PreviewConfig

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


@dataclass(frozen=True)
class PreviewAccessArgs:
    config: PreviewConfig
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
        config = args.config
        reviewer_ids = [int(github.get_user(username=login).id) for login in config.reviewers]
        full_name = f"{args.owner}/{args.repository_name}"
        repository = github.get_repository(full_name=full_name)
        repository_id = repository.repo_id
        if repository.visibility != "public":
            # GitHub enforces required reviewers on private and internal repositories only with
            # GitHub Enterprise and ignores them on other plans: the preview would run unapproved.
            pulumi.log.warn(
                f"{full_name} is {repository.visibility}: GitHub enforces the '{config.environment}' "
                "environment's required reviewers on private and internal repositories only with "
                "GitHub Enterprise; on other plans every pull request's preview runs unapproved with "
                "the preview role and Pulumi token (docs/security.md)",
                resource=self,
            )

        self.environment = github.RepositoryEnvironment(
            f"{name}-environment",
            repository=args.repository_name,
            environment=config.environment,
            reviewers=[github.RepositoryEnvironmentReviewerArgs(users=reviewer_ids)],
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
        if config.oidc_provider_arn is None:
            provider = aws.iam.OpenIdConnectProvider(
                f"{name}-github-oidc", url=GITHUB_OIDC_URL, client_id_lists=[STS_AUDIENCE], opts=child
            )
            provider_arn: pulumi.Input[str] = provider.arn
        else:
            provider_arn = config.oidc_provider_arn
        subjects = environment_subjects(args.owner, args.repository_name, repository_id, config.environment)
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
