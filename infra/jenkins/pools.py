"""The two agent pools, split by trust. Each is its own Auto Scaling group, EC2 Fleet cloud, launch
template and role, with one fresh instance per build (infra/jenkins/agents.py, clouds.py).

- `build-agent` runs the repository's code: `make test` (with every unhashed test dependency) and the
  image build. Its role pushes to the app's ECR repository. It never holds the write deploy key or the
  signing key.
- `release-agent` runs nothing the build ran: no make, no docker (not even installed), no unhashed
  install. It checks out with the read-only key, installs requirements-release.txt by hash, re-verifies
  the digest and runs `python -m jenkins promote` with the write key and the signing key bound around
  that one command. Its role reads the repository's images and moves the environments' marks, the
  `deployed-<environment>` tags (what `promote` marks, jenkins/ecr.py tag_image: BatchGetImage +
  PutImage); it cannot upload a layer and gets no registry login.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgentPool:
    kind: str
    """`build` or `release`: part of every resource name of the pool."""
    label: str
    """The Jenkins label the Jenkinsfile's stage asks for; only this pool's cloud carries it."""
    cloud_name: str
    packages: tuple[str, ...]
    """What cloud-init's package step installs (AL2023 package names)."""
    tools: tuple[str, ...]
    """Commands the boot checks before it marks the agent ready; with `docker`, it also starts Docker."""
    ecr_login: bool
    """Whether the role may get a registry login token (only `docker push` needs one)."""
    ecr_actions: tuple[str, ...]
    """ECR actions on the app's repository, and nothing else."""
    description: str


# ECR's own list for a push to one repository (AWS ECR User Guide, "IAM permissions for pushing an
# image to an Amazon ECR private repository", image-push-iam.html), plus the lookups the build makes.
ECR_PUSH_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:DescribeImages",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:ListImages",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
)
# What `promote` calls (jenkins/ecr.py): DescribeImages (tag -> digest), BatchGetImage + PutImage (the
# `deployed-<environment>` mark on a manifest already there). No layer upload, no GetAuthorizationToken.
ECR_RELEASE_ACTIONS = ("ecr:BatchGetImage", "ecr:DescribeImages", "ecr:PutImage")

BUILD = AgentPool(
    kind="build",
    label="build-agent",
    cloud_name="build-agents",
    # `make test` (python3.11, make), the image build (docker), git over SSH, Java for the agent process.
    packages=("java-21-amazon-corretto-headless", "docker", "git", "make", "python3.11", "python3.11-pip"),
    tools=("java", "git", "docker", "make", "python3.11", "ssh"),
    ecr_login=True,
    ecr_actions=ECR_PUSH_ACTIONS,
    description="Jenkins build agents: test, build and push to one ECR repository",
)
RELEASE = AgentPool(
    kind="release",
    label="release-agent",
    cloud_name="release-agents",
    # git over SSH, python3.11 with pip for the hashed install, Java for the agent process. gpg (for
    # signed bot commits) is AL2023's default gnupg2-minimal (AL2023 User Guide, gnupg-minimal.html).
    packages=("java-21-amazon-corretto-headless", "git", "python3.11", "python3.11-pip"),
    tools=("java", "git", "python3.11", "ssh", "gpg"),
    ecr_login=False,
    ecr_actions=ECR_RELEASE_ACTIONS,
    description="Jenkins release agents: read one ECR repository and move its deployed tag",
)
POOLS = (BUILD, RELEASE)
