"""The commit that switches signing on: one empty commit on the trust anchor, signed with the bot's key,
pushed with the write deploy key when the stack is created.

Flux deploys only a branch tip the bot's key signed (`GitRepository.spec.verify`, infra/gitops.py). A
repository the bot has never released has no such tip, so until the first release source-controller
would refuse the head and the app's Kustomization would show Ready False with no artifact. This commit
gives Flux a signed tip from the start: the trust anchor's own tree (an empty commit changes nothing),
so day 0 applies what the anchor holds (the overlays' `replicas: 0`) and reports success. It is the
same step the bot's history check starts from (jenkins/signing.py): the newest commit on the branch
signed by the bot's key.

It goes only on a branch the bot has never committed to: where a stack released before (an existing
stack, or a new one on a repository an earlier stack released), the bot's newest commit is where the
release's check of a person's image change starts (jenkins/actions.py `hand_change`), and a new bot
commit would move that start past such a change; nothing is pushed there (`bot-history`), and the
first release signs as it always did. And it goes only directly on the anchor, the commit the stack
trusts: when the branch has moved since the anchor was read, nothing is pushed (`branch-moved`), since
signing on top of that push would vouch for it. The push carries a lease on the anchor
(`--force-with-lease`), so a push that lands between this fetch and this push is never overwritten,
and a force-push that rewound the branch is never undone.

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
from jenkins.gitops import Git, GitError

MESSAGE = (
    "Switch release signing on [skip ci]\n\n"
    "The first commit signed with the release bot's key, on the stack's trust anchor: Flux deploys\n"
    'only commits that key signed (docs/release.md, "Signed commits").\n'
)
PUSHED = "pushed"
MOVED = "branch-moved"
BOT_HISTORY = "bot-history"
FAILED = "failed"
GIT_TIMEOUT = 120.0  # seconds for one fetch or push
FETCH_DELAYS = (5.0, 10.0, 20.0)  # seconds before each further fetch attempt
_sleep = time.sleep


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


def _environ(scratch: Path) -> dict[str, str]:
    """The environment `pulumi up` runs in, without git's own variables (a GIT_DIR, GIT_WORK_TREE or
    GIT_INDEX_FILE exported in the operator's shell would point these commands at their checkout) and
    with HOME and XDG_CONFIG_HOME in the scratch directory: no user config (`url.*.insteadOf`, hooks,
    `push.gpgSign`) applies, also on git older than 2.32, which has no GIT_CONFIG_GLOBAL."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return {**kept, "HOME": str(scratch), "XDG_CONFIG_HOME": str(scratch), "GIT_CONFIG_NOSYSTEM": "1"}


def _git(cwd: Path, *args: str, env: Mapping[str, str], what: str, stdin: bytes | None = None) -> str:
    result = _run_git(cwd, args, env, what, stdin)
    if result.returncode != 0:
        raise SigningSwitchError(f"{what}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout.decode().strip()


def _run_git(
    cwd: Path, args: tuple[str, ...], env: Mapping[str, str], what: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, env=dict(env), input=stdin, capture_output=True, timeout=GIT_TIMEOUT,
            check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise SigningSwitchError("git is not installed on the machine running `pulumi up`") from None
    except subprocess.TimeoutExpired:
        raise SigningSwitchError(f"{what}: no answer in {GIT_TIMEOUT:.0f} s") from None


def _fetch(repo: Path, ref: str, env: Mapping[str, str], what: str) -> None:
    """Fetch `ref`'s history from the remote `origin`, commits and trees only where the server allows it
    (`--filter=blob:none`; a server that does not, sends everything). A deploy key GitHub registered
    moments ago may not be usable at once: a refused or failed connection is tried again (FETCH_DELAYS);
    a host key that is not GitHub's is not."""
    for delay in (*FETCH_DELAYS, None):
        fetch = ("fetch", "--quiet", "--no-tags", "--filter=blob:none", "origin", f"+{ref}:refs/switch/head")
        result = _run_git(repo, fetch, env, what)
        if result.returncode == 0:
            return
        error = result.stderr.decode(errors="replace").strip()
        if delay is None or "Host key verification failed" in error:
            raise SigningSwitchError(f"{what}: {error}")
        _sleep(delay)


def _bot_commit(repo: Path) -> str:
    """The newest commit on the fetched head's first-parent line that the bot authored, or "", read by
    the release's own code (jenkins/gitops.py `newest_by`): that commit is where the release's check of a
    person's image change starts, and a switch on top would move it."""
    email = BOT_USER_ID[BOT_USER_ID.index("<") + 1 : -1]
    try:
        return Git(repo).newest_by("refs/switch/head", email) or ""
    except GitError as error:
        raise SigningSwitchError(f"read the branch's history: {error}") from None


def switch_on(
    url: str, branch: str, anchor: str, deploy_key: str, known_hosts: str, signing_key: str
) -> tuple[str, str]:
    """Push the signed empty commit on `anchor` to `branch` of the repository at `url` (over SSH with
    `deploy_key`, the host checked against `known_hosts`), if the branch is still at `anchor`.

    Returns (outcome, commit): (PUSHED, the new commit); (MOVED, "") when the branch's head is not the
    anchor; (BOT_HISTORY, "") when the branch already holds a commit by the bot (a stack released there
    before: its first release signs). Raises SigningSwitchError when git or SSH fails."""
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
        env = {**_environ(work), "GIT_SSH_COMMAND": ssh}
        repo = work / "repo.git"
        _git(work, "init", "--quiet", "--bare", str(repo), env=env, what="git init")
        _git(repo, "remote", "add", "origin", url, env=env, what="name the repository")
        ref = f"refs/heads/{branch}"
        _fetch(repo, ref, env, f"fetch {branch} from {url} with the write deploy key")
        head = _git(repo, "rev-parse", "refs/switch/head", env=env, what="read the fetched head")
        if head != anchor:
            return MOVED, ""
        if _bot_commit(repo):
            return BOT_HISTORY, ""
        tree = _git(repo, "rev-parse", f"{anchor}^{{tree}}", env=env, what="read the anchor's tree")
        commit = signed_commit_object(tree, anchor, signing_key, int(time.time()))
        sha = _git(
            repo, "hash-object", "-t", "commit", "-w", "--stdin", stdin=commit, env=env,
            what="write the signed commit",
        )  # fmt: skip
        what = f"push the signed commit to {branch} of {url}"
        push = _run_git(
            repo,
            ("push", "--porcelain", f"--force-with-lease={ref}:{anchor}", "origin", f"{sha}:{ref}"),
            env,
            what,
        )
        if push.returncode != 0:
            output = (push.stdout + push.stderr).decode(errors="replace")
            if "stale info" in output or "fetch first" in output:
                return MOVED, ""  # the branch moved between the fetch and the push: nothing written
            raise SigningSwitchError(f"{what}: {output.strip()}")
        return PUSHED, sha


class SigningSwitchProvider(ResourceProvider):
    """Pushes the switch commit when the stack is created; deleting it removes nothing (the commit is
    history). A failure does not fail `pulumi up` (Flux then waits for the first release, as it would
    without the switch): it is recorded as FAILED with its reason, and the next `pulumi up` tries again."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = {k: props[k] for k in ("url", "branch", "anchor")}
        if props.get("head") and props["head"] != props["anchor"]:
            # The program read the branch's head from GitHub, and it is not the anchor (a stack that
            # existed before this resource, a pinned anchor, a push since): nothing to do, no SSH needed.
            outcome, commit, reason = MOVED, "", ""
        else:
            try:
                outcome, commit = switch_on(
                    props["url"], props["branch"], props["anchor"], props["deploy_key"],
                    props["known_hosts"], props["signing_key"],
                )  # fmt: skip
                reason = ""
            except SigningSwitchError as error:
                outcome, commit, reason = FAILED, "", str(error)
        return CreateResult(
            commit or f"{outcome}-{props['anchor']}",
            {**outs, "outcome": outcome, "commit": commit, "reason": reason},
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Made once, when the stack is created: a later re-anchor switches nothing (what the release
        # trusts is already settled then). Only a failed attempt is made again, by the next `pulumi up`,
        # on the anchor of that moment and under the same rules.
        retry = olds.get("outcome") == FAILED
        return DiffResult(changes=retry, replaces=["outcome"] if retry else [], delete_before_replace=False)


class SigningSwitch(pulumi.dynamic.Resource, module="gitops", name="SigningSwitch"):
    """The signed empty commit on the trust anchor. `outcome`: "pushed" (`commit` its SHA);
    "branch-moved" (the branch's head was not the anchor: nothing pushed, the first release signs);
    "bot-history" (the branch holds a commit by the bot already: nothing pushed, the first release
    signs); "failed" (`reason` says why: nothing pushed, the first release signs, the next `pulumi up`
    tries again)."""

    outcome: pulumi.Output[str]
    commit: pulumi.Output[str]
    reason: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        url: pulumi.Input[str],
        branch: str,
        anchor: pulumi.Input[str],
        head: str,
        deploy_key: pulumi.Input[str],
        known_hosts: pulumi.Input[str],
        signing_key: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`head` is the branch's head as the program read it from GitHub: when it is not the anchor,
        nothing is fetched or pushed."""
        super().__init__(
            SigningSwitchProvider(),
            name,
            {
                "url": url,
                "branch": branch,
                "anchor": anchor,
                "head": head,
                "deploy_key": pulumi.Output.secret(deploy_key),
                "known_hosts": known_hosts,
                "signing_key": pulumi.Output.secret(signing_key),
                "outcome": None,
                "commit": None,
                "reason": None,
            },
            opts,
        )
        pulumi.Output.all(self.outcome, self.reason).apply(lambda done: self._warn_if_failed(*done))

    def _warn_if_failed(self, outcome: str, reason: str) -> None:
        if outcome == FAILED:
            pulumi.log.warn(
                f"signing was not switched on ({reason}): Flux applies nothing until the first release "
                'signs; the next `pulumi up` tries again (docs/release.md, "Signing switched on at '
                'creation")',
                resource=self,
            )
