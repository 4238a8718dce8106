"""What Flux may apply: the declared RBAC rules, evaluated against objects a commit to `k8s/` could hold.

The stack runs kustomize-controller without cluster-admin (its FluxInstance deletes `cluster-reconciler`)
and the app's Kustomization impersonates `system:serviceaccount:hello:flux-applier`, so what Flux can
apply from `k8s/` is exactly what that account's bindings allow. The evaluator follows Kubernetes RBAC
(kubernetes.io/docs/reference/access-authn-authz/rbac): permissions are purely additive; a RoleBinding
grants its Role's rules in the binding's namespace only; a Role cannot grant cluster-scoped resources;
a rule matches when its apiGroups, resources and verbs each contain the request's value or `*`.
Server-side apply is a PATCH, and creates on first apply (create), prune deletes.

What the API server itself does with these objects (issue 12's real control plane) is tested there.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.gitops import APP_KINDS, APP_NAMESPACE, FLUX_INSTANCE_SPEC
from tests.conftest import require
from tests.infra.conftest import ROOT, Program

ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
CLUSTER_ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
KUSTOMIZATION = "kubernetes:kustomize.toolkit.fluxcd.io/v1:Kustomization"
APPLY_VERBS = ("get", "create", "patch", "delete")
WRITE_VERBS = ("create", "patch", "update", "delete")

# kind -> (API group, resource, namespaced), from the Kubernetes API reference.
KINDS = {
    "Deployment": ("apps", "deployments", True),
    "Service": ("", "services", True),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets", True),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies", True),
    "Pod": ("", "pods", True),
    "ReplicaSet": ("apps", "replicasets", True),
    "Secret": ("", "secrets", True),
    "ServiceAccount": ("", "serviceaccounts", True),
    "Role": ("rbac.authorization.k8s.io", "roles", True),
    "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings", True),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io", "clusterrolebindings", False),
    "Namespace": ("", "namespaces", False),
    "Kustomization": ("kustomize.toolkit.fluxcd.io", "kustomizations", True),
}


def applier(program: Program) -> tuple[str, str]:
    """(namespace, name) of the service account the app's Kustomization impersonates."""
    (kustomization,) = program.of_type(KUSTOMIZATION)
    return kustomization.inputs["metadata"]["namespace"], kustomization.inputs["spec"]["serviceAccountName"]


def _binds(binding: dict[str, Any], account: tuple[str, str]) -> bool:
    return any(
        s["kind"] == "ServiceAccount" and (s["namespace"], s["name"]) == account for s in binding["subjects"]
    )


def _matches(rule: dict[str, Any], verb: str, group: str, resource: str) -> bool:
    return (
        bool({verb, "*"} & set(rule["verbs"]))
        and bool({group, "*"} & set(rule["apiGroups"]))
        and bool({resource, "*"} & set(rule["resources"]))
        and not rule.get("resourceNames")
    )


def allowed(program: Program, account: tuple[str, str], verb: str, manifest: dict[str, Any]) -> bool:
    """Whether RBAC lets `account` do `verb` on the object `manifest`, from the declared rules."""
    group, resource, namespaced = KINDS[manifest["kind"]]
    namespace = manifest["metadata"].get("namespace")
    # No ClusterRoleBinding the stack declares binds a tenant (its one binds kustomize-controller).
    assert not [b for b in program.of_type(CLUSTER_ROLE_BINDING) if _binds(b.inputs, account)]
    if not namespaced:
        return False  # only a ClusterRole bound cluster-wide grants cluster-scoped resources
    roles = {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r for r in program.of_type(ROLE)
    }
    for binding in program.of_type(ROLE_BINDING):
        where = binding.inputs["metadata"]["namespace"]
        if where != namespace or not _binds(binding.inputs, account):
            continue
        ref = binding.inputs["roleRef"]
        assert ref["kind"] == "Role", "a ClusterRole bound here would need its own evaluation"
        role = roles[(where, ref["name"])]
        if any(_matches(rule, verb, group, resource) for rule in role.inputs["rules"]):
            return True
    return False


def may_apply(program: Program, manifest: dict[str, Any]) -> bool:
    account = applier(program)
    return all(allowed(program, account, verb, manifest) for verb in APPLY_VERBS)


def refused_verbs(program: Program, manifest: dict[str, Any]) -> list[str]:
    account = applier(program)
    return [verb for verb in APPLY_VERBS if not allowed(program, account, verb, manifest)]


def rendered_k8s(directory: Path = ROOT / "k8s" / "overlays" / "dev") -> list[dict[str, Any]]:
    require(shutil.which("kubectl") is not None, "kubectl (for `kubectl kustomize`) is not installed")
    result = subprocess.run(
        ["kubectl", "kustomize", str(directory)], check=True, capture_output=True, text=True
    )
    return list(yaml.safe_load_all(result.stdout))


def manifest(kind: str, name: str, namespace: str | None = APP_NAMESPACE, **body: Any) -> dict[str, Any]:
    metadata = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    return {"kind": kind, "metadata": metadata, **body}


PRIVILEGED_POD_SPEC = {
    "containers": [{"name": "x", "image": "busybox", "securityContext": {"privileged": True}}],
    "hostPID": True,
}


# --- the controllers run locked down ---------------------------------------------------------------


def test_the_flux_instance_locks_the_controllers_down() -> None:
    """FluxInstance `cluster.multitenant` (flux-operator internal/builder/profiles.go
    `profileClusterMultitenant`): --no-cross-namespace-refs=true, --no-remote-bases=true and
    --default-service-account=<tenantDefaultServiceAccount>; its patch deletes the `cluster-reconciler`
    cluster-admin binding; no helm-controller (nothing here is a HelmRelease). The flags each controller
    gets are read from the operator's source in tests/cluster/test_fluxchart.py."""
    assert FLUX_INSTANCE_SPEC["cluster"]["multitenant"] is True
    assert FLUX_INSTANCE_SPEC["cluster"]["tenantDefaultServiceAccount"] == "default"
    assert "helm-controller" not in FLUX_INSTANCE_SPEC["components"]
    targets = [p["target"] for p in FLUX_INSTANCE_SPEC["kustomize"]["patches"]]
    assert {"kind": "ClusterRoleBinding", "name": "cluster-reconciler"} in targets


def test_the_app_kustomization_impersonates_an_account_in_the_app_namespace(dev_program: Program) -> None:
    (kustomization,) = dev_program.of_type(KUSTOMIZATION)
    assert applier(dev_program) == (APP_NAMESPACE, "flux-applier")
    assert kustomization.inputs["spec"]["targetNamespace"] == APP_NAMESPACE
    account = dev_program.one("kubernetes:core/v1:ServiceAccount")
    assert account.inputs["metadata"] == {"name": "flux-applier", "namespace": APP_NAMESPACE}
    assert account.inputs["automountServiceAccountToken"] is False


def test_flux_objects_never_reference_across_namespaces(dev_program: Program) -> None:
    """--no-cross-namespace-refs: every Flux object and the Secrets it names sit in one namespace."""
    flux = [r for r in dev_program.resources if "toolkit.fluxcd.io" in r.type]
    assert {r.inputs["metadata"]["namespace"] for r in flux} == {APP_NAMESPACE}
    for resource in flux:
        spec = resource.inputs["spec"]
        refs = [spec.get("sourceRef"), *spec.get("resources", []), *spec.get("eventSources", [])]
        assert all("namespace" not in ref for ref in refs if ref), resource.name


def test_the_namespace_and_its_pod_security_labels_belong_to_the_stack(dev_program: Program) -> None:
    namespace = dev_program.one("kubernetes:core/v1:Namespace", "gitops-sync-app-namespace")
    assert namespace.inputs["metadata"]["name"] == APP_NAMESPACE
    assert namespace.inputs["metadata"]["labels"] == {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
    }
    # Never garbage-collected by Flux (kustomize-controller docs, "kustomize.toolkit.fluxcd.io/prune"):
    # the Kustomization that applied k8s/namespace.yaml before the upgrade would otherwise delete it.
    assert namespace.inputs["metadata"]["annotations"] == {"kustomize.toolkit.fluxcd.io/prune": "disabled"}
    (kustomization,) = dev_program.of_type(KUSTOMIZATION)
    assert namespace.urn in kustomization.property_dependencies["metadata"]


# --- evaluated against objects ---------------------------------------------------------------------


def test_the_role_allows_exactly_the_kinds_k8s_uses(dev_program: Program) -> None:
    rendered = rendered_k8s()
    used = {KINDS[r["kind"]][:2] for r in rendered}
    assert used == {(group, resource) for group, resources in APP_KINDS.items() for resource in resources}
    for resource in rendered:
        assert may_apply(dev_program, resource), resource["kind"]


@pytest.mark.parametrize(
    "attack",
    [
        manifest(
            "ClusterRoleBinding",
            "take-over",
            namespace=None,
            roleRef={"kind": "ClusterRole", "name": "cluster-admin"},
            subjects=[{"kind": "ServiceAccount", "name": "default", "namespace": APP_NAMESPACE}],
        ),
        manifest("Pod", "root-shell", spec=PRIVILEGED_POD_SPEC),
        manifest("Deployment", "miner", namespace="kube-system"),
        manifest("Service", "shadow", namespace="flux-system"),
        manifest("Namespace", APP_NAMESPACE, namespace=None),
        manifest("Secret", "git-auth"),
        manifest("RoleBinding", "more-rights"),
        manifest("Role", "flux-applier"),
        manifest("ServiceAccount", "flux-applier"),
        manifest("Kustomization", "app"),
    ],
    ids=lambda m: f"{m['kind']}/{m['metadata'].get('namespace', '-')}",
)
def test_objects_outside_the_app_are_refused(dev_program: Program, attack: dict[str, Any]) -> None:
    """A ClusterRoleBinding, a privileged bare Pod, objects in other namespaces, the namespace itself
    (its Pod Security labels), the deploy key's Secret, RBAC and Flux's own objects: none may be applied."""
    # The health checks may read the app's Pods (HEALTH_CHECK_READS); nothing here may be written.
    account = applier(dev_program)
    assert not [verb for verb in WRITE_VERBS if allowed(dev_program, account, verb, attack)]
    if attack["kind"] != "Pod":
        assert refused_verbs(dev_program, attack) == list(APPLY_VERBS)


def test_the_health_checks_only_read(dev_program: Program) -> None:
    """kstatus lists a Deployment's ReplicaSets and their Pods (infra/gitops.py HEALTH_CHECK_READS);
    the applier may read them in the app's namespace and write neither."""
    account = applier(dev_program)
    for kind in ("Pod", "ReplicaSet"):
        generated = manifest(kind, "generated")
        assert allowed(dev_program, account, "list", generated), kind
        assert not [verb for verb in WRITE_VERBS if allowed(dev_program, account, verb, generated)], kind


def test_target_namespace_rewrites_an_object_committed_for_another_namespace(tmp_path: Path) -> None:
    """Flux's `targetNamespace` is kustomize's namespace transformer (kustomize-controller generates a
    kustomization with `namespace:`); run the real kustomize to show a kube-system object lands in the
    app's namespace, where the Role applies."""
    (tmp_path / "evil.yaml").write_text(
        yaml.safe_dump(
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "kube-system"}}
        )
    )
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"namespace": APP_NAMESPACE, "resources": ["evil.yaml"]})
    )
    (service,) = rendered_k8s(tmp_path)
    assert service["metadata"]["namespace"] == APP_NAMESPACE


# Pod Security Standards, `restricted` (kubernetes.io/docs/concepts/security/pod-security-standards):
# the controls the privileged pod breaks, and the app's pod must pass.
def restricted_violations(pod: dict[str, Any]) -> list[str]:
    found = [f"host namespace {k}" for k in ("hostNetwork", "hostPID", "hostIPC") if pod.get(k)]
    pod_context = pod.get("securityContext", {})
    for container in pod["containers"]:
        context = {**pod_context, **container.get("securityContext", {})}
        name = container["name"]
        if context.get("privileged"):
            found.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation != false")
        if context.get("runAsNonRoot") is not True:
            found.append(f"{name}: runAsNonRoot != true")
        if context.get("capabilities", {}).get("drop") != ["ALL"]:
            found.append(f"{name}: capabilities not dropping ALL")
        if context.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile unset")
    return found


def test_a_privileged_pod_template_is_refused_by_the_namespaces_pod_security(dev_program: Program) -> None:
    """A Deployment is an allowed kind, so RBAC admits a privileged template; the stack-owned namespace
    label `enforce: restricted` makes the API server refuse its pods (the Kustomization's health check
    then fails, and the Alert reports it on the commit)."""
    namespace = dev_program.one("kubernetes:core/v1:Namespace", "gitops-sync-app-namespace")
    assert namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert "privileged" in " ".join(restricted_violations(PRIVILEGED_POD_SPEC))
    (app,) = [r for r in rendered_k8s() if r["kind"] == "Deployment"]
    assert restricted_violations(app["spec"]["template"]["spec"]) == []


def test_the_applier_outlives_the_kustomization_that_prunes_with_its_rights(dev_program: Program) -> None:
    """On destroy the Kustomization's finalizer prunes `k8s/` as `flux-applier`: its account, Role and
    binding (and the namespace) must still exist then."""
    (kustomization,) = dev_program.of_type(KUSTOMIZATION)
    for type_ in ("kubernetes:core/v1:ServiceAccount", ROLE, ROLE_BINDING):
        assert dev_program.deleted_before(kustomization, dev_program.one(type_)), type_
    namespace = dev_program.one("kubernetes:core/v1:Namespace", "gitops-sync-app-namespace")
    assert dev_program.deleted_before(kustomization, namespace)
