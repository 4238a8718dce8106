"""Signed bot commits (GITOPS_SIGNING_KEY_FILE) and the history check before signing, with real gpg keys
generated here (ed25519, `gpg --quick-gen-key`), real git (`git verify-commit`) and the CLI as a
subprocess. The rules are the contract's: every commit the bot pushes is signed by its key; it refuses
to sign on top of a first-parent line that, since its newest signed commit, holds a commit no trusted
key signed; a merge's second-parent commits are not checked."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jenkins import core
from jenkins.core import SignedCommit
from tests.jenkins.conftest import MANIFEST, GitopsRepo, git, run_cli

PushImage = Callable[[str, str], str]


@dataclass(frozen=True)
class Keys:
    """A GNUPGHOME holding three key pairs, and the files the bot is given."""

    home: Path
    bot: str  # fingerprints
    webflow: str  # stands in for GitHub's merge key: trusted through GITOPS_TRUSTED_KEYS_FILE
    webflow_subkey: str  # a signing subkey of it
    stranger: str  # a valid signature, but by nobody trusted
    bot_secret: Path  # ASCII-armored private key, no passphrase (what the credential holds)
    trusted: Path  # ASCII-armored public keys (what the stack provides)
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
    # The merge key also gets a signing subkey: a signature by a subkey counts for its key.
    gpg(home, "--passphrase", "", "--quick-add-key", fingerprints["webflow"], "ed25519", "sign", "never")
    listing = gpg(home, "--with-colons", "--with-subkey-fingerprints", "--list-keys", fingerprints["webflow"])
    fingerprints["webflow-subkey"] = [
        line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
    ][1]
    secret = gpg(home, "--armor", "--export-secret-keys", fingerprints["bot"])
    (base / "bot.asc").write_text(secret)
    (base / "trusted.asc").write_text(gpg(home, "--armor", "--export", fingerprints["webflow"]))
    yield Keys(
        home, fingerprints["bot"], fingerprints["webflow"], fingerprints["webflow-subkey"],
        fingerprints["stranger"], base / "bot.asc", base / "trusted.asc", secret,
    )  # fmt: skip
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


@pytest.fixture
def signed_repo(gitops_repo: GitopsRepo, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> GitopsRepo:
    """The GitOps repository with signing switched on: an anchor commit signed by the bot's key on top
    of the unsigned initial commit, then developer commits signed by the trusted (merge) key."""
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
    return {
        "GITOPS_SIGNING_KEY_FILE": str(keys.bot_secret),
        "GITOPS_TRUSTED_KEYS_FILE": str(keys.trusted),
        "TMPDIR": str(tmp),
    }


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

BOT, TRUSTED, OTHER = "B" * 40, "T" * 40, "O" * 40


@pytest.mark.parametrize(
    ("line", "untrusted", "reached"),
    [
        ([SignedCommit("c2", TRUSTED), SignedCommit("c1", BOT), SignedCommit("c0", None)], [], True),
        ([SignedCommit("c2", None), SignedCommit("c1", BOT)], ["c2"], True),
        ([SignedCommit("c3", OTHER), SignedCommit("c2", TRUSTED), SignedCommit("c1", BOT)], ["c3"], True),
        ([SignedCommit("c1", BOT), SignedCommit("c0", None)], [], True),  # older history is not looked at
        ([SignedCommit("c1", TRUSTED), SignedCommit("c0", None)], ["c0"], False),
        ([], [], False),
    ],
)
def test_untrusted_since_bot(line: list[SignedCommit], untrusted: list[str], reached: bool) -> None:
    assert core.untrusted_since_bot(line, frozenset({BOT}), frozenset({BOT, TRUSTED})) == (untrusted, reached)


# --- signing -----------------------------------------------------------------------------------------


def test_every_pushed_commit_is_signed_by_the_bots_key_and_no_key_material_leaks(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path
) -> None:
    v1 = signed_repo.app_commit("v1")
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


@pytest.mark.parametrize("who", ["unsigned", "stranger"])
def test_a_commit_not_signed_by_a_trusted_key_under_the_tip_is_refused(
    signed_repo: GitopsRepo,
    keys: Keys,
    image_repository: str,
    push_test_image: PushImage,
    tmp_path: Path,
    who: str,
) -> None:
    v1 = signed_repo.app_commit("v1")
    if who == "unsigned":
        sneaked = push_unsigned(signed_repo, "pushed around review")
    else:
        git(
            signed_repo.dev,
            "commit",
            "--quiet",
            "--allow-empty",
            f"-S{keys.stranger}",
            "-m",
            "signed by a stranger",
        )
        git(signed_repo.dev, "push", "--quiet", "origin", "HEAD:main")
        sneaked = git(signed_repo.dev, "rev-parse", "HEAD").strip()
    v2 = signed_repo.app_commit("v2")  # a trusted commit on top does not launder it
    push_test_image(image_repository, v2)
    tip = signed_repo.tip()

    result = run_cli(
        signed_repo.workspace(v2), "promote", "--image-repository", image_repository, "--json",
        env=signing_env(keys, tmp_path / "tmp"),
    )  # fmt: skip

    assert result.returncode == 1, result.output
    assert result.json["outcome"] == "error" and result.json["commit"] is None
    assert sneaked in result.json["error"] and v1 not in result.json["error"]
    assert signed_repo.tip() == tip


def test_a_pull_requests_own_commits_are_vouched_for_by_its_signed_merge(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path
) -> None:
    dev = signed_repo.dev
    git(dev, "checkout", "--quiet", "-b", "feature")
    for step in ("one", "two"):
        (dev / "app" / f"{step}.txt").write_text(step)
        git(dev, "add", "app")
        git(dev, "commit", "--quiet", "--no-gpg-sign", "-m", f"feature: {step}")
    git(dev, "checkout", "--quiet", "main")
    git(dev, "merge", "--quiet", "--no-ff", f"-S{keys.webflow}", "-m", "Merge pull request #1", "feature")
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    merge = git(dev, "rev-parse", "HEAD").strip()
    push_test_image(image_repository, merge)

    result = run_cli(
        signed_repo.workspace(merge), "promote", "--image-repository", image_repository, "--json",
        env=signing_env(keys, tmp_path / "tmp"),
    )  # fmt: skip

    assert result.returncode == 0 and result.json["outcome"] == "changed", result.output
    assert signer_of(signed_repo.remote, result.json["commit"]) == keys.bot


def test_a_commit_signed_by_a_trusted_keys_subkey_is_trusted(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path
) -> None:
    git(signed_repo.dev, "config", "user.signingkey", f"{keys.webflow_subkey}!")  # `!`: exactly this subkey
    sha = signed_repo.app_commit("v1")
    assert git(signed_repo.remote, "log", "-1", "--format=%GF", sha).strip() == keys.webflow_subkey

    push_test_image(image_repository, sha)
    result = run_cli(
        signed_repo.workspace(sha), "promote", "--image-repository", image_repository, "--json",
        env=signing_env(keys, tmp_path / "tmp"),
    )  # fmt: skip

    assert result.returncode == 0 and result.json["outcome"] == "changed", result.output


def test_a_shallow_checkout_is_deepened_to_find_the_bots_signed_commit(
    signed_repo: GitopsRepo, keys: Keys, image_repository: str, push_test_image: PushImage, tmp_path: Path
) -> None:
    for label in ("v1", "v2", "v3"):
        sha = signed_repo.app_commit(label)
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


@pytest.mark.parametrize("problem", ["missing", "public key only", "not a key", "private trusted key"])
def test_a_signing_key_that_cannot_be_used_is_bad_input_before_any_fetch(
    gitops_repo: GitopsRepo, keys: Keys, image_repository: str, tmp_path: Path, problem: str
) -> None:
    env = signing_env(keys, tmp_path / "tmp")
    bad = tmp_path / "bad.asc"
    if problem == "missing":
        env["GITOPS_SIGNING_KEY_FILE"] = str(tmp_path / "nope.asc")
    elif problem == "public key only":
        env["GITOPS_SIGNING_KEY_FILE"] = str(keys.trusted)
    elif problem == "not a key":
        bad.write_text("hello\n")
        env["GITOPS_SIGNING_KEY_FILE"] = str(bad)
    else:
        bad.write_text(gpg(keys.home, "--armor", "--export-secret-keys", keys.stranger))
        env["GITOPS_TRUSTED_KEYS_FILE"] = str(bad)
    ws = gitops_repo.workspace(gitops_repo.app_commit("v1"))
    gitops_repo.app_commit("v2")
    refs = git(ws, "for-each-ref")

    result = run_cli(ws, "promote", "--image-repository", image_repository, "--json", env=env)

    assert result.returncode == 2, result.output
    assert "GITOPS_" in result.json["error"]
    assert keys.secret_text.splitlines()[3] not in result.output
    assert git(ws, "for-each-ref") == refs  # nothing fetched
    assert list((tmp_path / "tmp").iterdir()) == []
