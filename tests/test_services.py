"""The services the suite relies on are really there (and, under CI=true, a missing one fails here first)."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import boto3


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
