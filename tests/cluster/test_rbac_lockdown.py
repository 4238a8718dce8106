"""The test cluster runs Flux as the stack's chart values configure it on EKS (multi-tenancy lockdown),
not as cluster-admin: scripts/cluster-rbac.yaml and the controller flags of scripts/cluster.sh follow
infra/gitops.py CHART_VALUES as the flux2 chart renders them (fluxcd-community/helm-charts flux2-2.18.3,
charts/flux2/templates/cluster-reconciler-*.yaml and kustomize-controller.yaml, read 2026-12-01)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from infra.gitops import CHART_VALUES
from scripts.fluxchart import cluster_reconciler_is_admin, controller_args
from scripts.localcluster import STATE, Cluster

RBAC = Path(__file__).resolve().parents[2] / "scripts" / "cluster-rbac.yaml"
CONTROLLER = "system:serviceaccount:flux-system:kustomize-controller"


def test_the_chart_flags_follow_the_values() -> None:
    # kustomize-controller.yaml: `if .Values.multitenancy.enabled` adds these two, then additionalArgs.
    assert controller_args("kustomize-controller") == [
        "--no-cross-namespace-refs=true",
        f"--default-service-account={CHART_VALUES['multitenancy']['defaultServiceAccount']}",
        *CHART_VALUES["kustomizeController"]["container"]["additionalArgs"],
    ]
    assert controller_args("kustomize-controller", {"multitenancy": {"enabled": False}}) == []
    assert controller_args("kustomize-controller", {"multitenancy": {"enabled": True}}) == [
        "--no-cross-namespace-refs=true",
        "--default-service-account=default",
    ]
    assert controller_args("source-controller") == []
    # notification-controller.yaml: `if .Values.multitenancy.enabled` adds only this one, so a
    # Receiver cannot annotate (and an Alert cannot watch) objects in another namespace.
    assert controller_args("notification-controller") == ["--no-cross-namespace-refs=true"]
    assert controller_args("notification-controller", {"multitenancy": {"enabled": False}}) == []
    with pytest.raises(ValueError, match="unknown controller 'helm-controller'"):
        controller_args("helm-controller")


def test_the_rbac_file_binds_what_the_chart_binds_for_the_values() -> None:
    documents = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    bindings = {d["metadata"]["name"]: d for d in documents if d["kind"] == "ClusterRoleBinding"}
    admin = [b for b in bindings.values() if b["roleRef"]["name"] == "cluster-admin"]
    assert not cluster_reconciler_is_admin()
    assert admin == []
    assert "cluster-reconciler" not in bindings
    (impersonator,) = [d for d in documents if d["metadata"]["name"] == "cluster-reconciler-impersonator"
                       and d["kind"] == "ClusterRole"]  # fmt: skip
    assert impersonator["rules"] == [
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]}
    ]
    binding = bindings["cluster-reconciler-impersonator"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kustomize-controller", "namespace": "flux-system"}
    ]


def can_i(cluster: Cluster, *args: str) -> bool:
    proc = cluster.kubectl("auth", "can-i", *args, "--as", CONTROLLER, check=False)
    return proc.stdout.strip() == "yes"


def test_kustomize_controller_holds_only_impersonation_in_the_api_server(
    cluster: Cluster, app_namespace: str
) -> None:
    assert can_i(cluster, "impersonate", "serviceaccounts", "-n", app_namespace)
    assert not can_i(cluster, "create", "clusterrolebindings")
    assert not can_i(cluster, "patch", "deployments", "-n", app_namespace)
    assert not can_i(cluster, "create", "pods", "-n", "kube-system")


@pytest.mark.parametrize("controller", ["kustomize-controller", "notification-controller"])
def test_the_running_controllers_have_the_chart_flags(cluster: Cluster, controller: str) -> None:
    pid = (STATE / "pids" / controller).read_text().strip()
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    for flag in controller_args(controller):
        assert flag in argv, (flag, argv)
