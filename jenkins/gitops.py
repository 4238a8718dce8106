"""Git adapter: read the branch tip, answer ancestry questions, and commit the manifest back.

The bot commit is built with plumbing (a private index file, `write-tree`, `commit-tree`) on top of
`<remote>/<branch>`, then pushed as a fast-forward with a lease on the tip it was planned on: if the
branch is anywhere else by then (moved on, or rewound by a force-push), the push is refused and the
run plans again on what the branch really holds. The working tree, the index and HEAD of the checkout
we run in (Jenkins' workspace, usually a detached HEAD) are never touched, and the commit can only
contain the manifest file because it is the only path we write into the tree.

Defensive by default: every network operation has a deadline, the checkout's own hooks never run
(core.hooksPath=/dev/null; the remote's hooks and rules still apply), nothing prompts, and a dry run
works in a scratch repository that borrows this one's objects, so it changes no ref, no shallow
boundary and no file of the checkout.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from jenkins import log
from jenkins.codeowners import LOCATIONS, CodeownersError, Rule, parse
from jenkins.core import Decision, Relation, RetryPolicy, SignedCommit, names_release, untrusted_since_bot
from jenkins.pulls import PullsError, repository_of
from jenkins.signing import Signer

# Reasons in a rejected ref's porcelain status line that mean "someone else moved the branch first":
# fetch, re-apply, try again. Only git's own status line is read: a remote's rule text may use the
# same words, and a rule never goes away by retrying.
_RACE_REASONS = (
    "fetch first",
    "non-fast-forward",
    "failed to update ref",
    "cannot lock ref",
    "incorrect old value",
    "stale info",  # the lease: the branch is no longer at the tip this attempt planned on
)
_PORCELAIN_REJECTED = re.compile(r"^!\t[^\t]*\t(?P<summary>.*)$", re.MULTILINE)
# Seconds a single fetch, push or ls-remote may take (the CLI reads GITOPS_GIT_TIMEOUT): a hung remote
# fails this run with a clear message instead of eating the stage's timeout.
NETWORK_TIMEOUT = 120.0
# Each git run ignores the checkout's hooks: the bot's fetches and pushes must not run code that
# happens to sit in .git/hooks (or core.hooksPath) of a build workspace.
_SAFE = ("-c", "core.hooksPath=/dev/null")
# Variables that would point git at another repository, index or object store than the one we run in
# (a dry run's scratch repository must not write into the checkout through them).
_REPOSITORY_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
)


# History as the objects say, whatever the checkout adds: replace refs (`git replace --graft`) and a
# graft file make git read other parents (or another commit) than the remote holds, which would let the
# signature walk step over an unsigned commit. A graft file under a character device can never exist.
_TRUE_HISTORY = {"GIT_NO_REPLACE_OBJECTS": "1", "GIT_GRAFT_FILE": f"{os.devnull}/no-grafts"}


class GitError(Exception):
    """A git command failed; the message says which and what git said (URL credentials redacted)."""


class MissingBranch(GitError):
    """The remote answered, and it has no such branch: a wrong --branch, not a key or network problem."""


class PushRaceLost(GitError):
    """The push was rejected because the branch moved under us."""


class UntrustedHistory(GitError):
    """The bot will not sign on top of the branch: a commit since its last signed one is neither the
    bot's nor a reviewed merged pull request's, or GitHub could not be asked."""


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
    message: str | None = None  # the commit message, when it is not the one the caller passed


@dataclass(frozen=True)
class Result:
    """The final state after `commit_manifest`."""

    edit: Edit
    commit: str | None  # the manifest commit pushed, None if nothing was pushed
    attempts: int


class Git:
    """git commands run in one repository, never prompting for credentials."""

    def __init__(self, cwd: Path, *, timeout: float = NETWORK_TIMEOUT) -> None:
        self.cwd = cwd
        self.timeout = timeout
        inherited = {key: value for key, value in os.environ.items() if key not in _REPOSITORY_ENV}
        self.env = {**inherited, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **_TRUE_HISTORY}

    def run(self, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None) -> str:
        """Run git; return stdout; raise GitError with git's own message on failure."""
        proc = self._run(args, stdin, env)
        if proc.returncode != 0:
            raise GitError(log.redact(f"`git {args[0]}` failed: {_detail(proc)}"))
        return proc.stdout

    def _run(
        self,
        args: tuple[str, ...],
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        *,
        network: bool = False,
        binary: bool = False,
    ) -> subprocess.CompletedProcess:
        """git with args; text output (undecodable bytes replaced) unless binary. A network command
        runs in its own process group, killed as a whole (ssh included) when it overruns."""
        proc = subprocess.Popen(
            ["git", *_SAFE, *args],
            cwd=self.cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**self.env, **(env or {})},
            start_new_session=network,
        )
        data = stdin.encode() if stdin is not None else None
        try:
            out, err = proc.communicate(data, timeout=self.timeout if network else None)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise GitError(
                f"`git {args[0]}` gave no answer within {self.timeout:.0f}s (GITOPS_GIT_TIMEOUT); "
                "check the network path to the remote and that it is up"
            ) from None
        except BaseException:
            # Interrupted (Ctrl-C, or a SIGTERM the CLI turns into one): end git with us. A network git
            # has a session of its own, so the terminal's signal never reaches it or its ssh.
            with contextlib.suppress(ProcessLookupError):
                if network:
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    proc.kill()
            proc.wait()
            raise
        stdout = out if binary else out.decode(errors="replace")
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, err.decode(errors="replace"))

    def ok(self, *args: str) -> bool:
        """True if the git command exits 0 (for questions like `merge-base --is-ancestor`)."""
        return self._run(args).returncode == 0

    def toplevel(self) -> Path:
        """The root of the working copy; GitError in git's own words when git refuses (not a working
        copy, dubious ownership, a broken .git)."""
        proc = self._run(("rev-parse", "--show-toplevel"))
        if proc.returncode != 0 or not proc.stdout.strip():
            raise GitError(f"git cannot use {self.cwd} as a working copy: {_detail(proc) or 'no work tree'}")
        return Path(proc.stdout.strip())

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
        """True if remote is a configured remote (a name, never an option: it goes into argv)."""
        return not remote.startswith("-") and self.ok("remote", "get-url", "--", remote)

    def object_format(self) -> str:
        """The repository's hash algorithm: sha1, or sha256 for `git init --object-format=sha256`."""
        return self.run("rev-parse", "--show-object-format").strip()

    def is_shallow(self) -> bool:
        return self.run("rev-parse", "--is-shallow-repository").strip() == "true"

    def unshallow(self, remote: str) -> None:
        """Fetch the history a shallow clone lacks (a no-op on a full clone)."""
        if self.is_shallow():
            self._run(("fetch", "--quiet", "--no-tags", "--unshallow", remote), network=True)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True if ancestor is reachable from descendant (a commit is its own ancestor)."""
        return self.ok("merge-base", "--is-ancestor", ancestor, descendant)

    def commit_info(self, sha: str) -> tuple[str, str]:
        """(message, author email) of a commit."""
        out = self.run("log", "-1", "--format=%ae%x00%B", sha)
        email, _, message = out.partition("\0")
        return message, email

    def first_parent_line(self, sha: str, limit: int) -> list[tuple[str, str]]:
        """(sha, author email) of sha and its first-parent ancestors, newest first."""
        # %ae, not %aE: a .mailmap in the repository must not turn a person into the bot. An ident is
        # one header line, so neither field holds a line break.
        out = self.run("log", "--first-parent", f"--max-count={limit}", "--format=%H %ae", sha)
        return [(sha, email) for sha, _, email in (line.partition(" ") for line in out.splitlines())]

    def newest_by(self, tip: str, email: str, path: str | None = None) -> str | None:
        """The newest commit on tip's first-parent line whose author email is email (any case), and
        that changed path when given."""
        # The author header line holds `<email>` as written: a fixed-string match on it. --no-mailmap:
        # git log maps identities by default (log.mailmap), also for --author, and a .mailmap in the
        # repository must not turn a person into the bot.
        out = self.run(
            "log", "--no-mailmap", "--first-parent", "-1", "--fixed-strings", "--regexp-ignore-case",
            f"--author=<{email}>", "--format=%H", tip, *(("--", path) if path else ()),
        )  # fmt: skip
        return out.strip() or None

    def read_file(self, commit: str, path: str) -> str | None:
        """The content of path at commit, byte for byte (CRLF, BOM), or None if it is not there.

        GitError if it is not UTF-8 text: a manifest we cannot read is not one we may rewrite.
        """
        proc = self._run(("cat-file", "blob", f"{commit}:{path}"), binary=True)
        if proc.returncode != 0:
            return None
        try:
            return proc.stdout.decode()
        except UnicodeDecodeError as exc:
            raise GitError(f"{path} at {commit[:12]} is not UTF-8 (byte {exc.start}); fix it") from None

    def is_regular_file(self, commit: str, path: str) -> bool:
        """True if path in commit's tree is a regular file (mode 100644 or 100755)."""
        mode = self.run("ls-tree", commit, "--", path).split(" ", 1)[0]
        return mode in ("100644", "100755")

    def has_path(self, commit: str, path: str) -> bool:
        """True if path exists in commit's tree."""
        return self.ok("cat-file", "-e", f"{commit}:{path}")

    def submodules(self, commit: str, path: str) -> list[str]:
        """Paths of the submodules (gitlinks, mode 160000) under path ("." for all) in commit's tree."""
        out = self.run("ls-tree", "-r", "-z", "--full-tree", commit, "--", path)
        entries = (record.partition("\t") for record in out.split("\0") if record)
        return [name for meta, _, name in entries if meta.startswith("160000 ")]

    def export_tree(self, commit: str, path: str, dest: Path) -> None:
        """Write path (a directory; "." for the root) as it is in commit into dest: exactly the committed
        files, whatever the working copy holds. A private index leaves the checkout's own untouched."""
        tree = f"{commit}^{{tree}}" if path in ("", ".") else f"{commit}:{path}"
        with tempfile.TemporaryDirectory(prefix="gitops-index-") as tmp:
            index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self.run("read-tree", tree, env=index)
            self.run("checkout-index", "--all", f"--prefix={dest}/", env=index)

    def fetch_branch(self, remote: str, branch: str) -> str:
        """Fetch remote's branch into refs/remotes/<remote>/<branch>; return its tip SHA."""
        ref = f"refs/remotes/{remote}/{branch}"
        refspec = f"+refs/heads/{branch}:{ref}"
        proc = self._run(("fetch", "--quiet", "--no-tags", remote, refspec), network=True)
        if proc.returncode != 0:
            detail = _detail(proc)
            # git's words when the remote answered and has no such branch (LC_ALL=C keeps them
            # untranslated; tests/jenkins/test_cli_errors.py runs real git): not a key problem.
            if f"couldn't find remote ref refs/heads/{branch}" in detail:
                raise MissingBranch(f"remote {remote!r} has no branch {branch!r}")
            raise GitError(log.redact(f"cannot fetch branch {branch!r} from remote {remote!r}: {detail}"))
        return self.run("rev-parse", "--verify", ref).strip()

    def ensure_commit(self, remote: str, sha: str) -> bool:
        """Make sha available locally (unshallow, then fetch it by id); True if we have it."""
        if self.resolve_commit(sha):
            return True
        self.unshallow(remote)
        if not self.resolve_commit(sha):
            # Servers may refuse a fetch by id: that is fine, the answer is then "unknown".
            self._run(("fetch", "--quiet", "--no-tags", remote, sha), network=True)
        return self.resolve_commit(sha) is not None

    def reachable(self, remote: str, sha: str, tip: str) -> bool:
        """True if sha is an ancestor of tip (deepening a shallow clone to find out)."""
        return self._deepening(remote, lambda: self.is_ancestor(sha, tip))

    def on_line(self, remote: str, sha: str, tip: str) -> bool:
        """True if sha is on tip's first-parent line: a state the branch itself was in. A commit reachable
        only through a merge's second parent was a pull request's state, never the branch's."""
        return self._deepening(remote, lambda: self._on_first_parent_line(sha, tip))

    def _deepening(self, remote: str, question: Callable[[], bool]) -> bool:
        """question(), asked again after fetching the whole history if a shallow clone says no."""
        if question():
            return True
        if self.is_shallow():
            self.unshallow(remote)
            return question()
        return False

    def _on_first_parent_line(self, sha: str, tip: str) -> bool:
        # Walk tip's first parents, stopping at the ancestors of sha's parents: sha is listed exactly
        # when the walk passes through it. The walk is as long as the line from tip down to sha.
        if not self.is_ancestor(sha, tip):
            return False
        parents = self.run("rev-parse", f"{sha}^@").split()
        out = self.run("rev-list", "--first-parent", tip, "--not", *parents)
        return sha in out.split()

    def file_changes(self, base: str, tip: str, path: str) -> list[tuple[str, str]]:
        """(sha, author email) of the commits on tip's first-parent line after base that changed path,
        newest first; a merge counts with what it changed against its first parent."""
        out = self.run("log", "--first-parent", "--format=%H %ae", f"{base}..{tip}", "--", path)
        return [(sha, email) for sha, _, email in (line.partition(" ") for line in out.splitlines())]

    def added_in(self, remote: str, tip: str, path: str) -> str | None:
        """The newest commit on tip's first-parent line that added path (a merge counts with what it
        changed against its first parent: `--first-parent` implies `--diff-merges=first-parent`, git
        2.31 release notes); None if none did. A shallow clone is deepened first."""
        if self.is_shallow():
            self.unshallow(remote)
        found = self.run(
            "log", "--first-parent", "--diff-filter=A", "--max-count=1", "--format=%H", tip, "--", path
        )
        return found.strip() or None

    def last_change(self, remote: str, tip: str, path: str) -> str | None:
        """The newest commit on tip's first-parent line that changed path (a merge counts with what it
        changed against its first parent); None if none did. A shallow clone is deepened first: its
        boundary commit would otherwise look like the one that added every file."""
        if self.is_shallow():
            self.unshallow(remote)
        found = self.run("log", "--first-parent", "--max-count=1", "--format=%H", tip, "--", path)
        return found.strip() or None

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Git]:
        """A throwaway bare repository that borrows this one's objects (alternates), shallow boundary
        and config: everything a dry run fetches or deepens lands there and is deleted afterwards."""
        common = Path(self.run("rev-parse", "--path-format=absolute", "--git-common-dir").strip())
        with tempfile.TemporaryDirectory(prefix="gitops-dry-run-") as tmp:
            scratch = Git(Path(tmp), timeout=self.timeout)
            scratch.run("init", "--quiet", "--bare", tmp)
            shutil.copyfile(common / "config", Path(tmp) / "config")
            scratch.run("config", "core.bare", "true")
            scratch.ok("config", "--unset", "core.worktree")
            (Path(tmp) / "objects" / "info" / "alternates").write_text(f"{common / 'objects'}\n")
            if (common / "shallow").is_file():
                shutil.copyfile(common / "shallow", Path(tmp) / "shallow")
            yield scratch

    def relation(self, remote: str, deployed_tag: str | None, target: str) -> Relation:
        """How the commit the manifest deploys relates to target; fetches history when it must."""
        if not names_release(deployed_tag):
            return Relation.UNVERSIONED
        if deployed_tag == target:
            return Relation.SAME
        if not self.ensure_commit(remote, deployed_tag):
            return Relation.UNKNOWN
        # A shallow boundary can hide the path between the two commits: reachable() looks at all history.
        return Relation.FORWARD if self.reachable(remote, deployed_tag, target) else Relation.BACKWARD

    def signed_line(self, tip: str, skip: int, count: int, signer: Signer) -> list[SignedCommit]:
        """count commits of tip's first-parent line after the newest skip, each with the fingerprint of
        its good signature (gpg's verdict in the signer's GNUPGHOME: %G? G or U, %GF the signing key)."""
        out = self.run(
            "log", "--first-parent", f"--skip={skip}", f"--max-count={count}", "--format=%H %G? %GF", tip,
            env=signer.env,
        )  # fmt: skip
        line = []
        for record in out.splitlines():
            sha, status, fingerprint = [*record.split(" "), "", ""][:3]
            good = status in ("G", "U") and fingerprint
            line.append(SignedCommit(sha, fingerprint.upper() if good else None))
        return line

    def check_history(self, remote: str, branch: str, tip: str, signer: Signer) -> None:
        """UntrustedHistory unless every commit on tip's first-parent line since the bot's newest signed
        commit (or, before the bot's first one, since the trust anchor) is the bot's or, as GitHub says,
        the merge commit of a pull request merged into branch (the ruleset's review stands behind it),
        exactly as GitHub merges it (`merged_as`). With neither on the line the bot refuses (no trust on
        first use: a history rewritten to one without the bot's signatures must not get one). Second
        parents are not walked: the merged pull request vouches for what it merged. A shallow clone is
        deepened to find out."""
        untrusted: list[str] = []
        skip, batch = 0, 32
        while True:
            part = self.signed_line(tip, skip, batch, signer)
            found, reached = untrusted_since_bot(part, signer.bot_keys, signer.anchor)
            untrusted += found
            skip += len(part)
            if reached:
                break
            if len(part) < batch:
                if not self.is_shallow():
                    break
                self.unshallow(remote)
            batch *= 2
        refusing = f"refusing to sign on top of {remote} at {tip[:12]}"
        if not reached and signer.anchor is not None:
            raise UntrustedHistory(
                f"{refusing}: its first-parent line holds no commit signed by the bot's key, and the trust "
                f"anchor GITOPS_TRUST_ANCHOR={signer.anchor} (the branch's head when the stack was created) "
                "is not on it: the branch was rewritten since. Check what it holds; to trust its head as it "
                'is, re-anchor the stack (docs/release.md, "The trust anchor")'
            )
        if not reached:
            raise UntrustedHistory(
                f"{refusing}: its first-parent line holds no commit signed by the bot's key, so nothing "
                "anchors what was reviewed (a rewritten branch, or signing switched on without "
                "GITOPS_TRUST_ANCHOR in a repository whose history the bot did not sign)"
            )
        unreviewed = self._unmerged(remote, branch, untrusted, signer, refusing)
        if unreviewed:
            more = f" and {len(unreviewed) - 5} more" if len(unreviewed) > 5 else ""
            named = ", ".join(unreviewed[:5]) + more
            raise UntrustedHistory(
                f"{refusing}: commit {named} on the branch's first-parent line since the bot's last signed "
                "commit (or the trust anchor) is neither signed by the bot nor, as GitHub says, the merge "
                f"commit of a reviewed pull request merged into {branch} (someone pushed around review). A "
                "revert on top leaves it on the line, and the branch's rules forbid rewriting it: check "
                "those commits, revert what must go through a reviewed pull request, then re-anchor the "
                "stack on the reviewed head (docs/release.md, After a refusal)"
            )

    def _unmerged(
        self, remote: str, branch: str, commits: list[str], signer: Signer, refusing: str
    ) -> list[str]:
        """Each commit GitHub does not vouch for (not the merge commit of a pull request merged into
        branch with its required approvals), with the reason; UntrustedHistory (fail closed) when
        GitHub cannot be asked or does not answer."""
        if not commits:
            return []
        if signer.pulls is None:
            raise UntrustedHistory(
                f"{refusing}: {len(commits)} commit(s) since the bot's last signed commit are not the "
                f"bot's (the newest {commits[0]}), and GITOPS_PULLS_TOKEN is not set, so GitHub cannot be "
                "asked whether they are merged pull requests: bind the token (docs/release.md)"
            )
        # The configured URL, before any url.<base>.insteadOf rewriting: the repository's name on GitHub.
        repository = repository_of(self.run("config", "--get", f"remote.{remote}.url"))
        if repository is None:
            raise UntrustedHistory(
                f"{refusing}: the remote {remote!r} is not a github.com repository URL, so GitHub cannot "
                "be asked which commits are merged pull requests"
            )
        unreviewed = []
        for sha in commits:
            try:
                why = signer.pulls.vouch(
                    repository, sha, branch, lambda sha=sha: self.ownership(sha),
                    lambda number, head, sha=sha: self.merged_as(remote, sha, number, head),
                )  # fmt: skip
            except (PullsError, CodeownersError) as exc:
                raise UntrustedHistory(f"{refusing}: {exc}") from None
            if why is not None:
                unreviewed.append(f"{sha} ({why})")
        return unreviewed

    def merged_as(self, remote: str, sha: str, number: int, head: str) -> str | None:
        """None if sha is exactly what GitHub makes when it merges pull request number, whose final head
        commit is head, into the branch: a merge commit whose parents are the branch's tip and head, or a
        squash (one parent), each with the tree git's merge of head into the first parent gives (a
        merge that conflicts never comes from GitHub's button); otherwise why not. A squash's head is
        fetched from refs/pull/<number>/head when the checkout lacks it."""
        parents = self.run("rev-parse", f"{sha}^@").split()
        what = f"pull request #{number}"
        if head == sha:
            return f"the head commit of {what} itself, pushed to the branch: GitHub's merges make new commits"
        if len(parents) == 2 and parents[1] != head:
            return f"a merge whose second parent {parents[1][:12]} is not the head {head[:12]} of {what}"
        if len(parents) not in (1, 2):
            return f"a commit with {len(parents)} parents, which no merge of {what} makes"
        # The merge base lies anywhere in history: a shallow boundary would hide it.
        self.unshallow(remote)
        if self.resolve_commit(head) is None:
            pull_head = f"refs/pull/{number}/head"
            fetched = self._run(
                ("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote, pull_head), network=True
            )
            if self.resolve_commit(head) is None:
                said = f"; git said: {log.redact(_detail(fetched))}" if fetched.returncode else ""
                return (
                    f"a squash of {what}, whose head {head[:12]} {remote} does not serve (refs/pull/"
                    f"{number}/head moved or is gone{said}), so its content cannot be compared with what "
                    "the pull request held"
                )
        # In a bare scratch repository: git's merge honours the attributes of a work tree and of
        # .git/info/attributes (merge=union resolves a conflict GitHub would refuse), and neither is
        # GitHub's. Its trees land in the scratch repository, deleted afterwards.
        with self.scratch() as bare:
            proc = bare._run(
                ("-c", "core.attributesFile=/dev/null", "merge-tree", "--write-tree", "--no-messages",
                 parents[0], head),
                env={"GIT_ATTR_NOSYSTEM": "1"},
            )  # fmt: skip
        merged = proc.stdout.split("\n", 1)[0].strip()
        if proc.returncode == 1:
            return f"{what}'s head {head[:12]} conflicts with {parents[0][:12]}: GitHub merges no conflict"
        if proc.returncode != 0 or not merged:
            raise GitError(
                "`git merge-tree --write-tree` failed (it needs git 2.38 or newer; "
                f"`git --version` says {self.run('--version').strip()!r}): {_detail(proc)}"
            )
        if merged != self.run("rev-parse", f"{sha}^{{tree}}").strip():
            return (
                f"its content is not the merge of {what}'s head {head[:12]} into {parents[0][:12]}: it "
                "changes more (or other) than the reviewed pull request"
            )
        return None

    def ownership(self, sha: str) -> tuple[list[Rule], list[str]]:
        """The CODEOWNERS rules of sha's first parent (the base branch GitHub read them from when it
        merged the pull request whose merge commit sha is) and the paths sha changes against it."""
        # Every commit checked lies above the bot's own (or the anchor) on the line: it has a parent.
        base = self.run("rev-parse", "--verify", f"{sha}^1").strip()
        changed = self.run("diff", "--name-only", "--no-renames", "-z", base, sha).split("\0")[:-1]
        found = set(self.run("ls-tree", "-z", "--name-only", base, "--", *LOCATIONS).split("\0"))
        for location in LOCATIONS:
            if location in found:
                text = self.run("cat-file", "blob", f"{base}:{location}")
                return parse(text, f"{location} at {base[:12]}"), changed
        return [], changed

    def commit_file(
        self, parent: str, path: str, content: str, message: str, bot: Identity, signer: Signer | None = None
    ) -> str:
        """A new commit on parent that changes only path to content, OpenPGP-signed by signer if given;
        nothing else is touched."""
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
        sign = (f"-S{signer.key}",) if signer else ("--no-gpg-sign",)
        env = {**who, **(signer.env if signer else {})}
        return self.run("commit-tree", tree, "-p", parent, *sign, "-F", "-", stdin=message, env=env).strip()

    def push(self, remote: str, commit: str, branch: str, planned_tip: str) -> None:
        """Move remote's branch from planned_tip to commit (a child of it, so a fast-forward); PushRaceLost
        if the branch is anywhere else (moved on or rewound), GitError otherwise.

        The lease names the expected value explicitly: git sends it as the old value of the ref update,
        and the remote refuses the update unless the branch still holds it (compare-and-swap), so a
        force-push that rewound the branch after our fetch can never be undone by our commit.
        A rejection by a rule (protected branch, ruleset, pre-receive hook) carries the remote's own
        words (its `remote:` lines) and git's status, so the user sees which rule refused the push.
        """
        proc = self._run(
            (
                "push",
                "--porcelain",
                "--no-verify",
                f"--force-with-lease=refs/heads/{branch}:{planned_tip}",
                "--no-force-if-includes",  # a user's push.useForceIfIncludes must not add its reflog rule
                remote,
                f"{commit}:refs/heads/{branch}",
            ),
            network=True,
        )
        if proc.returncode == 0:
            return
        rejected = [m["summary"].strip() for m in _PORCELAIN_REJECTED.finditer(proc.stdout)]
        said = [
            line.removeprefix("remote:").strip()
            for line in proc.stderr.splitlines()
            if line.startswith("remote:") and line.removeprefix("remote:").strip()
        ]
        if rejected and any(reason in rejected[0] for reason in _RACE_REASONS):
            raise PushRaceLost(log.redact(f"push to {remote}/{branch} lost a race: {rejected[0]}"))
        status = rejected[0] if rejected else _detail(proc)
        remote_said = f"; the remote said: {' / '.join(said)}" if said else ""
        raise GitError(log.redact(f"`git push` to {remote}/{branch} was rejected: {status}{remote_said}"))


def _detail(proc: subprocess.CompletedProcess) -> str:
    """What git said about a failure, on one line per message."""
    return " ".join(str(proc.stderr or proc.stdout).split("\n")).strip()


def commit_manifest(
    git: Git,
    *,
    remote: str,
    branch: str,
    path: str,
    plan: Callable[[str, str], Edit],
    message: str,
    bot: Identity,
    policy: RetryPolicy,
    dry_run: bool = False,
    signer: Signer | None = None,
    rng: random.Random | None = None,
) -> Result:
    """Fetch the tip, plan the edit on it, commit and push; on a lost race, start over after a backoff.

    plan(tip, text) gets the current tip and the manifest text there, and is re-run on every attempt, so
    the guards are checked against what is really on the branch at push time. Whatever the outcome, a
    plan that changes the text is committed (a `held` run may record a hold).
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
        if not git.is_regular_file(tip, path):
            raise GitError(
                f"{path} on {remote}/{branch} is not a regular file (a symlink or submodule in git); "
                "the release edits only a regular file: replace it with the file itself"
            )
        with log.step("plan manifest edit"):
            edit = plan(tip, text)
        log.info(f"decision: {edit.decision.outcome} - {edit.decision.reason}")
        if edit.new_text == edit.old_text:
            return Result(edit=edit, commit=None, attempts=attempt)
        if signer is not None:
            with log.step(f"check {remote}/{branch} since the bot's last signed commit"):
                git.check_history(remote, branch, tip, signer)
        if dry_run:
            return Result(edit=edit, commit=None, attempts=attempt)
        signed = f", signed by {signer.key}" if signer else ""
        with log.step(f"commit {path} on {tip[:12]}{signed}"):
            commit = git.commit_file(tip, path, edit.new_text, edit.message or message, bot, signer)
        try:
            with log.step(f"push {commit[:12]} to {remote}/{branch}"):
                git.push(remote, commit, branch, tip)
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
