"""The test cluster grants Flux exactly what production grants: the RBAC the Flux Operator applies for the
stack's FluxInstance, read from the operator's source at the pinned chart version
(github.com/controlplaneio-fluxcd/flux-operator `config/data/flux/v<FLUX_VERSION>/rbac.yaml`, through Go's
module proxy and checksum database), minus the cluster-admin binding the FluxInstance deletes, plus the
stack's impersonator. Checked three ways: the operator's copy against flux2's own release manifests, the
API server's objects against the operator's, and the API server's answers in kube-system against an
evaluation of the operator's rules."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.gitops import ADMIN_BINDING, FLUX_INSTANCE_SPEC, FLUX_VERSION, NAMESPACE
from plane.fluxchart import CONTROLLERS, operator_source, production_rbac, stack_rbac
from plane.localcluster import Cluster
from tests.infra.conftest import run_program

CLUSTER_SCOPED = ("ClusterRole", "ClusterRoleBinding")


def flux2_manifests(version: str = FLUX_VERSION) -> Path:
    """fluxcd/flux2's module at the Flux release, whose manifests/ the release's install is built from."""
    found = subprocess.run(
        ["go", "mod", "download", "-json", f"github.com/fluxcd/flux2/v2@v{version}"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
        env={**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"},
    )
    return Path(json.loads(found.stdout)["Dir"]) / "manifests"


def by_name(objects: Iterable[Mapping[str, Any]], kind: str) -> dict[str, Mapping[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_the_operator_ships_flux2s_own_rbac_for_the_pinned_release() -> None:
    """flux2 `manifests/rbac/controller.yaml` and `reconciler.yaml` at the release tag: the operator's copy
    holds the same roles and bindings, so "production's RBAC" is Flux's, not a port."""
    rbac = flux2_manifests() / "rbac"
    upstream = [
        d
        for f in ("controller.yaml", "reconciler.yaml")
        for d in yaml.safe_load_all((rbac / f).read_text())
        if d
    ]
    shipped = operator_source() / "config" / "data" / "flux" / f"v{FLUX_VERSION}" / "rbac.yaml"
    operator = [d for d in yaml.safe_load_all(shipped.read_text()) if d]
    for kind in CLUSTER_SCOPED:
        for name, theirs in by_name(upstream, kind).items():
            ours = by_name(operator, kind)[name]
            assert {k: v for k, v in ours.items() if k != "metadata"} == {
                k: v for k, v in theirs.items() if k != "metadata"
            }, name


def test_production_drops_the_cluster_admin_binding_and_token_minting() -> None:
    """flux2 v2.9.x `crd-controller` grants `create serviceaccounts/token` cluster-wide ("required for
    object-level workload identity"); the operator removes it when that feature is off
    (internal/builder/workload_identity.go), and names every role `<name>-flux-system`
    (kustomizationRolesTmpl `nameSuffix`). The FluxInstance's patch deletes `cluster-reconciler`."""
    unpatched = production_rbac({**FLUX_INSTANCE_SPEC, "kustomize": {"patches": []}})
    assert f"{ADMIN_BINDING}-{NAMESPACE}" in by_name(unpatched, "ClusterRoleBinding")
    objects = production_rbac()
    assert f"{ADMIN_BINDING}-{NAMESPACE}" not in by_name(objects, "ClusterRoleBinding")
    assert [o for o in objects if o.get("roleRef", {}).get("name") == "cluster-admin"] == []
    rules = by_name(objects, "ClusterRole")[f"crd-controller-{NAMESPACE}"]["rules"]
    assert {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]} not in rules


def test_the_impersonator_the_plane_applies_is_the_one_the_stack_declares() -> None:
    program = run_program()
    declared = [
        r.inputs
        for r in program.resources
        if r.type in {f"kubernetes:rbac.authorization.k8s.io/v1:{k}" for k in CLUSTER_SCOPED}
    ]
    canonical = {json.dumps(o, sort_keys=True) for o in declared}
    assert canonical == {json.dumps(o, sort_keys=True) for o in stack_rbac()}


# --- the API server -------------------------------------------------------------------------------------


def expected_rbac() -> list[Mapping[str, Any]]:
    return [o for o in production_rbac() + stack_rbac() if o["kind"] in CLUSTER_SCOPED]


def test_the_api_server_holds_productions_roles_and_bindings(cluster: Cluster) -> None:
    for obj in expected_rbac():
        stored = json.loads(
            cluster.kubectl("get", obj["kind"].lower(), obj["metadata"]["name"], "-o", "json").stdout
        )
        for key in ("rules", "roleRef", "subjects"):
            assert stored.get(key) == obj.get(key), (obj["metadata"]["name"], key)


def test_no_binding_gives_a_flux_controller_more_than_production(cluster: Cluster) -> None:
    expected = {o["metadata"]["name"] for o in expected_rbac() if o["kind"] == "ClusterRoleBinding"}
    for kind in ("clusterrolebindings", "rolebindings"):
        listed = json.loads(cluster.kubectl("get", kind, "-A", "-o", "json").stdout)["items"]
        for binding in listed:
            subjects = binding.get("subjects") or []
            if any(s.get("namespace") == NAMESPACE and s["name"] in CONTROLLERS for s in subjects):
                assert kind == "clusterrolebindings" and binding["metadata"]["name"] in expected, binding


def _grants(rules: Iterable[Mapping[str, Any]], verb: str, group: str, resource: str) -> bool:
    """Kubernetes RBAC (kubernetes.io/docs/reference/access-authn-authz/rbac): a rule matches when its
    verbs, apiGroups and resources each hold the request's value or `*`; permissions only add up."""
    return any(
        {verb, "*"} & set(r.get("verbs", []))
        and {group, "*"} & set(r.get("apiGroups", []))
        and {resource, "*"} & set(r.get("resources", []))
        and not r.get("resourceNames")
        for r in rules
    )


def production_allows(controller: str, verb: str, group: str, resource: str) -> bool:
    """What production's ClusterRoleBindings let `controller`'s account do, in any namespace."""
    objects = expected_rbac()
    roles = by_name(objects, "ClusterRole")
    for binding in by_name(objects, "ClusterRoleBinding").values():
        subject = {"kind": "ServiceAccount", "name": controller, "namespace": NAMESPACE}
        if subject in binding["subjects"] and _grants(
            roles[binding["roleRef"]["name"]]["rules"], verb, group, resource
        ):
            return True
    return False


# (verb, API group, resource): what a controller's stolen token could try in kube-system.
KUBE_SYSTEM_PROBES = [
    ("create", "", "serviceaccounts/token"),
    ("get", "", "secrets"),
    ("list", "", "secrets"),
    ("create", "", "secrets"),
    ("create", "", "pods"),
    ("patch", "apps", "deployments"),
    ("delete", "", "configmaps"),
    ("create", "coordination.k8s.io", "leases"),
    ("impersonate", "", "serviceaccounts"),
    ("create", "rbac.authorization.k8s.io", "rolebindings"),
    ("patch", "kustomize.toolkit.fluxcd.io", "kustomizations"),
]


def can_i(cluster: Cluster, controller: str, verb: str, group: str, resource: str) -> bool:
    """The API server's answer for the controller's account with the groups its token carries
    (kubernetes.io/docs/reference/access-authn-authz/service-accounts-admin: `system:serviceaccounts`,
    `system:serviceaccounts:<namespace>`, and `system:authenticated`)."""
    # kubectl reads `resource/name`: a subresource goes in --subresource (`kubectl auth can-i --help`).
    resource, _, subresource = resource.partition("/")
    target = f"{resource}.{group}" if group else resource
    extra = [f"--subresource={subresource}"] if subresource else []
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}", "system:authenticated"]
    proc = cluster.kubectl(
        "auth", "can-i", verb, target, "-n", "kube-system",
        "--as", f"system:serviceaccount:{NAMESPACE}:{controller}",
        *[f"--as-group={g}" for g in groups], *extra, check=False,
    )  # fmt: skip
    return proc.stdout.strip() == "yes"


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_what_a_flux_controller_may_do_in_kube_system_matches_production(
    cluster: Cluster, controller: str
) -> None:
    answers = {probe: can_i(cluster, controller, *probe) for probe in KUBE_SYSTEM_PROBES}
    expected = {probe: production_allows(controller, *probe) for probe in KUBE_SYSTEM_PROBES}
    assert answers == expected
    # What that means, spelled out: no controller can mint tokens for kube-system's accounts, run a pod
    # there or bind itself a role; every one reads its Secrets (crd-controller's `get secrets`), as on EKS.
    assert answers[("create", "", "serviceaccounts/token")] is False
    assert answers[("get", "", "secrets")] is True
    assert answers[("create", "", "pods")] is False
    assert answers[("create", "rbac.authorization.k8s.io", "rolebindings")] is False
    assert answers[("impersonate", "", "serviceaccounts")] is (controller == "kustomize-controller")
