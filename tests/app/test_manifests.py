"""k8s/ as Flux applies it (an environment's overlay over k8s/base): rendered by kustomize, validated
strictly, hardened, and scanned by checkov."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from tests.conftest import ROOT, require

K8S = ROOT / "k8s"
BASE = K8S / "base"
ENVIRONMENTS = tuple(yaml.safe_load((K8S / "environments.yaml").read_text())["environments"])
OVERLAY = K8S / "overlays" / ENVIRONMENTS[0]  # the first environment: every release lands there


def stack_kubernetes_version() -> str:
    """The cluster version the dev stack deploys (Pulumi.dev.yaml), as kubernetes-validate names it.

    An exact major.minor match is used; if the bundled schemas lack it (a newer cluster than this
    kubernetes-validate release knows), the newest schema it has is the closest strict check there
    is, and a warning in the test summary says so.
    """
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["name"]
    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    wanted = str(config[f"{project}:cluster"]["kubernetesVersion"])
    known = all_versions()
    exact = [v for v in known if v.startswith(f"{wanted}.")]
    if exact:
        return exact[-1]
    warnings.warn(
        f"kubernetes-validate has no schema for {wanted}; validating against {known[-1]}", stacklevel=2
    )
    return known[-1]


def render(directory: Path) -> list[dict[str, Any]]:
    require(shutil.which("kubectl") is not None, "kubectl (for `kubectl kustomize`) is not installed")
    out = subprocess.run(["kubectl", "kustomize", str(directory)], check=True, capture_output=True, text=True)
    return list(yaml.safe_load_all(out.stdout))


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return render(OVERLAY)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_environment_applies_the_base_with_only_its_image(
    environment: str, rendered: list[dict[str, Any]]
) -> None:
    """Each overlay is the base plus the release contract (its own image, the day-0 replicas entry):
    what one environment runs, the next one runs once promoted."""
    overlay = K8S / "overlays" / environment
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    assert set(kustomization) == {"apiVersion", "kind", "resources", "images", "replicas"}
    assert kustomization["resources"] == ["../../base"]
    assert render(overlay) == rendered
    assert sorted(p.name for p in (K8S / "overlays").iterdir()) == sorted(ENVIRONMENTS)


def one(resources: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matches = [r for r in resources if r["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, got {len(matches)}"
    return matches[0]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def test_validates_strictly_for_the_stack_kubernetes_version(rendered: list[dict[str, Any]]) -> None:
    version = stack_kubernetes_version()
    for resource in rendered:
        kubernetes_validate.validate(resource, version, strict=True)
    assert {r["kind"] for r in rendered} >= {"Deployment", "Service", "PodDisruptionBudget"}


def test_everything_lands_in_the_app_namespace_which_the_stack_owns(rendered: list[dict[str, Any]]) -> None:
    """The Namespace and its Pod Security labels are declared by the stack (infra/gitops.py), outside
    the path Flux applies: a commit here cannot relax them, and prune cannot delete the namespace."""
    from infra.gitops import APP_NAMESPACE

    assert [r for r in rendered if r["kind"] == "Namespace"] == []
    assert {r["metadata"]["namespace"] for r in rendered} == {APP_NAMESPACE}


def test_deployment_is_hardened(rendered: list[dict[str, Any]]) -> None:
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    [container] = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert isinstance(security["runAsUser"], int) and security["runAsUser"] > 0
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    [tmp] = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    [volume] = [v for v in pod["volumes"] if v["name"] == tmp["name"]]
    assert "emptyDir" in volume


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """k8s/ as Flux applies it after the first release: the release module's own edit of the shipped
    kustomization.yaml."""
    from jenkins import manifest
    from jenkins.core import ImageEntry

    directory = tmp_path_factory.mktemp("released") / "k8s"
    shutil.copytree(K8S, directory)
    path = directory / OVERLAY.relative_to(K8S) / "kustomization.yaml"
    entry = ImageEntry("hello-gitops", "127.0.0.1:5000/hello", "1" * 40, "sha256:" + "ab" * 32)
    path.write_text(manifest.with_image(path.read_text(), entry))
    return render(path.parent)


def test_nothing_released_yet_runs_no_pod_and_the_first_release_scales_up(
    rendered: list[dict[str, Any]], released: list[dict[str, Any]]
) -> None:
    """Day 0: the shipped image names no release (git's null id), so the shipped manifests ask for no
    pod at all: none waits in ImagePullBackOff. kstatus, which kustomize-controller's health checks use,
    judges a Deployment with spec.replicas 0 by the same rules as any other (fluxcd/cli-utils v1.2.2
    pkg/kstatus/status/core.go deploymentConditions), so Flux reports Ready once the Deployment
    controller has marked it Available (tests/cluster/test_flux.py proves it on the real plane)."""
    [container] = one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith(":" + "0" * 40)
    assert one(rendered, "Deployment")["spec"]["replicas"] == 0
    assert one(released, "Deployment")["spec"]["replicas"] == 2  # deployment.yaml's own count
    raw = yaml.safe_load((BASE / "deployment.yaml").read_text())
    assert raw["spec"]["replicas"] == 2
    # The release module finds the entry by the app's image name: the Deployment carries the same name.
    [entry] = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())["replicas"]
    assert entry == {"name": raw["metadata"]["name"], "count": 0}
    assert raw["metadata"]["name"] == raw["spec"]["template"]["spec"]["containers"][0]["image"]


def test_rollout_never_drops_below_desired(released: list[dict[str, Any]]) -> None:
    spec = one(released, "Deployment")["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pdb = one(released, "PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert pdb["minAvailable"] == 1


def test_probes_and_shutdown_timing_agree_with_the_server(rendered: list[dict[str, Any]]) -> None:
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    readiness = container["readinessProbe"]
    assert readiness["httpGet"] == {"path": "/readyz", "port": "http"}
    env = env_of(container)
    drain, graceful = float(env["DRAIN_SECONDS"]), float(env["GRACEFUL_TIMEOUT"])
    # The kubelet notices the 503 well before the drain ends and the listener closes...
    assert readiness["periodSeconds"] * readiness["failureThreshold"] < drain / 2
    # ...and never SIGKILLs a pod that is still finishing requests.
    assert pod["terminationGracePeriodSeconds"] > drain + graceful


def test_service_is_a_load_balancer_from_80_to_8000(rendered: list[dict[str, Any]]) -> None:
    service = one(rendered, "Service")["spec"]
    deployment = one(rendered, "Deployment")["spec"]["template"]
    assert service["type"] == "LoadBalancer"
    [port] = service["ports"]
    [container] = deployment["spec"]["containers"]
    target = {p["name"]: p["containerPort"] for p in container["ports"]}[port["targetPort"]]
    assert (port["port"], target) == (80, 8000)
    assert service["selector"].items() <= deployment["metadata"]["labels"].items()


def test_images_entry_is_the_release_contract(rendered: list[dict[str, Any]]) -> None:
    """One images entry, named as deployment.yaml names the image; newName, a full SHA, maybe a digest."""
    text = (OVERLAY / "kustomization.yaml").read_text()
    [entry] = yaml.safe_load(text)["images"]
    deployment = yaml.safe_load((BASE / "deployment.yaml").read_text())
    [raw_container] = deployment["spec"]["template"]["spec"]["containers"]
    assert entry["name"] == raw_container["image"] == "hello-gitops"
    assert set(entry) <= {"name", "newName", "newTag", "digest"}
    assert re.fullmatch(r"[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+", entry["newName"])
    assert re.fullmatch(r"[0-9a-f]{40}", entry["newTag"])
    expected = f"{entry['newName']}:{entry['newTag']}"
    if "digest" in entry:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", entry["digest"])
        expected += f"@{entry['digest']}"
    [container] = one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == expected
    assert "release module" in text, "the comment telling readers who edits the entry is gone"


def test_a_pinned_digest_renders_and_validates(tmp_path: Path) -> None:
    """What the release module writes once the registry confirmed the image: tag and digest."""
    shutil.copytree(K8S, tmp_path / "k8s")
    kustomization = tmp_path / "k8s" / OVERLAY.relative_to(K8S) / "kustomization.yaml"
    data = yaml.safe_load(kustomization.read_text())
    digest = "sha256:" + "ab" * 32
    data["images"][0]["digest"] = digest
    kustomization.write_text(yaml.safe_dump(data))
    resources = render(kustomization.parent)
    for resource in resources:
        kubernetes_validate.validate(resource, stack_kubernetes_version(), strict=True)
    [container] = one(resources, "Deployment")["spec"]["template"]["spec"]["containers"]
    entry = data["images"][0]
    assert container["image"] == f"{entry['newName']}:{entry['newTag']}@{digest}"


def checkov(*args: str) -> str:
    binary = os.environ.get("CHECKOV", "")
    require(
        bool(binary) and Path(binary).is_file(),
        "checkov is not installed (CHECKOV unset; `make checkov-venv`)",
    )
    # --skip-download: no network; the checks themselves ship with checkov.
    result = subprocess.run(
        [binary, *args, "--compact", "--skip-download", "--output", "json"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"checkov {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.parametrize(
    "args",
    [("-d", "k8s", "--framework", "kubernetes"), ("-f", "app/Dockerfile", "--framework", "dockerfile")],
    ids=["k8s", "dockerfile"],
)
def test_checkov_passes(args: tuple[str, ...]) -> None:
    report = yaml.safe_load(checkov(*args))  # JSON is YAML
    summary = report["summary"]
    assert (summary["failed"], summary["parsing_errors"]) == (0, 0)
    assert summary["passed"] > 0, "checkov checked nothing"
    for skipped in report["results"]["skipped_checks"]:
        assert skipped["check_result"].get("suppress_comment"), (
            f"{skipped['check_id']} is skipped without a reason"
        )
