"""`appUrlCommand`: the command that prints the app's URL, run with the real kubectl on the Service that
Flux applies from k8s/, as it looks once AWS has given it a load balancer."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.app_url import app_url_command, load_balancer_service
from infra.errors import ConfigError
from tests.infra.conftest import ROOT, Program

SERVICE = ROOT / "k8s" / "base" / "service.yaml"
# What the in-tree AWS load balancer sets on a LoadBalancer Service: a DNS name, not an IP (Kubernetes
# API reference, LoadBalancerIngress.hostname: "set for load-balancer ingress points that are DNS based
# (typically AWS load-balancers)").
ELB_HOSTNAME = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6-1234567890.us-east-1.elb.amazonaws.com"


def printed_by(command: str, service: dict, tmp_path: Path) -> str:
    """What `command` prints for `service`: the same kubectl and jsonpath, without an API server
    (`kubectl annotate --local` renders a local object with `-o`)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    argv = shlex.split(command)
    assert argv[:4] == ["kubectl", "-n", service["metadata"]["namespace"], "get"]
    assert argv[4:6] == ["service", service["metadata"]["name"]]
    assert argv[6] == "-o" and argv[7].startswith("jsonpath=") and len(argv) == 8
    manifest = tmp_path / "service.yaml"
    manifest.write_text(yaml.safe_dump(service))
    result = subprocess.run(
        [kubectl, "annotate", "--local", "-f", str(manifest), "checked=true", argv[6], argv[7]],
        capture_output=True,
        text=True,
        check=True,
        env={"KUBECONFIG": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"},
    )
    return result.stdout


def test_the_stack_exports_the_command_for_the_service_flux_applies(
    dev_program: Program, tmp_path: Path
) -> None:
    command = dev_program.outputs["appUrlCommand"]
    service = yaml.safe_load(SERVICE.read_text())
    assert service["spec"]["type"] == "LoadBalancer" and service["spec"]["ports"][0]["port"] == 80
    service["status"] = {"loadBalancer": {"ingress": [{"hostname": ELB_HOSTNAME}]}}
    assert printed_by(command, service, tmp_path) == f"http://{ELB_HOSTNAME}/\n"


def test_before_the_load_balancer_exists_the_url_has_no_host(dev_program: Program, tmp_path: Path) -> None:
    service = yaml.safe_load(SERVICE.read_text())
    assert printed_by(dev_program.outputs["appUrlCommand"], service, tmp_path) == "http:///\n"


def test_another_port_is_part_of_the_url(tmp_path: Path) -> None:
    service = yaml.safe_load(SERVICE.read_text())
    service["spec"]["ports"][0]["port"] = 8080
    service["status"] = {"loadBalancer": {"ingress": [{"hostname": ELB_HOSTNAME}]}}
    assert printed_by(app_url_command(service), service, tmp_path) == f"http://{ELB_HOSTNAME}:8080/\n"


def test_manifests_without_exactly_one_load_balancer_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"expected one Service of type LoadBalancer .* found 0"):
        load_balancer_service(tmp_path)
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(SERVICE.read_text())
    with pytest.raises(ConfigError, match="found 2"):
        load_balancer_service(tmp_path)
