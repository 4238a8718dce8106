"""What the Flux Operator installs for the stack's FluxInstance (infra/gitops.py `FLUX_INSTANCE_SPEC`),
read from the operator's own source at the chart's version, so that the test cluster (plane/cluster.sh)
runs Flux's controllers with production's flags and production's RBAC, and cannot drift from them.

The source: the Go module github.com/controlplaneio-fluxcd/flux-operator at `v<chart version>` (the
`flux-operator` chart's version is the operator's release; the version is the one the stack's committed
config pins, Pulumi.dev.yaml `flux.chartVersion`), fetched through Go's module proxy and
checked against Go's checksum database by `go mod download`. In it:
- `internal/builder/profiles.go`, `profileClusterMultitenant`: the kustomize patches `cluster.multitenant`
  adds (internal/controller/fluxinstance_controller.go appends them before the FluxInstance's own
  `kustomize.patches`); each `add` to `/spec/template/spec/containers/0/args/-` is a flag.
- `internal/builder/workload_identity.go` and `profiles.go` `profileClusterObjectLevelWorkloadIdentity`:
  for Flux >= 2.7 without `cluster.objectLevelWorkloadIdentity`, every controller gets
  `--feature-gates=ObjectLevelWorkloadIdentity=false` and the operator sets
  `RemovePermissionForCreatingServiceAccountTokens`.
- `config/data/flux/v<FLUX_VERSION>/rbac.yaml`: the RBAC the operator applies for that Flux release
  (flux2's `manifests/rbac`), built by `internal/builder/templates.go` `kustomizationRolesTmpl`: every
  object gets the suffix `-<namespace>`, and the token permission (`create serviceaccounts/token`) is
  removed from `crd-controller`; then the FluxInstance's `$patch: delete` patches remove objects.
The flags that depend on running in a pod (events address, storage address, leader election) are set by
plane/cluster.sh for loopback.

    python -m plane.fluxchart kustomize-controller   # its flags, one per line
    python -m plane.fluxchart rbac                   # the flux-system namespace, accounts and RBAC
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from infra.config import DEFAULT_FLUX_CHART
from infra.gitops import (
    FLUX_INSTANCE_SPEC,
    IMPERSONATOR,
    IMPERSONATOR_RULES,
    NAMESPACE,
)

OPERATOR_MODULE = "github.com/controlplaneio-fluxcd/flux-operator"
ROOT = Path(__file__).resolve().parent.parent
CONTROLLERS = tuple(FLUX_INSTANCE_SPEC["components"])
ARGS_PATH = "/spec/template/spec/containers/0/args/-"


class SourceError(RuntimeError):
    """The operator's source could not be fetched or no longer has the shape read here."""


def pinned_chart_version() -> str:
    """The `flux-operator` chart version the stack's committed config pins (else the config default)."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["name"]
    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    return str(config.get(f"{project}:flux", {}).get("chartVersion", DEFAULT_FLUX_CHART))


@cache
def operator_source(version: str | None = None) -> Path:
    """The flux-operator module at `v<version>` (default: the pinned chart's) in Go's module cache,
    downloaded and verified if absent."""
    version = version or pinned_chart_version()
    go = os.environ.get("GO", "go")
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    try:
        found = subprocess.run(
            [go, "mod", "download", "-json", f"{OPERATOR_MODULE}@v{version}"],
            capture_output=True,
            text=True,
            env=env,
            cwd="/",
            check=False,
        )
    except FileNotFoundError as error:
        raise SourceError(f"no Go toolchain at {go!r} (set GO=/path/to/go)") from error
    info = json.loads(found.stdout or "{}")
    if found.returncode != 0 or "Dir" not in info:
        reason = info.get("Error") or found.stderr.strip()
        raise SourceError(f"cannot download {OPERATOR_MODULE}@v{version}: {reason}")
    return Path(info["Dir"])


def multitenant_patches(source: Path, default_service_account: str) -> list[dict[str, Any]]:
    """The patches the operator's multitenant profile adds, as its Go code formats them."""
    text = (source / "internal" / "builder" / "profiles.go").read_text()
    found = re.search(r"^const profileClusterMultitenant = `(.*?)`", text, re.MULTILINE | re.DOTALL)
    if not found:
        raise SourceError(f"{source}: profiles.go has no profileClusterMultitenant")
    return yaml.safe_load(found.group(1).replace("%s", default_service_account))


def _go_string(path: Path, name: str) -> str:
    """The Go raw string literal `name` (a `var` or `const`) in `path`."""
    found = re.search(rf"^(?:var|const) {name} = `(.*?)`", path.read_text(), re.MULTILINE | re.DOTALL)
    if not found:
        raise SourceError(f"{path}: no {name}")
    return found.group(1)


def _removes_token_permission(spec: Mapping[str, Any]) -> bool:
    """workload_identity.go `ValidateAndApplyWorkloadIdentityConfig`: for Flux >= 2.7 without
    object-level workload identity, the operator removes the token permission and turns the gate off."""
    major, minor = (int(p) for p in spec["distribution"]["version"].split(".")[:2])
    if (major, minor) < (2, 7) or spec.get("cluster", {}).get("objectLevelWorkloadIdentity"):
        raise ValueError(
            "only Flux >= 2.7 without cluster.objectLevelWorkloadIdentity is read here: read "
            "internal/builder/workload_identity.go by hand"
        )
    return True


def workload_identity_patches(spec: Mapping[str, Any], source: Path) -> list[dict[str, Any]]:
    """The feature-gate patch the operator adds for `spec` (workload_identity.go, `allControllers`)."""
    _removes_token_permission(spec)
    builder = source / "internal" / "builder"
    code = (builder / "workload_identity.go").read_text()
    listed = re.search(r"firstControllersWithObjectLevelWorkloadIdentity,(.*?)\)", code, re.DOTALL)
    extra = re.search(
        r"allControllers := append\(firstControllersWithObjectLevelWorkloadIdentity, (.*?)\)", code
    )
    if not listed or not extra:
        raise SourceError(f"{builder}/workload_identity.go no longer lists the controllers")
    controllers = re.findall(r'"([a-z-]+)"', listed.group(1) + extra.group(1))
    profile = _go_string(builder / "profiles.go", "profileClusterObjectLevelWorkloadIdentity")
    return yaml.safe_load(profile.replace("%[1]s", "|".join(controllers)).replace("%[2]v", "false"))


def instance_patches(spec: Mapping[str, Any], source: Path) -> list[dict[str, Any]]:
    """Every kustomize patch the operator applies for `spec` that this module reads, in its order
    (fluxinstance_controller.go: the profiles, workload identity, then `spec.kustomize.patches`)."""
    patches: list[dict[str, Any]] = []
    cluster = spec.get("cluster", {})
    if cluster.get("multitenant"):
        patches += multitenant_patches(source, cluster.get("tenantDefaultServiceAccount") or "default")
    patches += workload_identity_patches(spec, source)
    return patches + list(spec.get("kustomize", {}).get("patches", []))


def roles_kustomization(spec: Mapping[str, Any], source: Path) -> dict[str, Any]:
    """templates.go `kustomizationRolesTmpl` as the operator fills it in for `spec`: the kustomization
    that builds rbac.yaml (its name suffix, and the patch removing the token permission)."""
    text = _go_string(source / "internal" / "builder" / "templates.go", "kustomizationRolesTmpl")
    minor = int(spec["distribution"]["version"].split(".")[1])

    def branch(found: re.Match[str]) -> str:
        return found.group(2) if minor <= int(found.group(1)) else found.group(3)

    text = re.sub(
        r"\s*\{\{- if le \.VersionInfo\.Minor (\d+) \}\}(.*?)\s*\{\{- else \}\}(.*?)\s*\{\{- end \}\}",
        branch,
        text,
        flags=re.DOTALL,
    )
    removes = _removes_token_permission(spec)
    text = re.sub(
        r"\s*\{\{- if \.RemovePermissionForCreatingServiceAccountTokens \}\}(.*?)\s*\{\{- end \}\}",
        lambda found: found.group(1) if removes else "",
        text,
        flags=re.DOTALL,
    )
    text = text.replace("{{.Namespace}}", NAMESPACE)
    if "{{" in text:
        raise SourceError(f"kustomizationRolesTmpl has a template action not read here: {text}")
    return yaml.safe_load(text)


def _targets(patch: Mapping[str, Any], kind: str, *names: str) -> bool:
    target = patch.get("target", {})
    # kustomize's selector (api/resmap/reswrangler.go `Select`): `name` is a regular expression matched
    # against the whole name, the original one (before a name suffix) or the current one.
    pattern = target.get("name", ".*")
    return target.get("kind") in (None, kind) and any(re.fullmatch(pattern, n) for n in names)


def controller_args(
    controller: str, spec: Mapping[str, Any] = FLUX_INSTANCE_SPEC, source: Path | None = None
) -> list[str]:
    """The flags the FluxInstance's patches add to `controller`'s container, in the operator's order."""
    if controller not in CONTROLLERS:
        raise ValueError(f"unknown controller {controller!r}: expected one of {sorted(CONTROLLERS)}")
    args: list[str] = []
    for patch in instance_patches(spec, source or operator_source()):
        if not _targets(patch, "Deployment", controller):
            continue
        operations = yaml.safe_load(patch["patch"])
        if not isinstance(operations, list):
            raise ValueError(f"a Deployment patch for {controller} is not a JSON patch: read it by hand")
        args += [op["value"] for op in operations if op["op"] == "add" and op["path"] == ARGS_PATH]
    return args


def deleted(patches: list[dict[str, Any]], obj: Mapping[str, Any], original: str) -> bool:
    """Whether a strategic-merge `$patch: delete` among `patches` removes `obj` (named `original`
    before the roles' name suffix)."""
    for patch in patches:
        if not _targets(patch, obj["kind"], original, obj["metadata"]["name"]):
            continue
        body = yaml.safe_load(patch["patch"])
        if isinstance(body, dict) and body.get("$patch") == "delete":
            return True
    return False


def production_rbac(
    spec: Mapping[str, Any] = FLUX_INSTANCE_SPEC, source: Path | None = None
) -> list[dict[str, Any]]:
    """The RBAC objects the operator applies for `spec`: its rbac.yaml for the pinned Flux version,
    minus what the patches delete, with namespaced objects in flux-system (its kustomization's
    `namespace`)."""
    source = source or operator_source()
    version = spec["distribution"]["version"]
    path = source / "config" / "data" / "flux" / f"v{version}" / "rbac.yaml"
    if not path.is_file():
        raise SourceError(f"{path} is missing: flux-operator at this version does not ship Flux {version}")
    roles = roles_kustomization(spec, source)
    suffix = roles.get("nameSuffix", "")
    built = [obj for obj in yaml.safe_load_all(path.read_text()) if obj]
    renamed = {o["metadata"]["name"] for o in built if o["kind"] == "ClusterRole"}
    for patch in roles.get("patches", []):
        for obj in built:
            if _targets(patch, obj["kind"], obj["metadata"]["name"]):
                _remove(obj, yaml.safe_load(patch["patch"]))
    patches = instance_patches(spec, source)
    objects = []
    for obj in built:
        original = obj["metadata"]["name"]
        obj["metadata"]["name"] = original + suffix
        # kustomize's name references: a binding follows the ClusterRole it names, if renamed.
        if obj.get("roleRef", {}).get("name") in renamed:
            obj["roleRef"]["name"] += suffix
        if deleted(patches, obj, original):
            continue
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            obj["metadata"]["namespace"] = roles["namespace"]
        objects.append(obj)
    return objects


def _remove(obj: dict[str, Any], operations: list[dict[str, Any]]) -> None:
    """JSON patch `remove` operations on a role's rules (the only kind kustomizationRolesTmpl holds)."""
    for op in operations:
        found = re.fullmatch(r"/rules/(\d+)", op.get("path", ""))
        if op.get("op") != "remove" or not found:
            raise SourceError(f"kustomizationRolesTmpl has a patch not read here: {op}")
        del obj["rules"][int(found.group(1))]


def stack_rbac() -> list[dict[str, Any]]:
    """What the stack declares beside the FluxInstance (infra/gitops.py `FluxInstall`): impersonation."""
    rules = [
        {"apiGroups": r["api_groups"], "resources": r["resources"], "verbs": r["verbs"]}
        for r in IMPERSONATOR_RULES
    ]
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": IMPERSONATOR},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": IMPERSONATOR},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": IMPERSONATOR},
            "subjects": [{"kind": "ServiceAccount", "name": "kustomize-controller", "namespace": NAMESPACE}],
        },
    ]


def plane_objects() -> list[dict[str, Any]]:
    """What plane/cluster.sh applies for Flux: its namespace, one account per controller, and
    production's RBAC."""
    identities = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}] + [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": c, "namespace": NAMESPACE}}
        for c in CONTROLLERS
    ]
    return identities + production_rbac() + stack_rbac()


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit(f"usage: python -m plane.fluxchart rbac|{'|'.join(CONTROLLERS)}")
    try:
        if argv[0] == "rbac":
            print(yaml.safe_dump_all(plane_objects(), sort_keys=False), end="")
        else:
            for arg in controller_args(argv[0]):
                print(arg)
    except (ValueError, SourceError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main(sys.argv[1:])
