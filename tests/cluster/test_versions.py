"""The versions tools/ pins: the API server's minor is the stack's, the staging modules follow it, the
controllers are the ones production's Flux runs, the running binaries were built from exactly the pinned
modules (read from the binaries themselves), and docs/cluster.md names them all."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.gitops import FLUX_VERSION
from plane.fluxchart import operator_source
from plane.localcluster import STATE, Cluster
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


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_the_plane_builds_the_controllers_productions_flux_runs(controller: str) -> None:
    """Production's FluxInstance pins FLUX_VERSION; the operator installs that release's manifests from
    its `config/data/flux/v<version>/`, whose Deployment names the controller's image tag."""
    manifest = operator_source() / "config" / "data" / "flux" / f"v{FLUX_VERSION}" / f"{controller}.yaml"
    (image,) = [
        c["image"]
        for d in yaml.safe_load_all(manifest.read_text())
        if d and d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    assert image == f"fluxcd/{controller}:{required(controller, f'github.com/fluxcd/{controller}')}"


def build_info(binary: Path) -> tuple[str, dict[str, str]]:
    """`go version -m`: the main package's module (`mod`), and every module in the build list at the
    version it was built with (a replacement's, `=>`, where one applies), the main module included."""
    lines = subprocess.run(["go", "version", "-m", str(binary)], capture_output=True, text=True, check=True)
    main, modules, last = "", {}, ""
    for line in lines.stdout.splitlines():
        fields = line.strip().split("\t")
        if fields[0] in ("mod", "dep"):
            last = fields[1]
            modules[last] = fields[2]
            main = main or (last if fields[0] == "mod" else "")
        elif fields[0] == "=>":
            modules[last] = fields[2]
    return main, modules


def go_mod_versions(module_dir: Path) -> dict[str, str]:
    """Each module tools/<dir>/go.mod requires, at its version after the replace directives."""
    edit = subprocess.run(
        ["go", "mod", "edit", "-json"], cwd=module_dir, capture_output=True, text=True, check=True
    )
    mod = json.loads(edit.stdout)
    versions = {r["Path"]: r["Version"] for r in mod.get("Require") or []}
    for replace in mod.get("Replace") or []:
        versions[replace["Old"]["Path"]] = replace["New"].get("Version", "")
    return versions


def test_every_running_binary_was_built_from_its_pinned_modules(cluster: Cluster) -> None:
    """The binaries themselves say what they were built from (Go embeds the build list, `go version -m`):
    each must be exactly the go.mod of the one tools/ module that requires its main package's module,
    module for module, not what cluster.sh wrote down."""
    checked = set()
    for pid_file in sorted((STATE / "pids").iterdir()):
        main, modules = build_info(Path(f"/proc/{pid_file.read_text().strip()}/exe"))
        (pinned,) = [v for v in (go_mod_versions(d) for d in sorted(TOOLS.iterdir())) if main in v]
        differ = {
            path: (version, pinned.get(path))
            for path, version in modules.items()
            if pinned.get(path) != version
        }
        assert differ == {}, f"{pid_file.name}: built with (binary, go.mod) {differ}"
        checked.add(pid_file.name)
    assert {"etcd", "kube-apiserver", *CONTROLLERS} <= checked
