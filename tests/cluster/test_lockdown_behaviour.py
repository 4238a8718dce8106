"""The multi-tenancy lockdown as the real kustomize-controller enforces it, read from its status (not from its
argv): a Kustomization may not take its source from another namespace, and one that names no service
account applies as its namespace's `default` account, which may do nothing.

The flags come from production's FluxInstance through the operator's multitenant profile
(plane/fluxchart.py); these tests show what they do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.gitops import TENANT_DEFAULT_SERVICE_ACCOUNT
from plane.localcluster import FluxLoop, condition
from plane.sandbox import MANIFEST

OTHER_NAMESPACE = "lockdown-probe"


def kustomization(name: str, namespace: str, source: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "interval": "10m",
            "path": f"./{Path(MANIFEST).parent}",
            "prune": False,
            "sourceRef": source,
            **spec,
        },
    }


@pytest.fixture
def probe(flux: FluxLoop) -> Iterator[list[dict[str, Any]]]:
    """Objects a test applies, deleted afterwards (waiting for Flux's finalizer). Namespaces stay: a
    session that reuses the plane applies them again, and one still Terminating would refuse that."""
    created: list[dict[str, Any]] = []
    yield created
    for obj in reversed([o for o in created if o["kind"] != "Namespace"]):
        meta = obj["metadata"]
        where = ["-n", meta["namespace"]] if "namespace" in meta else []
        flux.cluster.kubectl(
            "delete",
            obj["kind"].lower(),
            meta["name"],
            *where,
            "--ignore-not-found",
            "--wait=true",
            "--timeout=60s",
        )


def failed_status(flux: FluxLoop, name: str, namespace: str) -> dict[str, Any]:
    """The Kustomization's Ready condition once the controller has marked it False."""

    def failed() -> dict[str, Any] | None:
        ready = condition(flux.cluster.get("kustomization", name, namespace), "Ready")
        return dict(ready) if ready and ready["status"] == "False" else None

    return flux.cluster.wait_for(f"kustomization {namespace}/{name} to fail", failed, timeout=60)


def test_a_source_in_another_namespace_is_refused(flux: FluxLoop, probe: list[dict[str, Any]]) -> None:
    """kustomize-controller v1.9.4 `getSource`: with --no-cross-namespace-refs, a sourceRef to another
    namespace is an AccessDenied error ("cross-namespace references have been blocked"), marked on Ready
    with reason `AccessDenied` (fluxcd/pkg/apis/acl v0.10.0 `AccessDeniedReason`). The source exists and
    is Ready in its own namespace, so only the lockdown can refuse it."""
    source = flux.named("GitRepository")["metadata"]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OTHER_NAMESPACE}}
    borrower = kustomization(
        "borrower",
        OTHER_NAMESPACE,
        {"kind": "GitRepository", "name": source["name"], "namespace": source["namespace"]},
        serviceAccountName="default",
    )
    probe += [namespace, borrower]
    flux.cluster.apply([namespace, borrower])

    ready = failed_status(flux, "borrower", OTHER_NAMESPACE)

    assert ready["reason"] == "AccessDenied", ready
    refused = f"GitRepository/{source['namespace']}/{source['name']}"
    expected = f"can't access '{refused}', cross-namespace references have been blocked"
    assert expected in ready["message"], ready
    stored = flux.cluster.get("kustomization", "borrower", OTHER_NAMESPACE)
    assert not stored["status"].get("inventory", {}).get("entries")


def test_a_kustomization_without_a_service_account_applies_as_the_default_one_and_is_forbidden(
    flux: FluxLoop, probe: list[dict[str, Any]]
) -> None:
    """kustomize-controller v1.9.4 impersonates `--default-service-account` when `serviceAccountName` is
    empty (`WithServiceAccount(r.DefaultServiceAccount, obj.Spec.ServiceAccountName, namespace)`); that
    account is bound to nothing, so the API server refuses the apply and nothing is created."""
    source = flux.named("GitRepository")["metadata"]
    namespace = source["namespace"]
    flux.wait_applied(flux.repo.tip())
    anonymous = kustomization(
        "no-account",
        namespace,
        {"kind": "GitRepository", "name": source["name"]},
        targetNamespace=namespace,
        namePrefix="no-account-",
    )
    probe.append(anonymous)
    flux.cluster.apply([anonymous])

    ready = failed_status(flux, "no-account", namespace)

    user = f"system:serviceaccount:{namespace}:{TENANT_DEFAULT_SERVICE_ACCOUNT}"
    assert user in ready["message"] and "forbidden" in ready["message"], ready
    listed = flux.cluster.kubectl("get", "deployments", "-n", namespace, "-o", "name").stdout.split()
    assert not [d for d in listed if d.startswith("deployment.apps/no-account-")], listed
