"""`python -m jenkins release|promote|rollback|unhold|plan|build`: parse, validate, run, report.

Exit codes: see EXIT_CODES (also shown by --help). With --json the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import getpass
import ipaddress
import json
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import NoReturn

from jenkins import actions, core, environments, log, manifest, signing, stage, status
from jenkins.build import BUILD_ARG_NAME, BuildError, build_arg_name_error
from jenkins.core import Hold, RetryPolicy
from jenkins.gitops import NETWORK_TIMEOUT, Git, GitError, Identity, MissingBranch, UntrustedHistory
from jenkins.pulls import GitHubPulls, PullsError, repository_of
from jenkins.registry import ECR_PATTERN, RegistryError
from jenkins.signing import Signer, SigningError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_CODES = """exit codes:
  0  changed, noop, stale or held
  2  bad input; nothing was built, pushed to the registry or written to git. Flags, the
     environment (GITOPS_* variables, the signing key), the checkout and the local manifest are
     checked before any network call; whether the branch exists on the remote, whether the commit
     is on it, whether the manifest on the branch tip can be edited and whether --digest matches
     are checked after a fetch, which in the checkout changes only refs/remotes/<remote>/<branch>,
     FETCH_HEAD and the object store (and deepens a shallow clone)
  1  any other failure (registry, docker, git); the message says what was written, if anything"""
DEFAULT_BOT = Identity("gitops-bot", "gitops-bot@users.noreply.github.com")
# The reference grammar of distribution/reference (what docker and every registry parse): a path of
# lowercase components joined by separators; the name is at most 255 characters; the first part is a
# registry host only when it has a dot or a port, or is localhost (docker's own rule).
PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
PATH_RE = re.compile(rf"{PATH_COMPONENT}(?:/{PATH_COMPONENT})*")
DOMAIN_RE = re.compile(
    r"(?P<host>(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
    r"|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]+))?"
)
NAME_TOTAL_LENGTH_MAX = 255
# ECR's own repository-name rule, 2-256 characters (the RepositoryName shape of the ECR API model).
ECR_NAME_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")


class InputError(Exception):
    """Bad input: the message names the flag or file and what is wrong with it."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each option's default in its help line (none for a flag, or for an option without one); the
    description and epilog kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, [], argparse.SUPPRESS) or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse that raises InputError instead of exiting, so --json still ends with a JSON line, that
    takes no abbreviated flags (`--js` is an error, never a silent `--json`) and that names the nearest
    flag of the command for one it does not know (`--dry`: did you mean --dry-run?)."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(allow_abbrev=False, **kwargs)  # type: ignore[arg-type]

    def parse_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def, override]
        argv = list(sys.argv[1:] if args is None else args)
        try:
            parsed, extras = self.parse_known_args(argv, namespace)
        except InputError as exc:  # e.g. a required flag missing because it was mistyped
            raise InputError(f"{exc}{self._nearest(argv)}") from None
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}{self._nearest(argv)}")
        return parsed

    def _nearest(self, argv: list[str]) -> str:
        """'; --dry: did you mean --dry-run?' for each flag in argv that the command does not have."""
        commands = self._commands()
        chosen = next((commands[word] for word in argv if word in commands), self)
        flags = [flag for action in chosen._actions for flag in action.option_strings]
        hints = []
        for word in (item.split("=", 1)[0] for item in argv if item.startswith("-")):
            if word not in flags and (near := difflib.get_close_matches(word, flags, n=1, cutoff=0.6)):
                hints.append(f"; {word}: did you mean {near[0]}?")
        return "".join(hints)

    def _commands(self) -> dict[str, argparse.ArgumentParser]:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        # Only --help (and -h) get here: argparse printed the help; main() ends with the JSON line.
        raise HelpShown(self.prog)


class HelpShown(Exception):
    """--help was printed; under --json the run still ends with a JSON line."""


COMMANDS = {
    "release": "build the commit's image, push it by digest and deploy it (build and promote in one)",
    "promote": "deploy a commit's image that is already in the registry",
    "rollback": "deploy an older commit's image and hold: releases stop until `unhold`",
    "unhold": "lift the hold a rollback set; the next release deploys again",
    "status": "show what each environment deploys, whether Flux reported it healthy, and its hold",
    "plan": "decide from git whether this checkout releases, and which commit (writes nothing)",
    "build": "build and push the image of the commit a plan names (writes nothing to git)",
}
EXAMPLES = """examples:
  python -m jenkins promote --image-repository 127.0.0.1:5000/hello --commit 3f2c1a9 --dry-run
  python -m jenkins rollback --image-repository 127.0.0.1:5000/hello --to 3f2c1a9 \\
      --reason "5xx after 9e8d7c6" --dry-run
  python -m jenkins unhold --dry-run --json
  GITOPS_ENVIRONMENT=dev python -m jenkins promote --to prod \\
      --image-repository 127.0.0.1:5000/hello --dry-run
  python -m jenkins status --json
  A person's push to the protected branch is refused: in production, rollback, unhold and promote
  run as the Jenkins jobs gitops-rollback, gitops-unhold and gitops-promote (docs/operations.md)."""
ENVIRONMENT = """environment:
  GITOPS_BRANCH             default of --branch (default main)
  GITOPS_ENVIRONMENT        default of --environment (default: the first of k8s/environments.yaml)
  GITOPS_GIT_TIMEOUT        seconds each git network command may take (default 120)
  GITOPS_BOT_NAME           the release bot's git name (default gitops-bot)
  GITOPS_BOT_EMAIL          the release bot's git email (default gitops-bot@users.noreply.github.com)
  GITOPS_SIGNING_KEY_FILE   ASCII-armored OpenPGP private key: every pushed commit is signed with it
  GITOPS_PULLS_TOKEN        GitHub token (Pull requests: read, Commit statuses: read) the signed-
                            history check asks GitHub with whether each commit the bot did not sign
                            is a reviewed merge, and `promote --to` and `status` read Flux's commit
                            statuses with
  GITOPS_GITHUB_API_URL     GitHub's REST API root for that check (default https://api.github.com)
  GITOPS_TRUST_ANCHOR       full SHA the signed-history check may start from while the branch holds
                            no bot-signed commit yet (recorded by the stack)"""


def parser() -> argparse.ArgumentParser:
    """The CLI; see docs/release.md."""
    top = Parser(
        prog="python -m jenkins",
        description="Release the app through GitOps: set the image in an environment's overlay\n"
        "(k8s/overlays/<environment>/kustomization.yaml) on the branch Flux follows, as a\n"
        "(signed) bot commit. `python -m jenkins COMMAND --help` for each.",
        epilog=f"{EXAMPLES}\n\n{EXIT_CODES}\n\n{ENVIRONMENT}",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")

    def command(name: str, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            parents=parents,
            help=COMMANDS[name],
            description=COMMANDS[name],
            epilog=f"{EXIT_CODES}\n\n{ENVIRONMENT}",
            formatter_class=HelpFormatter,
        )

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--branch", default=os.environ.get("GITOPS_BRANCH", "main"), help="branch Flux follows"
    )
    common.add_argument("--remote", default="origin", help="git remote to push to")
    common.add_argument(
        "--environment",
        default=None,
        help="environment whose overlay to edit, k8s/overlays/ENVIRONMENT (default: $GITOPS_ENVIRONMENT, "
        f"else the first of {environments.FILE})",
    )
    common.add_argument(
        "--manifest-dir", default=None, help="directory of kustomization.yaml, instead of --environment"
    )
    common.add_argument("--image-name", default=manifest.DEFAULT_IMAGE_NAME, help="`images:` entry name")
    common.add_argument("--max-attempts", type=int, default=RetryPolicy.max_attempts, help="push attempts")
    common.add_argument(
        "--dry-run", action="store_true", help="print the diff and the outcome, write nothing"
    )
    common.add_argument("--json", action="store_true", help="last stdout line is a JSON object")

    repo = argparse.ArgumentParser(add_help=False)
    repo.add_argument(
        "--image-repository", required=True, help="e.g. 123456789012.dkr.ecr.REGION.amazonaws.com/app"
    )

    release = command("release", [common, repo])
    release.add_argument("--commit", default="HEAD", help="commit to release")
    release.add_argument("--context", default="app", help="docker build context (has the Dockerfile)")
    release.add_argument(
        "--build-arg", action="append", default=[], metavar="KEY=VALUE", help="docker build-arg"
    )
    release.add_argument("--build-network", default=None, help="docker build --network")

    promote = command("promote", [common, repo])
    promote.add_argument("--commit", default=None, help="commit whose image to deploy (default HEAD)")
    promote.add_argument("--digest", default=None, help="expected digest, sha256:...")
    promote.add_argument("--by", default=None, help="who asks (a Promoted-By trailer in the commit)")
    promote.add_argument(
        "--to",
        default=None,
        metavar="ENVIRONMENT",
        help="deploy to ENVIRONMENT, which comes after this stack's (GITOPS_ENVIRONMENT) in "
        f"{environments.FILE}, the exact image the environment before it runs, once Flux reported it "
        "healthy there (needs GITOPS_PULLS_TOKEN)",
    )

    status = command("status", [])
    status.add_argument(
        "--branch", default=os.environ.get("GITOPS_BRANCH", "main"), help="branch Flux follows"
    )
    status.add_argument("--remote", default="origin", help="git remote to read")
    status.add_argument("--image-name", default=manifest.DEFAULT_IMAGE_NAME, help="`images:` entry name")
    status.add_argument("--json", action="store_true", help="last stdout line is a JSON object")

    rollback = command("rollback", [common, repo])
    rollback.add_argument("--to", required=True, help="commit whose image to go back to")
    rollback.add_argument("--reason", required=True, help="why (kept in the manifest and the commit)")
    rollback.add_argument("--by", default=None, help="who holds (default: git user, else login name)")

    unhold = command("unhold", [common])
    unhold.add_argument("--by", default=None, help="who lifts the hold (default: git user, else login name)")

    # The Build stage's two commands (jenkins/stage.py): they never write to git.
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--branch", default=os.environ.get("GITOPS_BRANCH", "main"), help="branch to release")
    where.add_argument("--remote", default="origin", help="git remote whose branch the checkout fetched")
    where.add_argument("--json", action="store_true", help="last stdout line is a JSON object")
    where.set_defaults(dry_run=False)
    plan = command("plan", [where])
    plan.add_argument("--commit", default="HEAD", help="the commit the build checked out")
    build = command("build", [where, repo])
    build.add_argument("--plan", required=True, type=Path, help="the JSON file `plan --json` wrote")
    build.add_argument("--context", default="app", help="docker build context (has the Dockerfile)")
    build.add_argument(
        "--build-arg", action="append", default=[], metavar="KEY=VALUE", help="docker build-arg"
    )
    build.add_argument("--build-network", default=None, help="docker build --network")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit code. No traceback ever reaches the user."""
    # Text that is not UTF-8 (an argument, git's output) must not make printing it fail.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in argv if not word.startswith("-")), None)
    args = argparse.Namespace(json="--json" in argv, command=command)
    try:
        with _terminations_interrupt():
            return _main(argv)
    except KeyboardInterrupt:
        return fail(
            args,
            EXIT_FAILED,
            "interrupted",
            "a push is all or nothing: the branch is unchanged or holds the whole bot commit; re-run",
        )
    except Exception as exc:  # a bug of ours: say so in one line, keep the --json contract
        return fail(
            args,
            EXIT_FAILED,
            f"internal error: {type(exc).__name__}: {exc}",
            "this is a bug in the release module; re-run with the same arguments, and report it",
        )


@contextlib.contextmanager
def _terminations_interrupt() -> Iterator[None]:
    """Make SIGTERM and SIGHUP unwind like Ctrl-C while a command runs. Jenkins aborts a build with
    SIGTERM, and Python's default for it ends the process at once without running `finally`: the
    temporary GNUPGHOME would stay on disk with the private key, its gpg-agent running."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set them
        yield
        return
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _main(argv: list[str]) -> int:
    wants_json = "--json" in argv
    command = next((word for word in argv if not word.startswith("-")), None)
    try:
        args = parser().parse_args(argv)
    except HelpShown:
        if wants_json:
            print(json.dumps({"outcome": "help", "command": command, "exit_code": EXIT_OK}))
        return EXIT_OK
    except InputError as exc:
        args = argparse.Namespace(json=wants_json, command=command)
        return fail(args, EXIT_BAD_INPUT, f"bad input: {exc}", "see `python -m jenkins COMMAND --help`")
    try:
        report = run(args)
    except (InputError, actions.BadInput, SigningError, stage.PlanInputError) as exc:
        return fail(args, EXIT_BAD_INPUT, f"bad input: {exc}", "nothing was changed")
    except manifest.ManifestError as exc:
        return fail(
            args, EXIT_BAD_INPUT, f"bad manifest on {args.remote}/{args.branch}: {exc}", "fix it in git"
        )
    except MissingBranch as exc:
        return fail(
            args,
            EXIT_BAD_INPUT,
            f"bad input: --branch {args.branch!r}: {exc}",
            f"nothing was changed; `git ls-remote --heads {args.remote}` lists its branches (the default "
            "comes from GITOPS_BRANCH)",
        )
    except UntrustedHistory as exc:
        return fail(args, EXIT_FAILED, str(exc), "nothing was written to git")
    except GitError as exc:
        return fail(
            args,
            EXIT_FAILED,
            str(exc),
            "check the remote URL, the deploy key and known_hosts. A push is all or nothing: the branch "
            "is unchanged or holds the whole bot commit, so re-running is safe (noop if it landed)",
        )
    except actions.ActionError as exc:
        if exc.commit is None:
            return fail(args, EXIT_FAILED, str(exc), "nothing was written to git")
        hint = f"the manifest commit {exc.commit} is on {args.remote}/{args.branch}; re-running is safe"
        return fail(args, EXIT_FAILED, str(exc), hint, commit=exc.commit)
    except (RegistryError, BuildError, PullsError) as exc:
        return fail(args, EXIT_FAILED, str(exc), "nothing was written to git")
    if isinstance(report, status.StatusReport):
        print(report.table(), end="")
        if args.json:
            print(json.dumps(report.as_json()))
        return EXIT_OK
    if report.diff and args.dry_run:
        print(report.diff, end="")
    log.summary(
        {
            "outcome": report.outcome,
            "image": report.image,
            "digest": report.digest,
            "manifest_commit": report.commit,
            "attempts": report.attempts,
        }
    )
    if args.json:
        print(json.dumps({**report.as_json(), "command": args.command, "dry_run": args.dry_run}))
    return EXIT_OK


def fail(args: argparse.Namespace, code: int, message: str, hint: str, commit: str | None = None) -> int:
    """Print what failed and what to try; under --json also as the last stdout line, with the contract's
    `image` and `commit` (the manifest commit pushed before the failure, if any: the branch moved)."""
    message = log.redact(message)
    print(f"error: {message}\nhint: {hint}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "outcome": "error",
                    "command": args.command,
                    "error": message,
                    "exit_code": code,
                    "image": None,
                    "commit": commit,
                }
            )
        )
    return code


def run(args: argparse.Namespace) -> actions.Report | stage.StageReport | status.StatusReport:
    """Validate everything that can be checked locally, then run the command (a dry run in a scratch
    repository, so that not even a ref of the checkout moves)."""
    timeout = git_timeout(os.environ.get("GITOPS_GIT_TIMEOUT", ""))
    git = Git(Path.cwd(), timeout=timeout)
    try:
        root = git.toplevel()
    except GitError as exc:
        if "not a git repository" in str(exc):
            raise InputError(
                f"not inside a git working copy: {Path.cwd()} (run from the GitOps repository); {exc}"
            ) from None
        raise
    git = Git(root, timeout=timeout)
    if (object_format := git.object_format()) != "sha1":
        # Every SHA rule here (the manifest's 40-hex tag, the ancestry guard) is SHA-1's: refuse,
        # rather than run with the never-roll-back guard silently off.
        raise InputError(
            f"{root} is a {object_format} repository; the release works on SHA-1 repositories only "
            "(git's default): convert it, or keep the GitOps repository on SHA-1"
        )
    if not git.has_remote(args.remote):
        raise InputError(f"--remote {args.remote!r}: no such git remote in {root}")
    if not git.is_branch_name(args.branch):
        raise InputError(f"--branch {args.branch!r}: not a valid branch name")
    if args.command in ("plan", "build"):
        return run_stage(args, git)
    if args.command == "status":
        names = read_environments(root)
        ask = github(git, args.remote, required=False)
        state_in = None if ask is None else (lambda name: ask(actions.status_context(name)))
        return status.status(git, args.remote, args.branch, names, args.image_name, state_in)
    source = check_target(root, args) if args.command == "promote" and args.to is not None else None
    if args.max_attempts < 1:
        raise InputError(f"--max-attempts {args.max_attempts}: must be at least 1")
    # It names the `images:` entry and goes into the commit subject: one word, printable.
    if not args.image_name or any(char.isspace() for char in args.image_name):
        raise InputError(f"--image-name {args.image_name!r}: one word, no spaces (the `images:` entry)")
    check_text("--image-name", args.image_name)
    directory, chosen_by, environment = manifest_dir(root, args)
    if args.command in ("release", "promote") and source is None:
        check_released_here(root, environment)
    manifest_path = check_manifest(root, directory, chosen_by, args.image_name)
    if args.command != "unhold":
        check_repository(args.image_repository)
    with (
        signing.from_env(os.environ) as signer,
        git.scratch() if args.dry_run else contextlib.nullcontext(git) as work,
    ):
        return _run(args, git, work, manifest_path, environment, signer, source)


def _run(
    args: argparse.Namespace,
    git: Git,
    work: Git,
    manifest_path: str,
    environment: str,
    signer: Signer | None,
    source: str | None = None,
) -> actions.Report:
    ctx = actions.Context(
        git=work,
        remote=args.remote,
        branch=args.branch,
        manifest_path=manifest_path,
        image_name=args.image_name,
        bot=bot_identity(),
        policy=RetryPolicy(max_attempts=args.max_attempts),
        dry_run=args.dry_run,
        environment=environment,
        signer=signer,
    )
    if args.command == "unhold":
        return actions.unhold(ctx, check_text("--by", args.by or operator(git)))
    repository = args.image_repository
    if args.command == "rollback":
        # A rollback needs the image, not the commit: a full SHA from the registry or a log will do
        # even when this (possibly shallow) checkout does not have that commit (it must still be on
        # the branch: actions.rollback deepens the history to check). The null id is no release
        # (there is no image to go back to), so it goes through check_commit and fails there.
        commit = args.to if core.names_release(args.to) else check_commit(git, "--to", args.to)
        reason = check_text("--reason", args.reason)  # one line: shown in log lines and annotations
        if not reason:
            raise InputError("--reason: must say why (it is kept in the manifest and the commit)")
        hold = Hold(by=check_text("--by", args.by or operator(git)), reason=reason, at=actions.utc_now())
        return actions.rollback(ctx, repository, commit, hold)
    if source is not None:
        ask = github(git, args.remote, required=True)
        context = actions.status_context(source)
        by = None if args.by is None else check_text("--by", args.by)
        return actions.promote_from(ctx, repository, source, ask(context), by)
    commit = check_commit(git, "--commit", args.commit or "HEAD")
    if args.command == "release":
        build_args = check_build_args(args.build_arg)
        return actions.release(
            ctx,
            repository,
            commit,
            context=check_context(git, commit, args.context),
            build_args=build_args,
            network=args.build_network,
        )
    if args.digest is not None and not core.is_digest(args.digest):
        raise InputError(f"--digest {args.digest!r}: expected sha256: followed by 64 hex digits")
    actions.check_on_branch(ctx, commit, "--commit")
    digest = actions.verified_digest(repository, commit)
    if args.digest is not None and args.digest != digest:
        raise InputError(f"--digest {args.digest}: the registry has {repository}:{commit} as {digest}")
    by = None if args.by is None else check_text("--by", args.by)
    return actions.promote(ctx, repository, commit, digest, by)


def read_environments(root: Path) -> tuple[str, ...]:
    try:
        return environments.read(root)
    except environments.EnvironmentsError as exc:
        raise InputError(str(exc)) from None


def check_target(root: Path, args: argparse.Namespace) -> str:
    """The environment `promote --to` copies from (the one before the target); InputError for a target
    that is not after this stack's environment (GITOPS_ENVIRONMENT) or is the first one. Sets
    args.environment to the target."""
    if args.commit is not None or args.digest is not None:
        raise InputError(
            "--to copies the commit and digest the environment before it runs: give no --commit or --digest"
        )
    if args.manifest_dir is not None:
        raise InputError("--to and --manifest-dir: --to edits the overlay of its environment; give one")
    names = read_environments(root)
    try:
        target = environments.check(names, args.to, "--to")
    except environments.EnvironmentsError as exc:
        raise InputError(str(exc)) from None
    position = names.index(target)
    if position == 0:
        later = ", ".join(names[1:]) or "none"
        raise InputError(
            f"--to {target!r}: the first environment of {environments.FILE}, which `release` deploys every "
            f"commit to; promotion goes to a later one ({later})"
        )
    # The releasing stack (the first environment's Jenkins) promotes to every later environment: one
    # signer for the branch Flux verifies. Set but empty is an unset stack variable upstream (as for
    # --environment), not "any stack".
    stack = os.environ.get("GITOPS_ENVIRONMENT")
    if stack is not None and (stack not in names or names.index(stack) >= position):
        order = " -> ".join(names)
        raise InputError(
            f"--to {target!r}: this stack deploys {stack!r} (GITOPS_ENVIRONMENT), and a stack promotes only "
            f"to environments after its own in {environments.FILE} ({order}); run it where "
            f"GITOPS_ENVIRONMENT is an environment before {target}, the first one's Jenkins"
        )
    if args.environment is not None and args.environment != target:
        raise InputError(f"--environment {args.environment!r} and --to {target!r}: give one")
    args.environment = target
    return names[position - 1]


def check_released_here(root: Path, environment: str) -> None:
    """InputError for a release or a promotion of a chosen commit into an environment after the stack's
    own: a later environment takes releases only by `promote --to`, gated on Flux's report for the
    environment before it (a rollback, with its hold, is the way to pin a commit there)."""
    names = read_environments(root)
    stack = os.environ.get("GITOPS_ENVIRONMENT", "")
    if stack in names and environment in names and names.index(environment) > names.index(stack):
        before = names[names.index(environment) - 1]
        raise InputError(
            f"{environment!r}: this stack releases {stack!r} (GITOPS_ENVIRONMENT), and {environment} takes "
            f"releases only by promotion: `promote --to {environment}` deploys what {before} runs once its "
            f"Flux reported it healthy; to pin a commit of your choice there, `rollback --environment "
            f"{environment} --to <commit> --reason <why>` (a hold)"
        )


def github(git: Git, remote: str, *, required: bool) -> Callable[[str], actions.StateOf] | None:
    """For a status context, the function that reads its state on a commit from GitHub with
    GITOPS_PULLS_TOKEN; None without a token unless required (InputError then, as for a remote that is
    not a github.com repository)."""
    pulls = GitHubPulls.from_env(os.environ)
    if pulls is None:
        if not required:
            return None
        raise InputError(
            "GITOPS_PULLS_TOKEN is not set: promotion asks GitHub for the commit status Flux posted for the "
            "environment before it (a fine-grained token with Commit statuses: read; docs/release.md)"
        )
    url = git.config(f"remote.{remote}.url") or ""
    repository = repository_of(url)
    if repository is None:
        raise InputError(
            f"--remote {remote!r}: {url!r} is not a github.com repository URL, so GitHub cannot be asked "
            "for Flux's commit statuses"
        )

    def state_in(context: str) -> actions.StateOf:
        return lambda sha: pulls.status(repository, sha, context)

    return state_in


def run_stage(args: argparse.Namespace, git: Git) -> stage.StageReport:
    """`plan` (decide) or `build` (push the planned commit's image); neither writes to git."""
    if args.command == "plan":
        head = check_commit(git, "--commit", args.commit)
        return stage.StageReport(stage.plan(git, head, args.remote, args.branch, bot_identity().email))
    check_repository(args.image_repository)
    build_args = check_build_args(args.build_arg)
    planned = stage.read_plan(args.plan)
    context = args.context
    if planned.source_commit is not None:
        context = check_context(git, check_commit(git, "--plan", planned.source_commit), context)
    return stage.build(
        git,
        planned,
        args.image_repository,
        context=context,
        build_args=build_args,
        network=args.build_network,
    )


def bot_identity() -> Identity:
    """The bot's git identity (GITOPS_BOT_NAME / GITOPS_BOT_EMAIL). It decides which commits are the
    bot's, so it must be one git stores as given: non-empty, one line, no angle brackets."""
    name = os.environ.get("GITOPS_BOT_NAME", DEFAULT_BOT.name)
    email = os.environ.get("GITOPS_BOT_EMAIL", DEFAULT_BOT.email)
    for variable, value in (("GITOPS_BOT_NAME", name), ("GITOPS_BOT_EMAIL", email)):
        if not value.strip() or value != value.strip() or any(c in value for c in "<>\n\r\0"):
            raise InputError(
                f"{variable}={value!r}: must be a non-empty git identity on one line, without < > or "
                "surrounding spaces"
            )
    if any(char.isspace() for char in email):
        raise InputError(f"GITOPS_BOT_EMAIL={email!r}: an email address has no spaces")
    return Identity(name, email)


def git_timeout(value: str) -> float:
    """GITOPS_GIT_TIMEOUT as seconds (empty: the default); a deadline that is no positive finite number
    would fail every fetch at once or remove the deadline, so it is bad input."""
    if not value.strip():
        return NETWORK_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise InputError(f"GITOPS_GIT_TIMEOUT={value!r}: must be a positive number of seconds (default 120)")
    return seconds


def check_repository(value: str) -> str:
    """An image repository every registry would accept, checked before any network call."""
    why = repository_error(value)
    if why:
        raise InputError(
            f"--image-repository {value!r}: {why}; expected a repository such as "
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/hello or 127.0.0.1:5000/hello "
            "(no scheme, no tag, no digest)"
        )
    return value


def repository_error(value: str) -> str | None:
    """Why value is not an image repository name, or None if it is one."""
    first, sep, rest = value.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        domain = DOMAIN_RE.fullmatch(first)
        if domain is None:
            return f"{first!r} is not a registry host[:port]"
        port = domain["port"]
        if port is not None and not 1 <= int(port) <= 65535:
            return f"port {port} is out of range (1-65535)"
        host = domain["host"]
        if host.startswith("["):
            try:
                ipaddress.IPv6Address(host[1:-1])
            except ValueError:
                return f"{host} is not an IPv6 address"
        path = rest
    else:
        path = value
    if not PATH_RE.fullmatch(path):
        return (
            f"{path!r} is not a repository path (lowercase letters, digits and separators . _ __ -, "
            "components joined by /)"
        )
    if len(value) > NAME_TOTAL_LENGTH_MAX:
        return f"longer than {NAME_TOTAL_LENGTH_MAX} characters"
    match = ECR_PATTERN.match(value)
    if match is not None and not (2 <= len(match["name"]) <= 256 and ECR_NAME_RE.fullmatch(match["name"])):
        return f"{match['name']!r} is not an ECR repository name"
    return None


def check_text(flag: str, value: str) -> str:
    """value as one line of plain text (see core.one_line); InputError naming the flag otherwise."""
    try:
        return core.one_line(value)
    except ValueError as exc:
        raise InputError(f"{flag}: {exc}") from None


def check_commit(git: Git, flag: str, value: str) -> str:
    sha = git.resolve_commit(value)
    if sha is None:
        raise InputError(f"{flag} {value!r}: not a commit in this repository (a SHA or ref; fetch it first?)")
    return sha


def inside(flag: str, value: str) -> PurePosixPath:
    """value as a path relative to the repository root; InputError if it points outside."""
    relative = PurePosixPath(value)
    if relative.is_absolute() or ".." in relative.parts:
        raise InputError(f"{flag} {value!r}: must be a relative path inside the repository")
    return relative


def manifest_dir(root: Path, args: argparse.Namespace) -> tuple[str, str, str]:
    """The directory of the manifest to edit, how the user chose it (for messages) and the environment
    whose deploy it is (it names the registry's mark): the overlay of --environment ($GITOPS_ENVIRONMENT,
    else the first environment); or --manifest-dir, deployed by the environment whose overlay it is,
    else by the one --environment's default names (a manifest outside the overlays is the stack's own,
    as in the layout before them)."""
    if args.manifest_dir is not None and args.environment is not None:
        raise InputError("--manifest-dir and --environment: give one (the overlay of an environment)")
    try:
        names = environments.read(root)
        if args.environment is not None:
            chosen, what = args.environment, "--environment"
        elif "GITOPS_ENVIRONMENT" in os.environ:
            # Set but empty is an unset stack variable upstream (casc, the job's env), never "the first".
            chosen, what = os.environ["GITOPS_ENVIRONMENT"], "GITOPS_ENVIRONMENT"
        else:
            chosen, what = names[0], "the first environment"
        if args.manifest_dir is not None:
            given = PurePosixPath(args.manifest_dir)
            owner = next((name for name in names if PurePosixPath(environments.overlay(name)) == given), None)
            if owner is None and given.parts[:2] == PurePosixPath(environments.OVERLAYS).parts:
                # Its deploy would move another environment's mark: the overlay must be listed first.
                raise InputError(
                    f"--manifest-dir {args.manifest_dir!r}: the overlay of no environment of "
                    f"{environments.FILE} ({', '.join(names)}); list it there, or give --environment"
                )
            environment = owner or environments.check(names, chosen, what)
            return args.manifest_dir, f"--manifest-dir {args.manifest_dir!r}", environment
        environment = environments.check(names, chosen, what)
        return environments.overlay(environment), f"{what} {chosen!r}", environment
    except environments.EnvironmentsError as exc:
        raise InputError(str(exc)) from None


def check_manifest(root: Path, manifest_dir: str, chosen_by: str, image_name: str) -> str:
    """The manifest's path relative to root, after checking it exists and has the image entry.
    chosen_by names the flag or variable that picked the directory."""
    relative = inside("--manifest-dir", manifest_dir) / manifest.FILE_NAME
    path = root / relative
    if not path.is_file():
        raise InputError(f"{chosen_by}: no {manifest.FILE_NAME} at {path}")
    try:
        manifest.read_image(path.read_bytes().decode(), image_name)
    except UnicodeDecodeError as exc:
        raise InputError(f"{chosen_by}: {path} is not UTF-8 (byte {exc.start})") from None
    except manifest.ManifestError as exc:
        raise InputError(f"{chosen_by} ({relative}) / --image-name {image_name!r}: {exc}") from None
    return str(relative)


def check_context(git: Git, commit: str, context: str) -> str:
    """The build context as a path in the commit's tree (that tree is what gets built)."""
    relative = str(inside("--context", context))
    dockerfile = "Dockerfile" if relative == "." else f"{relative}/Dockerfile"
    if not git.has_path(commit, dockerfile):
        raise InputError(f"--context {context!r}: commit {commit[:12]} has no {dockerfile}")
    # The tree names only a submodule's commit id, not its files: the image would silently lack them.
    if submodules := git.submodules(commit, relative):
        raise InputError(
            f"--context {context!r}: commit {commit[:12]} has the submodule {submodules[0]} in the build "
            "context, whose files are not in the commit's tree; vendor it into the repository or build "
            "it as an image of its own"
        )
    return relative


def check_build_args(values: list[str]) -> dict[str, str]:
    """KEY=VALUE pairs, KEY by the build's own rule; errors name the key (or, when the key is not a valid
    name and so may be a mistyped value, its position) but never echo a value: it may be secret."""
    result: dict[str, str] = {}
    for position, item in enumerate(values, start=1):
        key, sep, value = item.partition("=")
        why = build_arg_name_error(key)
        shown = repr(key) if BUILD_ARG_NAME.fullmatch(key) else f"#{position}"
        if not sep:
            raise InputError(f"--build-arg {shown}: expected KEY=VALUE")
        if why:
            raise InputError(f"--build-arg {shown}: {why}")
        result[key] = value
    return result


def operator(git: Git) -> str:
    """Who is acting: the git user if configured, else the login name, else the user id (container
    agents often run as a uid with no passwd entry)."""
    if email := git.config("user.email"):
        return email
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
