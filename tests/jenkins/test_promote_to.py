"""`promote --to ENV` and `status`: real git (a bare remote and Jenkins-like clones), the real local
registry, and GitHub's REST API as plane/fakegithubapi.py serves it, with the commit statuses Flux posts.

What counts as healthy is GitHub's word: "List commit statuses for a reference" returns the statuses of a
commit newest first ("The first status in the list will be the latest one", github/rest-api-description,
repos/list-commit-statuses-for-ref), each with `context` and `state` (error, failure, pending, success);
the context Flux posts per environment is infra/gitops.py `status_context` (`gitops-eks/<environment>`).
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infra.gitops import status_context
from jenkins import actions
from jenkins import cli as cli_module
from plane.fakegithubapi import FakeGitHubAPI, Repository, serve
from tests.jenkins.conftest import MANIFEST, GitopsRepo, git, run_cli

REPOSITORY = "acme/app"
TOKEN = "github_pat_11STATUSESREAD000000000_test"
PROD = "k8s/overlays/prod/kustomization.yaml"
DEV = status_context("dev")
AFTER = "and a stack promotes only to environments after its own in k8s/environments.yaml (dev -> prod)"


@pytest.fixture
def github() -> Iterator[FakeGitHubAPI]:
    """GitHub with acme/app, whose read-only token may read pull requests and commit statuses."""
    fake = FakeGitHubAPI(
        tokens={TOKEN: {"pull_requests=read", "statuses=read"}}, repositories={REPOSITORY: Repository()}
    )
    with serve(fake):
        yield fake


@pytest.fixture
def two_envs(gitops_repo: GitopsRepo) -> GitopsRepo:
    """The repository with a prod overlay beside dev's (the same kustomization, day 0: nothing released)."""
    dev = gitops_repo.dev
    (dev / PROD).parent.mkdir(parents=True)
    for name in ("kustomization.yaml", "deployment.yaml"):
        (dev / PROD).with_name(name).write_bytes((dev / MANIFEST).with_name(name).read_bytes())
    git(dev, "add", "k8s")
    git(dev, "commit", "--quiet", "-m", "prod overlay")
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    return gitops_repo


def workspace(repo: GitopsRepo) -> Path:
    """A Jenkins-like clone at the tip whose origin reads as the GitHub repository (the real remote
    behind an insteadOf rewrite)."""
    path = repo.workspace(repo.tip())
    url = f"git@github.com:{REPOSITORY}.git"
    git(path, "config", f"url.{git(path, 'config', 'remote.origin.url').strip()}.insteadOf", url)
    git(path, "config", "remote.origin.url", url)
    return path


def cli(repo: GitopsRepo, github: FakeGitHubAPI, *args: str, environment: str = "dev", token: str = TOKEN):
    """The CLI as the release side's Jenkins runs it (GITOPS_ENVIRONMENT: the first environment, whose
    stack releases to it and promotes to every later one)."""
    env = {
        "GITOPS_PULLS_TOKEN": token,
        "GITOPS_GITHUB_API_URL": github.url,
        "GITOPS_ENVIRONMENT": environment,
    }
    return run_cli(workspace(repo), *args, env=env)


def statuses(github: FakeGitHubAPI) -> Repository:
    return github.repositories[REPOSITORY]


def release_to_dev(repo: GitopsRepo, github: FakeGitHubAPI, push: Callable[[str, str], str], image: str):
    """An app commit released to dev (the image in the registry, dev's overlay pinning it by digest):
    (app commit, digest, dev's bot commit)."""
    commit = repo.app_commit(f"v-{uuid.uuid4().hex[:6]}")
    digest = push(image, commit)
    done = cli(repo, github, "promote", "--image-repository", image, "--commit", commit, environment="dev")
    assert done.returncode == 0, done.output
    return commit, digest, repo.tip()


def test_a_release_healthy_in_dev_is_promoted_to_prod_by_its_digest(
    two_envs: GitopsRepo, github: FakeGitHubAPI, push_test_image, image_repository: str
) -> None:
    commit, digest, applied = release_to_dev(two_envs, github, push_test_image, image_repository)
    statuses(github).post_status(applied, DEV, "pending")
    statuses(github).post_status(applied, DEV, "success")  # the newest report
    args = ("promote", "--to", "prod", "--image-repository", image_repository)
    dry = cli(two_envs, github, *args, "--dry-run", "--json")
    assert dry.returncode == 0 and dry.json["outcome"] == "changed" and dry.json["dry_run"], dry.output
    assert two_envs.tip() == applied and f"+    digest: {digest}" in dry.stdout

    done = cli(two_envs, github, "promote", "--to", "prod", "--image-repository", image_repository,
               "--by", "alice", "--json")  # fmt: skip

    assert done.returncode == 0, done.output
    assert done.json["outcome"] == "changed" and done.json["digest"] == digest
    prod = git(two_envs.remote, "show", f"main:{PROD}")
    assert f"newTag: {commit}" in prod or f'newTag: "{commit}"' in prod
    assert f"digest: {digest}" in prod
    message = git(two_envs.remote, "log", "-1", "--format=%B", "main")
    assert "Promoted-From: dev" in message and "Promoted-By: alice" in message
    assert f"Source-Commit: {commit}" in message
    assert two_envs.changed_paths(two_envs.tip()) == [PROD]  # one commit, prod's overlay only
    assert git(two_envs.remote, "show", f"main:{MANIFEST}") == git(
        two_envs.remote, "show", f"{applied}:{MANIFEST}"
    )


def test_a_later_revision_reported_by_flux_is_the_newer_word(
    two_envs: GitopsRepo, github: FakeGitHubAPI, push_test_image, image_repository: str
) -> None:
    """Flux posts on every revision it applies: a failure on a newer commit (dev's overlay unchanged)
    outranks the success on the bot commit."""
    _, _, applied = release_to_dev(two_envs, github, push_test_image, image_repository)
    statuses(github).post_status(applied, DEV, "success")
    later = two_envs.app_commit("unrelated")
    statuses(github).post_status(later, DEV, "failure")
    before = two_envs.tip()

    done = cli(two_envs, github, "promote", "--to", "prod", "--image-repository", image_repository)

    assert done.returncode == 1, done.output
    assert f"{DEV} on {later} is 'failure'" in done.stderr
    assert two_envs.tip() == before


@pytest.mark.parametrize("state", [None, "pending", "error", "failure"])
def test_promotion_is_refused_unless_flux_reported_success(
    two_envs: GitopsRepo, github: FakeGitHubAPI, push_test_image, image_repository: str, state: str | None
) -> None:
    _, _, applied = release_to_dev(two_envs, github, push_test_image, image_repository)
    if state is not None:
        statuses(github).post_status(applied, DEV, "success")
        statuses(github).post_status(applied, DEV, state)
    statuses(github).post_status(applied, status_context("prod"), "success")  # another environment's word
    before = two_envs.tip()

    done = cli(two_envs, github, "promote", "--to", "prod", "--image-repository", image_repository, "--json")

    assert done.returncode == 1, done.output
    found = "missing" if state is None else repr(state)
    assert f"dev is not reported healthy: the commit status {DEV} on {applied} is {found}" in done.stderr
    assert done.json["outcome"] == "error" and done.json["commit"] is None
    assert two_envs.tip() == before


def test_dev_never_released_is_refused(two_envs: GitopsRepo, github: FakeGitHubAPI, image_repository) -> None:
    before = two_envs.tip()
    done = cli(two_envs, github, "promote", "--to", "prod", "--image-repository", image_repository)
    assert done.returncode == 1, done.output
    assert "dev runs no release yet" in done.stderr and "day 0" in done.stderr
    assert two_envs.tip() == before
    assert not [path for path, _ in github.requests if "/statuses" in path]  # nothing to ask about


def test_dev_pinned_without_a_digest_is_refused(
    two_envs: GitopsRepo, github: FakeGitHubAPI, push_test_image, image_repository: str
) -> None:
    commit, _, _ = release_to_dev(two_envs, github, push_test_image, image_repository)
    overlay = two_envs.dev / MANIFEST
    git(two_envs.dev, "pull", "--quiet", "--rebase", "origin", "main")
    text = overlay.read_text()
    overlay.write_text("\n".join(line for line in text.splitlines() if "digest:" not in line) + "\n")
    git(two_envs.dev, "commit", "--quiet", "-am", "pin dev by tag")
    git(two_envs.dev, "push", "--quiet", "origin", "HEAD:main")
    statuses(github).post_status(two_envs.tip(), DEV, "success")
    before = two_envs.tip()

    done = cli(two_envs, github, "promote", "--to", "prod", "--image-repository", image_repository)

    assert done.returncode == 1, done.output
    assert f"pins {image_repository}:{commit} without a digest" in done.stderr
    assert two_envs.tip() == before


def test_an_image_missing_from_the_target_repository_is_refused_with_what_to_copy(
    two_envs: GitopsRepo, github: FakeGitHubAPI, push_test_image, image_repository: str
) -> None:
    """A --image-repository without the image dev runs (another registry): it must be copied there first."""
    commit, digest, applied = release_to_dev(two_envs, github, push_test_image, image_repository)
    statuses(github).post_status(applied, DEV, "success")
    prod_repository = f"{image_repository}-prod"
    before = two_envs.tip()

    missing = cli(two_envs, github, "promote", "--to", "prod", "--image-repository", prod_repository)
    push_test_image(prod_repository, commit)  # another image under the same tag
    other = cli(two_envs, github, "promote", "--to", "prod", "--image-repository", prod_repository)

    assert missing.returncode == 1, missing.output
    assert f"{prod_repository}:{commit} is not in the registry" in missing.stderr
    assert f"dev runs {image_repository}:{commit}@{digest}" in missing.stderr
    assert other.returncode == 1, other.output
    assert f"but dev runs {digest}: not the same image" in other.stderr
    assert two_envs.tip() == before


@pytest.mark.parametrize(
    ("args", "environment", "expected"),
    [
        (["--to", "qa"], "dev", "--to 'qa': not an environment of k8s/environments.yaml (dev, prod)"),
        (["--to", "dev"], "dev", "--to 'dev': the first environment of k8s/environments.yaml"),
        (["--to", "prod"], "prod", f"--to 'prod': this stack deploys 'prod' (GITOPS_ENVIRONMENT), {AFTER}"),
        (["--to", "prod"], "", f"--to 'prod': this stack deploys '' (GITOPS_ENVIRONMENT), {AFTER}"),
        (["--to", "prod"], "qa", f"--to 'prod': this stack deploys 'qa' (GITOPS_ENVIRONMENT), {AFTER}"),
        (["--to", "prod", "--commit", "HEAD"], "dev", "give no --commit or --digest"),
        (["--to", "prod", "--environment", "dev"], "dev", "--environment 'dev' and --to 'prod': give one"),
        (["--to", "prod", "--manifest-dir", "k8s/overlays/prod"], "dev", "--to and --manifest-dir"),
    ],
    ids=[
        "unknown",
        "first",
        "its-own-environment",
        "empty-stack",
        "unknown-stack",
        "commit",
        "environment",
        "manifest-dir",
    ],
)
def test_bad_targets_are_bad_input(
    two_envs: GitopsRepo, github: FakeGitHubAPI, args: list[str], environment: str, expected: str
) -> None:
    before = two_envs.tip()
    done = cli(two_envs, github, "promote", *args, "--image-repository", "127.0.0.1:5000/x",
               "--json", environment=environment)  # fmt: skip
    assert done.returncode == 2, done.output
    assert expected in done.stderr
    assert done.json["outcome"] == "error"
    assert two_envs.tip() == before
    assert github.requests == []  # refused before any question to GitHub


@pytest.mark.parametrize(
    ("stack", "target", "source"),
    [
        ("dev", "staging", "dev"),
        ("dev", "prod", "staging"),
        ("staging", "prod", "staging"),
        (None, "prod", "staging"),
    ],
)
def test_a_stack_promotes_to_every_environment_after_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack: str | None, target: str, source: str
) -> None:
    """Three environments: the first one's stack (the release side) promotes to both later ones, from
    the environment just before the target; without GITOPS_ENVIRONMENT any later target is allowed."""
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "environments.yaml").write_text("environments: [dev, staging, prod]\n")
    if stack is None:
        monkeypatch.delenv("GITOPS_ENVIRONMENT", raising=False)
    else:
        monkeypatch.setenv("GITOPS_ENVIRONMENT", stack)
    args = argparse.Namespace(to=target, commit=None, digest=None, manifest_dir=None, environment=None)
    assert cli_module.check_target(tmp_path, args) == source
    assert args.environment == target


@pytest.mark.parametrize(("stack", "target"), [("prod", "prod"), ("prod", "staging"), ("staging", "staging")])
def test_a_stack_never_promotes_to_its_own_or_an_earlier_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack: str, target: str
) -> None:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "environments.yaml").write_text("environments: [dev, staging, prod]\n")
    monkeypatch.setenv("GITOPS_ENVIRONMENT", stack)
    args = argparse.Namespace(to=target, commit=None, digest=None, manifest_dir=None, environment=None)
    with pytest.raises(cli_module.InputError) as refused:
        cli_module.check_target(tmp_path, args)
    assert str(refused.value) == (
        f"--to {target!r}: this stack deploys {stack!r} (GITOPS_ENVIRONMENT), and a stack promotes only to "
        "environments after its own in k8s/environments.yaml (dev -> staging -> prod); run it where "
        f"GITOPS_ENVIRONMENT is an environment before {target}, the first one's Jenkins"
    )


def test_without_a_token_promotion_is_bad_input(two_envs: GitopsRepo, github: FakeGitHubAPI) -> None:
    done = cli(
        two_envs, github, "promote", "--to", "prod", "--image-repository", "127.0.0.1:5000/x", token=""
    )
    assert done.returncode == 2, done.output
    assert "GITOPS_PULLS_TOKEN is not set" in done.stderr and "Commit statuses: read" in done.stderr


def test_a_token_without_commit_statuses_read_is_told_so(
    two_envs: GitopsRepo, push_test_image, image_repository: str
) -> None:
    """GitHub answers 403 with the permission it wants (X-Accepted-GitHub-Permissions): the error names it."""
    narrow = FakeGitHubAPI(tokens={TOKEN: {"pull_requests=read"}}, repositories={REPOSITORY: Repository()})
    with serve(narrow):
        release_to_dev(two_envs, narrow, push_test_image, image_repository)
        done = cli(two_envs, narrow, "promote", "--to", "prod", "--image-repository", image_repository)
    assert done.returncode == 1, done.output
    assert "HTTP 403" in done.stderr and "Commit statuses: read" in done.stderr
    assert TOKEN not in done.output


def test_status_shows_each_environment_as_a_table_and_as_json(
    two_envs: GitopsRepo, github: FakeGitHubAPI, push_test_image, image_repository: str
) -> None:
    commit, digest, applied = release_to_dev(two_envs, github, push_test_image, image_repository)
    statuses(github).post_status(applied, DEV, "success")
    statuses(github).post_status(applied, status_context("prod"), "success")

    shown = cli(two_envs, github, "status", "--json")
    unknown = cli(two_envs, github, "status", token="")

    assert shown.returncode == 0, shown.output
    rows = {row["environment"]: row for row in shown.json["environments"]}
    assert list(rows) == ["dev", "prod"]
    assert rows["dev"] | {"hold": None} == {
        "environment": "dev",
        "commit": commit,
        "image": f"{image_repository}:{commit}@{digest}",
        "digest": digest,
        "health": "success",
        "health_commit": applied,
        "hold": None,
        "overlay_commit": applied,
    }
    assert rows["prod"]["commit"] is None and rows["prod"]["health"] == "success"  # day 0, applied by Flux
    table = shown.stdout.splitlines()
    assert table[1].split() == ["ENVIRONMENT", "COMMIT", "DIGEST", "HEALTH", "HOLD"]
    assert table[2].split()[:5] == ["dev", commit[:12], digest, "success", "at"]
    assert unknown.returncode == 0, unknown.output
    dev_line, prod_line = unknown.stdout.splitlines()[2:]
    assert dev_line.split()[3] == "unknown"
    assert prod_line.split() == ["prod", "(none", "released)", "-", "unknown", "-"]


def test_health_walks_from_the_tip_to_the_overlay_change_only() -> None:
    """The rule alone: the newest commit with a report decides; below the overlay's change none counts."""

    class Line:
        def first_parent_line(self, tip: str, limit: int) -> list[tuple[str, str]]:
            return [(sha, "x") for sha in ("c3", "c2", "c1", "c0")][:limit]

    asked: list[str] = []
    reports = {"c0": "success", "c2": "pending"}

    def state_of(sha: str) -> str | None:
        asked.append(sha)
        return reports.get(sha)

    assert actions.health(Line(), "c3", "c1", state_of) == ("pending", "c2")  # type: ignore[arg-type]
    reports.pop("c2")
    asked.clear()
    assert actions.health(Line(), "c3", "c1", state_of) == (None, "c1")  # type: ignore[arg-type]
    assert asked == ["c3", "c2", "c1"]  # c0 deploys another image: its success is no word on this one


def test_the_json_line_is_the_last_line(two_envs: GitopsRepo, github: FakeGitHubAPI) -> None:
    done = cli(two_envs, github, "status", "--json")
    assert json.loads(done.stdout.splitlines()[-1])["command"] == "status"


def test_the_context_read_is_the_one_the_stack_makes_flux_post() -> None:
    """The release module cannot import the Pulumi program (the release agent installs only
    requirements-release.txt): its copy of the context must stay the stack's."""
    assert [actions.status_context(name) for name in ("dev", "prod")] == [DEV, status_context("prod")]
