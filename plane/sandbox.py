"""A GitOps loop on one machine, for `make demo`, the release benchmark and the end-to-end tests.

A bare git repository stands in for GitHub, a working clone for the developer's and Jenkins' checkouts,
a local docker-registry for ECR, and `kubectl kustomize` of the branch tip for what Flux would apply.
Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jenkins import environments
from plane.fakegithubapi import FakeGitHubAPI, Pull, Repository, serve
from plane.localservices import BASE_IMAGE, ROOT, run_registry, wheelhouse

__all__ = [
    "BASE_IMAGE",
    "MANIFEST",
    "ROOT",
    "GitOpsRepo",
    "OpenPgpSigner",
    "ReviewedMerges",
    "Run",
    "build_arg_flags",
    "git",
    "hermetic_build_args",
    "image_present",
    "jenkins_cli",
    "jenkins_popen",
    "run_registry",
    "wheelhouse",
]

BRANCH = "main"
SEEDED = ("app", "k8s")  # what the GitOps repository holds
# The first environment's overlay, which every release edits (k8s/environments.yaml).
MANIFEST = f"{environments.overlay(environments.read(ROOT)[0])}/kustomization.yaml"
DEV = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com"}


def hermetic_build_args(wheels_url: str, base_image: str = BASE_IMAGE) -> dict[str, str]:
    """Build args for an offline build: the local base image and pip reading only our wheelhouse."""
    return {"BASE_IMAGE": base_image, "PIP_FIND_LINKS": wheels_url, "PIP_NO_INDEX": "1"}


def git(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {result.stderr.strip()}")
    return result.stdout.strip()


@dataclass
class ReviewedMerges:
    """GitHub's REST API (plane/fakegithubapi.py on 127.0.0.1) for one repository, and pull requests landed
    as GitHub lands an approved one (`land`): the head kept at refs/pull/<n>/head, a merge commit (or the
    squash) of it pushed to the branch, GitHub's record of the merge, its final commit approved by a
    reviewer. `env` is what the release binds around the bot's pushing command: the
    `gitops-pulls-token` credential as GITOPS_PULLS_TOKEN (a token with
    Pull requests: read and Commit statuses: read) and
    GITOPS_GITHUB_API_URL."""

    github: FakeGitHubAPI
    repository: str
    token: str = field(default="github_pat_11SANDBOX0pullsReadOnly0000", repr=False)

    @classmethod
    @contextlib.contextmanager
    def served(cls, repository: str = "example-org/gitops") -> Iterator[ReviewedMerges]:
        # The approving reviewer has write access: only such approvals count toward the branch's rules.
        repo = Repository(collaborators={"reviewer": "write"})
        merges = cls(FakeGitHubAPI(users={"reviewer"}, repositories={repository: repo}), repository)
        merges.github.tokens[merges.token] = {"pull_requests=read", "statuses=read"}
        with serve(merges.github):
            yield merges

    @property
    def url(self) -> str:
        """The repository's SSH URL on github.com: what the bot reads as the remote's name on GitHub."""
        return f"git@github.com:{self.repository}.git"

    @property
    def env(self) -> dict[str, str]:
        return {"GITOPS_PULLS_TOKEN": self.token, "GITOPS_GITHUB_API_URL": self.github.url}

    def land(self, checkout: Path, how: str = "merge", branch: str = BRANCH) -> str:
        """Land `checkout`'s HEAD, a commit not yet on `branch`, as the head of an approved pull request
        into it, the way GitHub's merge button does (`how`: "merge", a merge commit whose parents are
        the branch's tip and the head; "squash", one commit on the tip with the merged tree). Returns the
        commit pushed to the branch; the checkout is left on it, detached."""
        repository = self.github.repositories[self.repository]
        head = git(checkout, "rev-parse", "HEAD")
        with self.github.lock:
            number = len(repository.pulls) + 1
            review = {"user": {"login": "reviewer"}, "state": "APPROVED", "commit_id": head}
            pull = Pull(number, branch, (head,), None, False, head, reviews=[review])
            repository.pulls.append(pull)
        git(checkout, "push", "--quiet", "origin", f"{head}:refs/pull/{number}/head")
        git(checkout, "fetch", "--quiet", "origin", branch)
        git(checkout, "checkout", "--quiet", "--detach", "FETCH_HEAD")
        title = f"Merge pull request #{number}"
        if how == "merge":
            git(checkout, "merge", "--quiet", "--no-ff", "--no-edit", "-m", title, head, env=DEV)
        else:
            git(checkout, "merge", "--quiet", "--squash", head, env=DEV)
            git(checkout, "commit", "--quiet", "-m", f"{title} (squashed)", env=DEV)
        git(checkout, "push", "--quiet", "origin", f"HEAD:{branch}")
        merged = git(checkout, "rev-parse", "HEAD")
        with self.github.lock:
            pull.merged, pull.merge_commit_sha = True, merged
            repository.default_commits.add(merged)
        return merged

    def name_remote(self, checkout: Path, remote: str = "origin") -> None:
        """Name `remote` of `checkout` by the repository's github.com URL, still fetching from and pushing
        to where it points (git's url.<base>.insteadOf)."""
        local = git(checkout, "config", "--get", f"remote.{remote}.url")
        git(checkout, "config", f"url.{local}.insteadOf", self.url)
        git(checkout, "config", f"remote.{remote}.url", self.url)


@dataclass
class GitOpsRepo:
    """A bare remote (GitHub's role) and a clone used by the developer and, detached, by Jenkins."""

    remote: Path
    work: Path
    commits: int = field(default=0)

    @classmethod
    def seed(cls, root: Path, source: Path = ROOT) -> GitOpsRepo:
        """Create ROOT/remote.git holding app/ and k8s/ from SOURCE, and a detached clone ROOT/work.

        One commit, without this repository's history, as a team starting from a copy of it has: the
        manifest is exactly as shipped, naming no release yet.
        """
        remote, work = root / "remote.git", root / "work"
        subprocess.run(["git", "init", "--quiet", "--bare", "-b", BRANCH, str(remote)], check=True)
        subprocess.run(["git", "clone", "--quiet", str(remote), str(work)], check=True, capture_output=True)
        git(work, "config", "user.name", "Dev")
        git(work, "config", "user.email", "dev@example.com")
        git(work, "checkout", "--quiet", "-b", BRANCH)
        for name in SEEDED:
            shutil.copytree(source / name, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        git(work, "add", *SEEDED)
        git(work, "commit", "--quiet", "-m", "Seed the GitOps repository with app/ and k8s/")
        git(work, "push", "--quiet", "origin", BRANCH)
        repo = cls(remote, work)
        repo.checkout_tip()
        return repo

    def checkout_tip(self) -> str:
        """Jenkins' view: the remote branch tip, detached."""
        git(self.work, "fetch", "--quiet", "origin")
        git(self.work, "checkout", "--quiet", "--detach", f"origin/{BRANCH}")
        return self.head()

    def checkout(self, commit: str) -> None:
        git(self.work, "checkout", "--quiet", "--detach", commit)

    def head(self) -> str:
        return git(self.work, "rev-parse", "HEAD")

    def tip(self) -> str:
        return git(self.remote, "rev-parse", BRANCH)

    def app_commit(self, message: str | None = None, merges: ReviewedMerges | None = None) -> str:
        """A developer's app change pushed to the branch; returns its SHA (the checkout is left on it).
        With `merges`, the change lands as an approved pull request merged by GitHub, and the SHA is
        its merge commit."""
        self.checkout_tip()
        self.commits += 1
        # A real code change: the layers that copy the app are rebuilt, the dependency layers are not.
        with (self.work / "app" / "app.py").open("a") as source:
            source.write(f"# change {self.commits} at {time.time_ns()}\n")
        git(self.work, "add", "app/app.py")
        message = message or f"App change {self.commits}"
        git(self.work, "commit", "--quiet", "-m", message, env=DEV)
        if merges is not None:
            return merges.land(self.work)
        git(self.work, "push", "--quiet", "origin", f"HEAD:{BRANCH}")
        return self.head()

    def file_at_tip(self, path: str) -> str:
        return git(self.remote, "show", f"{BRANCH}:{path}")

    def deployed_tag(self) -> str | None:
        """The app commit the manifest at the branch tip deploys (its image's newTag)."""
        from jenkins.manifest import read_image

        return read_image(self.file_at_tip(MANIFEST)).new_tag

    def rendered_at_tip(self, destination: Path) -> str:
        """`kubectl kustomize` of the first environment's overlay at the branch tip: what its Flux would
        apply."""
        if destination.exists():
            shutil.rmtree(destination)
        subprocess.run(["git", "clone", "--quiet", str(self.remote), str(destination)], check=True)
        return subprocess.run(
            ["kubectl", "kustomize", str((destination / MANIFEST).parent)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout


@dataclass
class Run:
    """One `python -m jenkins ...` run: exit code, the JSON outcome (if any), console text, seconds."""

    returncode: int
    outcome: dict[str, object] | None
    stdout: str
    stderr: str
    seconds: float


def jenkins_popen(
    cwd: Path, command: str, args: Sequence[str], *, echo: bool = False, env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start the release module as Jenkins does, from a checkout, with --json; console on stderr.
    `env` adds what the pipeline binds around the command (GITOPS_SIGNING_KEY_FILE)."""
    return subprocess.Popen(
        [sys.executable, "-m", "jenkins", command, *args, "--json"],
        cwd=cwd,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=None if echo else subprocess.PIPE,
        text=True,
    )


def jenkins_cli(
    cwd: Path, command: str, args: Sequence[str], *, echo: bool = False, env: Mapping[str, str] | None = None
) -> Run:
    """Run the release module to completion; echo=True streams its console instead of capturing it."""
    started = time.monotonic()
    proc = jenkins_popen(cwd, command, args, echo=echo, env=env)
    stdout, stderr = proc.communicate()
    return finished(proc, stdout, stderr, time.monotonic() - started)


def finished(proc: subprocess.Popen[str], stdout: str, stderr: str | None, seconds: float) -> Run:
    lines = stdout.strip().splitlines()
    try:
        outcome = json.loads(lines[-1]) if lines else None
    except ValueError:
        outcome = None
    return Run(proc.returncode, outcome, stdout, stderr or "", seconds)


def build_arg_flags(build_args: Mapping[str, str]) -> list[str]:
    return [flag for name, value in build_args.items() for flag in ("--build-arg", f"{name}={value}")]


def image_present(image: str) -> bool:
    return (
        subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode
        == 0
    )


@dataclass(frozen=True)
class OpenPgpSigner:
    """git signing commits with one OpenPGP key through real gpg, in a GNUPGHOME of its own."""

    home: Path
    fingerprint: str

    @classmethod
    @contextlib.contextmanager
    def of(cls, armored_private_key: str) -> Iterator[OpenPgpSigner]:
        """Import the key into a new GNUPGHOME (a short path: gpg-agent's socket lives there), remove
        it all afterwards."""
        home = Path(tempfile.mkdtemp(prefix="gnupg-"))
        try:
            gpg = ["gpg", "--homedir", str(home), "--batch"]
            subprocess.run(
                [*gpg, "--import"], input=armored_private_key, text=True, capture_output=True, check=True
            )
            listing = subprocess.run(
                [*gpg, "--with-colons", "--list-secret-keys"], capture_output=True, text=True, check=True
            ).stdout
            fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
            yield cls(home, fingerprint)
        finally:
            subprocess.run(
                ["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False
            )
            shutil.rmtree(home, ignore_errors=True)

    def commit(self, work: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
        """`git commit -S ARGS` in `work`, signed with this key; returns the new HEAD."""
        env = {**(env or {}), "GNUPGHOME": str(self.home)}
        git(work, "-c", f"user.signingkey={self.fingerprint}", "commit", "--quiet", "-S", *args, env=env)
        return git(work, "rev-parse", "HEAD")
