"""The stack's FluxInstance against the Flux Operator's own CRD (from the operator's module at the pinned
chart version), in the real API server: strict field validation, the CRD's defaults and its CEL rules."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from plane.fluxchart import operator_source
from plane.localcluster import Cluster
from tests.infra.conftest import run_program

CRD = "fluxinstances.fluxcd.controlplane.io"


@pytest.fixture(scope="module")
def instance(cluster: Cluster) -> dict[str, Any]:
    crd = operator_source() / "config" / "crd" / "bases" / "fluxcd.controlplane.io_fluxinstances.yaml"
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=60s")
    (declared,) = run_program().of_type("kubernetes:fluxcd.controlplane.io/v1:FluxInstance")
    return dict(declared.inputs)


def contains(stored: Any, declared: Any) -> bool:
    """Whether the stored object keeps every declared value (the API server may add defaults)."""
    if isinstance(declared, dict):
        return isinstance(stored, dict) and all(
            k in stored and contains(stored[k], v) for k, v in declared.items()
        )
    return stored == declared


def dry_run(cluster: Cluster, obj: dict[str, Any]) -> Any:
    """A server-side dry run with strict field validation (kubectl's default `--validate=strict`)."""
    return cluster.kubectl(
        "create",
        "--dry-run=server",
        "--validate=strict",
        "-o",
        "json",
        "-f",
        "-",
        stdin=json.dumps(obj),
        check=False,
    )


def test_the_stacks_flux_instance_is_accepted_as_declared(cluster: Cluster, instance: dict[str, Any]) -> None:
    result = dry_run(cluster, instance)

    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr  # no unknown or duplicate field
    stored = json.loads(result.stdout)["spec"]
    assert contains(stored, instance["spec"]), (stored, instance["spec"])
    # The CRD's defaults: the operator waits for Flux to be healthy and migrates stored objects.
    assert stored["wait"] is True and stored["migrateResources"] is True


def test_the_crd_refuses_what_the_operator_would_not_run(cluster: Cluster, instance: dict[str, Any]) -> None:
    """The checks above can fail: a second name, an unknown component and a misspelt field are refused."""
    renamed = copy.deepcopy(instance)
    renamed["metadata"]["name"] = "flux2"
    refused = dry_run(cluster, renamed)
    assert refused.returncode != 0 and "the only accepted name for a FluxInstance is 'flux'" in refused.stderr

    unknown = copy.deepcopy(instance)
    unknown["spec"]["components"] = [*unknown["spec"]["components"], "helm-controler"]
    refused = dry_run(cluster, unknown)
    assert refused.returncode != 0 and "helm-controler" in refused.stderr, refused.stderr

    misspelt = copy.deepcopy(instance)
    misspelt["spec"]["cluster"]["multiTenant"] = True
    refused = dry_run(cluster, misspelt)
    assert refused.returncode != 0 and "multiTenant" in refused.stderr, refused.stderr
