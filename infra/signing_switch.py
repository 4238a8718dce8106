"""The commit that switches signing on: one empty commit on the trust anchor, signed with the bot's key,
pushed with the write deploy key when the stack is created.

Flux deploys only a branch tip the bot's key signed (`GitRepository.spec.verify`, infra/gitops.py). A
repository the bot has never released has no such tip, so until the first release source-controller
would refuse the head and the app's Kustomization would show Ready False with no artifact. This commit
gives Flux a signed tip from the start: the trust anchor's own tree (an empty commit changes nothing),
so day 0 applies what the anchor holds (the overlays' `replicas: 0`) and reports success. It is the
same step the bot's history check starts from (jenkins/signing.py): the newest commit on the branch
signed by the bot's key.

It goes only directly on the anchor, the commit the stack trusts. When the branch has moved since the
anchor was read (someone pushed between the read and the push), nothing is pushed: signing on top of
the push would vouch for it. The push carries a lease on the anchor (`--force-with-lease`), so a push
that lands between this fetch and this push is never overwritten, and a force-push that rewound the
branch is never undone. The first release then signs as before, after its history check.

The signature is made here, without gpg on the operator's machine: a signed commit is the commit object
with a `gpgsig` header holding an ASCII-armored detached OpenPGP signature over the object without that
header, placed after the other headers, each line after the first starting with a space (git's
commit.c `do_sign_commit`, as of git 2.13.6). Verifiers recompute the unsigned object the same way
(go-git's plumbing/object/commit.go `Commit.Verify`, which source-controller uses, encodes the commit
without its signature and checks the detached signature against the keyring). pysequoia makes the
signature; the tests check it with GnuPG (`git verify-commit`, the release bot's own reading) and with
source-controller on the control plane.

Run by the Pulumi engine in the dynamic provider's process on the machine running `pulumi up` (see
infra/openpgp.py for how it imports this module): it needs `git` and `ssh` there, and SSH to the
repository's host. Keys go to files in a private temporary directory that is removed afterwards; no
key is ever in argv, an exception message or an output.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
import pysequoia
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider

from infra.openpgp import BOT_USER_ID

MESSAGE = (
    "Switch release signing on [skip ci]\n\n"
    "The first commit signed with the release bot's key, on the stack's trust anchor: Flux deploys\n"
    'only commits that key signed (docs/release.md, "Signed releases").\n'
)
PUSHED = "pushed"
MOVED = "branch-moved"
GIT_TIMEOUT = 120.0  # seconds for one fetch or push


class SigningSwitchError(Exception):
    """The switch commit could not be made or pushed; the message names the step, never key material."""


def signed_commit_object(tree: str, parent: str, signing_key: str, when: int) -> bytes:
    """The bytes of an empty commit on `parent` with `tree`, by the bot, signed with `signing_key`
    (ASCII-armored OpenPGP secret key): a `gpgsig` header after the committer, as git writes it."""
    identity = f"{BOT_USER_ID} {when} +0000"
    unsigned = f"tree {tree}\nparent {parent}\nauthor {identity}\ncommitter {identity}\n"
    signer = pysequoia.Tsk.from_bytes(signing_key.encode()).signer()
    payload = f"{unsigned}\n{MESSAGE}".encode()
    signature = pysequoia.sign(signer, payload, mode=pysequoia.SignatureMode.DETACHED).decode()
    header = "gpgsig " + "\n ".join(signature.rstrip("\n").split("\n")) + "\n"
    return f"{unsigned}{header}\n{MESSAGE}".encode()


def _clean_environ() -> dict[str, str]:
    """The environment `pulumi up` runs in, without git's own variables: a GIT_DIR, GIT_WORK_TREE or
    GIT_INDEX_FILE exported in the operator's shell would point these commands at their checkout."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}


def _git(cwd: Path, *args: str, env: Mapping[str, str], what: str, stdin: bytes | None = None) -> str:
    try:
        result = subprocess.run(
            ["git", *args], cwd=cwd, env={**_clean_environ(), **env}, input=stdin, capture_output=True,
            timeout=GIT_TIMEOUT, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise SigningSwitchError("git is not installed on the machine running `pulumi up`") from None
    except subprocess.TimeoutExpired:
        raise SigningSwitchError(f"{what}: no answer in {GIT_TIMEOUT:.0f} s") from None
    if result.returncode != 0:
        raise SigningSwitchError(f"{what}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout.decode().strip()


def switch_on(
    url: str, branch: str, anchor: str, deploy_key: str, known_hosts: str, signing_key: str
) -> tuple[str, str]:
    """Push the signed empty commit on `anchor` to `branch` of the repository at `url` (over SSH with
    `deploy_key`, the host checked against `known_hosts`), if the branch is still at `anchor`.

    Returns (outcome, commit): (PUSHED, the new commit) or (MOVED, "") when the branch's head is no longer
    the anchor. Raises SigningSwitchError when git or SSH fails."""
    with tempfile.TemporaryDirectory(prefix="gitops-switch-") as scratch:  # mode 0700
        work = Path(scratch)
        key_file, hosts_file = work / "deploy_key", work / "known_hosts"
        key_file.touch(mode=0o600)
        key_file.write_text(deploy_key if deploy_key.endswith("\n") else deploy_key + "\n")
        hosts_file.write_text(known_hosts)
        ssh = (
            f"ssh -F /dev/null -i {shlex.quote(str(key_file))} -o IdentitiesOnly=yes -o BatchMode=yes "
            f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={shlex.quote(str(hosts_file))}"
        )
        # No user or system git config: nothing on the operator's machine rewrites the URL or signs.
        env = {"GIT_SSH_COMMAND": ssh, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
        repo = work / "repo.git"
        _git(work, "init", "--quiet", "--bare", str(repo), env=env, what="git init")
        ref = f"refs/heads/{branch}"
        _git(
            repo, "fetch", "--quiet", "--no-tags", "--depth=1", url, f"+{ref}:refs/switch/head",
            env=env, what=f"fetch {branch} from {url} with the write deploy key",
        )  # fmt: skip
        head = _git(repo, "rev-parse", "refs/switch/head", env=env, what="read the fetched head")
        if head != anchor:
            return MOVED, ""
        tree = _git(repo, "rev-parse", f"{anchor}^{{tree}}", env=env, what="read the anchor's tree")
        commit = signed_commit_object(tree, anchor, signing_key, int(time.time()))
        sha = _git(
            repo, "hash-object", "-t", "commit", "-w", "--stdin", stdin=commit, env=env,
            what="write the signed commit",
        )  # fmt: skip
        push = subprocess.run(
            ["git", "push", "--porcelain", f"--force-with-lease={ref}:{anchor}", url, f"{sha}:{ref}"],
            cwd=repo, env={**_clean_environ(), **env}, capture_output=True, timeout=GIT_TIMEOUT, check=False,
        )  # fmt: skip
        if push.returncode != 0:
            output = (push.stdout + push.stderr).decode(errors="replace")
            if "stale info" in output or "fetch first" in output:
                return MOVED, ""  # the branch moved between the fetch and the push: nothing written
            raise SigningSwitchError(f"push the signed commit to {branch} of {url}: {output.strip()}")
        return PUSHED, sha


class SigningSwitchProvider(ResourceProvider):
    """Creates the switch commit once; deleting it removes nothing (the commit is history)."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        outcome, commit = switch_on(
            props["url"], props["branch"], props["anchor"], props["deploy_key"], props["known_hosts"],
            props["signing_key"],
        )  # fmt: skip
        outs = {k: props[k] for k in ("url", "branch", "anchor")}
        return CreateResult(
            commit or f"not-switched-{props['anchor']}", {**outs, "outcome": outcome, "commit": commit}
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only a new place to switch on makes a new commit; a rotated key does not rewrite history.
        replaces = [k for k in ("url", "branch", "anchor") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=False)


class SigningSwitch(pulumi.dynamic.Resource, module="gitops", name="SigningSwitch"):
    """The signed empty commit on the trust anchor: `outcome` is "pushed" (`commit` its SHA) or
    "branch-moved" (`commit` empty: the branch had moved from the anchor, and the first release signs)."""

    outcome: pulumi.Output[str]
    commit: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        url: pulumi.Input[str],
        branch: str,
        anchor: pulumi.Input[str],
        deploy_key: pulumi.Input[str],
        known_hosts: pulumi.Input[str],
        signing_key: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            SigningSwitchProvider(),
            name,
            {
                "url": url,
                "branch": branch,
                "anchor": anchor,
                "deploy_key": pulumi.Output.secret(deploy_key),
                "known_hosts": known_hosts,
                "signing_key": pulumi.Output.secret(signing_key),
                "outcome": None,
                "commit": None,
            },
            opts,
        )
