"""The app through Flask's test client: every endpoint, unknown paths, readiness during shutdown."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
from flask.testing import FlaskClient

from bench.app import APP_DIR


def load_module(name: str, path: Path) -> ModuleType:
    """Import a file of app/ by path: app/ is the image's working directory, not a package."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hello = load_module("hello_app", APP_DIR / "app.py")

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def lifecycle() -> hello.Lifecycle:
    return hello.Lifecycle()


@pytest.fixture
def client(lifecycle: hello.Lifecycle) -> FlaskClient:
    return hello.create_app(commit=COMMIT, lifecycle=lifecycle).test_client()


def test_hello(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == "Hello World!"


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json) == (200, {"status": "ok"})


def test_readyz_until_shutdown_begins(client: FlaskClient, lifecycle: hello.Lifecycle) -> None:
    assert client.get("/readyz").status_code == 200
    lifecycle.begin_shutdown()
    response = client.get("/readyz")
    assert (response.status_code, response.json) == (503, {"status": "shutting down"})
    # Liveness is unaffected: a draining pod must not be restarted.
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200


def test_version_is_the_commit(client: FlaskClient) -> None:
    response = client.get("/version")
    assert response.status_code == 200
    assert response.is_json
    assert response.json == {"commit": COMMIT}


def test_version_defaults_to_git_commit_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_COMMIT", COMMIT[::-1])
    assert hello.create_app().test_client().get("/version").json == {"commit": COMMIT[::-1]}
    monkeypatch.delenv("GIT_COMMIT")
    assert hello.create_app().test_client().get("/version").json == {"commit": "unknown"}


@pytest.mark.parametrize("path", ["/nope", "/healthz/extra", "/version.json", "/readyz/"])
def test_unknown_paths_are_404(client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_only_get_is_served(client: FlaskClient) -> None:
    assert client.post("/").status_code == 405
    assert client.head("/healthz").status_code == 200


def test_shutdown_flag_is_shared_with_forked_workers(lifecycle: hello.Lifecycle) -> None:
    """What serve.py relies on: a flag the parent sets after fork is seen by the child."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the "worker": wait for the parent's go, report what it sees
        os.read(read_end, 1)
        os._exit(0 if lifecycle.shutting_down else 1)
    lifecycle.begin_shutdown()
    os.write(write_end, b"x")
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000\n", None), ("50000 100000\n", 1), ("100000 100000\n", 1), ("150000 100000\n", 2)],
)
def test_workers_follow_the_cpu_quota(tmp_path: Path, cpu_max: str, expected: int | None) -> None:
    conf = load_module("serve", APP_DIR / "serve.py")
    cpus = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert conf.usable_cpus(tmp_path) == min(cpus, expected or cpus)
    assert conf.usable_cpus(tmp_path / "missing") == cpus


@pytest.mark.parametrize(
    ("quota", "period", "expected"),
    [("-1\n", "100000\n", None), ("50000\n", "100000\n", 1), ("150000\n", "100000\n", 2)],
)
def test_workers_follow_a_cgroup_v1_cpu_quota(
    tmp_path: Path, quota: str, period: str, expected: int | None
) -> None:
    """cgroup v1 (EKS's Amazon Linux 2 nodes): cpu/cpu.cfs_quota_us over cpu.cfs_period_us, -1 = none.

    Kernel Documentation/scheduler/sched-bwc.txt: "A value of -1 for cpu.cfs_quota_us indicates that
    the group does not have any bandwidth restriction in place".
    """
    conf = load_module("serve", APP_DIR / "serve.py")
    cpus = len(os.sched_getaffinity(0))
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(quota)
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(period)
    assert conf.usable_cpus(tmp_path) == min(cpus, expected or cpus)
