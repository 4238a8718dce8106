"""The app's ECR repository: immutable tags, scan on push, KMS encryption, a lifecycle policy, and an
optional day-0 image so the cluster has something to pull before Jenkins' first release.

What is deployed never expires: after every deploy to an environment (also after a rollback, so what a
hold pins is covered) the release moves that environment's mark, `deployed-<environment>`, to the digest
its overlay deploys, and the lifecycle policy's first rule matches every mark. AWS: "An image that matches
the tagging requirements of a rule cannot be expired by a rule with a lower priority" (Amazon ECR User
Guide, Lifecycle policies; see docs/release.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

APP_DIR = Path(__file__).resolve().parent.parent / "app"
# The marks jenkins/registry.py moves (deployed_tag: `deployed-<environment>`), and `deployed`, the one
# mark of the releases before one registry served several environments, which existing repositories
# still carry. In an ECR wildcard `*` stands for any run of characters, none included, so the pattern
# matches all of them; a commit tag (40 hex digits) never starts with it (docs/release.md).
DEPLOYED_PATTERN = "deployed*"
# How many images the first lifecycle rule may keep, as `imageCountMoreThan`: it expires the oldest of the
# images carrying a mark beyond this count, so it must exceed how many can carry one: one per
# environment of k8s/environments.yaml, plus the legacy `deployed`, plus the mark of an environment
# since removed from the file (nothing moves or deletes it). Far above any list of environments; a
# larger count never keeps an image that carries no mark.
MARKED_IMAGES = 100


@dataclass(frozen=True)
class RegistryArgs:
    repository_name: str
    """ECR repository name (see `ecr_repository_name`)."""
    keep_images: int
    """How many tagged (commit) images to keep; older ones expire."""
    day0_commit: str | None = None
    """When set, build app/ and push it as `<repository>:<day0_commit>` once, at creation."""


def ecr_repository_name(stack: str, repository_name: str) -> str:
    """`<stack>/<repo>` in the alphabet ECR accepts (lower case, single separators): one account can hold
    several stacks, and GitHub allows names ECR refuses (`.dotfiles`, `My_Repo`)."""
    return "/".join(re.sub(r"[^a-z0-9]+", "-", part.lower()).strip("-") for part in (stack, repository_name))


def lifecycle_policy(keep_images: int) -> str:
    """Every image an environment deploys stays; untagged images (superseded pushes, failed builds) go
    after a day; of the commit images the newest N stay."""
    return json.dumps(
        {
            "rules": [
                {
                    # Fewer images carry a mark than MARKED_IMAGES, so this rule expires none; and being
                    # matched here, no lower-priority rule may expire them either.
                    "rulePriority": 1,
                    "description": f"keep every deployed image (tags {DEPLOYED_PATTERN})",
                    "selection": {
                        "tagStatus": "tagged",
                        "tagPatternList": [DEPLOYED_PATTERN],
                        "countType": "imageCountMoreThan",
                        "countNumber": MARKED_IMAGES,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": "expire untagged images after 1 day",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": 1,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 3,
                    "description": f"keep the last {keep_images} commit images",
                    "selection": {
                        "tagStatus": "tagged",
                        "tagPatternList": ["*"],
                        "countType": "imageCountMoreThan",
                        "countNumber": keep_images,
                    },
                    "action": {"type": "expire"},
                },
            ]
        }
    )


class Registry(pulumi.ComponentResource):
    """An ECR repository for the app image."""

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gitops:infra:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository = aws.ecr.Repository(
            f"{name}-repo",
            name=args.repository_name,
            # Every tag is immutable except the marks, each following what its environment deploys.
            image_tag_mutability="IMMUTABLE_WITH_EXCLUSION",
            image_tag_mutability_exclusion_filters=[
                aws.ecr.RepositoryImageTagMutabilityExclusionFilterArgs(
                    filter=DEPLOYED_PATTERN, filter_type="WILDCARD"
                )
            ],
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS")],
            opts=child,
        )
        self.lifecycle = aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=self.repository.name,
            policy=lifecycle_policy(args.keep_images),
            opts=child,
        )
        self.repository_url: pulumi.Output[str] = self.repository.repository_url
        self.repository_arn: pulumi.Output[str] = self.repository.arn
        self.day0_image: pulumi.Output[str] | None = None
        if args.day0_commit:
            self.day0_image = self._day0_image(name, args.day0_commit)
        self.register_outputs({"repository_url": self.repository_url, "repository_arn": self.repository_arn})

    def _day0_image(self, name: str, commit: str) -> pulumi.Output[str]:
        token = aws.ecr.get_authorization_token_output(registry_id=self.repository.registry_id)
        image = docker.Image(
            f"{name}-day0",
            image_name=self.repository.repository_url.apply(lambda url: f"{url}:{commit}"),
            build=docker.DockerBuildArgs(
                context=str(APP_DIR),
                dockerfile=str(APP_DIR / "Dockerfile"),
                platform="linux/amd64",
                args={"GIT_COMMIT": commit},
            ),
            registry=docker.RegistryArgs(
                server=self.repository.repository_url,
                username=token.user_name,
                password=pulumi.Output.secret(token.password),
            ),
            # Day 0 only: from then on Jenkins builds and pushes; a new HEAD must not rebuild this.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["build", "imageName"]),
        )
        return image.repo_digest
