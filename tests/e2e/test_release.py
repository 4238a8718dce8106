"""`python -m jenkins release` end to end: real Docker engine, real local registry, real git remote.

One GitOps repository (bare remote + a detached checkout holding this repo's app/ and k8s/) serves the
whole module, so the app is built from scratch once and later builds reuse the layer cache. The tests
run in file order: the rollback story, which moves the manifest, comes last.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from jenkins.registry import resolve_digest
from plane.sandbox import (
    MANIFEST,
    ROOT,
    GitOpsRepo,
    Run,
    build_arg_flags,
    git,
    hermetic_build_args,
    jenkins_cli,
)
from tests.conftest import free_port, require
from tests.jenkins.test_build import cache_hit

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SECRET = "mirror-token-3b7e91"  # rides in a build arg; must never reach the console
HOLD_BY = "release.gitops/held-by"


@dataclass
class Story:
    repo: GitOpsRepo
    repository: str
    build_args: dict[str, str]
    first_commit: str
    first: Run

    def release(self, commit: str, *extra: str) -> Run:
        self.repo.checkout(commit)
        args = ["--image-repository", self.repository, "--build-network", "host"]
        return checked(
            jenkins_cli(self.repo.work, "release", [*args, *build_arg_flags(self.build_args), *extra])
        )

    def cli(self, command: str, *args: str) -> Run:
        self.repo.checkout_tip()
        return checked(jenkins_cli(self.repo.work, command, list(args)))

    def manifest(self) -> str:
        return self.repo.file_at_tip(MANIFEST)


def checked(run: Run) -> Run:
    """Every run, whatever its outcome: no secret in its console or JSON."""
    assert SECRET not in run.stdout
    assert SECRET not in run.stderr
    return run


@pytest.fixture(scope="module")
def story(
    base_image: str, wheelhouse_url: str, registry: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Story]:
    for part in ("app/Dockerfile", MANIFEST):
        require((ROOT / part).is_file(), f"{part} is missing: nothing to release")
    repo = GitOpsRepo.seed(tmp_path_factory.mktemp("gitops"))
    build_args = {
        **hermetic_build_args(wheelhouse_url, base_image),
        # A private mirror's credentials: pip ignores it (PIP_NO_INDEX), the console must never show it.
        "PIP_EXTRA_INDEX_URL": f"http://jenkins:{SECRET}@127.0.0.1:9/simple",
    }
    commit = repo.app_commit("First app change")
    story = Story(repo, f"{registry}/e2e/hello-gitops", build_args, commit, Run(0, None, "", "", 0.0))
    story.first = story.release(commit)
    yield story


def test_release_builds_pushes_and_pins_the_digest(story: Story) -> None:
    run, commit = story.first, story.first_commit
    assert run.returncode == 0, run.stderr
    assert run.outcome["outcome"] == "changed"
    digest = resolve_digest(story.repository, commit)
    assert digest is not None
    assert run.outcome["image"] == f"{story.repository}:{commit}@{digest}"
    assert "docker build" in run.stderr

    tip = story.repo.tip()
    assert run.outcome["commit"] == tip
    assert f'newName: "{story.repository}"' in story.manifest()
    assert f'newTag: "{commit}"' in story.manifest()
    assert f"digest: {digest}" in story.manifest()
    assert git(story.repo.remote, "diff-tree", "--no-commit-id", "--name-only", "-r", tip) == MANIFEST
    assert "[skip ci]" in git(story.repo.remote, "log", "-1", "--format=%B", tip)

    require(shutil.which("kubectl") is not None, "kubectl (for `kubectl kustomize`) is not installed")
    rendered = story.repo.rendered_at_tip(story.repo.work.parent / "flux-view")
    assert f"image: {story.repository}:{commit}@{digest}" in rendered


def test_rerun_of_the_same_commit_skips_the_build_and_is_a_noop(story: Story) -> None:
    tip = story.repo.tip()
    run = story.release(story.first_commit)
    assert run.returncode == 0, run.stderr
    assert run.outcome["outcome"] == "noop"
    assert run.outcome["commit"] is None
    assert "skipping the build" in run.stderr
    assert "docker build" not in run.stderr
    assert story.repo.tip() == tip
    assert run.seconds < 10  # a retried build costs seconds, not a rebuild


def test_release_on_the_bots_own_commit_does_nothing(story: Story) -> None:
    tip = story.repo.tip()
    story.repo.checkout_tip()
    run = checked(
        jenkins_cli(
            story.repo.work,
            "release",
            ["--image-repository", story.repository, *build_arg_flags(story.build_args)],
        )
    )
    assert run.returncode == 0, run.stderr
    assert run.outcome["outcome"] == "noop"
    assert "docker build" not in run.stderr
    assert story.repo.tip() == tip


def test_unreachable_registry_fails_with_exit_1_and_leaves_the_remote_alone(story: Story) -> None:
    tip = story.repo.tip()
    address = f"127.0.0.1:{free_port()}"
    story.repo.checkout(story.first_commit)
    run = checked(jenkins_cli(story.repo.work, "release", ["--image-repository", f"{address}/hello-gitops"]))
    assert run.returncode == 1
    assert f"cannot reach registry {address}" in run.stderr
    assert story.repo.tip() == tip


def test_rollback_holds_releases_until_unhold(story: Story) -> None:
    second = story.repo.app_commit("Second app change (the bad one)")
    run = story.release(second)
    assert run.outcome["outcome"] == "changed", run.stderr
    assert cache_hit(run.stderr)  # only the layers from the app change on were rebuilt

    run = story.cli(
        "rollback",
        "--image-repository",
        story.repository,
        "--to",
        story.first_commit,
        "--reason",
        "second change breaks /readyz",
    )
    assert run.returncode == 0, run.stderr
    assert run.outcome["outcome"] == "changed"
    assert f'newTag: "{story.first_commit}"' in story.manifest()
    assert HOLD_BY in story.manifest()

    third = story.repo.app_commit("Third app change while held")
    run = story.release(third)
    assert run.returncode == 0, run.stderr
    assert run.outcome["outcome"] == "held"
    assert resolve_digest(story.repository, third) is not None  # built and pushed all the same
    assert f'newTag: "{story.first_commit}"' in story.manifest()

    run = story.cli("unhold")
    assert run.returncode == 0, run.stderr
    assert HOLD_BY not in story.manifest()
    assert f'newTag: "{story.first_commit}"' in story.manifest()  # unhold alone moves nothing

    run = story.release(third)
    assert run.outcome["outcome"] == "changed", run.stderr
    assert "skipping the build" in run.stderr
    assert f'newTag: "{third}"' in story.manifest()
    subprocess.run(
        ["docker", "image", "rm", f"{story.repository}:{second}"], capture_output=True, check=False
    )


def test_the_bots_commits_touch_only_the_manifest(story: Story) -> None:
    log = git(story.repo.remote, "log", "--format=%H %ae", "main").splitlines()
    bot_commits = [line.split()[0] for line in log if not line.endswith(" dev@example.com")]
    assert len(bot_commits) >= 4  # release, release, rollback, unhold, release
    for commit in bot_commits:
        changed = git(story.repo.remote, "diff-tree", "--no-commit-id", "--name-only", "-r", commit)
        assert changed == MANIFEST


def test_ecr_repository_through_the_cli(aws_env: str, tmp_path: Path) -> None:
    """The ECR path end to end against moto: promote pins the digest ECR reports; a release that must
    build logs in with the ECR token on docker's stdin only, and fails cleanly when the login does."""
    require((ROOT / MANIFEST).is_file(), f"{MANIFEST} is missing")
    repo = GitOpsRepo.seed(tmp_path)
    ecr = boto3.client("ecr", region_name="eu-west-1")
    repository = ecr.create_repository(repositoryName="e2e/hello-gitops")["repository"]["repositoryUri"]
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().partition(":")[2]

    built = repo.app_commit("App change built by an earlier job")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json"}
    put = ecr.put_image(repositoryName="e2e/hello-gitops", imageManifest=json.dumps(manifest), imageTag=built)
    run = jenkins_cli(repo.work, "promote", ["--image-repository", repository, "--commit", built])
    assert run.returncode == 0, run.stderr
    assert run.outcome["outcome"] == "changed"
    assert f"digest: {put['image']['imageId']['imageDigest']}" in repo.file_at_tip(MANIFEST)

    unbuilt = repo.app_commit("App change not in ECR yet")
    run = jenkins_cli(repo.work, "release", ["--image-repository", repository])
    assert run.returncode == 1
    assert f"docker login to {repository.split('/')[0]} failed" in run.stderr
    assert password not in run.stdout + run.stderr
    assert repo.tip() == unbuilt  # only the developer's commit: no manifest commit on a failed release
