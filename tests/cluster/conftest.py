"""The real control plane of `make cluster-up` (plane/cluster.sh): kube-apiserver with RBAC and Pod
Security admission on etcd, kube-controller-manager, kube-scheduler, one KWOK node on which pods become
Ready without running, and Flux's source-, kustomize- and notification-controller, all on 127.0.0.1.

`make test` starts one first (plane/cluster.sh run); run directly, tests here skip when no cluster
answers, except under CI=true.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from plane.localcluster import Cluster, FluxLoop, ensure_app_namespace, flux_loop
from tests.conftest import require


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: needs the control plane of `make cluster-up`")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster/" in item.nodeid:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    found = Cluster.find()
    require(found is not None, "no control plane answers at .cluster/kubeconfig (run `make cluster-up`)")
    assert found is not None
    return found


@pytest.fixture(scope="session")
def app_namespace(cluster: Cluster) -> str:
    """The app's namespace, in the API server with the labels it is declared with."""
    return ensure_app_namespace(cluster)


@pytest.fixture(scope="session")
def flux(
    cluster: Cluster, app_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FluxLoop]:
    """The stack's Flux objects in the API server, following a local repository over SSH, with the
    deploy-report Provider pointed at a local commit-status API (plane/localcluster.py)."""
    require(Path("/usr/sbin/sshd").exists(), "openssh-server is not installed")
    require(os.geteuid() == 0, "a real sshd on loopback needs root")
    with flux_loop(cluster, tmp_path_factory.mktemp("flux")) as loop:
        yield loop
