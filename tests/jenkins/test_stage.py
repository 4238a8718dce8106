"""`python -m jenkins plan` / `build` and `python -m jenkins.field`: the Build stage's decision from real
git (a bare remote, Jenkins-like detached workspaces), and the digest it hands on, from a real registry.

What counts as "on the branch" is git's own first-parent line (`git log --first-parent`): a commit that
only a merge's second parent reaches was never the branch's state, so it is never released.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from jenkins import field, stage
from tests.jenkins.conftest import BOT_EMAIL, MANIFEST, GitopsRepo, git, run_cli

A, B, C = "a" * 40, "b" * 40, "c" * 40
BOT_ENV = {
    "GIT_AUTHOR_NAME": "gitops-bot",
    "GIT_AUTHOR_EMAIL": BOT_EMAIL,
    "GIT_COMMITTER_NAME": "gitops-bot",
    "GIT_COMMITTER_EMAIL": BOT_EMAIL,
}


def bot_commit(repo: GitopsRepo) -> str:
    """A release-bot commit (the bot as author) on main, touching only the manifest."""
    git(repo.dev, "pull", "--quiet", "--rebase", "origin", "main")
    path = repo.dev / MANIFEST
    path.write_text(path.read_text() + "# bot\n")
    git(repo.dev, "commit", "--quiet", "-am", "deploy [skip ci]", env=BOT_ENV)
    git(repo.dev, "push", "--quiet", "origin", "HEAD:main")
    return git(repo.dev, "rev-parse", "HEAD").strip()


def plan(workspace: Path, *args: str) -> dict:
    result = run_cli(workspace, "plan", "--json", *args)
    assert result.returncode == 0, result.output
    return result.json


def test_decide_on_a_hand_made_first_parent_line() -> None:
    line = [(A, BOT_EMAIL), (B, "dev@example.com"), (C, "dev@example.com")]
    assert stage.decide(B, line, BOT_EMAIL, "origin/main").source_commit == B
    under_bot = stage.decide(A, line, BOT_EMAIL, "origin/main")
    assert (under_bot.release, under_bot.source_commit, under_bot.head) == (True, B, A)
    off = stage.decide("d" * 40, line, BOT_EMAIL, "origin/main")
    assert (off.release, off.on_branch, off.source_commit) == (False, False, None)
    assert "not on the first-parent line of origin/main" in off.reason
    only_bot = stage.decide(A, [(A, BOT_EMAIL)], BOT_EMAIL, "origin/main")
    assert (only_bot.release, only_bot.on_branch) == (False, True)


def test_a_human_commit_at_the_tip_is_released(gitops_repo: GitopsRepo) -> None:
    commit = gitops_repo.app_commit("one")
    result = plan(gitops_repo.workspace(commit))
    assert result["outcome"] == "release" and result["release"] is True
    assert result["source_commit"] == commit == result["head"] == result["tip"]
    assert result["commit"] is None  # the contract's manifest commit: plan never pushes


def test_a_bot_commit_on_top_releases_the_human_commit_under_it(gitops_repo: GitopsRepo) -> None:
    human = gitops_repo.app_commit("one")
    bot = bot_commit(gitops_repo)
    result = plan(gitops_repo.workspace(bot))
    assert (result["release"], result["head"], result["source_commit"]) == (True, bot, human)


def test_plan_uses_no_network_and_says_when_a_shallow_clone_hides_the_answer(gitops_repo: GitopsRepo) -> None:
    gitops_repo.app_commit("one")
    bot = bot_commit(gitops_repo)
    workspace = gitops_repo.workspace(bot, depth=1)
    # An unreachable remote: any fetch would fail the run.
    git(workspace, "remote", "set-url", "origin", "ssh://git@127.0.0.1:9/nowhere.git")
    result = plan(workspace)
    assert (result["release"], result["head"]) == (False, bot)
    assert "this checkout is shallow" in result["reason"]


def test_plan_needs_the_branch_the_checkout_fetched(gitops_repo: GitopsRepo) -> None:
    result = run_cli(gitops_repo.workspace(gitops_repo.tip()), "plan", "--branch", "release", "--json")
    assert result.returncode == 2
    assert "this checkout has no origin/release" in result.json["error"]


def test_a_commit_only_a_merges_second_parent_reaches_is_not_released(gitops_repo: GitopsRepo) -> None:
    dev = gitops_repo.dev
    git(dev, "checkout", "--quiet", "-b", "feature")
    (dev / "app" / "feature.txt").write_text("feature\n")
    git(dev, "add", "app/feature.txt")
    git(dev, "commit", "--quiet", "-m", "app: feature")
    feature = git(dev, "rev-parse", "HEAD").strip()
    git(dev, "checkout", "--quiet", "main")
    gitops_repo.app_commit("main moves on")
    git(dev, "merge", "--quiet", "--no-ff", "-m", "merge feature", "feature")
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    merge = git(dev, "rev-parse", "HEAD").strip()
    assert git(gitops_repo.remote, "merge-base", "--is-ancestor", feature, "main") == ""  # reachable...
    result = plan(gitops_repo.workspace(feature))
    assert (result["release"], result["on_branch"], result["source_commit"]) == (False, False, None)
    assert plan(gitops_repo.workspace(merge))["source_commit"] == merge  # ...but the merge is main's state


def test_a_commit_of_another_branch_is_not_released(gitops_repo: GitopsRepo) -> None:
    dev = gitops_repo.dev
    git(dev, "checkout", "--quiet", "-b", "other")
    (dev / "app" / "other.txt").write_text("other\n")
    git(dev, "add", "app/other.txt")
    git(dev, "commit", "--quiet", "-m", "app: other")
    git(dev, "push", "--quiet", "origin", "HEAD:other")
    other = git(dev, "rev-parse", "HEAD").strip()
    result = plan(gitops_repo.workspace(other))
    assert result["release"] is False and "not on the first-parent line of origin/main" in result["reason"]
    # The same commit planned against its own branch is released: the branch is a flag, not an assumption.
    assert plan(gitops_repo.workspace(other), "--branch", "other")["source_commit"] == other


def test_build_hands_on_the_registry_digest_without_building_what_is_there(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: Callable[[str, str], str]
) -> None:
    commit = gitops_repo.app_commit("one")
    digest = push_test_image(image_repository, commit)
    workspace = gitops_repo.workspace(commit)
    (workspace / "plan.json").write_text(json.dumps(plan(workspace)) + "\n")
    result = run_cli(
        workspace, "build", "--plan", "plan.json", "--image-repository", image_repository, "--json"
    )
    assert result.returncode == 0, result.output
    out = result.json
    assert (out["outcome"], out["source_commit"], out["digest"], out["built"]) == (
        "release",
        commit,
        digest,
        False,
    )
    assert out["image"] == f"{image_repository}:{commit}"


def test_build_of_a_plan_that_does_not_release_does_nothing(gitops_repo: GitopsRepo, tmp_path: Path) -> None:
    gitops_repo.app_commit("one")
    bot = bot_commit(gitops_repo)
    workspace = gitops_repo.workspace(bot)
    skip = stage.Plan(release=False, source_commit=None, head=bot, tip=bot, on_branch=True, reason="x")
    (workspace / "plan.json").write_text(json.dumps(stage.StageReport(skip).as_json()) + "\n")
    # An address nothing listens on: a registry call would fail the run.
    result = run_cli(
        workspace, "build", "--plan", "plan.json", "--image-repository", "127.0.0.1:9/x", "--json"
    )
    assert result.returncode == 0, result.output
    assert (result.json["outcome"], result.json["digest"], result.json["image"]) == ("skip", None, None)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read a JSON line"),
        ("not json\n", "cannot read a JSON line"),
        ('{"outcome": "release"}\n', "not the output of `python -m jenkins plan --json`"),
        (
            json.dumps(
                {
                    "release": True,
                    "source_commit": "abc",
                    "head": A,
                    "tip": A,
                    "on_branch": True,
                    "reason": "",
                }
            ),
            "a release needs a full source_commit",
        ),
    ],
)
def test_build_refuses_a_bad_plan_file_with_exit_2(
    gitops_repo: GitopsRepo, content: str | None, expected: str
) -> None:
    workspace = gitops_repo.workspace(gitops_repo.tip())
    if content is not None:
        (workspace / "plan.json").write_text(content)
    result = run_cli(
        workspace, "build", "--plan", "plan.json", "--image-repository", "127.0.0.1:9/x", "--json"
    )
    assert result.returncode == 2, result.output
    assert result.json["outcome"] == "error"
    assert "--plan 'plan.json'" in result.json["error"] and expected in result.json["error"]


def test_plan_refuses_a_commit_it_does_not_have(gitops_repo: GitopsRepo) -> None:
    result = run_cli(gitops_repo.workspace(gitops_repo.tip()), "plan", "--commit", "f" * 40, "--json")
    assert result.returncode == 2 and "--commit" in result.json["error"]


def test_field_prints_json_values_and_refuses_absent_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "build.json"
    path.write_text("a log line\n" + json.dumps({"release": False, "digest": None, "head": A}) + "\n")
    assert field.main([str(path), "release"]) == 0
    assert field.main([str(path), "head"]) == 0
    assert capsys.readouterr().out == f"false\n{A}\n"
    assert field.main([str(path), "digest"]) == 2  # null: a step must not go on with an empty value
    assert field.main([str(path), "nope"]) == 2
    assert field.main([str(tmp_path / "missing.json"), "release"]) == 2
    assert "has no 'nope'" in capsys.readouterr().err
