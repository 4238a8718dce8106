"""The flags the pinned flux2 chart gives Flux's controllers for the stack's values (infra/gitops.py
`CHART_VALUES`), so that the test cluster (scripts/cluster.sh) runs them as EKS does and cannot drift.

What the chart renders, read in fluxcd-community/helm-charts at flux2-2.18.3
(charts/flux2/templates/kustomize-controller.yaml and source-controller.yaml, read 2026-12-01):
- kustomize-controller: with `multitenancy.enabled`, `--no-cross-namespace-refs=true` and
  `--default-service-account=<multitenancy.defaultServiceAccount | default "default">`; then every
  entry of `kustomizeController.container.additionalArgs`.
- source-controller: every entry of `sourceController.container.additionalArgs`.
- notification-controller: with `multitenancy.enabled`, `--no-cross-namespace-refs=true`; then every
  entry of `notificationController.container.additionalArgs` (templates/notification-controller.yaml).
The flags that depend on running in a pod (events address, storage address, leader election) are set
by scripts/cluster.sh for loopback.

    python -m scripts.fluxchart kustomize-controller   # one flag per line
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from infra.gitops import CHART_VALUES

VALUES_KEY = {
    "kustomize-controller": "kustomizeController",
    "source-controller": "sourceController",
    "notification-controller": "notificationController",
}


def controller_args(controller: str, values: Mapping[str, Any] = CHART_VALUES) -> list[str]:
    """The chart's values-dependent flags for `controller`, in the chart's order."""
    if controller not in VALUES_KEY:
        raise ValueError(f"unknown controller {controller!r}: expected one of {sorted(VALUES_KEY)}")
    args: list[str] = []
    multitenancy = values.get("multitenancy", {})
    if controller == "kustomize-controller" and multitenancy.get("enabled"):
        account = multitenancy.get("defaultServiceAccount") or "default"
        args += ["--no-cross-namespace-refs=true", f"--default-service-account={account}"]
    if controller == "notification-controller" and multitenancy.get("enabled"):
        args += ["--no-cross-namespace-refs=true"]
    args += values.get(VALUES_KEY[controller], {}).get("container", {}).get("additionalArgs", [])
    return args


def cluster_reconciler_is_admin(values: Mapping[str, Any] = CHART_VALUES) -> bool:
    """Whether the chart binds kustomize-controller to cluster-admin (`cluster-reconciler`,
    cluster-reconciler-clusterrolebinding.yaml: `or (not multitenancy.enabled) multitenancy.privileged`);
    otherwise it binds only `impersonate` on serviceaccounts (cluster-reconciler-impersonator-*.yaml)."""
    multitenancy = values.get("multitenancy", {})
    return not multitenancy.get("enabled", False) or bool(multitenancy.get("privileged", True))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python -m scripts.fluxchart {'|'.join(VALUES_KEY)}")
    try:
        for arg in controller_args(sys.argv[1]):
            print(arg)
    except ValueError as error:
        sys.exit(f"error: {error}")
