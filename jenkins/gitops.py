"""Git adapter: read the branch tip, answer ancestry questions, and commit the manifest back.

The bot commit is built with plumbing (a private index file, `write-tree`, `commit-tree`) on top of
`<remote>/<branch>`, then pushed as a fast-forward. The working tree, the index and HEAD of the checkout
we run in (Jenkins' workspace, usually a detached HEAD) are never touched, and the commit can only
contain the manifest file because it is the only path we write into the tree.
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from jenkins import log
from jenkins.core import Decision, Outcome, Relation, RetryPolicy, names_release

# Rejections that mean "someone else moved the branch first": fetch, re-apply, try again.
_RACE_MARKERS = (
    "fetch first",
    "non-fast-forward",
    "failed to update ref",
    "cannot lock ref",
    "incorrect old value",
)


class GitError(Exception):
    """A git command failed; the message says which and what git said (URL credentials redacted)."""


class PushRaceLost(GitError):
    """The push was rejected because the branch moved under us."""


@dataclass(frozen=True)
class Identity:
    """Who the bot commits as."""

    name: str
    email: str


@dataclass(frozen=True)
class Edit:
    """What one attempt decided to do with the manifest found at the branch tip."""

    decision: Decision
    old_text: str
    new_text: str


@dataclass(frozen=True)
class Result:
    """The final state after `commit_manifest`."""

    edit: Edit
    commit: str | None  # the manifest commit pushed, None if nothing was pushed
    attempts: int


class Git:
    """git commands run in one repository, never prompting for credentials."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}

    def run(self, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None) -> str:
        """Run git; return stdout; raise GitError with git's own message on failure."""
        proc = self._run(args, stdin, env)
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()
            raise GitError(log.redact(f"`git {args[0]}` failed: {detail}"))
        return proc.stdout

    def _run(
        self, args: tuple[str, ...], stdin: str | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args],
            cwd=self.cwd,
            input=stdin,
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            check=False,
        )

    def ok(self, *args: str) -> bool:
        """True if the git command exits 0 (for questions like `merge-base --is-ancestor`)."""
        return self._run(args).returncode == 0

    def toplevel(self) -> Path | None:
        """The root of the working copy, or None if cwd is not inside one."""
        proc = self._run(("rev-parse", "--show-toplevel"))
        return Path(proc.stdout.strip()) if proc.returncode == 0 else None

    def resolve_commit(self, rev: str) -> str | None:
        """The full SHA of rev if it names a commit here, else None."""
        if rev.startswith("-"):
            return None
        proc = self._run(("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"))
        return proc.stdout.strip() if proc.returncode == 0 else None

    def config(self, key: str) -> str | None:
        """A git config value, or None when unset."""
        proc = self._run(("config", "--get", key))
        value = proc.stdout.strip() if proc.returncode == 0 else ""
        return value or None

    def is_branch_name(self, name: str) -> bool:
        """True if name is a valid branch name (so it is safe inside a refspec)."""
        return not name.startswith("-") and self.ok("check-ref-format", f"refs/heads/{name}")

    def has_remote(self, remote: str) -> bool:
        return self.ok("remote", "get-url", "--", remote)

    def is_shallow(self) -> bool:
        return self.run("rev-parse", "--is-shallow-repository").strip() == "true"

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True if ancestor is reachable from descendant (a commit is its own ancestor)."""
        return self.ok("merge-base", "--is-ancestor", ancestor, descendant)

    def commit_info(self, sha: str) -> tuple[str, str]:
        """(message, author email) of a commit."""
        out = self.run("log", "-1", "--format=%ae%x00%B", sha)
        email, _, message = out.partition("\0")
        return message, email

    def read_file(self, commit: str, path: str) -> str | None:
        """The content of path at commit, or None if it is not there."""
        proc = self._run(("cat-file", "blob", f"{commit}:{path}"))
        return proc.stdout if proc.returncode == 0 else None

    def fetch_branch(self, remote: str, branch: str) -> str:
        """Fetch remote's branch into refs/remotes/<remote>/<branch>; return its tip SHA."""
        ref = f"refs/remotes/{remote}/{branch}"
        try:
            self.run("fetch", "--quiet", "--no-tags", remote, f"+refs/heads/{branch}:{ref}")
        except GitError as exc:
            raise GitError(f"cannot fetch branch {branch!r} from remote {remote!r}: {exc}") from None
        return self.run("rev-parse", "--verify", ref).strip()

    def ensure_commit(self, remote: str, sha: str) -> bool:
        """Make sha available locally (unshallow, then fetch it by id); True if we have it."""
        if self.resolve_commit(sha):
            return True
        if self.is_shallow():
            self._run(("fetch", "--quiet", "--no-tags", "--unshallow", remote))
        if not self.resolve_commit(sha):
            self._run(("fetch", "--quiet", "--no-tags", remote, sha))  # servers may refuse: that is fine
        return self.resolve_commit(sha) is not None

    def relation(self, remote: str, deployed_tag: str | None, target: str) -> Relation:
        """How the commit the manifest deploys relates to target; fetches history when it must."""
        if not names_release(deployed_tag):
            return Relation.UNVERSIONED
        if deployed_tag == target:
            return Relation.SAME
        if not self.ensure_commit(remote, deployed_tag):
            return Relation.UNKNOWN
        if self.is_ancestor(deployed_tag, target):
            return Relation.FORWARD
        if self.is_shallow():
            # A shallow boundary can hide the path between the two commits: look at all history.
            self._run(("fetch", "--quiet", "--no-tags", "--unshallow", remote))
            if self.is_ancestor(deployed_tag, target):
                return Relation.FORWARD
        return Relation.BACKWARD

    def commit_file(self, parent: str, path: str, content: str, message: str, bot: Identity) -> str:
        """A new commit on parent that changes only path to content; nothing else is touched."""
        mode = self.run("ls-tree", parent, "--", path).split(" ", 1)[0] or "100644"
        blob = self.run("hash-object", "-w", "--stdin", "--path", path, stdin=content).strip()
        with tempfile.TemporaryDirectory(prefix="gitops-index-") as tmp:
            index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self.run("read-tree", parent, env=index)
            self.run("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=index)
            tree = self.run("write-tree", env=index).strip()
        who = {
            "GIT_AUTHOR_NAME": bot.name,
            "GIT_AUTHOR_EMAIL": bot.email,
            "GIT_COMMITTER_NAME": bot.name,
            "GIT_COMMITTER_EMAIL": bot.email,
        }
        return self.run("commit-tree", tree, "-p", parent, "-F", "-", stdin=message, env=who).strip()

    def push(self, remote: str, commit: str, branch: str) -> None:
        """Fast-forward remote's branch to commit; PushRaceLost if it moved, GitError otherwise."""
        proc = self._run(("push", "--porcelain", "--quiet", remote, f"{commit}:refs/heads/{branch}"))
        if proc.returncode == 0:
            return
        detail = log.redact((proc.stdout + proc.stderr).strip())
        if any(marker in detail for marker in _RACE_MARKERS):
            raise PushRaceLost(f"push to {remote}/{branch} lost a race: {detail}")
        raise GitError(f"`git push` to {remote}/{branch} was rejected: {detail}")


def commit_manifest(
    git: Git,
    *,
    remote: str,
    branch: str,
    path: str,
    plan: Callable[[str], Edit],
    message: str,
    bot: Identity,
    policy: RetryPolicy,
    dry_run: bool = False,
    rng: random.Random | None = None,
) -> Result:
    """Fetch the tip, plan the edit on it, commit and push; on a lost race, start over after a backoff.

    plan() gets the manifest text at the current tip and is re-run on every attempt, so the guard is
    checked against what is really on the branch at push time.
    """
    rng = rng or random.SystemRandom()
    attempt = 0
    while True:
        attempt += 1
        with log.step(f"fetch {remote}/{branch} (attempt {attempt})"):
            tip = git.fetch_branch(remote, branch)
            text = git.read_file(tip, path)
        if text is None:
            raise GitError(f"{path} does not exist on {remote}/{branch} ({tip[:12]})")
        with log.step("plan manifest edit"):
            edit = plan(text)
        log.info(f"decision: {edit.decision.outcome} - {edit.decision.reason}")
        if edit.decision.outcome is not Outcome.CHANGED or dry_run:
            return Result(edit=edit, commit=None, attempts=attempt)
        with log.step(f"commit {path} on {tip[:12]}"):
            commit = git.commit_file(tip, path, edit.new_text, message, bot)
        try:
            with log.step(f"push {commit[:12]} to {remote}/{branch}"):
                git.push(remote, commit, branch)
        except PushRaceLost as exc:
            if attempt >= policy.max_attempts:
                raise GitError(
                    f"{exc}; gave up after {attempt} attempts. The branch is unchanged by this run: "
                    "re-run the job, or check what keeps moving the branch"
                ) from exc
            delay = policy.delay(attempt, rng)
            log.info(f"branch moved while pushing; retrying in {delay:.2f}s")
            time.sleep(delay)
            continue
        return Result(edit=edit, commit=commit, attempts=attempt)
