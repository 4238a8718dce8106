"""OpenPGP signing of the bot's commits (GITOPS_SIGNING_KEY_FILE) and what the history check trusts.

The private key (ASCII-armored, no passphrase) is imported into a temporary GNUPGHOME that exists for
one run: its gpg-agent is stopped and the directory deleted afterwards. gpg reads the key from the
file itself, so no key material is ever in argv, and nothing gpg prints about a key file is secret
(fingerprints and user ids). No other key is trusted: a commit the bot did not sign passes the history
check only if GitHub says it is the merge of a pull request into the branch (jenkins/pulls.py, with the
read-only token in GITOPS_PULLS_TOKEN). GITOPS_TRUST_ANCHOR
(a full SHA, recorded once by the stack) is where the history check may start when the branch holds no
commit the bot signed yet: the first release on a repository.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from jenkins.pulls import GitHubPulls

KEY_FILE = "GITOPS_SIGNING_KEY_FILE"
ANCHOR = "GITOPS_TRUST_ANCHOR"
_FULL_SHA = re.compile(r"[0-9a-f]{40}")
MAX_HOME = (
    80  # bytes of a GNUPGHOME path that gpg-agent's sockets still fit in (measured: 82 works, 87 fails)
)
GPG_TIMEOUT = 60.0  # seconds for one gpg run (an import, a listing); gpg never waits for input here


class SigningError(Exception):
    """The signing set-up failed; the message names the variable and the file, never key material."""


@dataclass(frozen=True)
class Signer:
    """The run's signing key in its temporary GNUPGHOME, and who vouches for the commits it did not sign."""

    home: Path
    key: str  # fingerprint of the bot's primary key: what `commit-tree -S` signs with
    bot_keys: frozenset[str]  # fingerprints of the bot's key and its subkeys
    anchor: str | None = None  # GITOPS_TRUST_ANCHOR: the branch's head when the stack was created
    pulls: GitHubPulls | None = None  # GITOPS_PULLS_TOKEN: asks GitHub which commits are merged PRs

    @property
    def env(self) -> dict[str, str]:
        """Environment for git: this GNUPGHOME, and gpg as the OpenPGP program whatever a user's git
        config says (GIT_CONFIG_COUNT entries rank above every config file)."""
        return {
            "GNUPGHOME": str(self.home),
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "gpg.format",
            "GIT_CONFIG_VALUE_0": "openpgp",
            "GIT_CONFIG_KEY_1": "gpg.openpgp.program",
            "GIT_CONFIG_VALUE_1": "gpg",
        }


@contextlib.contextmanager
def from_env(environ: Mapping[str, str]) -> Iterator[Signer | None]:
    """A Signer when GITOPS_SIGNING_KEY_FILE is set (None otherwise); its GNUPGHOME is gone afterwards."""
    key_file = environ.get(KEY_FILE, "")
    if not key_file:
        yield None
        return
    anchor = environ.get(ANCHOR, "") or None
    if anchor is not None and not _FULL_SHA.fullmatch(anchor):
        raise SigningError(
            f"{ANCHOR}={anchor!r}: expected the full 40-character lowercase SHA of a commit (the branch's "
            "head the stack recorded), or leave it unset"
        )
    if not Path(key_file).is_file():
        raise SigningError(f"{KEY_FILE}={key_file}: no such file")
    if shutil.which("gpg") is None:
        raise SigningError(f"{KEY_FILE} is set but gpg is not installed (apt-get install gnupg)")
    home = Path(tempfile.mkdtemp(prefix="gitops-gnupg-", dir=_short_temp_dir()))  # mode 0700, as gpg requires
    try:
        _gpg(home, "--import", key_file, what=f"import {KEY_FILE}={key_file}")
        secret = _secret_keys(home)
        if len(secret) != 1:
            raise SigningError(
                f"{KEY_FILE}={key_file}: expected exactly one OpenPGP private key, found {len(secret)}"
            )
        bot = secret[0]
        # git's own signing call would fail only after the fetch and the plan, as "gpg failed to sign
        # the data": find out now whether gpg can sign with this key unattended.
        # The signature goes to stdout (captured, dropped): never `--output /dev/null`, which gpg
        # deletes when signing fails.
        probe = ("--pinentry-mode", "error", "--local-user", bot[0], "--detach-sign")
        _gpg(
            home, *probe, stdin="probe",
            what=f"sign with the key in {KEY_FILE}={key_file} (it must be able to sign, be neither "
            "expired nor revoked, and have no passphrase)",
        )  # fmt: skip
        yield Signer(
            home=home, key=bot[0], bot_keys=frozenset(bot), anchor=anchor, pulls=GitHubPulls.from_env(environ)
        )
    finally:
        # The agent holds the unlocked key in memory and its sockets live in (or for) this home.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["gpgconf", "--homedir", str(home), "--kill", "all"],
                capture_output=True,
                timeout=GPG_TIMEOUT,
                check=False,
            )
        shutil.rmtree(home, ignore_errors=True)


def _short_temp_dir() -> str:
    """TMPDIR, or /tmp when TMPDIR is too long: without /run/user/<uid>, gpg-agent puts its sockets in
    GNUPGHOME, and gpg 2.2 fails to start the agent once GNUPGHOME is longer than about 85 bytes
    (socket paths are limited to 107 bytes)."""
    temp = tempfile.gettempdir()
    fits = len(os.fsencode(temp)) + len("/gitops-gnupg-XXXXXXXX") <= MAX_HOME
    return temp if fits else "/tmp"  # noqa: S108 - mkdtemp makes a private 0700 directory in it


def _gpg(home: Path, *args: str, what: str, stdin: str | None = None) -> str:
    """Run gpg in batch mode in home; SigningError with gpg's own words on failure."""
    env = {**os.environ, "GNUPGHOME": str(home), "LC_ALL": "C"}
    try:
        proc = subprocess.run(
            ["gpg", "--batch", "--no-tty", "--quiet", *args],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            env=env,
            timeout=GPG_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SigningError(f"gpg did not {what} within {GPG_TIMEOUT:.0f}s") from None
    if proc.returncode != 0:
        said = " ".join(proc.stderr.split())
        raise SigningError(f"gpg could not {what}: {said or f'exit {proc.returncode}'}")
    return proc.stdout


def _secret_keys(home: Path) -> list[tuple[str, ...]]:
    """Each private key in home as its fingerprints, primary first, then its subkeys' (gpg's colon
    listing: a `sec` record starts a key, and each `fpr` record's tenth field is a fingerprint)."""
    listing = ("--with-colons", "--with-subkey-fingerprints", "--list-secret-keys")
    out = _gpg(home, *listing, what="list its keys")
    keys: list[list[str]] = []
    for line in out.splitlines():
        fields = line.split(":")
        if fields[0] == "sec":
            keys.append([])
        elif fields[0] == "fpr" and keys and len(fields) > 9:
            keys[-1].append(fields[9])
    return [tuple(key) for key in keys if key]
