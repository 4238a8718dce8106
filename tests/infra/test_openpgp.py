"""The bot's OpenPGP key as the stack makes it (infra/openpgp.py), checked by the tools that use it: real
gpg imports it and git signs and verifies commits with it; source-controller's side is
tests/cluster/test_signed_commits.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra.openpgp import BOT_USER_ID, OpenPgpKeyProvider
from jenkins.cli import DEFAULT_BOT
from plane.sandbox import OpenPgpSigner, git
from tests.conftest import require
from tests.infra.conftest import create_in_own_process


@pytest.fixture(scope="module")
def key() -> dict[str, str]:
    return OpenPgpKeyProvider().create({"user_id": BOT_USER_ID}).outs


@pytest.fixture(scope="module", autouse=True)
def _gpg() -> None:
    require(subprocess.run(["gpg", "--version"], capture_output=True).returncode == 0, "gpg is not installed")


def gpg_listing(home: Path, *args: str) -> list[list[str]]:
    """`gpg --with-colons` records (GnuPG's doc/DETAILS: field 2 validity, 5 key id, 7 expiry, 10 user
    ID or fingerprint, 12 capabilities, 17 curve)."""
    out = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--with-colons", "--fixed-list-mode", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split(":") for line in out.splitlines()]


def test_the_user_id_is_the_bots_git_identity() -> None:
    assert f"{DEFAULT_BOT.name} <{DEFAULT_BOT.email}>" == BOT_USER_ID


def test_gpg_reads_an_ed25519_key_that_signs_with_a_subkey_and_never_expires(key: dict[str, str]) -> None:
    assert key["private_key"].startswith("-----BEGIN PGP PRIVATE KEY BLOCK-----")
    assert key["public_key"].startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    with OpenPgpSigner.of(key["private_key"]) as signer:
        assert signer.fingerprint == key["fingerprint"]
        records = gpg_listing(signer.home, "--list-secret-keys")
    (primary,) = [r for r in records if r[0] == "sec"]
    subkeys = [r for r in records if r[0] == "ssb"]
    uids = [r[9] for r in records if r[0] == "uid"]
    assert uids == [BOT_USER_ID]
    assert (primary[3], primary[16], primary[6]) == ("22", "ed25519", "")  # EdDSA, no expiry
    assert "c" in primary[11] and "s" not in primary[11]  # the primary key only certifies
    (signing,) = [s for s in subkeys if "s" in s[11]]
    assert (signing[3], signing[16], signing[6]) == ("22", "ed25519", "")


def test_the_public_key_is_the_same_key_without_its_secrets(key: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "g"
    home.mkdir(mode=0o700)
    subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--import"],
        input=key["public_key"],
        text=True,
        capture_output=True,
        check=True,
    )
    fingerprints = [r[9] for r in gpg_listing(home, "--list-keys") if r[0] == "fpr"]
    assert fingerprints[0] == key["fingerprint"]
    assert gpg_listing(home, "--list-secret-keys") == []
    assert "PRIVATE" not in key["public_key"]


def test_git_verifies_a_commit_signed_with_it_and_refuses_another_keys(
    key: dict[str, str], tmp_path: Path
) -> None:
    work = tmp_path / "repo"
    git(tmp_path, "init", "--quiet", "-b", "main", str(work))
    git(work, "config", "user.name", DEFAULT_BOT.name)
    git(work, "config", "user.email", DEFAULT_BOT.email)
    (work / "f").write_text("x\n")
    git(work, "add", "f")
    other = OpenPgpKeyProvider().create({"user_id": "someone else <else@example.com>"}).outs
    with OpenPgpSigner.of(key["private_key"]) as bot, OpenPgpSigner.of(other["private_key"]) as stranger:
        commit = bot.commit(work, "-m", "signed by the bot")
        assert "BEGIN PGP SIGNATURE" in git(work, "cat-file", "commit", commit)
        # git-log(1) PRETTY FORMATS: `%G?` is U for a good signature of unknown validity (nobody
        # certified the key here), E when the signing key is missing; `%GP` the primary key's fingerprint.
        assert git(work, "log", "-1", "--format=%G? %GP", env={"GNUPGHOME": str(bot.home)}) == (
            f"U {bot.fingerprint}"
        )
        assert git(work, "log", "-1", "--format=%G?", env={"GNUPGHOME": str(stranger.home)}) == "E"


def test_each_create_makes_a_new_key_and_only_a_new_user_id_replaces_it() -> None:
    provider = OpenPgpKeyProvider()
    first, second = (provider.create({"user_id": BOT_USER_ID}) for _ in range(2))
    assert first.id != second.id and first.outs["private_key"] != second.outs["private_key"]
    same = provider.diff(first.id, first.outs, {"user_id": BOT_USER_ID})
    assert (same.changes, same.replaces) == (False, [])
    renamed = provider.diff(first.id, first.outs, {"user_id": "release bot <bot@example.com>"})
    assert (renamed.changes, renamed.replaces) == (True, ["user_id"])


def test_the_provider_runs_from_the_state_in_a_process_of_its_own() -> None:
    outs = create_in_own_process(OpenPgpKeyProvider(), {"user_id": "x <x@example.com>"})
    assert sorted(outs) == ["fingerprint", "id", "private_key", "public_key", "user_id"]
    assert outs["private_key"].startswith("-----BEGIN PGP PRIVATE KEY BLOCK-----")
