"""`python -m jenkins release|promote|rollback|unhold`: parse, validate, run, report.

Exit codes (contract): 0 changed/noop/stale/held, 2 bad input (checked before anything is fetched,
built or pushed), 1 any other failure. With --json the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import NoReturn

from jenkins import actions, core, log, manifest
from jenkins.build import BUILD_ARG_NAME, BuildError, build_arg_name_error
from jenkins.core import Hold, RetryPolicy
from jenkins.gitops import Git, GitError, Identity
from jenkins.registry import RegistryError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_BOT = Identity("gitops-bot", "gitops-bot@users.noreply.github.com")
# docker's reference grammar: optional registry host[:port], then lowercase path components; no tag.
REPOSITORY_RE = re.compile(
    r"(?:[A-Za-z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)


class InputError(Exception):
    """Bad input: the message names the flag or file and what is wrong with it."""


class Parser(argparse.ArgumentParser):
    """argparse that raises InputError instead of exiting, so --json still ends with a JSON line."""

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{self.prog}: {message}")


def parser() -> argparse.ArgumentParser:
    """The CLI; see docs/release.md."""
    top = Parser(prog="python -m jenkins", description="Release the app through GitOps.")
    sub = top.add_subparsers(dest="command", required=True, metavar="{release,promote,rollback,unhold}")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--branch", default=os.environ.get("GITOPS_BRANCH", "main"), help="branch Flux follows"
    )
    common.add_argument("--remote", default="origin", help="git remote to push to")
    common.add_argument("--manifest-dir", default="k8s", help="directory of kustomization.yaml")
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

    release = sub.add_parser("release", parents=[common, repo], help="build, push and promote a commit")
    release.add_argument("--commit", default="HEAD", help="commit to release (default HEAD)")
    release.add_argument("--context", default="app", help="docker build context (has the Dockerfile)")
    release.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    release.add_argument("--build-network", default=None, help="docker build --network")

    promote = sub.add_parser("promote", parents=[common, repo], help="deploy an image already pushed")
    promote.add_argument("--commit", default="HEAD", help="commit whose image to deploy (default HEAD)")
    promote.add_argument("--digest", default=None, help="expected digest, sha256:...")

    rollback = sub.add_parser("rollback", parents=[common, repo], help="deploy an older image and hold")
    rollback.add_argument("--to", required=True, help="commit whose image to go back to")
    rollback.add_argument("--reason", required=True, help="why (kept in the manifest and the commit)")
    rollback.add_argument("--by", default=None, help="who holds (default: git user, else login name)")

    unhold = sub.add_parser("unhold", parents=[common], help="lift a hold set by rollback")
    unhold.add_argument("--by", default=None, help="who lifts the hold")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser().parse_args(argv)
    except InputError as exc:
        command = next((word for word in argv if not word.startswith("-")), None)
        args = argparse.Namespace(json="--json" in argv, command=command)
        return fail(args, EXIT_BAD_INPUT, f"bad input: {exc}", "see `python -m jenkins COMMAND --help`")
    try:
        report = run(args)
    except InputError as exc:
        return fail(args, EXIT_BAD_INPUT, f"bad input: {exc}", "nothing was changed")
    except manifest.ManifestError as exc:
        return fail(
            args, EXIT_BAD_INPUT, f"bad manifest on {args.remote}/{args.branch}: {exc}", "fix it in git"
        )
    except GitError as exc:
        return fail(
            args,
            EXIT_FAILED,
            str(exc),
            "check the remote URL, the deploy key and known_hosts. A push is all or nothing: the branch "
            "is unchanged or holds the whole bot commit, so re-running is safe (noop if it landed)",
        )
    except (RegistryError, BuildError, actions.ActionError) as exc:
        return fail(args, EXIT_FAILED, str(exc), "nothing was written to git")
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


def fail(args: argparse.Namespace, code: int, message: str, hint: str) -> int:
    """Print what failed and what to try; under --json also as the last stdout line."""
    message = log.redact(message)
    print(f"error: {message}\nhint: {hint}", file=sys.stderr)
    if args.json:
        print(json.dumps({"outcome": "error", "command": args.command, "error": message, "exit_code": code}))
    return code


def run(args: argparse.Namespace) -> actions.Report:
    """Validate everything that can be checked locally, then run the command."""
    git = Git(Path.cwd())
    root = git.toplevel()
    if root is None:
        raise InputError(f"not inside a git working copy: {Path.cwd()} (run from the GitOps repository)")
    git = Git(root)
    if not git.has_remote(args.remote):
        raise InputError(f"--remote {args.remote!r}: no such git remote in {root}")
    if not git.is_branch_name(args.branch):
        raise InputError(f"--branch {args.branch!r}: not a valid branch name")
    if args.max_attempts < 1:
        raise InputError(f"--max-attempts {args.max_attempts}: must be at least 1")
    manifest_path = check_manifest(root, args.manifest_dir, args.image_name)
    ctx = actions.Context(
        git=git,
        remote=args.remote,
        branch=args.branch,
        manifest_path=manifest_path,
        image_name=args.image_name,
        bot=Identity(
            os.environ.get("GITOPS_BOT_NAME", DEFAULT_BOT.name),
            os.environ.get("GITOPS_BOT_EMAIL", DEFAULT_BOT.email),
        ),
        policy=RetryPolicy(max_attempts=args.max_attempts),
        dry_run=args.dry_run,
    )
    if args.command == "unhold":
        return actions.unhold(ctx, args.by or operator(git))
    repository = check_repository(args.image_repository)
    if args.command == "rollback":
        # A rollback needs the image, not the commit: a full SHA from the registry or a log will do
        # even when this (possibly shallow) checkout does not have that commit. The null id is no
        # release (there is no image to go back to), so it goes through check_commit and fails there.
        commit = args.to if core.names_release(args.to) else check_commit(git, "--to", args.to)
        reason = " ".join(args.reason.split())  # one line: it is shown in log lines and annotations
        if not reason:
            raise InputError("--reason: must say why (it is kept in the manifest and the commit)")
        hold = Hold(by=args.by or operator(git), reason=reason, at=utc_now())
        return actions.rollback(ctx, repository, commit, actions.verified_digest(repository, commit), hold)
    commit = check_commit(git, "--commit", args.commit)
    if args.command == "release":
        context_dir = check_context(root, args.context)
        build_args = check_build_args(args.build_arg)
        return actions.release(
            ctx,
            repository,
            commit,
            context_dir=context_dir,
            build_args=build_args,
            network=args.build_network,
        )
    if args.digest is not None and not core.is_digest(args.digest):
        raise InputError(f"--digest {args.digest!r}: expected sha256: followed by 64 hex digits")
    digest = actions.verified_digest(repository, commit)
    if args.digest is not None and args.digest != digest:
        raise InputError(f"--digest {args.digest}: the registry has {repository}:{commit} as {digest}")
    return actions.promote(ctx, repository, commit, digest)


def check_repository(value: str) -> str:
    if not REPOSITORY_RE.fullmatch(value):
        raise InputError(
            f"--image-repository {value!r}: expected a repository such as "
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/hello or 127.0.0.1:5000/hello "
            "(no tag, no digest)"
        )
    return value


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


def check_manifest(root: Path, manifest_dir: str, image_name: str) -> str:
    """The manifest's path relative to root, after checking it exists and has the image entry."""
    relative = inside("--manifest-dir", manifest_dir) / manifest.FILE_NAME
    path = root / relative
    if not path.is_file():
        raise InputError(f"--manifest-dir {manifest_dir!r}: no {manifest.FILE_NAME} at {path}")
    try:
        manifest.read_image(path.read_text(), image_name)
    except manifest.ManifestError as exc:
        raise InputError(f"--manifest-dir {manifest_dir!r} / --image-name {image_name!r}: {exc}") from None
    return str(relative)


def check_context(root: Path, context: str) -> Path:
    path = root / inside("--context", context)
    if not (path / "Dockerfile").is_file():
        raise InputError(f"--context {context!r}: no Dockerfile in {path}")
    return path


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
    """Who is acting: the git user if configured, else the login name."""
    return git.config("user.email") or getpass.getuser()


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
