"""Local stand-ins on 127.0.0.1 that the tests, `make demo` and `make bench` share.

A real OCI registry (Debian's docker-registry), a wheelhouse of the app's requirements for hermetic
image builds, and small helpers for ports and readiness. One copy, so the demo and the benchmarks run
exactly what the tests run.
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
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = os.environ.get("BASE_IMAGE", "local/python-base:bookworm")


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    """Poll url until it answers (any HTTP status) or raise after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - loopback URL built by our own code
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@functools.cache
def docker_available() -> bool:
    """True when a Docker engine answers `docker info`."""
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static files without a log line per request."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve DIRECTORY over HTTP on a random 127.0.0.1 port; yields the base URL."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


@contextlib.contextmanager
def wheelhouse(directory: Path) -> Iterator[str]:
    """app/requirements.txt downloaded as wheels into DIRECTORY and served on 127.0.0.1; yields the URL.

    Image builds cannot reach a package index from inside the build, so they read only these wheels
    (PIP_FIND_LINKS=<url>, PIP_NO_INDEX=1).
    """
    directory.mkdir(parents=True, exist_ok=True)
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--require-hashes",
         "-d", str(directory), "-r", str(ROOT / "app" / "requirements.txt")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if pip.returncode != 0:
        raise RuntimeError(f"pip download of app/requirements.txt failed: {pip.stderr.strip()[-1000:]}")
    with serve_directory(directory) as url:
        yield url


@contextlib.contextmanager
def run_registry(storage: Path, auth: str | None = None) -> Iterator[str]:
    """A real OCI registry (Debian's docker-registry) on a random loopback port; yields host:port.

    `auth` is the registry's `auth:` config section in YAML flow style (htpasswd or token), if any.
    """
    port = free_port()
    config = storage / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: error, accesslog: {disabled: true}}\n"
        f"storage: {{filesystem: {{rootdirectory: {storage / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n" + (f"auth: {auth}\n" if auth else "")
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
