"""The release's guards against what people and other runs do to the branch meanwhile, each reproduced
with real git (and moto's ECR, kustomize and PyYAML where the rule is theirs): a force-push that
rewinds the branch during a run, a re-run after a failed `deployed` mark, a rollback racing a
promote, a SHA-256 repository, YAML 1.1 words as repository names, a commit reachable only through a
merge's second parent, a person's own change of the deployed image, and where exit 2 can happen."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
import yaml

from infra.registry import DEPLOYED_PATTERN
from jenkins import actions, core, manifest, registry
from jenkins.cli import DEFAULT_BOT
from jenkins.core import Decision, Outcome, RetryPolicy
from jenkins.gitops import Edit, Git, Identity, commit_manifest
from tests.jenkins.conftest import BOT_EMAIL, MANIFEST, GitopsRepo, git, run_cli
from tests.jenkins.test_manifest import DIGEST, ORIGINAL, kustomize
from tests.jenkins.test_registry_ecr import deployed_digest, protected_repository, put_commit_image

__all__ = ["protected_repository"]  # the fixture, shared with the ECR tests

PushImage = Callable[[str, str], str]
DEV = {
    "GIT_AUTHOR_NAME": "Dev Eloper",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Dev Eloper",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
}


def context(ws: Path) -> actions.Context:
    """What the CLI builds for a run in ws with the default flags."""
    return actions.Context(
        git=Git(ws), remote="origin", branch="main", manifest_path=MANIFEST, image_name="hello-gitops",
        bot=DEFAULT_BOT, policy=RetryPolicy(max_attempts=5), dry_run=False, environment="dev",
    )  # fmt: skip


# --- a force-push that rewinds the branch during a run ---------------------------------------------


def test_a_force_push_that_rewinds_the_branch_during_a_run_is_not_undone(gitops_repo: GitopsRepo) -> None:
    """The first plan() sees v2 at the tip; before its push a person force-pushes main back to v1 (v2
    removed). A fast-forward from v1 to the bot commit on v2 would bring v2 back: the lease on v2
    refuses it, and the run plans again on v1."""
    v1 = gitops_repo.app_commit("v1")
    v2 = gitops_repo.app_commit("v2")
    ws = gitops_repo.workspace(v2)
    tips: list[str] = []

    def plan(tip: str, text: str) -> Edit:
        tips.append(tip)
        if len(tips) == 1:
            git(gitops_repo.dev, "push", "--quiet", "--force", "origin", f"{v1}:refs/heads/main")
        return Edit(Decision(Outcome.CHANGED, "test"), text, text + "# bot edit\n")

    result = commit_manifest(
        Git(ws), remote="origin", branch="main", path=MANIFEST, plan=plan, message="test [skip ci]\n",
        bot=Identity("gitops-bot", BOT_EMAIL), policy=RetryPolicy(max_attempts=3), rng=random.Random(1),
    )  # fmt: skip

    assert tips == [v2, v1]
    assert result.attempts == 2
    assert git(gitops_repo.remote, "rev-parse", "main^").strip() == v1
    assert (
        subprocess.run(
            ["git", "merge-base", "--is-ancestor", v2, "main"], cwd=gitops_repo.remote, check=False
        ).returncode
        == 1
    )  # the removed commit stays removed


# --- the `deployed-<environment>` mark ---------------------------------------------------------------


def test_a_release_rerun_after_a_failed_mark_marks(aws_env: str, gitops_repo: GitopsRepo) -> None:
    """The error says "re-run"; the job re-runs `release` (not `promote`), which must then mark."""
    client = boto3.client("ecr", region_name="eu-west-1")
    name = "gitops/rerun-marks"
    uri = client.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")["repository"][
        "repositoryUri"
    ]
    v1, v2 = gitops_repo.app_commit("v1"), gitops_repo.app_commit("v2")
    put_commit_image(uri, v1)
    digest = put_commit_image(uri, v2)
    assert run_cli(gitops_repo.workspace(v1), "promote", "--image-repository", uri).returncode == 0
    ws = gitops_repo.workspace(v2)
    failed = run_cli(ws, "release", "--image-repository", uri, "--json")
    assert failed.returncode == 1 and "re-run" in failed.stderr, failed.output  # `deployed` is immutable
    client.put_image_tag_mutability(
        repositoryName=name,
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filter": DEPLOYED_PATTERN, "filterType": "WILDCARD"}],
    )

    again = run_cli(ws, "release", "--image-repository", uri, "--json")

    assert again.returncode == 0 and again.json["outcome"] == "noop", again.output
    assert deployed_digest(uri) == digest


def test_a_rollback_racing_a_promote_leaves_deployed_on_what_the_manifest_deploys(
    protected_repository: str,
    gitops_repo: GitopsRepo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The promote of v2 has pushed; before it marks, an operator's rollback to v1 pushes and marks.
    The promote's late mark of v2 must not be the last word: the manifest deploys v1."""
    v1, v2 = gitops_repo.app_commit("v1"), gitops_repo.app_commit("v2")
    digests = {sha: put_commit_image(protected_repository, sha) for sha in (v1, v2)}
    assert (
        run_cli(gitops_repo.workspace(v1), "promote", "--image-repository", protected_repository).returncode
        == 0
    )
    real_mark = registry.mark_deployed
    marks: list[str] = []

    def mark_after_a_rollback(repository: str, digest: str, environment: str) -> bool:
        if not marks:
            rolled = run_cli(
                gitops_repo.workspace(v2), "rollback", "--image-repository", repository, "--to", v1,
                "--reason", "INC-7",
            )  # fmt: skip
            assert rolled.returncode == 0, rolled.output
        marks.append(digest)
        return real_mark(repository, digest, environment)

    monkeypatch.setattr(registry, "mark_deployed", mark_after_a_rollback)

    report = actions.promote(context(gitops_repo.workspace(v2)), protected_repository, v2, digests[v2])

    assert report.outcome is Outcome.CHANGED
    assert manifest.read_image(gitops_repo.manifest_at()).digest == digests[v1]
    assert marks == [digests[v2], digests[v1]]
    assert deployed_digest(protected_repository) == digests[v1]


# --- SHA-256 repositories ---------------------------------------------------------------------------


def test_a_sha256_repository_is_refused_before_anything_is_fetched(
    tmp_path: Path, image_repository: str, push_test_image: PushImage
) -> None:
    """git's SHA-256 ids are 64 hex digits: every SHA rule of the release is SHA-1's, so the
    never-roll-back guard would be off (a 64-digit tag names no release). Refused (exit 2) before
    any network call, even with the commit's image in the registry."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "--object-format=sha256", "--initial-branch=main", str(remote))
    dev = tmp_path / "dev"  # cloning an empty repository would not carry the hash algorithm
    git(tmp_path, "init", "--quiet", "--object-format=sha256", "--initial-branch=main", str(dev))
    git(dev, "remote", "add", "origin", str(remote))
    (dev / MANIFEST).parent.mkdir(parents=True)
    (dev / MANIFEST).write_text(ORIGINAL)
    (dev / "k8s" / "environments.yaml").write_text("environments: [dev]\n")
    git(dev, "add", "k8s")
    git(dev, "commit", "--quiet", "-m", "initial", env=DEV)
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    ws = tmp_path / "ws"
    git(tmp_path, "clone", "--quiet", str(remote), str(ws))
    git(dev, "commit", "--quiet", "--allow-empty", "-m", "later", env=DEV)
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    refs = git(ws, "for-each-ref")
    push_test_image(image_repository, git(ws, "rev-parse", "HEAD").strip())

    result = run_cli(ws, "promote", "--image-repository", image_repository, "--json")

    assert result.returncode == 2, result.output
    assert "sha256 repository" in result.json["error"]
    assert git(ws, "for-each-ref") == refs  # nothing fetched: origin/main is still the old tip


# --- YAML 1.1 words as the repository name ----------------------------------------------------------

# YAML 1.1's bool type (yaml.org/type/bool.html): y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|
# False|FALSE|on|On|ON|off|Off|OFF; its null type (yaml.org/type/null.html): ~|null|Null|NULL.
# Lowercase ones are valid single-component repository names (distribution/reference).
YAML11_WORDS = ["y", "yes", "n", "no", "true", "false", "on", "off", "null"]


@pytest.mark.parametrize("word", YAML11_WORDS)
def test_a_repository_named_like_a_yaml_11_word_stays_a_string(word: str, tmp_path: Path) -> None:
    sha = "1" * 40
    edited = manifest.with_image(ORIGINAL, core.ImageEntry("hello-gitops", word, sha, DIGEST))

    images = yaml.safe_load(edited)["images"]  # PyYAML reads YAML 1.1
    rendered = kustomize(edited, tmp_path)

    assert images[0]["newName"] == word
    assert f"image: {word}:{sha}@{DIGEST}" in rendered


# --- first-parent line -------------------------------------------------------------------------------


def test_a_commit_reachable_only_through_a_merges_second_parent_is_not_deployed(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    base = gitops_repo.app_commit("v1")
    dev = gitops_repo.dev
    git(dev, "checkout", "--quiet", "-b", "feature", base)
    (dev / "app" / "feature.txt").write_text("half done\n")
    git(dev, "add", "app/feature.txt")
    git(dev, "commit", "--quiet", "-m", "feature: step 1 of 2")
    pr_commit = git(dev, "rev-parse", "HEAD").strip()
    git(dev, "checkout", "--quiet", "main")
    main_side = gitops_repo.app_commit("main moved on")
    git(dev, "merge", "--quiet", "--no-ff", "-m", "Merge feature", "feature")
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    merge = git(dev, "rev-parse", "HEAD").strip()
    assert git(dev, "rev-parse", f"{merge}^1").strip() == main_side
    for sha in (pr_commit, merge):
        push_test_image(image_repository, sha)
    ws = gitops_repo.workspace(merge)

    released = run_cli(ws, "release", "--image-repository", image_repository, "--commit", pr_commit)
    promoted = run_cli(ws, "promote", "--image-repository", image_repository, "--commit", pr_commit)
    rolled = run_cli(
        ws, "rollback", "--image-repository", image_repository, "--to", pr_commit, "--reason", "x"
    )
    merged = run_cli(ws, "promote", "--image-repository", image_repository, "--json")

    for result in (released, promoted, rolled):
        assert result.returncode == 2, result.output
        assert "first-parent line" in result.stderr
    assert merged.returncode == 0 and merged.json["outcome"] == "changed", merged.output
    assert manifest.read_image(gitops_repo.manifest_at()).new_tag == merge


# --- a person's change of the deployed image ---------------------------------------------------------


def revert_last_bot_commit(gitops_repo: GitopsRepo) -> str:
    git(gitops_repo.dev, "pull", "--quiet", "--rebase", "origin", "main")
    git(gitops_repo.dev, "revert", "--no-edit", "HEAD", env=DEV)
    git(gitops_repo.dev, "push", "--quiet", "origin", "HEAD:main")
    return git(gitops_repo.dev, "rev-parse", "HEAD").strip()


def hand_edit_tag(gitops_repo: GitopsRepo, sha: str) -> str:
    """A person points newTag (and digest) at an older release in an editor and pushes."""
    git(gitops_repo.dev, "pull", "--quiet", "--rebase", "origin", "main")
    path = gitops_repo.dev / MANIFEST
    text = path.read_text()
    entry = manifest.read_image(text)
    path.write_text(text.replace(entry.new_tag, sha).replace(entry.digest, DIGEST))
    git(gitops_repo.dev, "commit", "--quiet", "-am", "pin the old version by hand", env=DEV)
    git(gitops_repo.dev, "push", "--quiet", "origin", "HEAD:main")
    return git(gitops_repo.dev, "rev-parse", "HEAD").strip()


@pytest.mark.parametrize("how", ["git revert of a bot commit", "hand edit"])
def test_a_persons_change_of_the_deployed_image_becomes_a_hold(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage, how: str
) -> None:
    v1, v2 = gitops_repo.app_commit("v1"), gitops_repo.app_commit("v2")
    for sha in (v1, v2):
        push_test_image(image_repository, sha)
        assert (
            run_cli(gitops_repo.workspace(sha), "promote", "--image-repository", image_repository).returncode
            == 0
        )
    person = revert_last_bot_commit(gitops_repo) if how.startswith("git") else hand_edit_tag(gitops_repo, v1)
    chosen = manifest.read_image(gitops_repo.manifest_at())
    assert chosen.new_tag == v1
    v3 = gitops_repo.app_commit("v3")
    push_test_image(image_repository, v3)

    held = run_cli(gitops_repo.workspace(v3), "release", "--image-repository", image_repository, "--json")
    again = run_cli(gitops_repo.workspace(v3), "release", "--image-repository", image_repository, "--json")

    assert held.returncode == 0 and held.json["outcome"] == "held", held.output
    assert f"commit {person} by dev@example.com changed the deployed image in git" in held.json["reason"]
    text = gitops_repo.manifest_at()
    assert manifest.read_image(text) == chosen  # the person's choice is what is deployed
    hold = manifest.read_hold(text)
    assert hold is not None and hold.by == "dev@example.com" and person in hold.reason
    assert gitops_repo.changed_paths(held.json["commit"]) == [MANIFEST]
    assert again.json["outcome"] == "held" and again.json["commit"] is None  # held, nothing more written

    assert run_cli(gitops_repo.workspace(v3), "unhold").returncode == 0
    released = run_cli(gitops_repo.workspace(v3), "release", "--image-repository", image_repository, "--json")
    assert released.json["outcome"] == "changed", released.output
    assert manifest.read_image(gitops_repo.manifest_at()).new_tag == v3


def test_a_mailmap_does_not_make_a_persons_change_the_bots(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    """git log applies .mailmap by default, also to --author: a person who maps their address to the
    bot's must still be a person to the release."""
    v1, v2 = gitops_repo.app_commit("v1"), gitops_repo.app_commit("v2")
    for sha in (v1, v2):
        push_test_image(image_repository, sha)
        assert (
            run_cli(gitops_repo.workspace(sha), "promote", "--image-repository", image_repository).returncode
            == 0
        )
    git(gitops_repo.dev, "pull", "--quiet", "--rebase", "origin", "main")
    (gitops_repo.dev / ".mailmap").write_text(f"gitops-bot <{BOT_EMAIL}> <dev@example.com>\n")
    git(gitops_repo.dev, "add", ".mailmap")
    git(gitops_repo.dev, "commit", "--quiet", "-m", "map me to the bot", env=DEV)
    person = hand_edit_tag(gitops_repo, v1)
    v3 = gitops_repo.app_commit("v3")
    push_test_image(image_repository, v3)

    held = run_cli(gitops_repo.workspace(v3), "release", "--image-repository", image_repository, "--json")

    assert held.json["outcome"] == "held", held.output
    assert person in held.json["reason"]


def test_a_persons_edit_elsewhere_in_the_manifest_is_no_hold(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    v1 = gitops_repo.app_commit("v1")
    push_test_image(image_repository, v1)
    assert (
        run_cli(gitops_repo.workspace(v1), "promote", "--image-repository", image_repository).returncode == 0
    )
    git(gitops_repo.dev, "pull", "--quiet", "--rebase", "origin", "main")
    path = gitops_repo.dev / MANIFEST
    path.write_text(path.read_text() + "# reviewed by the platform team\n")
    git(gitops_repo.dev, "commit", "--quiet", "-am", "a comment", env=DEV)
    git(gitops_repo.dev, "push", "--quiet", "origin", "HEAD:main")
    v2 = gitops_repo.app_commit("v2")
    push_test_image(image_repository, v2)

    result = run_cli(gitops_repo.workspace(v2), "release", "--image-repository", image_repository, "--json")

    assert result.json["outcome"] == "changed", result.output


# --- where exit 2 happens ----------------------------------------------------------------------------


def test_exit_2_after_a_fetch_changes_only_the_remote_tracking_ref(
    gitops_repo: GitopsRepo, image_repository: str
) -> None:
    """--help promises: an exit 2 that needed the branch (here: the commit is not on it) follows a
    fetch that moved only refs/remotes/origin/main; nothing else of the checkout, the remote or the
    registry changed."""
    old = gitops_repo.app_commit("v1")
    ws = gitops_repo.workspace(old)
    new = gitops_repo.app_commit("v2")
    git(ws, "commit", "--quiet", "--allow-empty", "-m", "local only", env=DEV)
    local = git(ws, "rev-parse", "HEAD").strip()
    remote_refs = git(gitops_repo.remote, "for-each-ref")
    state = (git(ws, "status", "--porcelain"), git(ws, "for-each-ref", "refs/heads", "refs/tags"), local)

    result = run_cli(ws, "release", "--image-repository", image_repository, "--json")
    shown = run_cli(ws, "--help")

    assert result.returncode == 2 and result.json["exit_code"] == 2, result.output
    assert git(ws, "rev-parse", "refs/remotes/origin/main").strip() == new  # fetched
    assert (
        git(ws, "status", "--porcelain"),
        git(ws, "for-each-ref", "refs/heads", "refs/tags"),
        local,
    ) == state
    assert git(gitops_repo.remote, "for-each-ref") == remote_refs
    assert registry.resolve_digest(image_repository, local) is None
    assert "checked after a fetch" in shown.stdout and "refs/remotes/<remote>/<branch>" in shown.stdout
    assert result.json["commit"] is None
