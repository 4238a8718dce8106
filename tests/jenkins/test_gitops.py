"""promote/release/rollback/unhold against real git: a bare remote and detached-HEAD workspaces."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from jenkins import core, manifest
from jenkins.core import Decision, Outcome, Relation, RetryPolicy
from jenkins.gitops import Edit, Git, GitError, Identity, commit_manifest
from plane.sandbox import GitOpsRepo as FreshCopy
from tests.conftest import ROOT
from tests.jenkins.conftest import BOT_EMAIL, MANIFEST, GitopsRepo, git, run_cli

PushImage = Callable[[str, str], str]


def promote(ws: Path, repo: str, *extra: str) -> dict:
    result = run_cli(ws, "promote", "--image-repository", repo, "--json", *extra)
    assert result.returncode == 0, result.output
    return result.json


def deployed(gitops_repo: GitopsRepo) -> core.ImageEntry:
    return manifest.read_image(gitops_repo.manifest_at())


def workspace_state(ws: Path) -> tuple[str, str, str]:
    """HEAD, status and index of a workspace: none of it may change."""
    return (
        git(ws, "rev-parse", "HEAD"),
        git(ws, "status", "--porcelain", "--untracked-files=all"),
        git(ws, "ls-files", "--stage"),
    )


def test_promote_writes_the_pinned_image_in_one_bot_commit_and_leaves_the_workspace_alone(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    sha = gitops_repo.app_commit("v1")
    digest = push_test_image(image_repository, sha)
    ws = gitops_repo.workspace(sha)
    before = workspace_state(ws)

    out = promote(ws, image_repository)

    assert out["outcome"] == "changed"
    assert out["image"] == f"{image_repository}:{sha}@{digest}"
    assert out["commit"] == gitops_repo.tip()
    assert deployed(gitops_repo) == core.ImageEntry("hello-gitops", image_repository, sha, digest)
    assert gitops_repo.changed_paths(out["commit"]) == [MANIFEST]
    message = git(gitops_repo.remote, "log", "-1", "--format=%an <%ae>%n%B", out["commit"])
    assert message.startswith(f"gitops-bot <{BOT_EMAIL}>\ndeploy hello-gitops {sha[:12]} [skip ci]")
    trailers = git(gitops_repo.remote, "interpret-trailers", "--parse", input_text=message)
    assert f"Source-Commit: {sha}" in trailers
    assert f"Image-Digest: {digest}" in trailers
    assert git(gitops_repo.remote, "rev-parse", f"{out['commit']}^").strip() == sha
    assert workspace_state(ws) == before
    # The comments and the unrelated entry survive the edit.
    text = gitops_repo.manifest_at()
    assert "# The release bot owns this entry" in text and 'newTag: "1.36"' in text


def test_same_commit_again_is_noop_without_a_commit(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    sha = gitops_repo.app_commit("v1")
    push_test_image(image_repository, sha)
    ws = gitops_repo.workspace(sha)
    promote(ws, image_repository)
    tip = gitops_repo.tip()

    again = promote(ws, image_repository)

    assert again["outcome"] == "noop" and again["commit"] is None
    assert gitops_repo.tip() == tip


def test_older_commit_after_newer_is_stale_and_changes_nothing(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    old = gitops_repo.app_commit("old")
    new = gitops_repo.app_commit("new")
    for sha in (old, new):
        push_test_image(image_repository, sha)
    promote(gitops_repo.workspace(new), image_repository)
    tip = gitops_repo.tip()

    late = promote(gitops_repo.workspace(old), image_repository)

    assert late["outcome"] == "stale" and late["commit"] is None
    assert gitops_repo.tip() == tip
    assert deployed(gitops_repo).new_tag == new


def test_shallow_workspace_fetches_history_for_the_guard(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    first = gitops_repo.app_commit("first")
    push_test_image(image_repository, first)
    promote(gitops_repo.workspace(first), image_repository)
    second = gitops_repo.app_commit("second")
    push_test_image(image_repository, second)
    ws = gitops_repo.workspace(second, depth=1)  # Jenkins' shallow clone: `first` is not there
    assert git(ws, "rev-parse", "--is-shallow-repository").strip() == "true"

    out = promote(ws, image_repository)

    assert out["outcome"] == "changed"
    assert deployed(gitops_repo).new_tag == second


def test_manifest_naming_an_unknown_commit_is_stale(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    text = manifest.with_image(
        gitops_repo.manifest_at(), core.ImageEntry("hello-gitops", image_repository, "f" * 40, None)
    )
    (gitops_repo.dev / MANIFEST).write_text(text)
    git(gitops_repo.dev, "commit", "--quiet", "-am", "point at a commit nobody has")
    git(gitops_repo.dev, "push", "--quiet", "origin", "HEAD:main")
    sha = gitops_repo.app_commit("v2")
    push_test_image(image_repository, sha)
    tip = gitops_repo.tip()

    out = promote(gitops_repo.workspace(sha), image_repository)

    assert out["outcome"] == "stale"
    assert "does not have" in out["reason"]
    assert gitops_repo.tip() == tip


def test_relation_treats_the_null_id_as_no_release_and_real_shas_by_ancestry(gitops_repo: GitopsRepo) -> None:
    first, second = gitops_repo.app_commit("first"), gitops_repo.app_commit("second")
    repo = Git(gitops_repo.workspace(second))
    assert repo.relation("origin", core.NOTHING_RELEASED, second) is Relation.UNVERSIONED
    assert repo.relation("origin", "bootstrap", second) is Relation.UNVERSIONED
    assert repo.relation("origin", "f" * 40, second) is Relation.UNKNOWN
    assert repo.relation("origin", first, second) is Relation.FORWARD
    assert repo.relation("origin", second, first) is Relation.BACKWARD
    assert repo.relation("origin", second, second) is Relation.SAME


def test_a_fresh_copy_without_our_history_releases_from_the_shipped_manifest(
    tmp_path: Path, image_repository: str, push_test_image: PushImage
) -> None:
    """A team that starts from a copy of app/ and k8s/ (a template, no history): the shipped
    placeholder lets the first promote through, and from then on the ancestry guard holds."""
    repo = FreshCopy.seed(tmp_path)  # one commit; k8s/kustomization.yaml exactly as shipped
    assert manifest.read_image(repo.file_at_tip(MANIFEST)).new_tag == core.NOTHING_RELEASED
    assert manifest.read_replicas(repo.file_at_tip(MANIFEST)) == 0  # day 0: no pod asked for
    old, new = repo.app_commit("old"), repo.app_commit("new")
    digests = {sha: push_test_image(image_repository, sha) for sha in (old, new)}

    repo.checkout(new)
    first = promote(repo.work, image_repository)
    assert first["outcome"] == "changed", first
    assert "note" not in first["reason"]
    assert first["commit"] == repo.tip()
    assert manifest.read_image(repo.file_at_tip(MANIFEST)) == core.ImageEntry(
        "hello-gitops", image_repository, new, digests[new]
    )
    # The first release's one commit also removed the day-0 entry: the Deployment's own 2 pods run.
    assert manifest.read_replicas(repo.file_at_tip(MANIFEST)) is None

    repo.checkout(old)
    late = promote(repo.work, image_repository)
    assert late["outcome"] == "stale" and late["commit"] is None
    assert repo.deployed_tag() == new

    newest = repo.app_commit("newest")
    push_test_image(image_repository, newest)
    assert promote(repo.work, image_repository)["outcome"] == "changed"
    assert repo.deployed_tag() == newest


def test_dry_run_prints_the_diff_and_writes_nothing(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    sha = gitops_repo.app_commit("v1")
    digest = push_test_image(image_repository, sha)
    tip = gitops_repo.tip()

    result = run_cli(
        gitops_repo.workspace(sha), "promote", "--image-repository", image_repository, "--dry-run", "--json"
    )

    assert result.returncode == 0, result.output
    assert result.json["outcome"] == "changed" and result.json["commit"] is None
    assert f"+++ b/{MANIFEST}" in result.stdout
    assert f'+    newTag: "{sha}"' in result.stdout
    assert f"+    digest: {digest}" in result.stdout
    assert gitops_repo.tip() == tip


def test_release_of_a_pushed_image_skips_the_build_and_a_bot_commit_is_noop(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    sha = gitops_repo.app_commit("v1")
    digest = push_test_image(image_repository, sha)
    # No docker involved: release finds the tag in the registry and goes straight to promote.
    released = run_cli(
        gitops_repo.workspace(sha), "release", "--image-repository", image_repository, "--json"
    )
    assert released.returncode == 0, released.output
    assert released.json["outcome"] == "changed" and released.json["digest"] == digest
    assert "skipping the build" in released.stderr
    bot_commit = released.json["commit"]

    on_bot = run_cli(
        gitops_repo.workspace(bot_commit), "release", "--image-repository", image_repository, "--json"
    )

    assert on_bot.returncode == 0, on_bot.output
    assert on_bot.json["outcome"] == "noop" and on_bot.json["commit"] is None
    # The bot commit's human commit is the one already deployed (point 3 of issue 8 releases it).
    assert on_bot.json["source_commit"] == sha and "already deploys" in on_bot.json["reason"]
    assert gitops_repo.tip() == bot_commit


def test_rollback_holds_until_unhold(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    v1, v2 = gitops_repo.app_commit("v1"), gitops_repo.app_commit("v2")
    digests = {sha: push_test_image(image_repository, sha) for sha in (v1, v2)}
    promote(gitops_repo.workspace(v2), image_repository)
    ws = gitops_repo.workspace(v2)

    rolled = run_cli(
        ws, "rollback", "--image-repository", image_repository, "--to", v1[:10],
        "--reason", "v2 returns 500s", "--by", "alice@example.com", "--json",
    )  # fmt: skip

    assert rolled.returncode == 0, rolled.output
    assert rolled.json["outcome"] == "changed"
    assert deployed(gitops_repo) == core.ImageEntry("hello-gitops", image_repository, v1, digests[v1])
    hold = manifest.read_hold(gitops_repo.manifest_at())
    assert hold is not None and hold.by == "alice@example.com" and hold.reason == "v2 returns 500s"
    assert gitops_repo.changed_paths(rolled.json["commit"]) == [MANIFEST]

    v3 = gitops_repo.app_commit("v3")
    push_test_image(image_repository, v3)
    held = promote(gitops_repo.workspace(v3), image_repository)
    assert held["outcome"] == "held" and held["commit"] is None
    assert "alice@example.com" in held["reason"]
    assert deployed(gitops_repo).new_tag == v1

    lifted = run_cli(gitops_repo.workspace(v3), "unhold", "--json")
    assert lifted.returncode == 0, lifted.output
    assert lifted.json["outcome"] == "changed"
    assert manifest.read_hold(gitops_repo.manifest_at()) is None
    again = run_cli(gitops_repo.workspace(v3), "unhold", "--json")
    assert again.json["outcome"] == "noop"

    assert promote(gitops_repo.workspace(v3), image_repository)["outcome"] == "changed"
    assert deployed(gitops_repo).new_tag == v3


def test_rollback_to_an_image_not_in_the_registry_fails_and_changes_nothing(
    gitops_repo: GitopsRepo, image_repository: str
) -> None:
    sha = gitops_repo.app_commit("never built")
    tip = gitops_repo.tip()
    result = run_cli(
        gitops_repo.workspace(sha), "rollback", "--image-repository", image_repository, "--to", sha,
        "--reason", "x", "--json",
    )  # fmt: skip
    assert result.returncode == 1
    assert "not in the registry" in result.stderr
    assert result.json["outcome"] == "error"
    assert gitops_repo.tip() == tip


def test_push_rejected_by_a_hook_exits_1_and_leaves_the_remote_alone(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    sha = gitops_repo.app_commit("v1")
    push_test_image(image_repository, sha)
    hook = gitops_repo.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'branch protection: pushes need review' >&2\nexit 1\n")
    hook.chmod(0o755)
    tip = gitops_repo.tip()

    result = run_cli(gitops_repo.workspace(sha), "promote", "--image-repository", image_repository, "--json")

    assert result.returncode == 1
    assert "rejected" in result.stderr and "branch protection" in result.stderr
    assert "hint:" in result.stderr
    assert gitops_repo.tip() == tip


def test_a_lost_race_is_retried_on_the_new_tip(gitops_repo: GitopsRepo) -> None:
    """Deterministic race: the first plan() moves the branch behind our back, so the first push loses."""
    ws = gitops_repo.workspace(gitops_repo.tip())
    calls: list[str] = []

    def plan(_tip: str, text: str) -> Edit:
        calls.append(text)
        if len(calls) == 1:
            gitops_repo.app_commit("sneaked in")
        return Edit(Decision(Outcome.CHANGED, "test"), text, text + f"# edit {len(calls)}\n")

    result = commit_manifest(
        Git(ws), remote="origin", branch="main", path=MANIFEST, plan=plan, message="test [skip ci]\n",
        bot=Identity("gitops-bot", BOT_EMAIL), policy=RetryPolicy(max_attempts=3), rng=random.Random(1),
    )  # fmt: skip

    assert result.attempts == 2
    assert result.commit == gitops_repo.tip()
    assert git(gitops_repo.remote, "log", "-1", "--format=%s", "main^").strip() == "app: sneaked in"
    assert gitops_repo.manifest_at().endswith("# edit 2\n")


def test_retries_are_bounded(gitops_repo: GitopsRepo) -> None:
    ws = gitops_repo.workspace(gitops_repo.tip())

    def plan(_tip: str, text: str) -> Edit:
        gitops_repo.app_commit("always one step ahead")
        return Edit(Decision(Outcome.CHANGED, "test"), text, text + "# edit\n")

    with pytest.raises(GitError, match="gave up after 2 attempts"):
        commit_manifest(
            Git(ws), remote="origin", branch="main", path=MANIFEST, plan=plan, message="test [skip ci]\n",
            bot=Identity("gitops-bot", BOT_EMAIL), policy=RetryPolicy(max_attempts=2, base_delay=0.01),
        )  # fmt: skip
    assert gitops_repo.bot_commits() == []


# pre-receive hook: hold the first pushes until three have arrived (or 5 s passed), so at least three
# runs certainly push on the same old tip and all but one must fetch, re-plan and retry.
RACE_BARRIER = """#!/bin/sh
mkdir -p arrivals && touch "arrivals/$$"
[ "$(ls arrivals | wc -l)" -gt 3 ] && exit 0
i=0
while [ "$(ls arrivals | wc -l)" -lt 3 ] && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
exit 0
"""


@pytest.mark.slow
def test_concurrent_promotes_all_succeed_and_the_newest_wins(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    commits = [gitops_repo.app_commit(f"v{n}") for n in range(12)]
    for sha in commits:
        push_test_image(image_repository, sha)
    workspaces = {sha: gitops_repo.workspace(sha) for sha in commits}
    hook = gitops_repo.remote / "hooks" / "pre-receive"
    hook.write_text(RACE_BARRIER)
    hook.chmod(0o755)
    order = commits[:]
    random.shuffle(order)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "jenkins", "promote", "--image-repository", image_repository, "--json"],
            cwd=workspaces[sha],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for sha in order
    ]
    results = [(*proc.communicate(timeout=120), proc.returncode) for proc in procs]

    assert [code for _, _, code in results] == [0] * len(procs), [err for _, err, _ in results]
    reports = [json.loads(out.splitlines()[-1]) for out, _, _ in results]
    outcomes = [r["outcome"] for r in reports]
    assert set(outcomes) <= {"changed", "stale"} and "changed" in outcomes, reports
    assert sum(r["attempts"] for r in reports) > len(reports), "the barrier guarantees lost races"
    assert deployed(gitops_repo).new_tag == commits[-1]
    bot_commits = gitops_repo.bot_commits()
    assert len(bot_commits) == outcomes.count("changed")
    for commit in bot_commits:
        assert gitops_repo.changed_paths(commit) == [MANIFEST]  # never empty, never more


def test_bot_identity_is_configurable_and_recognised(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    sha = gitops_repo.app_commit("v1")
    push_test_image(image_repository, sha)
    bot = {"GITOPS_BOT_NAME": "Release Robot", "GITOPS_BOT_EMAIL": "robot@example.com"}
    out = run_cli(
        gitops_repo.workspace(sha), "promote", "--image-repository", image_repository, "--json", env=bot
    )
    assert out.returncode == 0, out.output
    author = git(gitops_repo.remote, "log", "-1", "--format=%an <%ae>|%cn <%ce>", out.json["commit"]).strip()
    assert author == "Release Robot <robot@example.com>|Release Robot <robot@example.com>"

    again = run_cli(
        gitops_repo.workspace(out.json["commit"]),
        "release",
        "--image-repository",
        image_repository,
        "--json",
        env=bot,
    )
    assert again.returncode == 0 and again.json["outcome"] == "noop", again.output


def test_rollback_from_a_shallow_checkout_by_full_sha(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    old = gitops_repo.app_commit("old")
    digest = push_test_image(image_repository, old)
    new = gitops_repo.app_commit("new")
    push_test_image(image_repository, new)
    promote(gitops_repo.workspace(new), image_repository)
    ws = gitops_repo.workspace(gitops_repo.tip(), depth=1)  # `old` is not in this checkout

    result = run_cli(
        ws, "rollback", "--image-repository", image_repository, "--to", old, "--reason", "bad", "--json"
    )

    assert result.returncode == 0, result.output
    assert deployed(gitops_repo) == core.ImageEntry("hello-gitops", image_repository, old, digest)


def test_a_person_who_scales_the_app_to_zero_keeps_it_and_releases_say_so(
    tmp_path: Path, image_repository: str, push_test_image: PushImage
) -> None:
    """Only the first release removes a `replicas:` entry of 0; later the count is a person's decision,
    which a release keeps, and its report says the app runs no pod."""
    repo = FreshCopy.seed(tmp_path)
    first = repo.app_commit("first")
    push_test_image(image_repository, first)
    repo.checkout(first)
    assert promote(repo.work, image_repository)["outcome"] == "changed"

    repo.checkout_tip()
    path = repo.work / MANIFEST
    path.write_text(path.read_text() + "replicas:\n  - name: hello-gitops\n    count: 0\n")
    git(repo.work, "commit", "--quiet", "-am", "Scale the app to zero")
    git(repo.work, "push", "--quiet", "origin", "HEAD:main")
    second = repo.app_commit("second")
    push_test_image(image_repository, second)
    repo.checkout(second)
    out = promote(repo.work, image_repository)

    assert out["outcome"] == "changed", out
    assert "keeps it at 0 pods: remove that entry in git to run it" in out["reason"]
    assert manifest.read_replicas(repo.file_at_tip(MANIFEST)) == 0
    assert repo.deployed_tag() == second


def test_on_day_0_the_note_says_the_first_release_runs_the_app_not_to_remove_the_entry(
    tmp_path: Path,
) -> None:
    """Before any release the overlay's tag is git's null id: removing the `replicas: 0` entry then would
    start pods on an image that does not exist, so the report points at the first release instead."""
    repo = FreshCopy.seed(tmp_path)
    result = run_cli(repo.work, "unhold", "--dry-run", "--json")
    assert result.returncode == 0, result.output
    assert result.json["outcome"] == "noop" and "remove that entry" not in result.json["reason"]
    assert result.json["reason"].endswith(
        f"nothing is released to {MANIFEST} yet, so the app runs 0 pods; the first release removes day 0's "
        "`replicas:` entry"
    )
