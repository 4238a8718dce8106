"""Fixtures for the release module: real git repositories (a bare remote plus detached clones),
tiny images pushed straight to the real local registry, and the CLI run as a real subprocess."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT

DATA = Path(__file__).parent / "data"
MANIFEST = "k8s/overlays/dev/kustomization.yaml"  # the first environment's overlay (k8s/environments.yaml)
BOT_EMAIL = "gitops-bot@users.noreply.github.com"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def git(cwd: Path, *args: str, env: Mapping[str, str] | None = None, input_text: str | None = None) -> str:
    """Run git in cwd and return stdout (fails the test with git's stderr otherwise)."""
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=input_text,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@dataclass
class Cli:
    """One `python -m jenkins` run."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout.strip().splitlines()[-1])

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(cwd: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> Cli:
    """The real CLI in a subprocess, with the project on PYTHONPATH."""
    proc = subprocess.run(
        [sys.executable, "-m", "jenkins", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        timeout=timeout,
        check=False,
    )
    return Cli(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class GitopsRepo:
    """A bare remote (the 'GitHub' of the test), a developer clone that makes app commits, and
    detached-HEAD workspaces like Jenkins'."""

    tmp: Path
    remote: Path
    dev: Path

    def app_commit(self, label: str) -> str:
        """A developer commit changing app/, pushed to main; returns its SHA."""
        git(self.dev, "pull", "--quiet", "--rebase", "origin", "main")
        (self.dev / "app" / "version.txt").write_text(f"{label} {uuid.uuid4().hex}\n")
        git(self.dev, "add", "app/version.txt")
        git(self.dev, "commit", "--quiet", "-m", f"app: {label}")
        git(self.dev, "push", "--quiet", "origin", "HEAD:main")
        return git(self.dev, "rev-parse", "HEAD").strip()

    def workspace(self, commit: str, name: str | None = None, *, depth: int | None = None) -> Path:
        """A fresh clone checked out at commit with a detached HEAD (what Jenkins gives a build)."""
        path = self.tmp / (name or f"ws-{uuid.uuid4().hex[:8]}")
        shallow = ["--depth", str(depth), "--no-local"] if depth else []
        source = f"file://{self.remote}" if depth else str(self.remote)
        git(self.tmp, "clone", "--quiet", *shallow, source, str(path))
        git(path, "checkout", "--quiet", "--detach", commit)
        return path

    def tip(self) -> str:
        return git(self.remote, "rev-parse", "refs/heads/main").strip()

    def manifest_at(self, rev: str = "main") -> str:
        return git(self.remote, "show", f"{rev}:{MANIFEST}")

    def bot_commits(self) -> list[str]:
        return git(self.remote, "log", "--format=%H", f"--author={BOT_EMAIL}", "main").split()

    def changed_paths(self, commit: str) -> list[str]:
        return git(self.remote, "diff-tree", "--no-commit-id", "--name-only", "-r", commit).split()

    def add_overlay(self, environment: str) -> str:
        """Another environment's overlay beside dev's (the same kustomization, day 0), pushed; returns
        its manifest's path."""
        path = MANIFEST.replace("/dev/", f"/{environment}/")
        git(self.dev, "pull", "--quiet", "--rebase", "origin", "main")
        (self.dev / path).parent.mkdir(parents=True)
        for name in ("kustomization.yaml", "deployment.yaml"):
            (self.dev / path).with_name(name).write_bytes((self.dev / MANIFEST).with_name(name).read_bytes())
        git(self.dev, "add", "k8s")
        git(self.dev, "commit", "--quiet", "-m", f"{environment} overlay")
        git(self.dev, "push", "--quiet", "origin", "HEAD:main")
        return path


@pytest.fixture
def gitops_repo(tmp_path: Path) -> GitopsRepo:
    """A GitOps repository: app/ with a Dockerfile and k8s/ with the test kustomization."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    dev = tmp_path / "dev"
    git(tmp_path, "clone", "--quiet", str(remote), str(dev))
    git(dev, "config", "user.name", "Dev Eloper")
    git(dev, "config", "user.email", "dev@example.com")
    (dev / "app").mkdir()
    (dev / "app" / "Dockerfile").write_text("FROM scratch\nCOPY version.txt /version.txt\n")
    (dev / "app" / "version.txt").write_text("initial\n")
    overlay = (dev / MANIFEST).parent
    overlay.mkdir(parents=True)
    for name in ("kustomization.yaml", "deployment.yaml"):
        (overlay / name).write_bytes((DATA / name).read_bytes())
    (dev / "k8s" / "environments.yaml").write_text("environments: [dev, prod]\n")
    git(dev, "add", "app", "k8s")
    git(dev, "commit", "--quiet", "-m", "initial")
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    return GitopsRepo(tmp_path, remote, dev)


def _blob(name: str, url: str, data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = requests.post(f"{url}/v2/{name}/blobs/uploads/", timeout=10)
    assert start.status_code == 202, start.text
    location = requests.compat.urljoin(url, start.headers["Location"])
    joiner = "&" if "?" in location else "?"
    done = requests.put(
        f"{location}{joiner}digest={digest}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    )
    assert done.status_code == 201, done.text
    return {"size": len(data), "digest": digest}


def _layer() -> tuple[bytes, str]:
    """A gzipped tar with one unique file; returns (blob, diff_id)."""
    content = uuid.uuid4().hex.encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("marker")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0), "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()


@pytest.fixture
def push_test_image(registry: str) -> Callable[[str, str], str]:
    """push_test_image(repository, tag) -> digest: a one-layer image PUT through the registry HTTP
    API (no docker needed). repository is `<registry>/<name>`, as the CLI takes it."""
    return push_image


def push_image(repository: str, tag: str) -> str:
    """A one-layer image PUT as repository:tag into the registry repository names; its digest."""
    host, _, name = repository.partition("/")
    url = f"http://{host}"
    layer, diff_id = _layer()
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    ).encode()
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                **_blob(name, url, config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    **_blob(name, url, layer),
                }
            ],
        }
    ).encode()
    response = requests.put(
        f"{url}/v2/{name}/manifests/{tag}",
        data=body,
        headers={"Content-Type": DOCKER_MANIFEST},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    assert response.headers["Docker-Content-Digest"] == digest
    return digest


@pytest.fixture
def image_repository(registry: str) -> str:
    """A fresh repository name on the local registry for one test."""
    return f"{registry}/hello-{uuid.uuid4().hex[:8]}"
