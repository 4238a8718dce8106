"""The app's ECR repository: immutable tags, scan on push, KMS encryption, a lifecycle policy, and an
optional day-0 image so the cluster has something to pull before Jenkins' first release.

What is deployed never expires: the release moves the one mutable tag, DEPLOYED_TAG, to the digest the
manifest deploys (also after a rollback, so what a hold pins is covered), and the lifecycle policy's
first rule matches that tag. AWS: "An image that matches the tagging requirements of a rule cannot be
expired by a rule with a lower priority" (Amazon ECR User Guide, Lifecycle policies; see docs/release.md).
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
# The tag jenkins/registry.py moves to the deployed digest (the same value: tests/infra checks it).
DEPLOYED_TAG = "deployed"


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
    """The deployed image stays; untagged images (superseded pushes, failed builds) go after a day; of
    the commit images the newest N stay."""
    return json.dumps(
        {
            "rules": [
                {
                    # Only one image can carry the tag, so "more than 1" never expires it; and being
                    # matched here, no lower-priority rule may expire it either.
                    "rulePriority": 1,
                    "description": f"keep the deployed image (tag {DEPLOYED_TAG})",
                    "selection": {
                        "tagStatus": "tagged",
                        "tagPatternList": [DEPLOYED_TAG],
                        "countType": "imageCountMoreThan",
                        "countNumber": 1,
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
            # Every tag is immutable except DEPLOYED_TAG, which follows what the manifest deploys.
            image_tag_mutability="IMMUTABLE_WITH_EXCLUSION",
            image_tag_mutability_exclusion_filters=[
                aws.ecr.RepositoryImageTagMutabilityExclusionFilterArgs(
                    filter=DEPLOYED_TAG, filter_type="WILDCARD"
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
