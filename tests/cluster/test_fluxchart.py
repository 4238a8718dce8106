"""plane/fluxchart.py reads the flags and RBAC of production's Flux from the Flux Operator's source at the
pinned chart version; here, against that source and against sources that no longer have its shape."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.gitops import FLUX_INSTANCE_SPEC, FLUX_VERSION
from plane.fluxchart import (
    CONTROLLERS,
    SourceError,
    controller_args,
    instance_patches,
    operator_source,
    pinned_chart_version,
    production_rbac,
    roles_kustomization,
)
from tests.conftest import ROOT, require
from tests.infra.conftest import run_program


def test_the_multitenant_profile_gives_the_lockdown_flags() -> None:
    """flux-operator internal/builder/profiles.go `profileClusterMultitenant`: --no-cross-namespace-refs
    for kustomize- and notification-controller (among others), --no-remote-bases for
    kustomize-controller, --default-service-account=<tenantDefaultServiceAccount> for kustomize- and
    helm-controller; nothing for source-controller."""
    gate = "--feature-gates=ObjectLevelWorkloadIdentity=false"  # workload identity, after the profile
    assert controller_args("kustomize-controller") == [
        "--no-cross-namespace-refs=true",
        "--no-remote-bases=true",
        "--default-service-account=default",
        gate,
    ]
    assert controller_args("notification-controller") == ["--no-cross-namespace-refs=true", gate]
    assert controller_args("source-controller") == [gate]


def test_the_instances_own_patches_come_after_the_profile() -> None:
    """fluxinstance_controller.go appends `spec.kustomize.patches` after the profiles."""
    extra = {
        "target": {"kind": "Deployment", "name": "(source-controller|kustomize-controller)"},
        "patch": "- op: add\n  path: /spec/template/spec/containers/0/args/-\n  value: --concurrent=2\n",
    }
    spec = {**FLUX_INSTANCE_SPEC, "kustomize": {"patches": [extra]}}
    gate = "--feature-gates=ObjectLevelWorkloadIdentity=false"
    assert controller_args("source-controller", spec) == [gate, "--concurrent=2"]
    assert controller_args("kustomize-controller", spec)[-1] == "--concurrent=2"
    assert controller_args("notification-controller", spec) == ["--no-cross-namespace-refs=true", gate]
    single = {**FLUX_INSTANCE_SPEC, "cluster": {"multitenant": False}}
    assert controller_args("kustomize-controller", single) == [gate]


def test_an_unknown_controller_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown controller 'helm-controller'"):
        controller_args("helm-controller")


def test_a_source_without_the_profile_fails_loudly(tmp_path: Path) -> None:
    fake = tmp_path / "operator"
    shutil.copytree(operator_source() / "internal" / "builder", fake / "internal" / "builder")
    profiles = fake / "internal" / "builder" / "profiles.go"
    profiles.write_text(profiles.read_text().replace("profileClusterMultitenant =", "renamed ="))
    with pytest.raises(SourceError, match="no profileClusterMultitenant"):
        controller_args("kustomize-controller", source=fake)


def test_a_flux_version_the_operator_does_not_ship_fails_loudly() -> None:
    spec = {**FLUX_INSTANCE_SPEC, "distribution": {"version": "2.1.0", "registry": "ghcr.io/fluxcd"}}
    with pytest.raises(SourceError, match=r"does not ship Flux 2\.1\.0"):
        production_rbac(spec)
    assert (operator_source() / "config" / "data" / "flux" / f"v{FLUX_VERSION}" / "rbac.yaml").is_file()


def test_an_unpublished_operator_version_fails_with_the_reason() -> None:
    with pytest.raises(
        SourceError, match=r"cannot download github.com/controlplaneio-fluxcd/flux-operator@v0\.0\.1"
    ):
        operator_source("0.0.1")


def kustomized(tmp_path: Path, spec: dict) -> list[dict]:
    """The operator's manifests for the pinned Flux with the FluxInstance's patches, built by the real
    kustomize (`kubectl kustomize`), as the operator builds them (internal/builder/build.go)."""
    require(shutil.which("kubectl") is not None, "kubectl (for `kubectl kustomize`) is not installed")
    data = operator_source() / "config" / "data" / "flux" / f"v{FLUX_VERSION}"
    files = [f"{c}.yaml" for c in spec["components"]]
    for name in files:
        shutil.copy(data / name, tmp_path / name)
    # The operator's layout (internal/builder/build.go `generate`): rbac.yaml in `roles/`, built by
    # kustomizationRolesTmpl (name suffix, token permission removed), a resource of the top level.
    (tmp_path / "roles").mkdir()
    shutil.copy(data / "rbac.yaml", tmp_path / "roles" / "rbac.yaml")
    roles = roles_kustomization(spec, operator_source())
    (tmp_path / "roles" / "kustomization.yaml").write_text(yaml.safe_dump(roles, sort_keys=False))
    kustomization = {
        "namespace": "flux-system",
        "resources": ["roles", *files],
        "patches": instance_patches(spec, operator_source()),
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    built = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, check=True
    )
    return [d for d in yaml.safe_load_all(built.stdout) if d]


def test_the_real_kustomize_renders_the_flags_and_rbac_read_here(tmp_path: Path) -> None:
    data = operator_source() / "config" / "data" / "flux" / f"v{FLUX_VERSION}"
    base = {c: deployment_args(yaml.safe_load_all((data / f"{c}.yaml").read_text()), c) for c in CONTROLLERS}
    built = kustomized(tmp_path, FLUX_INSTANCE_SPEC)
    for controller in CONTROLLERS:
        args = deployment_args(built, controller)
        assert args[: len(base[controller])] == base[controller]
        assert args[len(base[controller]) :] == controller_args(controller), controller
    rbac = [d for d in built if d["kind"] in ("ClusterRole", "ClusterRoleBinding", "ResourceQuota")]
    names = {d["metadata"]["name"] for d in rbac}
    assert "cluster-reconciler-flux-system" not in names and "crd-controller-flux-system" in names
    assert canonical(rbac) == canonical(production_rbac())


def test_production_keeps_no_token_permission_and_turns_the_gate_off() -> None:
    """Flux 2.9 without object-level workload identity (flux-operator workload_identity.go): the
    operator removes `create serviceaccounts/token` from crd-controller (kustomizationRolesTmpl,
    `/rules/11`) and passes `--feature-gates=ObjectLevelWorkloadIdentity=false` to every controller."""
    roles = {o["metadata"]["name"]: o for o in production_rbac() if o["kind"] == "ClusterRole"}
    rules = roles["crd-controller-flux-system"]["rules"]
    assert [r for r in rules if "serviceaccounts/token" in r.get("resources", [])] == []
    for controller in CONTROLLERS:
        assert "--feature-gates=ObjectLevelWorkloadIdentity=false" in controller_args(controller)
    with pytest.raises(ValueError, match="objectLevelWorkloadIdentity"):
        production_rbac({**FLUX_INSTANCE_SPEC, "cluster": {"objectLevelWorkloadIdentity": True}})


def deployment_args(documents: object, controller: str) -> list[str]:
    (deployment,) = [
        d for d in documents if d and d["kind"] == "Deployment" and d["metadata"]["name"] == controller
    ]
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def canonical(objects: list[dict]) -> set[str]:
    """Objects compared by what they grant: kind, name, namespace, rules, roleRef, subjects, spec."""
    keep = ("rules", "roleRef", "subjects", "spec")
    return {
        json.dumps(
            [o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"), {k: o.get(k) for k in keep}],
            sort_keys=True,
        )
        for o in objects
    }


def test_the_source_is_the_operator_the_stack_pins() -> None:
    """The plane follows the committed config's chart version, which is the operator's release."""
    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    version = config["gitops-eks:flux"]["chartVersion"]
    assert operator_source().name == f"flux-operator@v{version}"


@pytest.mark.parametrize("stack_file", sorted(p.name for p in ROOT.glob("Pulumi.*.yaml")))
def test_every_committed_stack_pins_an_operator_release_that_ships_the_pinned_flux(stack_file: str) -> None:
    """The `flux-operator` chart's version is the operator's release; the FluxInstance asks that
    release for Flux `FLUX_VERSION`, which it renders from `config/data/flux/v<FLUX_VERSION>/`
    (internal/controller/fluxinstance_controller.go `MatchVersionWithEmbedded`). A stack pinning
    anything else (such as a `flux2` chart version) fails here, not on `pulumi up`."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["name"]
    config = yaml.safe_load((ROOT / stack_file).read_text())["config"]
    version = str(config.get(f"{project}:flux", {}).get("chartVersion", pinned_chart_version()))
    shipped = operator_source(version) / "config" / "data" / "flux" / f"v{FLUX_VERSION}"
    assert shipped.is_dir(), f"{stack_file}: flux-operator {version} does not ship Flux {FLUX_VERSION}"


def test_the_receivers_load_balancer_reaches_the_pods_the_operator_runs() -> None:
    """The stack's LoadBalancer Service and NetworkPolicy select notification-controller's pods by label
    and send to its webhook port: the Deployment the operator applies for the pinned Flux
    (`config/data/flux/v<FLUX_VERSION>/notification-controller.yaml`) carries that label and serves that
    port."""
    data = operator_source() / "config" / "data" / "flux" / f"v{FLUX_VERSION}"
    documents = list(yaml.safe_load_all((data / "notification-controller.yaml").read_text()))
    (deployment,) = [
        d
        for d in documents
        if d and d["kind"] == "Deployment" and d["metadata"]["name"] == "notification-controller"
    ]
    pod = deployment["spec"]["template"]
    ports = {p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    program = run_program()
    (service,) = [r for r in program.of_type("kubernetes:core/v1:Service") if r.name.endswith("-receiver")]
    (policy,) = program.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    selectors = [service.inputs["spec"]["selector"], policy.inputs["spec"]["podSelector"]["matchLabels"]]
    for selector in selectors:
        assert selector.items() <= pod["metadata"]["labels"].items(), selector
    assert {p["targetPort"] for p in service.inputs["spec"]["ports"]} <= ports
    assert {p["port"] for p in policy.inputs["spec"]["ingress"][0]["ports"]} <= ports


def test_the_operator_pins_each_controller_of_the_stacks_registry_by_digest() -> None:
    """fluxinstance_controller.go `build` takes the images from `config/data/flux-images/v<version>/`
    (`ExtractComponentImagesWithDigest`: registry `ghcr.io/fluxcd` is the `upstream-alpine` variant), so
    production's controllers run as `<image>:<tag>@<digest>`, at the tags the plane builds."""
    assert FLUX_INSTANCE_SPEC["distribution"]["registry"] == "ghcr.io/fluxcd"
    shipped = (
        operator_source() / "config" / "data" / "flux-images" / f"v{FLUX_VERSION}" / "upstream-alpine.yaml"
    )
    images = {i["name"]: i for i in yaml.safe_load(shipped.read_text())["images"]}
    data = operator_source() / "config" / "data" / "flux" / f"v{FLUX_VERSION}"
    for controller in CONTROLLERS:
        image = images[f"ghcr.io/fluxcd/{controller}"]
        assert image["digest"].startswith("sha256:") and len(image["digest"]) == 71, controller
        assert f"image: fluxcd/{controller}:{image['newTag']}" in (data / f"{controller}.yaml").read_text()
