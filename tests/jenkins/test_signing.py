"""Signed bot commits (GITOPS_SIGNING_KEY_FILE) and the history check before signing, with real gpg keys
generated here (ed25519, `gpg --quick-gen-key`), real git (`git verify-commit`), the CLI as a subprocess
and GitHub's REST API played by plane/fakegithubapi.py. The rules: every commit the bot pushes is
signed by its key; it refuses to sign on top of a first-parent line that, since its newest signed
commit, holds a commit that is neither the bot's nor, as GitHub answers, the merge commit of a pull
request merged into the branch, exactly as GitHub's merge button makes it of the pull request's head
(compared with `git merge-tree`); a merge's second-parent commits are not checked one by one. Every
workspace here is a clone of `git@github.com:acme/app.git` (git's url.<base>.insteadOf points it at the
local remote)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jenkins import core, pulls
from jenkins.core import SignedCommit
from jenkins.pulls import ReviewRule, approvers, repository_of, review_rule
from plane.fakegithubapi import FakeGitHubAPI, Pull, Repository, serve
from tests.conftest import ROOT
from tests.jenkins.conftest import MANIFEST, GitopsRepo, git, run_cli

PushImage = Callable[[str, str], str]


@dataclass(frozen=True)
class Keys:
    """A GNUPGHOME holding three key pairs, and the files the bot is given."""

    home: Path
    bot: str  # fingerprints
    webflow: str  # stands in for GitHub's web-flow key: it signs merges, and anything else made on GitHub
    stranger: str  # a valid signature, but by nobody trusted
    bot_secret: Path  # ASCII-armored private key, no passphrase (what the credential holds)
    bot_public: Path  # ASCII-armored public key only
    secret_text: str


def gpg(home: Path, *args: str) -> str:
    proc = subprocess.run(
        ["gpg", "--batch", "--no-tty", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "GNUPGHOME": str(home)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    base = tmp_path_factory.mktemp("keys")
    home = base / "gnupg"
    home.mkdir(mode=0o700)
    fingerprints = {}
    for name in ("bot", "webflow", "stranger"):
        gpg(
            home,
            "--passphrase",
            "",
            "--quick-gen-key",
            f"{name} <{name}@example.com>",
            "ed25519",
            "sign",
            "never",
        )
        listing = gpg(home, "--with-colons", "--list-keys", f"{name}@example.com")
        fingerprints[name] = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )
    secret = gpg(home, "--armor", "--export-secret-keys", fingerprints["bot"])
    (base / "bot.asc").write_text(secret)
    (base / "bot.pub.asc").write_text(gpg(home, "--armor", "--export", fingerprints["bot"]))
    yield Keys(
        home, fingerprints["bot"], fingerprints["webflow"], fingerprints["stranger"], base / "bot.asc",
        base / "bot.pub.asc", secret,
    )  # fmt: skip
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


REPOSITORY = "acme/app"
PULLS_TOKEN = "github_pat_11PULLSREADONLY0000000000_test"


@pytest.fixture(autouse=True)
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHubAPI]:
    """GitHub for every CLI run here: the read-only token in GITOPS_PULLS_TOKEN is granted Pull
    requests: read on acme/app, and every workspace's origin is that repository's SSH URL. `reviewer`
    and `second` have write access (the role maintain reads as write), `dev` opens pull requests,
    `passerby` is a user without access (anyone may review a public repository's pull request)."""
    repository = Repository(collaborators={"reviewer": "write", "second": "maintain", "dev": "write"})
    fake = FakeGitHubAPI(
        tokens={PULLS_TOKEN: {"pull_requests=read"}},
        users={"reviewer", "second", "dev", "other", "passerby"},
        repositories={REPOSITORY: repository},
    )
    workspace = GitopsRepo.workspace

    def on_github(
        repo: GitopsRepo, commit: str, name: str | None = None, *, depth: int | None = None
    ) -> Path:
        path = workspace(repo, commit, name, depth=depth)
        url = f"git@github.com:{REPOSITORY}.git"
        git(path, "config", f"url.{git(path, 'config', 'remote.origin.url').strip()}.insteadOf", url)
        git(path, "config", "remote.origin.url", url)
        return path

    monkeypatch.setattr(GitopsRepo, "workspace", on_github)
    with serve(fake):
        monkeypatch.setenv("GITOPS_PULLS_TOKEN", PULLS_TOKEN)
        monkeypatch.setenv("GITOPS_GITHUB_API_URL", fake.url)
        yield fake


@pytest.fixture
def elsewhere() -> Iterator[FakeGitHubAPI]:
    """Another server, where a redirect could point: it must never be asked (nor see the token)."""
    with serve(FakeGitHubAPI()) as fake:
        yield fake


def merged_pull(
    github: FakeGitHubAPI,
    merge_commit: str,
    *,
    base: str = "main",
    commits: tuple[str, ...] = (),
    reviews: tuple[tuple[str, str], ...] = (("reviewer", "APPROVED"),),
) -> Pull:
    """GitHub's record of a pull request merged into base whose merge commit is merge_commit (the merge,
    the squashed commit, or the last rebased one), with reviews (login, state) of its head commit;
    merge_commit is then on the default branch."""
    repo = github.repositories[REPOSITORY]
    head = commits[-1] if commits else "c" * 40
    listed = [{"user": {"login": who}, "state": state, "commit_id": head} for who, state in reviews]
    pull = Pull(len(repo.pulls) + 1, base, commits, merge_commit, merged=True, head=head, reviews=listed)
    repo.pulls.append(pull)
    if base == "main":
        repo.default_commits.add(merge_commit)
    return pull


def reviewed(
    github: FakeGitHubAPI,
    repo: GitopsRepo,
    label: str,
    *,
    how: str = "squash",
    files: dict[str, str] | None = None,
    reviews: tuple[tuple[str, str], ...] = (("reviewer", "APPROVED"),),
) -> str:
    """A pull request of one developer commit (writing files; by default a change to app/) landed on main
    as GitHub's merge button lands it: its head kept at refs/pull/<n>/head ("Checking out pull requests
    locally"), then a merge commit of it (how="merge") or its squash on main's tip, and GitHub's record
    of the merge with reviews (login, state) of the head. Returns the commit on main."""
    dev = repo.dev
    git(dev, "pull", "--quiet", "--rebase", "origin", "main")
    number = len(github.repositories[REPOSITORY].pulls) + 1
    for name, text in (files or {"app/version.txt": f"{label} {uuid.uuid4().hex}\n"}).items():
        (dev / name).parent.mkdir(parents=True, exist_ok=True)
        (dev / name).write_text(text)
        git(dev, "add", name)
    git(dev, "commit", "--quiet", "-m", label)
    head = git(dev, "rev-parse", "HEAD").strip()
    git(dev, "push", "--quiet", "origin", f"HEAD:refs/pull/{number}/head")
    git(dev, "reset", "--quiet", "--hard", "HEAD~")
    if how == "merge":
        git(dev, "merge", "--quiet", "--no-ff", "-m", f"Merge pull request #{number}", head)
    else:
        git(dev, "merge", "--quiet", "--squash", head)
        git(dev, "commit", "--quiet", "-m", f"{label} (#{number})")
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    sha = git(dev, "rev-parse", "HEAD").strip()
    merged_pull(github, sha, commits=(head,), reviews=reviews)
    return sha


def amend(repo: GitopsRepo, change: str) -> str:
    """Amend main's tip with one more file, force-pushed (the deploy key bypasses the ruleset)."""
    (repo.dev / "app" / "extra.txt").write_text(change)
    git(repo.dev, "add", "app/extra.txt")
    git(repo.dev, "commit", "--quiet", "--amend", "--no-edit")
    git(repo.dev, "push", "--quiet", "--force", "origin", "HEAD:main")
    return git(repo.dev, "rev-parse", "HEAD").strip()


@pytest.fixture
def signed_repo(gitops_repo: GitopsRepo, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> GitopsRepo:
    """The GitOps repository with signing switched on: an anchor commit signed by the bot's key on top
    of the unsigned initial commit, then developer commits signed by the web-flow key."""
    monkeypatch.setenv("GNUPGHOME", str(keys.home))
    dev = gitops_repo.dev
    git(dev, "commit", "--quiet", "--allow-empty", f"-S{keys.bot}", "-m", "switch signing on")
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    git(dev, "config", "user.signingkey", keys.webflow)
    git(dev, "config", "commit.gpgsign", "true")
    return gitops_repo


def signing_env(keys: Keys, tmp: Path) -> dict[str, str]:
    """The variables the release agent sets, and a TMPDIR of our own to see what is left in it."""
    tmp.mkdir(exist_ok=True)
    return {"GITOPS_SIGNING_KEY_FILE": str(keys.bot_secret), "TMPDIR": str(tmp)}


def signer_of(repo: Path, commit: str) -> str:
    """The fingerprint of the key whose good signature commit bears (git verify-commit must pass)."""
    proc = subprocess.run(
        ["git", "verify-commit", "--raw", commit], cwd=repo, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return next(line.split()[2] for line in proc.stderr.splitlines() if line.startswith("[GNUPG:] VALIDSIG"))


def push_unsigned(gitops_repo: GitopsRepo, label: str) -> str:
    """A commit pushed straight to main without a signature (what a stolen deploy key can do)."""
    git(gitops_repo.dev, "pull", "--quiet", "--rebase", "origin", "main")
    (gitops_repo.dev / "app" / "version.txt").write_text(f"{label}\n")
    git(gitops_repo.dev, "commit", "--quiet", "--no-gpg-sign", "-am", label)
    git(gitops_repo.dev, "push", "--quiet", "origin", "HEAD:main")
    return git(gitops_repo.dev, "rev-parse", "HEAD").strip()


# --- the pure rule -----------------------------------------------------------------------------------

BOT, WEBFLOW, OTHER = "B" * 40, "W" * 40, "O" * 40


@pytest.mark.parametrize(
    ("line", "untrusted", "reached"),
    [
        # Every commit the bot did not sign is named, whoever signed it: only GitHub's answer clears it.
        ([SignedCommit("c2", WEBFLOW), SignedCommit("c1", BOT), SignedCommit("c0", None)], ["c2"], True),
        ([SignedCommit("c2", None), SignedCommit("c1", BOT)], ["c2"], True),
        (
            [SignedCommit("c3", OTHER), SignedCommit("c2", WEBFLOW), SignedCommit("c1", BOT)],
            ["c3", "c2"],
            True,
        ),
        ([SignedCommit("c1", BOT), SignedCommit("c0", None)], [], True),  # older history is not looked at
        ([SignedCommit("c1", WEBFLOW), SignedCommit("c0", None)], ["c1", "c0"], False),
        ([], [], False),
    ],
)
def test_untrusted_since_bot(line: list[SignedCommit], untrusted: list[str], reached: bool) -> None:
    assert core.untrusted_since_bot(line, frozenset({BOT})) == (untrusted, reached)


@pytest.mark.parametrize(
    ("line", "untrusted", "reached"),
    [
        # The anchor ends the walk like a bot commit, unsigned as it may be; what is older is not looked at.
        ([SignedCommit("c2", WEBFLOW), SignedCommit("a", None), SignedCommit("c0", None)], ["c2"], True),
        ([SignedCommit("c2", None), SignedCommit("a", None)], ["c2"], True),
        # The bot's newest commit, when it is newer than the anchor, ends the walk first.
        ([SignedCommit("c1", BOT), SignedCommit("a", None)], [], True),
        ([SignedCommit("c1", WEBFLOW), SignedCommit("c0", None)], ["c1", "c0"], False),  # anchor not on it
        ([SignedCommit("a", None), SignedCommit("c0", None)], [], True),  # day 0: the tip is the anchor
    ],
)
def test_untrusted_since_the_anchor(line: list[SignedCommit], untrusted: list[str], reached: bool) -> None:
    assert core.untrusted_since_bot(line, frozenset({BOT}), anchor="a") == (untrusted, reached)


# GitHub's answer, as `pull-request-simple` items of "List pull requests associated with a commit"
# (github/rest-api-description). merge_commit_sha per "Get a pull request": the merge commit (merge), the
# squashed commit on the base branch (squash), the commit the base branch was updated to (rebase).
SHA, OTHER_SHA = "a" * 40, "b" * 40


def pull(number: int = 7, *, merged: bool = True, base: str = "main", merge_commit: str = SHA) -> dict:
    return {
        "number": number,
        "state": "closed" if merged else "open",
        "merged_at": "2026-12-01T12:00:00Z" if merged else None,
        "merge_commit_sha": merge_commit,
        "base": {"ref": base},
    }


@pytest.mark.parametrize(
    ("answer", "numbers"),
    [
        ([pull()], [7]),  # merge commit, or squashed commit, of a pull request merged into main
        ([pull(3, merge_commit=OTHER_SHA), pull(9)], [9]),  # sha was also a commit of another pull request
        # merging #9 also merged #3, whose head #9's holds ("About pull request merges", Indirect merges)
        ([pull(3), pull(9)], [3, 9]),
        ([], []),  # no pull request: a commit pushed (or made on GitHub) outside one
        # an open pull request: its merge_commit_sha is GitHub's test merge, which nobody merged
        ([pull(merged=False)], []),
        ([pull(base="release")], []),  # merged into another branch, then pushed here
        ([pull(merge_commit=OTHER_SHA)], []),  # one of the pull request's own (or earlier rebased) commits
        ([pull() | {"merged_at": None}], []),
        ([pull() | {"base": None}, "garbage", None], []),  # a body of another shape vouches for nothing
    ],
)
def test_merged_pulls(answer: list, numbers: list[int]) -> None:
    assert [found["number"] for found in pulls.merged_pulls(SHA, "main", answer)] == numbers


# "Get rules for a branch": the active rules; a `pull_request` rule's parameters (rest-api-description,
# repository-rule-pull-request) include required_approving_review_count and require_code_owner_review.
def pr_rule(count: int, code_owners: bool = False) -> dict:
    return {
        "type": "pull_request",
        "parameters": {"required_approving_review_count": count, "require_code_owner_review": code_owners},
    }


@pytest.mark.parametrize(
    ("rules", "rule"),
    [
        ([pr_rule(2)], ReviewRule(2)),
        ([{"type": "deletion"}, pr_rule(0)], ReviewRule(0)),
        # a repository ruleset and an organization one: the strictest holds
        ([pr_rule(1, code_owners=True), pr_rule(3)], ReviewRule(3, code_owners=True)),
        ([pr_rule(0, code_owners=True)], ReviewRule(0, code_owners=True)),
        ([], ReviewRule()),  # no rule: the branch asks for no review
        ([{"type": "pull_request", "parameters": {"require_code_owner_review": "yes"}}], ReviewRule()),
    ],
)
def test_review_rule(rules: list, rule: ReviewRule) -> None:
    assert review_rule(rules) == rule


HEAD, OLD = "h" * 40, "0" * 40


def review(login: str, state: str, commit: str = HEAD) -> dict:
    return {"user": {"login": login}, "state": state, "commit_id": commit}


@pytest.mark.parametrize(
    ("reviews", "approved"),
    [
        ([review("ann", "APPROVED")], {"ann"}),
        ([review("ann", "APPROVED"), review("ann", "COMMENTED")], {"ann"}),  # a comment changes nothing
        ([review("ann", "APPROVED"), review("ann", "CHANGES_REQUESTED")], set()),
        ([review("ann", "DISMISSED")], set()),  # a dismissed approval (stale after a push, or by hand)
        ([review("ann", "APPROVED", OLD)], set()),  # an approval of an earlier head commit
        ([review("dev", "APPROVED")], set()),  # the author's own
        (
            [review("ann", "CHANGES_REQUESTED"), review("ann", "APPROVED"), review("bob", "APPROVED")],
            {"ann", "bob"},
        ),
        ([{"state": "APPROVED"}, "garbage"], set()),
    ],
)
def test_approvers(reviews: list, approved: set[str]) -> None:
    assert approvers({"user": {"login": "dev"}, "head": {"sha": HEAD}}, reviews) == approved


@pytest.mark.parametrize(
    ("url", "repository"),
    [
        ("git@github.com:acme/app.git", "acme/app"),
        ("git@github.com:acme/app", "acme/app"),
        ("ssh://git@github.com/acme/app.git", "acme/app"),
        ("https://github.com/acme/my.app.git", "acme/my.app"),
        ("git@gitlab.com:acme/app.git", None),
        ("git@github.com.evil.example:acme/app.git", None),
        ("/srv/git/app.git", None),
    ],
)
def test_repository_of(url: str, repository: str | None) -> None:
    assert repository_of(url) == repository


# --- signing -----------------------------------------------------------------------------------------


def test_every_pushed_commit_is_signed_by_the_bots_key_and_no_key_material_leaks(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI,
) -> None:  # fmt: skip
    v1 = reviewed(github, signed_repo, "v1")
    push_test_image(image_repository, v1)
    spy = tmp_path / "spy"
    spy.mkdir()
    real_gpg = subprocess.run(["sh", "-c", "command -v gpg"], capture_output=True, text=True).stdout.strip()
    (spy / "gpg").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {spy}/argv\nexec {real_gpg} "$@"\n')
    (spy / "gpg").chmod(stat.S_IRWXU)
    # A short TMPDIR (gpg-agent's socket lives in GNUPGHOME here), so the run's temporary home is in it.
    short = Path(tempfile.mkdtemp(prefix="t-", dir="/tmp"))
    env = {**signing_env(keys, short), "PATH": f"{spy}:{os.environ['PATH']}"}
    ws = signed_repo.workspace(v1)

    promoted = run_cli(ws, "promote", "--image-repository", image_repository, "--json", env=env)
    rolled = run_cli(
        ws, "rollback", "--image-repository", image_repository, "--to", v1, "--reason", "drill", env=env
    )
    unheld = run_cli(ws, "unhold", "--json", env=env)

    for result in (promoted, rolled, unheld):
        assert result.returncode == 0, result.output
    assert promoted.json["outcome"] == "changed" and unheld.json["outcome"] == "changed"
    for commit in git(signed_repo.remote, "log", "--format=%H", f"{v1}..main").split():
        assert signer_of(signed_repo.remote, commit) == keys.bot
    assert list(short.iterdir()) == []  # the temporary GNUPGHOME is gone
    short.rmdir()
    body = [line for line in keys.secret_text.splitlines() if len(line) > 20]
    logged = (spy / "argv").read_text() + "".join(r.output for r in (promoted, rolled, unheld))
    assert body and not any(line in logged for line in body)
    assert PULLS_TOKEN not in logged
    assert "-bsau" in (spy / "argv").read_text()  # git did sign through gpg, with the key by fingerprint
    assert keys.bot in (spy / "argv").read_text()


def test_without_the_key_variable_nothing_is_signed(
    signed_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    v1 = signed_repo.app_commit("v1")
    push_test_image(image_repository, v1)
    result = run_cli(signed_repo.workspace(v1), "promote", "--image-repository", image_repository, "--json")
    assert result.returncode == 0, result.output
    assert git(signed_repo.remote, "log", "-1", "--format=%G?", result.json["commit"]).strip() == "N"


# --- the history check -------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["unsigned", "stranger", "web-flow"])
def test_a_commit_neither_the_bots_nor_a_merged_pull_request_under_the_tip_is_refused(
    signed_repo: GitopsRepo,
    keys: Keys,
    image_repository: str,
    push_test_image: PushImage,
    tmp_path: Path,
    github: FakeGitHubAPI,
    who: str,
) -> None:
    v1 = reviewed(github, signed_repo, "v1")
    if who == "unsigned":
        sneaked = push_unsigned(signed_repo, "pushed around review")
    else:
        # web-flow: a commit made in GitHub's web interface (any repository's, a fork's included) bears
        # GitHub's signature, but it is no merged pull request
        key = keys.stranger if who == "stranger" else keys.webflow
        git(signed_repo.dev, "commit", "--quiet", "--allow-empty", f"-S{key}", "-m", f"signed by {who}")
        git(signed_repo.dev, "push", "--quiet", "origin", "HEAD:main")
        sneaked = git(signed_repo.dev, "rev-parse", "HEAD").strip()
    v2 = reviewed(github, signed_repo, "v2")  # a reviewed merge on top does not launder it
    push_test_image(image_repository, v2)
    tip = signed_repo.tip()

    result = run_cli(
        signed_repo.workspace(v2), "promote", "--image-repository", image_repository, "--json",
        env=signing_env(keys, tmp_path / "tmp"),
    )  # fmt: skip

    assert result.returncode == 1, result.output
    assert result.json["outcome"] == "error" and result.json["commit"] is None
    assert sneaked in result.json["error"] and v1 not in result.json["error"]
    # The way out it names is one that works: a signed revert on top leaves the commit on the line.
    assert "re-anchor the stack on the reviewed head" in result.json["error"]
    assert "not the merge commit of a pull request merged into main" in result.json["error"]
    assert signed_repo.tip() == tip


def test_a_pull_requests_own_commits_are_vouched_for_by_its_merge(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI,
) -> None:  # fmt: skip
    dev = signed_repo.dev
    git(dev, "checkout", "--quiet", "-b", "feature")
    own = []
    for step in ("one", "two"):
        (dev / "app" / f"{step}.txt").write_text(step)
        git(dev, "add", "app")
        git(dev, "commit", "--quiet", "--no-gpg-sign", "-m", f"feature: {step}")
        own.append(git(dev, "rev-parse", "HEAD").strip())
    git(dev, "checkout", "--quiet", "main")
    git(dev, "merge", "--quiet", "--no-ff", f"-S{keys.webflow}", "-m", "Merge pull request #1", "feature")
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    merge = git(dev, "rev-parse", "HEAD").strip()
    merged_pull(github, merge, commits=tuple(own))
    push_test_image(image_repository, merge)

    result = run_cli(
        signed_repo.workspace(merge), "promote", "--image-repository", image_repository, "--json",
        env=signing_env(keys, tmp_path / "tmp"),
    )  # fmt: skip

    assert result.returncode == 0 and result.json["outcome"] == "changed", result.output
    assert signer_of(signed_repo.remote, result.json["commit"]) == keys.bot


def test_a_merge_of_a_pull_request_into_another_branch_pushed_here_is_refused(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI,
) -> None:  # fmt: skip
    """A pull request merged (reviewed or not) into a branch the ruleset does not guard, whose merge
    commit is then pushed to main with the deploy key: GitHub's answer names its base, not main."""
    sha = signed_repo.app_commit("merged into release")
    merged_pull(github, sha, base="release")
    push_test_image(image_repository, sha)

    result = run_cli(
        signed_repo.workspace(sha), "promote", "--image-repository", image_repository, "--json",
        env=signing_env(keys, tmp_path / "tmp"),
    )  # fmt: skip

    assert result.returncode == 1 and result.json["outcome"] == "error", result.output
    assert sha in result.json["error"]
    assert signed_repo.tip() == sha


def test_a_rebase_merge_vouches_only_for_the_commit_the_branch_was_moved_to(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI,
) -> None:  # fmt: skip
    """Rebase and merge puts each of the pull request's commits on the first-parent line; GitHub's
    merge_commit_sha names only the last ("the commit that the base branch was updated to"), so the
    earlier ones are refused: merge or squash, never rebase more than one commit."""
    dev = signed_repo.dev
    git(dev, "checkout", "--quiet", "-b", "feature")
    own = []
    for step in ("one", "two"):
        (dev / "app" / f"{step}.txt").write_text(step)
        git(dev, "add", "app")
        git(dev, "commit", "--quiet", "-m", f"feature: {step}")
        own.append(git(dev, "rev-parse", "HEAD").strip())
    git(dev, "push", "--quiet", "origin", "HEAD:refs/pull/1/head")
    git(dev, "checkout", "--quiet", "main")
    (dev / "app" / "version.txt").write_text("main moved on\n")
    git(dev, "commit", "--quiet", "-am", "main moved on")
    git(dev, "cherry-pick", *own)  # GitHub's rebase makes new commits of the pull request's own
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    last = git(dev, "rev-parse", "HEAD").strip()
    first = git(dev, "rev-parse", "HEAD~").strip()
    merged_pull(github, last, commits=tuple(own))
    push_test_image(image_repository, last)

    result = run_cli(
        signed_repo.workspace(last), "promote", "--image-repository", image_repository, "--json",
        env=signing_env(keys, tmp_path / "tmp"),
    )  # fmt: skip

    assert result.returncode == 1 and result.json["outcome"] == "error", result.output
    assert first in result.json["error"] and last not in result.json["error"]


def promote_signed(
    repo: GitopsRepo, sha: str, keys: Keys, image_repository: str, tmp_path: Path, *flags: str, **kw: int
):
    """`promote FLAGS` of sha, signed, in a fresh workspace at it (depth: a shallow clone)."""
    return run_cli(
        repo.workspace(sha, **kw), "promote", "--image-repository", image_repository, "--json", *flags,
        env=signing_env(keys, tmp_path / "tmp"),
    )  # fmt: skip


@pytest.mark.parametrize(("how", "depth"), [("merge", None), ("squash", None), ("merge", 1), ("squash", 1)])
def test_an_honest_merge_or_squash_is_vouched_for(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI, how: str, depth: int | None,
) -> None:  # fmt: skip
    """GitHub's merge commit (parents: the branch's tip, the pull request's head) and its squash (one
    parent, the merged tree: "About pull request merges") both hold exactly git's merge of the head into
    the tip. A squash's head is on no branch: the bot fetches it from refs/pull/<n>/head, which a clone
    does not (a shallow one is deepened for the merge base)."""
    sha = reviewed(github, signed_repo, "honest", how=how)
    push_test_image(image_repository, sha)

    # A dry run checks in a scratch repository of its own (and the merge in one of that one's).
    tried = promote_signed(signed_repo, sha, keys, image_repository, tmp_path, "--dry-run", depth=depth)
    result = promote_signed(signed_repo, sha, keys, image_repository, tmp_path, depth=depth)

    assert tried.returncode == 0 and tried.json["outcome"] == "changed", tried.output
    assert result.returncode == 0 and result.json["outcome"] == "changed", result.output
    assert signer_of(signed_repo.remote, result.json["commit"]) == keys.bot


@pytest.mark.parametrize("how", ["merge", "squash"])
def test_a_merge_or_squash_with_an_extra_change_is_refused(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI, how: str,
) -> None:  # fmt: skip
    """The attack: with the deploy key, push a merge of an approved pull request's head that also
    changes something else. GitHub marks the pull request merged with the pushed commit as its
    merge_commit_sha (the worst case), and its approvals are real."""
    honest = reviewed(github, signed_repo, "approved", how=how)
    sha = amend(signed_repo, "not in the pull request\n")
    github.repositories[REPOSITORY].pulls[-1].merge_commit_sha = sha
    github.repositories[REPOSITORY].default_commits.add(sha)
    push_test_image(image_repository, sha)

    result = promote_signed(signed_repo, sha, keys, image_repository, tmp_path)

    assert result.returncode == 1 and result.json["outcome"] == "error", result.output
    assert (
        f"{sha} (not GitHub's merge of pull request #1: its content is not the merge" in result.json["error"]
    )
    assert honest not in result.json["error"] and signed_repo.tip() == sha


def test_a_merge_whose_second_parent_is_not_the_pull_requests_head_is_refused(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI,
) -> None:  # fmt: skip
    """The approved head H, and a commit on top of it that nobody reviewed, merged and pushed: the
    merge holds H (GitHub marks the pull request merged) but what it merged is more than H."""
    dev = signed_repo.dev
    git(dev, "checkout", "--quiet", "-b", "feature")
    (dev / "app" / "version.txt").write_text("approved\n")
    git(dev, "commit", "--quiet", "-am", "approved")
    head = git(dev, "rev-parse", "HEAD").strip()
    git(dev, "push", "--quiet", "origin", "HEAD:refs/pull/1/head")
    (dev / "app" / "extra.txt").write_text("never reviewed\n")
    git(dev, "add", "app/extra.txt")
    git(dev, "commit", "--quiet", "-m", "on top")
    git(dev, "checkout", "--quiet", "main")
    git(dev, "merge", "--quiet", "--no-ff", "-m", "Merge pull request #1", "feature")
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    sha = git(dev, "rev-parse", "HEAD").strip()
    merged_pull(github, sha, commits=(head,))
    push_test_image(image_repository, sha)

    result = promote_signed(signed_repo, sha, keys, image_repository, tmp_path)

    assert result.returncode == 1 and result.json["outcome"] == "error", result.output
    assert (
        f"a merge whose second parent {git(dev, 'rev-parse', 'HEAD^2').strip()[:12]}" in result.json["error"]
    )
    assert f"is not the head {head[:12]} of pull request #1" in result.json["error"]
    assert signed_repo.tip() == sha


@pytest.mark.parametrize("how", ["by hand", "merge=union in the checkout's attributes"])
def test_a_merge_that_resolved_a_conflict_is_refused(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI, how: str,
) -> None:  # fmt: skip
    """GitHub's merge button merges no pull request that conflicts with its base (the conflict is first
    resolved on the head branch), so a merge commit that resolved one, whatever it holds, was pushed,
    and its resolution reviewed by nobody. git's merge honours .git/info/attributes (gitattributes(5):
    `merge=union` takes the lines of both sides instead of a conflict): the release's checkout saying so
    must not make the bot's merge resolve what GitHub's would not."""
    dev = signed_repo.dev
    git(dev, "checkout", "--quiet", "-b", "feature")
    (dev / "app" / "version.txt").write_text("the pull request's\n")
    git(dev, "commit", "--quiet", "-am", "approved")
    head = git(dev, "rev-parse", "HEAD").strip()
    git(dev, "push", "--quiet", "origin", "HEAD:refs/pull/1/head")
    git(dev, "checkout", "--quiet", "main")
    (dev / "app" / "version.txt").write_text("main's\n")
    git(dev, "commit", "--quiet", "-am", "main moved on")
    union = "* merge=union\n"
    if how == "by hand":
        subprocess.run(["git", "merge", "--no-ff", "feature"], cwd=dev, capture_output=True, check=False)
        (dev / "app" / "version.txt").write_text("resolved by hand\n")
        git(dev, "commit", "--quiet", "-am", "Merge pull request #1")
    else:
        (dev / ".git" / "info" / "attributes").write_text(union)
        git(dev, "merge", "--quiet", "--no-ff", "-m", "Merge pull request #1", "feature")
        (dev / ".git" / "info" / "attributes").unlink()
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    sha = git(dev, "rev-parse", "HEAD").strip()
    merged_pull(github, sha, commits=(head,))
    push_test_image(image_repository, sha)
    ws = signed_repo.workspace(sha)
    (ws / ".git" / "info").mkdir(exist_ok=True)
    (ws / ".git" / "info" / "attributes").write_text(union)

    result = run_cli(
        ws,
        "promote",
        "--image-repository",
        image_repository,
        "--json",
        env=signing_env(keys, tmp_path / "tmp"),
    )

    assert result.returncode == 1 and result.json["outcome"] == "error", result.output
    assert f"pull request #1's head {head[:12]} conflicts with" in result.json["error"]
    assert signed_repo.tip() == sha


def test_a_git_without_merge_tree_write_tree_fails_saying_so(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI,
) -> None:  # fmt: skip
    """git before 2.38 has no `merge-tree --write-tree` (Git 2.38.0 release notes): it answers with its
    usage and exit 129. The run fails (exit 1), naming the version it needs and the one it found."""
    sha = reviewed(github, signed_repo, "v1", how="merge")
    push_test_image(image_repository, sha)
    real_git = shutil.which("git")
    spy = tmp_path / "old-git"
    spy.mkdir()
    (spy / "git").write_text(
        "#!/bin/sh\n"
        'case " $* " in *" merge-tree --write-tree "*) echo "usage: git merge-tree <base> <b1> <b2>" >&2; '
        "exit 129;; esac\n"
        f'exec {real_git} "$@"\n'
    )
    (spy / "git").chmod(stat.S_IRWXU)
    env = {**signing_env(keys, tmp_path / "tmp"), "PATH": f"{spy}:{os.environ['PATH']}"}

    result = run_cli(
        signed_repo.workspace(sha), "promote", "--image-repository", image_repository, "--json", env=env
    )

    assert result.returncode == 1 and result.json["outcome"] == "error", result.output
    assert "it needs git 2.38 or newer" in result.json["error"] and "git version" in result.json["error"]
    assert signed_repo.tip() == sha


@pytest.mark.parametrize("approved", [True, False])
def test_an_indirect_merge_is_vouched_for_by_the_pull_request_it_merged(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI, approved: bool,
) -> None:  # fmt: skip
    """Pull request #2's head is a child of #1's: merging #2 merges #1 too, and GitHub marks both merged
    ("About pull request merges", Indirect merges), here both with the one merge commit. The merge is
    GitHub's merge of #2 only (its second parent is #2's head), so #2's approvals decide."""
    dev = signed_repo.dev
    git(dev, "checkout", "--quiet", "-b", "feature")
    heads = []
    for step in ("one", "two"):
        (dev / "app" / f"{step}.txt").write_text(step)
        git(dev, "add", "app")
        git(dev, "commit", "--quiet", "-m", f"feature: {step}")
        heads.append(git(dev, "rev-parse", "HEAD").strip())
        git(dev, "push", "--quiet", "origin", f"HEAD:refs/pull/{len(heads)}/head")
    git(dev, "checkout", "--quiet", "main")
    git(dev, "merge", "--quiet", "--no-ff", "-m", "Merge pull request #2", "feature")
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    sha = git(dev, "rev-parse", "HEAD").strip()
    merged_pull(github, sha, commits=(heads[0],))
    merged_pull(github, sha, commits=tuple(heads), reviews=(("reviewer", "APPROVED"),) if approved else ())
    push_test_image(image_repository, sha)

    result = promote_signed(signed_repo, sha, keys, image_repository, tmp_path)

    if approved:
        assert result.returncode == 0 and result.json["outcome"] == "changed", result.output
    else:
        assert result.returncode == 1 and result.json["outcome"] == "error", result.output
        assert f"{sha} (pull request #2 into main has 0 of the 1 approvals" in result.json["error"]


@pytest.mark.parametrize("case", ["head pushed", "head gone"])
def test_a_commit_that_github_cannot_have_merged_is_refused_by_name(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI, case: str,
) -> None:  # fmt: skip
    """The pull request's head itself pushed to the branch (GitHub marks it merged, its merge_commit_sha
    that head; GitHub's merge and squash always make a new commit), and a squash whose head the remote
    no longer serves at refs/pull/<n>/head, so that nothing says what it held."""
    if case == "head pushed":
        sha = signed_repo.app_commit("pushed around the merge button")
        merged_pull(github, sha, commits=(sha,))
        expected = "the head commit of pull request #1 itself, pushed to the branch"
    else:
        sha = reviewed(github, signed_repo, "squashed", how="squash")
        git(signed_repo.remote, "update-ref", "-d", "refs/pull/1/head")
        expected = "a squash of pull request #1, whose head"
    push_test_image(image_repository, sha)

    # Not a local clone, which copies every object, the head's too: one over git's protocol.
    result = promote_signed(signed_repo, sha, keys, image_repository, tmp_path, depth=1)

    assert result.returncode == 1 and result.json["outcome"] == "error", result.output
    assert f"{sha} (not GitHub's merge of pull request #1: {expected}" in result.json["error"]
    assert signed_repo.tip() == sha


@pytest.mark.parametrize(
    ("reviews", "required", "accepted"),
    [
        ((), 1, False),  # the attack: a pull request "merged" by pushing its merge with the deploy key
        ((("dev", "APPROVED"),), 1, False),  # its author's approval
        ((("reviewer", "DISMISSED"),), 1, False),
        ((("reviewer", "APPROVED"),), 2, False),
        ((("reviewer", "APPROVED"), ("second", "APPROVED")), 2, True),
        ((), 0, True),  # a one-person trial (requiredApprovals 0): GitHub asks for no review
    ],
)
def test_a_merged_pull_request_counts_only_with_the_approvals_the_branch_requires(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI, reviews: tuple[tuple[str, str], ...], required: int, accepted: bool,
) -> None:  # fmt: skip
    """GitHub marks a pull request merged when its merge commit is pushed to the base branch (github/hub,
    hub-merge(1): "auto-closed and marked as \"merged\" as soon as the newly created merge commit is
    pushed"), with no merge button and so without the ruleset's review: whoever holds the deploy key
    can push the merge of a pull request they opened. The worst case is assumed: merge_commit_sha names
    the pushed commit. Only approvals of the final head commit by others than the author count."""
    github.repositories[REPOSITORY].required_approvals = required
    sha = reviewed(github, signed_repo, "merged by a push", how="merge", reviews=reviews)
    push_test_image(image_repository, sha)

    result = run_cli(
        signed_repo.workspace(sha), "promote", "--image-repository", image_repository, "--json",
        env=signing_env(keys, tmp_path / "tmp"),
    )  # fmt: skip

    if accepted:
        assert result.returncode == 0 and result.json["outcome"] == "changed", result.output
    else:
        assert result.returncode == 1 and result.json["outcome"] == "error", result.output
        assert f"{sha} (pull request #1 into main has" in result.json["error"]
        assert f"of the {required} approvals" in result.json["error"]
        assert signed_repo.tip() == sha


@pytest.mark.parametrize(
    ("role", "accepted"),
    [
        ("admin", True),
        ("maintain", True),  # `permission` write
        ("write", True),
        ("triage", False),  # `permission` read
        ("read", False),
        (None, False),  # no access at all: anyone may review a public repository's pull request
        ("deleted", False),  # a login GitHub no longer knows (404)
    ],
)
def test_only_approvals_by_reviewers_with_write_access_count(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI, role: str | None, accepted: bool,
) -> None:  # fmt: skip
    """A required approval must come from someone with write access ("About pull request reviews": in a
    public repository anyone can submit an approving review; "Approving a pull request with required
    reviews": only reviews by people with write or admin access count). The attack: a pull request
    "merged" by pushing its merge to the branch with the deploy key (GitHub then marks it merged, its
    merge_commit_sha that merge), approved by a second account of the attacker's without access."""
    repo = github.repositories[REPOSITORY]
    if role == "deleted":
        github.users.discard("passerby")
    elif role is not None:
        repo.collaborators["passerby"] = role
    sha = reviewed(
        github, signed_repo, "approved by a passer-by", how="merge", reviews=(("passerby", "APPROVED"),)
    )
    push_test_image(image_repository, sha)

    result = run_cli(
        signed_repo.workspace(sha), "promote", "--image-repository", image_repository, "--json",
        env=signing_env(keys, tmp_path / "tmp"),
    )  # fmt: skip

    assert ("GET", f"/repos/{REPOSITORY}/collaborators/passerby/permission") in github.requests
    if accepted:
        assert result.returncode == 0 and result.json["outcome"] == "changed", result.output
    else:
        assert result.returncode == 1 and result.json["outcome"] == "error", result.output
        assert f"{sha} (pull request #1 into main has 0 of the 1 approvals" in result.json["error"]
        assert "1 approval(s) without write access do not count" in result.json["error"]
        assert signed_repo.tip() == sha


def test_a_crowd_of_approvals_costs_only_the_requests_it_needs(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI,
) -> None:  # fmt: skip
    """Anyone may approve a public repository's pull request, so approvals can be many: the bot asks
    about reviewers (in login order) only until the rules' count of writers is reached."""
    crowd = tuple((f"passerby{n:02d}", "APPROVED") for n in range(20))
    sha = reviewed(github, signed_repo, "approved by many", reviews=(*crowd, ("reviewer", "APPROVED")))
    github.users |= {login for login, _ in crowd}
    github.repositories[REPOSITORY].collaborators["passerby00"] = "write"
    push_test_image(image_repository, sha)

    result = run_cli(
        signed_repo.workspace(sha), "promote", "--image-repository", image_repository, "--json",
        env=signing_env(keys, tmp_path / "tmp"),
    )  # fmt: skip

    assert result.returncode == 0 and result.json["outcome"] == "changed", result.output
    asked = [path for _, path in github.requests if path.endswith("/permission")]
    assert asked == [f"/repos/{REPOSITORY}/collaborators/passerby00/permission"]


@pytest.mark.parametrize(
    ("codeowners", "approvals", "code_owner_review", "refusal"),
    [
        # The attack: a write-access collaborator who is no code owner approves a change to jenkins/,
        # pushed with the deploy key. GitHub's merge button would have waited for a code owner.
        ("/jenkins/ @owner\n", ("reviewer",), True, "changes jenkins/release.py without the approval"),
        ("/jenkins/ @owner\n", ("reviewer", "owner"), True, None),
        ("/jenkins/ @Owner\n", ("owner",), True, None),  # logins compare case-insensitively
        ("/jenkins/ @owner\n", ("reviewer", "readonly-owner"), True, "without the approval"),  # no write
        ("/jenkins/ @acme/maintainers\n", ("reviewer",), True, "without the approval"),  # a team: unknown
        ("/jenkins/ @owner\n/jenkins/release.py\n", ("reviewer",), True, None),  # a line without owners
        ("/infra/ @owner\n", ("reviewer",), True, None),  # owns nothing the commit changes
        ("/jenkins/ @owner\n", ("reviewer",), False, None),  # the trial's ruleset asks for no code owner
        ("**/jenkins @owner\n", ("reviewer", "owner"), True, "the pattern '**/jenkins' is not one"),
    ],
)
def test_a_change_to_owned_paths_counts_only_with_a_code_owners_approval(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI, codeowners: str, approvals: tuple[str, ...], code_owner_review: bool,
    refusal: str | None,
) -> None:  # fmt: skip
    """The ruleset requires a code owner's approval (`require_code_owner_review`) of a pull request that
    changes an owned path; GitHub reads CODEOWNERS from the base branch ("About code owners"), here the
    commit's first parent. Code owners count only with write access."""
    repo = github.repositories[REPOSITORY]
    repo.code_owner_review = code_owner_review
    repo.collaborators |= {"owner": "write", "readonly-owner": "read"}
    github.users |= {"owner", "readonly-owner"}
    # the base had no CODEOWNERS: no owner to ask
    reviewed(github, signed_repo, "add CODEOWNERS", files={".github/CODEOWNERS": codeowners})
    changed = {"jenkins/release.py": "print('merged by a push')\n"}
    sha = reviewed(
        github, signed_repo, "jenkins", how="merge", files=changed,
        reviews=tuple((who, "APPROVED") for who in approvals),
    )  # fmt: skip
    push_test_image(image_repository, sha)

    result = run_cli(
        signed_repo.workspace(sha), "promote", "--image-repository", image_repository, "--json",
        env=signing_env(keys, tmp_path / "tmp"),
    )  # fmt: skip

    if refusal is None:
        assert result.returncode == 0 and result.json["outcome"] == "changed", result.output
    else:
        assert result.returncode == 1 and result.json["outcome"] == "error", result.output
        assert refusal in result.json["error"]
        assert signed_repo.tip() == sha


def test_a_dismissal_on_a_later_page_of_reviews_counts(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI,
) -> None:  # fmt: skip
    """Reviews come in pages: the approval on the first, its dismissal on the next one."""
    github.page_size = 2
    dismissed = (("reviewer", "APPROVED"), ("other", "COMMENTED"), ("reviewer", "DISMISSED"))
    sha = reviewed(github, signed_repo, "approved, then dismissed", reviews=dismissed)
    push_test_image(image_repository, sha)

    result = run_cli(
        signed_repo.workspace(sha), "promote", "--image-repository", image_repository, "--json",
        env=signing_env(keys, tmp_path / "tmp"),
    )  # fmt: skip

    assert result.returncode == 1 and "has 0 of the 1 approvals" in result.json["error"], result.output
    assert github.requests.count(("GET", f"/repos/{REPOSITORY}/pulls/1/reviews?per_page=2&page=2")) == 1


@pytest.mark.parametrize(
    "problem", ["unreachable", "rate limited", "no permission", "bad token", "no token", "redirected"]
)
def test_when_github_cannot_vouch_nothing_is_signed_or_pushed(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI, elsewhere: FakeGitHubAPI, problem: str,
) -> None:  # fmt: skip
    """Fail closed: a reviewed merge that GitHub cannot confirm right now is not trusted. Exit 1 (the
    JSON outcome `error`), a message saying what to do, the branch untouched, the token never shown."""
    sha = reviewed(github, signed_repo, "v1")
    push_test_image(image_repository, sha)
    env = signing_env(keys, tmp_path / "tmp")
    if problem == "unreachable":
        with socket.socket() as probe:  # a loopback port nothing listens on
            probe.bind(("127.0.0.1", 0))
            env["GITOPS_GITHUB_API_URL"] = f"http://127.0.0.1:{probe.getsockname()[1]}"
    elif problem == "rate limited":
        github.rate_limited = True
    elif problem == "no permission":  # a token with Contents: read, say, but not Pull requests: read
        github.tokens[PULLS_TOKEN] = {"contents=read"}
    elif problem == "redirected":  # urllib would repeat the token to the redirect's host
        github.moved_to = elsewhere.url
    elif problem == "bad token":
        env["GITOPS_PULLS_TOKEN"] = "github_pat_revoked"
    else:
        env["GITOPS_PULLS_TOKEN"] = ""

    result = run_cli(
        signed_repo.workspace(sha), "promote", "--image-repository", image_repository, "--json", env=env
    )

    assert result.returncode == 1 and result.json["outcome"] == "error", result.output
    expected = {
        "unreachable": "unreachable",
        "rate limited": "rate limited",
        "no permission": "Pull requests: read",
        "bad token": "not a valid token",
        "no token": "GITOPS_PULLS_TOKEN is not set",
        "redirected": "the repository moved",
    }[problem]
    assert expected in result.json["error"]
    assert elsewhere.requests == []
    assert PULLS_TOKEN not in result.output and "github_pat_revoked" not in result.output
    assert signed_repo.tip() == sha


def test_a_shallow_checkout_is_deepened_to_find_the_bots_signed_commit(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI,
) -> None:  # fmt: skip
    for label in ("v1", "v2", "v3"):
        sha = reviewed(github, signed_repo, label)
    push_test_image(image_repository, sha)

    result = run_cli(
        signed_repo.workspace(sha, depth=1), "promote", "--image-repository", image_repository, "--json",
        env=signing_env(keys, tmp_path / "tmp"),
    )  # fmt: skip

    assert result.returncode == 0 and result.json["outcome"] == "changed", result.output


def test_a_line_without_any_commit_the_bot_signed_is_refused(
    gitops_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """No trust on first use: a branch rewritten to a history without the bot's signatures (a stolen
    deploy key can force-push) must not get one on top, even if its newest commits are trusted."""
    monkeypatch.setenv("GNUPGHOME", str(keys.home))
    git(gitops_repo.dev, "config", "user.signingkey", keys.webflow)
    git(gitops_repo.dev, "config", "commit.gpgsign", "true")
    v1 = gitops_repo.app_commit("v1")
    push_test_image(image_repository, v1)

    result = run_cli(
        gitops_repo.workspace(v1), "promote", "--image-repository", image_repository, "--json",
        env=signing_env(keys, tmp_path / "tmp"),
    )  # fmt: skip

    assert result.returncode == 1, result.output
    assert "holds no commit signed by the bot's key" in result.json["error"]
    assert gitops_repo.manifest_at() == git(gitops_repo.remote, "show", f"{v1}:{MANIFEST}")


# --- day 0: the trust anchor ---------------------------------------------------------------------------


@pytest.fixture
def day0_repo(gitops_repo: GitopsRepo, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> tuple[GitopsRepo, str]:
    """An unsigned repository as the stack finds it on `pulumi up` (the anchor is its branch's head), on
    which developers then merge commits signed by the trusted (merge) key."""
    monkeypatch.setenv("GNUPGHOME", str(keys.home))
    anchor = gitops_repo.tip()
    git(gitops_repo.dev, "config", "user.signingkey", keys.webflow)
    git(gitops_repo.dev, "config", "commit.gpgsign", "true")
    return gitops_repo, anchor


def test_the_first_release_signs_on_top_of_the_anchor(
    day0_repo: tuple[GitopsRepo, str], keys: Keys, image_repository: str, push_test_image: PushImage,
    tmp_path: Path, github: FakeGitHubAPI,
) -> None:  # fmt: skip
    repo, anchor = day0_repo
    v1 = reviewed(github, repo, "v1")
    push_test_image(image_repository, v1)
    env = {**signing_env(keys, tmp_path / "tmp"), "GITOPS_TRUST_ANCHOR": anchor}

    first = run_cli(repo.workspace(v1), "promote", "--image-repository", image_repository, "--json", env=env)

    assert first.returncode == 0 and first.json["outcome"] == "changed", first.output
    assert signer_of(repo.remote, first.json["commit"]) == keys.bot
    # From now on the bot's own commit anchors the check: the stack's anchor could even be gone.
    v2 = reviewed(github, repo, "v2")
    push_test_image(image_repository, v2)
    env["GITOPS_TRUST_ANCHOR"] = "f" * 40
    second = run_cli(repo.workspace(v2), "promote", "--image-repository", image_repository, "--json", env=env)
    assert second.returncode == 0 and second.json["outcome"] == "changed", second.output


def test_an_unsigned_commit_after_the_anchor_is_refused(
    day0_repo: tuple[GitopsRepo, str], keys: Keys, image_repository: str, push_test_image: PushImage,
    tmp_path: Path, github: FakeGitHubAPI,
) -> None:  # fmt: skip
    repo, anchor = day0_repo
    sneaked = push_unsigned(repo, "pushed after pulumi up, around review")
    v1 = reviewed(github, repo, "v1")
    push_test_image(image_repository, v1)
    tip = repo.tip()

    result = run_cli(
        repo.workspace(v1), "promote", "--image-repository", image_repository, "--json",
        env={**signing_env(keys, tmp_path / "tmp"), "GITOPS_TRUST_ANCHOR": anchor},
    )  # fmt: skip

    assert result.returncode == 1 and result.json["outcome"] == "error", result.output
    assert sneaked in result.json["error"] and anchor not in result.json["error"]
    assert repo.tip() == tip


@pytest.mark.parametrize("where", ["rewritten away", "second parent only"])
def test_an_anchor_off_the_first_parent_line_is_refused_by_name(
    day0_repo: tuple[GitopsRepo, str], keys: Keys, image_repository: str, push_test_image: PushImage,
    tmp_path: Path, where: str,
) -> None:  # fmt: skip
    """A branch force-pushed to a history without the anchor, or one where the anchor hangs only under a
    merge's second parent (a merge whose first parent is the attacker's line), was never reviewed from
    the anchor on: the bot names the anchor and signs nothing."""
    repo, anchor = day0_repo
    dev = repo.dev
    git(dev, "checkout", "--quiet", "--orphan", "other")
    git(dev, "commit", "--quiet", "-m", "another history")
    if where == "second parent only":
        git(dev, "merge", "--quiet", "--allow-unrelated-histories", "-m", "merge main under it", anchor)
    git(dev, "push", "--quiet", "--force", "origin", "HEAD:main")
    sha = repo.app_commit("v1")
    push_test_image(image_repository, sha)

    result = run_cli(
        repo.workspace(sha), "promote", "--image-repository", image_repository, "--json",
        env={**signing_env(keys, tmp_path / "tmp"), "GITOPS_TRUST_ANCHOR": anchor},
    )  # fmt: skip

    assert result.returncode == 1 and result.json["outcome"] == "error", result.output
    assert f"GITOPS_TRUST_ANCHOR={anchor}" in result.json["error"]
    assert repo.tip() == sha


def unusable_key(base: Path, problem: str) -> str:
    """An ASCII-armored private key gpg cannot sign with unattended: one with a passphrase, or one that
    expired (made with a faked clock in 2020, valid for a day)."""
    home = base / "unusable"
    home.mkdir(mode=0o700)
    options = ["--pinentry-mode", "loopback", "--passphrase", "s3cret" if problem == "passphrase" else ""]
    if problem == "expired":
        options += ["--faked-system-time", "20200101T000000"]
    gpg(home, *options, "--quick-gen-key", f"{problem} <{problem}@example.com>", "ed25519", "sign", "1d")
    exported = gpg(home, *options[:4], "--armor", "--export-secret-keys", f"{problem}@example.com")
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
    return exported


@pytest.mark.parametrize(
    "problem",
    [
        "missing",
        "public key only",
        "not a key",
        "passphrase",
        "expired",
        "short anchor",
    ],
)
def test_a_signing_key_that_cannot_be_used_is_bad_input_before_any_fetch(
    gitops_repo: GitopsRepo, keys: Keys, image_repository: str, tmp_path: Path, problem: str
) -> None:
    env = signing_env(keys, tmp_path / "tmp")
    bad = tmp_path / "bad.asc"
    if problem == "missing":
        env["GITOPS_SIGNING_KEY_FILE"] = str(tmp_path / "nope.asc")
    elif problem == "public key only":
        env["GITOPS_SIGNING_KEY_FILE"] = str(keys.bot_public)
    elif problem == "not a key":
        bad.write_text("hello\n")
        env["GITOPS_SIGNING_KEY_FILE"] = str(bad)
    elif problem in ("passphrase", "expired"):
        # gpg would fail only when git asks it to sign, after the fetch: "gpg failed to sign the data".
        bad.write_text(unusable_key(tmp_path, problem))
        env["GITOPS_SIGNING_KEY_FILE"] = str(bad)
    else:
        env["GITOPS_TRUST_ANCHOR"] = gitops_repo.tip()[:12]
    ws = gitops_repo.workspace(gitops_repo.app_commit("v1"))
    gitops_repo.app_commit("v2")
    refs = git(ws, "for-each-ref")

    result = run_cli(ws, "promote", "--image-repository", image_repository, "--json", env=env)

    assert result.returncode == 2, result.output
    assert "GITOPS_" in result.json["error"]
    assert keys.secret_text.splitlines()[3] not in result.output
    assert git(ws, "for-each-ref") == refs  # nothing fetched
    assert list((tmp_path / "tmp").iterdir()) == []


# --- the temporary GNUPGHOME on an abort -------------------------------------------------------------


def test_a_terminated_run_still_deletes_its_gnupghome_and_stops_its_agent(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI,
) -> None:  # fmt: skip
    """Jenkins aborts a build with SIGTERM (durable-task kills the step's processes). Python's default for
    SIGTERM ends the process at once, without `finally`: the private key would stay on disk in the
    temporary GNUPGHOME, and its gpg-agent would keep running with it."""
    v1 = reviewed(github, signed_repo, "v1")
    push_test_image(image_repository, v1)
    spy = tmp_path / "spy"
    spy.mkdir()
    real_gpg = subprocess.run(["sh", "-c", "command -v gpg"], capture_output=True, text=True).stdout.strip()
    # The signing call (git's `gpg ... -bsau KEY`) announces itself and hangs, like a stuck pinentry.
    (spy / "gpg").write_text(
        "#!/bin/sh\n"
        f'case "$*" in *-bsau*) echo "$GNUPGHOME" > {spy}/signing; exec sleep 60;; esac\n'
        f'exec {real_gpg} "$@"\n'
    )
    (spy / "gpg").chmod(stat.S_IRWXU)
    short = Path(tempfile.mkdtemp(prefix="t-", dir="/tmp"))
    env = {**os.environ, **signing_env(keys, short), "PATH": f"{spy}:{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(ROOT)
    cli = subprocess.Popen(
        [sys.executable, "-m", "jenkins", "promote", "--image-repository", image_repository, "--json"],
        cwd=signed_repo.workspace(v1), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (spy / "signing").exists():
            assert cli.poll() is None and time.monotonic() < deadline, cli.communicate()
            time.sleep(0.1)
        home = (spy / "signing").read_text().strip()
        assert Path(home).is_dir() and Path(home).parent == short

        cli.send_signal(signal.SIGTERM)
        out, err = cli.communicate(timeout=60)

        assert cli.returncode == 1, out + err
        assert json.loads(out.strip().splitlines()[-1])["outcome"] == "error"
        assert not Path(home).exists() and list(short.iterdir()) == []
        agents = subprocess.run(["pgrep", "-f", f"gpg-agent --homedir {home}"], capture_output=True)
        assert agents.returncode == 1, agents.stdout  # no agent of that home is left
        assert signed_repo.tip() == v1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cli.pid, signal.SIGKILL)
        shutil.rmtree(short, ignore_errors=True)


# --- history as git is told to see it -----------------------------------------------------------------


@pytest.mark.parametrize("how", ["replace ref", "graft file"])
def test_a_checkout_that_rewrites_parents_cannot_hide_an_unsigned_commit(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI, how: str,
) -> None:  # fmt: skip
    """`git replace --graft` and .git/info/grafts make git read other parents than a commit has: the walk
    would step from the trusted tip straight to the bot's commit, over the unsigned one in between (whose
    changes are in the tip's tree). The check must read the history the remote holds."""
    bot_commit = signed_repo.tip()
    sneaked = push_unsigned(signed_repo, "pushed around review")
    tip = reviewed(github, signed_repo, "v1")
    push_test_image(image_repository, tip)
    ws = signed_repo.workspace(tip)
    if how == "replace ref":
        git(ws, "replace", "--graft", tip, bot_commit)
    else:
        (ws / ".git" / "info").mkdir(exist_ok=True)
        (ws / ".git" / "info" / "grafts").write_text(f"{tip} {bot_commit}\n")

    result = run_cli(
        ws, "promote", "--image-repository", image_repository, "--json",
        env=signing_env(keys, tmp_path / "tmp"),
    )  # fmt: skip

    assert result.returncode == 1 and result.json["outcome"] == "error", result.output
    assert sneaked in result.json["error"]
    assert signed_repo.tip() == tip


def test_a_commit_signed_twice_counts_as_signed_by_nobody(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path,
    github: FakeGitHubAPI,
) -> None:  # fmt: skip
    """A signature block with two signatures, the bot's and a stranger's, must not pass as the bot's
    commit (which would end the walk there). git refuses to pick one: gpg-interface.c marks a second
    exclusive status (GOODSIG, BADSIG...) as an error, so `%G?` is `E`."""
    dev = signed_repo.dev
    git(dev, "pull", "--quiet", "--rebase", "origin", "main")
    (dev / "app" / "version.txt").write_text("double\n")
    git(dev, "add", "app/version.txt")
    tree = git(dev, "write-tree").strip()
    parent = git(dev, "rev-parse", "HEAD").strip()
    body = (
        f"tree {tree}\nparent {parent}\nauthor Dev <dev@example.com> 1700000000 +0000\n"
        "committer Dev <dev@example.com> 1700000000 +0000\n\ndouble-signed\n"
    )
    signature = subprocess.run(
        ["gpg", "--batch", "--armor", "--detach-sign", "-u", keys.bot, "-u", keys.stranger],
        input=body, capture_output=True, text=True, check=True,
        env={**os.environ, "GNUPGHOME": str(keys.home)},
    ).stdout.rstrip("\n")  # fmt: skip
    head, _, message = body.partition("\n\n")
    raw = head + "\ngpgsig " + signature.replace("\n", "\n ") + "\n\n" + message
    double = git(dev, "hash-object", "-t", "commit", "-w", "--stdin", input_text=raw).strip()
    assert git(dev, "log", "-1", "--format=%G?", double).strip() == "E"
    git(dev, "reset", "--quiet", "--hard", double)
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    tip = reviewed(github, signed_repo, "v1")
    push_test_image(image_repository, tip)

    result = run_cli(
        signed_repo.workspace(tip), "promote", "--image-repository", image_repository, "--json",
        env=signing_env(keys, tmp_path / "tmp"),
    )  # fmt: skip

    assert result.returncode == 1 and result.json["outcome"] == "error", result.output
    assert double in result.json["error"]
    assert signed_repo.tip() == tip
