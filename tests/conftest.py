"""Shared fixtures: the real services the suite runs against (Docker engine, OCI registry, moto).

Each service is started on a random loopback port for the test session. Where a service cannot be
reached the test skips with the reason, except under CI=true, where that is a failure: `make test`
provisions everything first (scripts/services.sh), so a skip there means a test silently did not run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

# One copy of the local stand-ins, shared with `make demo` and `make bench`; re-exported for the tests.
from plane.localservices import (
    BASE_IMAGE,
    ROOT,
    docker_available,
    free_port,
    run_registry,
    wait_for_http,
    wheelhouse,
)

__all__ = ["BASE_IMAGE", "ROOT", "docker_available", "free_port", "require", "run_registry", "wait_for_http"]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(available: bool, reason: str) -> None:
    """Skip when a service is missing; fail instead under CI=true."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: `make test` provisions this service, so its absence is a failure)")
    pytest.skip(f"{reason}; `make test` provisions what the tests need")


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
    with wheelhouse(ROOT / ".cache" / "wheels") as url:
        yield url


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


@pytest.fixture(scope="session", autouse=True)
def committed_codeowners(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The program reads the operator's CODEOWNERS (see operator_codeowners) in every test."""
    from tests.infra.conftest import operator_codeowners

    with operator_codeowners(tmp_path_factory.mktemp("checkout")) as path:
        yield path
