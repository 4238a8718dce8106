"""The services the suite relies on are really there (and, under CI=true, a missing one fails here first)."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import boto3

from tests.conftest import ROOT, require


def test_docker_engine_answers(docker_engine: None) -> None:
    info = subprocess.run(
        ["docker", "info", "--format", "{{json .ServerVersion}}"], capture_output=True, text=True, check=True
    )
    assert json.loads(info.stdout)


def test_base_image_has_python(base_image: str) -> None:
    out = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            base_image,
            "python3",
            "-c",
            "import sys, venv; print(sys.version_info[:2])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "(3, 11)"


def test_registry_speaks_v2(registry: str) -> None:
    with urllib.request.urlopen(f"http://{registry}/v2/_catalog", timeout=5) as resp:
        assert "repositories" in json.load(resp)


def test_wheelhouse_serves_app_requirements(wheelhouse_url: str) -> None:
    with urllib.request.urlopen(wheelhouse_url, timeout=5) as resp:  # noqa: S310
        listing = resp.read().decode()
    assert "flask-" in listing.lower() and "granian-" in listing.lower()


def test_moto_is_the_aws_api(aws_env: str) -> None:
    ecr = boto3.client("ecr")
    ecr.create_repository(repositoryName="services-check")
    names = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
    assert "services-check" in names


def test_services_as_another_user_names_what_is_missing_and_the_root_command(tmp_path: Path) -> None:
    """`make test` runs scripts/services.sh first; a user who cannot install gets, instead of a suite full of
    skips, the missing pieces and the one command that provisions them. `nobody` cannot reach the Docker
    engine's root-owned socket, and the base image named here does not exist."""
    require(os.geteuid() == 0, "switching to the user nobody needs root")
    script = ROOT / "scripts" / "services.sh"
    result = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "bash", str(script)],
        capture_output=True, text=True, check=False, timeout=120,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "BASE_IMAGE": "local/absent:never"},
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[services] missing: " in result.stdout
    assert "a Docker engine this user can reach" in result.stdout
    assert f"run  sudo bash {script}  then run make again" in result.stdout
