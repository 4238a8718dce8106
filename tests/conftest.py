"""Shared fixtures: the real services the suite runs against (Docker engine, OCI registry, moto).

Each service is started on a random loopback port for the test session. Where a service cannot be
reached the test skips with the reason, except under CI=true, where that is a failure: CI provisions
everything with scripts/services.sh, so a skip there means a test silently did not run.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = os.environ.get("BASE_IMAGE", "local/python-base:bookworm")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(available: bool, reason: str) -> None:
    """Skip when a service is missing; fail instead under CI=true."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: .ci/run provisions this service, so its absence is a failure)")
    pytest.skip(f"{reason}; run `sudo make services` to provision it")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    """Poll url until it answers (any HTTP status) or raise after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - loopback URL built by the tests
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@functools.cache
def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A reachable Docker engine."""
    require(docker_available(), "no Docker engine is reachable (`docker info` failed)")


@pytest.fixture(scope="session")
def base_image(docker_engine: None) -> str:
    """The offline-built Python base image (scripts/services.sh makes it with debootstrap)."""
    present = subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True, check=False)
    require(present.returncode == 0, f"base image {BASE_IMAGE} is missing")
    return BASE_IMAGE


@pytest.fixture(scope="session")
def wheelhouse_url() -> Iterator[str]:
    """app/requirements.txt as wheels served on 127.0.0.1, for hermetic image builds (PIP_FIND_LINKS)."""
    wheels = ROOT / ".cache" / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "-d",
            str(wheels),
            "-r",
            str(ROOT / "app" / "requirements.txt"),
        ],
        check=True,
    )
    handler = functools.partial(QuietHandler, directory=str(wheels))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def run_registry(storage: Path) -> Iterator[str]:
    """A real OCI registry (Debian's docker-registry) on a random loopback port; yields host:port."""
    port = free_port()
    config = storage / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {storage / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v2/")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a real local OCI registry for this test session."""
    require(shutil.which("docker-registry") is not None, "docker-registry is not installed")
    with run_registry(tmp_path_factory.mktemp("registry")) as address:
        yield address


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Endpoint URL of moto's server, the AWS API for boto3 code (point AWS_ENDPOINT_URL at it)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Environment for boto3 pointed at moto's server, with throwaway credentials."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_server
