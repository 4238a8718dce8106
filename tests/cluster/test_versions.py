"""The versions tools/ pins: the API server's minor is the stack's, the staging modules follow it, the
running binaries are the pinned ones, and docs/cluster.md names them all."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from scripts.localcluster import Cluster
from tests.conftest import ROOT

TOOLS = ROOT / "tools"


def required(module_dir: str, path: str) -> str:
    """The version tools/<module_dir>/go.mod requires of `path`."""
    text = (TOOLS / module_dir / "go.mod").read_text()
    found = re.search(rf"^\s*{re.escape(path)} (v\S+)", text, re.MULTILINE)
    assert found, f"tools/{module_dir}/go.mod does not require {path}"
    return found.group(1)


CONTROLLERS = ["source-controller", "kustomize-controller", "notification-controller"]


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_every_module_resolves_to_the_version_the_controller_itself_requires(controller: str) -> None:
    """tools/<controller> requires only the controller, so its build uses the controller's own module
    graph: any version that differs from the controller's go.mod (read from the module cache by the go
    command) would be a dependency the controller was never released with."""
    module = f"github.com/fluxcd/{controller}"
    listed = subprocess.run(
        ["go", "list", "-m", "-json", module],
        cwd=TOOLS / controller,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"},
    )
    requirement = re.compile(r"^\s+(\S+) (v\S+)(?: // indirect)?$", re.M)
    upstream = dict(requirement.findall(Path(json.loads(listed.stdout)["GoMod"]).read_text()))
    ours = dict(requirement.findall((TOOLS / controller / "go.mod").read_text()))
    differ = {m: (v, upstream[m]) for m, v in ours.items() if m in upstream and upstream[m] != v}
    assert differ == {}, f"tools/{controller}/go.mod (ours, the controller's): {differ}"
    assert ours[module] == required(controller, module)


def test_the_api_server_is_the_minor_the_stack_runs_on_eks() -> None:
    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    stack_version = str(config["gitops-eks:cluster"]["kubernetesVersion"])
    major, minor, _patch = required("kube", "k8s.io/kubernetes").removeprefix("v").split(".")

    assert f"{major}.{minor}" == stack_version, (
        f"tools/kube builds kube-apiserver {major}.{minor} but Pulumi.dev.yaml's cluster.kubernetesVersion "
        f"is {stack_version}: bump k8s.io/kubernetes in tools/kube/go.mod (and its replace directives)"
    )


def test_every_staging_module_is_replaced_by_the_release_of_the_same_kubernetes_version() -> None:
    # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging paths,
    # which do not exist outside its tree; each is published as k8s.io/<name> v0.<minor>.<patch>.
    kube = required("kube", "k8s.io/kubernetes")
    replaces = re.findall(
        r"^\s*(k8s\.io/\S+) => (k8s\.io/\S+) (v\S+)$", (TOOLS / "kube" / "go.mod").read_text(), re.M
    )
    assert len(replaces) >= 29
    for old, new, version in replaces:
        assert old == new
        assert version == "v0." + kube.removeprefix("v1."), f"{old} is replaced by {version}, not {kube}'s"


def test_docs_name_every_pinned_version() -> None:
    docs = (ROOT / "docs" / "cluster.md").read_text()
    pins = {
        "k8s.io/kubernetes": required("kube", "k8s.io/kubernetes"),
        "go.etcd.io/etcd/server/v3": required("kube", "go.etcd.io/etcd/server/v3"),
        "github.com/fluxcd/source-controller": required(
            "source-controller", "github.com/fluxcd/source-controller"
        ),
        "github.com/fluxcd/kustomize-controller": required(
            "kustomize-controller", "github.com/fluxcd/kustomize-controller"
        ),
        "github.com/fluxcd/notification-controller": required(
            "notification-controller", "github.com/fluxcd/notification-controller"
        ),
    }
    for module, version in pins.items():
        assert f"`{module}` | `{version}`" in docs, f"docs/cluster.md does not record {module} {version}"


def test_the_running_api_server_is_the_pinned_release(cluster: Cluster) -> None:
    version = json.loads(cluster.kubectl("get", "--raw", "/version").stdout)
    assert version["gitVersion"] == required("kube", "k8s.io/kubernetes")
    assert cluster.env["kubernetes"] == version["gitVersion"]
    for controller in CONTROLLERS:
        assert cluster.env[controller] == required(controller, f"github.com/fluxcd/{controller}")
