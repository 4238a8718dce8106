"""Issue 8 point 1: `release --commit X` builds exactly X's tree, whatever the working copy holds.

Real Docker engine (a FROM scratch image, so nothing is pulled), the real local registry, a real git
remote. The image's content is read back from the registry's copy with `docker create` + `docker cp`.
"""

from __future__ import annotations

import io
import subprocess
import tarfile

import pytest

from jenkins import manifest
from tests.jenkins.conftest import GitopsRepo, git, run_cli

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def file_in_image(image: str, path: str) -> str:
    """The content of path inside image (pulled fresh from the registry)."""
    subprocess.run(["docker", "image", "rm", "--force", image], capture_output=True, check=False)
    subprocess.run(["docker", "pull", "--quiet", image], capture_output=True, check=True)
    container = subprocess.run(
        ["docker", "create", image, "none"], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        archive = subprocess.run(
            ["docker", "cp", f"{container}:{path}", "-"], capture_output=True, check=True
        )
    finally:
        subprocess.run(["docker", "rm", "--force", container], capture_output=True, check=False)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        member = tar.extractfile(path.rsplit("/", 1)[-1])
        assert member is not None
        return member.read().decode()


def test_release_of_an_older_commit_builds_that_commit_not_the_working_copy(
    docker_engine: None, gitops_repo: GitopsRepo, image_repository: str
) -> None:
    wanted = gitops_repo.app_commit("v1")
    later = gitops_repo.app_commit("v2")
    ws = gitops_repo.workspace(later)  # checked out at another commit ...
    (ws / "app" / "version.txt").write_text("uncommitted edit\n")  # ... with an uncommitted edit
    (ws / "app" / "untracked.txt").write_text("not in git\n")
    (ws / "app" / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")  # even the Dockerfile differs
    expected = git(gitops_repo.remote, "show", f"{wanted}:app/version.txt")

    result = run_cli(
        ws, "release", "--image-repository", image_repository, "--commit", wanted, "--json", timeout=300
    )

    assert result.returncode == 0, result.output
    assert result.json["outcome"] == "changed" and result.json["source_commit"] == wanted
    image = f"{image_repository}:{wanted}"
    assert file_in_image(image, "/version.txt") == expected
    assert manifest.read_image(gitops_repo.manifest_at()).new_tag == wanted
    # The workspace is as it was: the build read the commit, not the files.
    assert (ws / "app" / "version.txt").read_text() == "uncommitted edit\n"
    assert git(ws, "rev-parse", "HEAD").strip() == later


def test_a_context_missing_in_the_commit_is_bad_input(gitops_repo: GitopsRepo, image_repository: str) -> None:
    sha = gitops_repo.app_commit("v1")
    ws = gitops_repo.workspace(sha)
    (ws / "web").mkdir()
    (ws / "web" / "Dockerfile").write_text("FROM scratch\n")  # only in the working copy

    result = run_cli(ws, "release", "--image-repository", image_repository, "--context", "web", "--json")

    assert result.returncode == 2, result.output
    assert f"--context 'web': commit {sha[:12]} has no web/Dockerfile" in result.json["error"]
