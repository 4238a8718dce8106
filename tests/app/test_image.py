"""app/Dockerfile built hermetically, run as production runs it (read-only root, /tmp in memory, non-root)."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from bench.app import image_size_mb, remove_container, run_container
from tests.conftest import free_port, wait_for_http

pytestmark = pytest.mark.docker


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback URL
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def container(app_image: str) -> Iterator[tuple[str, str]]:
    """The image running read-only on a free loopback port: (container id, base URL)."""
    port = free_port()
    cid = run_container(app_image, port, "DRAIN_SECONDS=1")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=30)
        yield cid, f"http://127.0.0.1:{port}"
    finally:
        remove_container(cid)


def test_serves_read_only(container: tuple[str, str], commit: str) -> None:
    _, url = container
    assert get(f"{url}/") == (200, b"Hello World!")
    assert get(f"{url}/healthz")[0] == 200
    assert get(f"{url}/readyz")[0] == 200
    status, body = get(f"{url}/version")
    assert (status, json.loads(body)) == (200, {"commit": commit})
    assert get(f"{url}/nope")[0] == 404


def test_runs_as_numeric_non_root_user(container: tuple[str, str], app_image: str) -> None:
    cid, _ = container
    assert int(docker("exec", cid, "id", "-u").stdout) != 0
    user = docker("image", "inspect", "--format", "{{.Config.User}}", app_image).stdout.strip()
    # Kubernetes' runAsNonRoot can only check a numeric UID.
    assert re.fullmatch(r"[1-9]\d*(:\d+)?", user), f"image USER {user!r} is not a numeric non-root uid"


def test_root_filesystem_is_read_only_and_tmp_writable(container: tuple[str, str]) -> None:
    cid, _ = container
    denied = docker("exec", cid, "python3", "-c", "open('/app/x', 'w')", check=False)
    assert denied.returncode != 0
    assert "Read-only file system" in denied.stderr
    docker("exec", cid, "python3", "-c", "open('/tmp/x', 'w').write('ok')")


def test_oci_labels(app_image: str, commit: str) -> None:
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", app_image).stdout)
    assert labels["org.opencontainers.image.revision"] == commit
    assert labels["org.opencontainers.image.source"].startswith("https://")


def test_pip_is_not_shipped(container: tuple[str, str]) -> None:
    cid, _ = container
    assert docker("exec", cid, "python3", "-m", "pip", "--version", check=False).returncode != 0


def test_adds_little_to_its_base_image(app_image: str, base_image: str) -> None:
    added = image_size_mb(app_image) - image_size_mb(base_image)
    assert 0 < added < 30, f"the app adds {added:.1f} MB to {base_image}"


def test_sigterm_drains_then_exits_zero(app_image: str) -> None:
    """SIGTERM (what `docker stop` and the kubelet send) drains, then the server exits 0 on its own."""
    port = free_port()
    cid = run_container(app_image, port, "DRAIN_SECONDS=3")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=30)
        # Wait from before the signal: --rm removes the container as soon as it exits.
        waiter = subprocess.Popen(["docker", "wait", cid], stdout=subprocess.PIPE, text=True)
        started = time.monotonic()
        docker("kill", "--signal", "TERM", cid)
        while get(f"http://127.0.0.1:{port}/readyz")[0] == 200:
            assert time.monotonic() - started < 2, "readiness still 200 two seconds after SIGTERM"
        assert get(f"http://127.0.0.1:{port}/")[0] == 200, "not serving during the drain"
        exit_code, _ = waiter.communicate(timeout=30)
        assert int(exit_code) == 0
        assert time.monotonic() - started < 10, "not done before docker stop's default SIGKILL"
    finally:
        remove_container(cid)
