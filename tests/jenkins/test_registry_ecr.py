"""ECR adapter against moto's server (the AWS API); docker login runs for real, behind a recording wrapper."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import boto3
import pytest

from jenkins import registry
from jenkins.registry import RegistryError
from tests.jenkins.dockerspy import spy_on_docker

ACCOUNT = "123456789012"  # moto's default account
MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": 2,
        "digest": "sha256:" + "0" * 64,
    },
    "layers": [],
}


@pytest.mark.parametrize(
    "repository",
    [
        f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/app",
        f"{ACCOUNT}.dkr.ecr.us-gov-west-1.amazonaws.com/team/app",
        f"{ACCOUNT}.dkr.ecr-fips.us-east-1.amazonaws.com/app",
        f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn/app",
    ],
)
def test_ecr_urls_are_recognised(repository: str) -> None:
    assert registry.is_ecr(repository)


@pytest.mark.parametrize(
    "repository",
    [
        "127.0.0.1:5000/app",
        "ghcr.io/owner/app",
        "app",
        f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com",  # no repository name
        "12345.dkr.ecr.eu-west-1.amazonaws.com/app",  # account ids have 12 digits
        f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com.evil.example/app",
    ],
)
def test_other_urls_are_not_ecr(repository: str) -> None:
    assert not registry.is_ecr(repository)


@pytest.fixture
def ecr_repository(aws_env: str, request: pytest.FixtureRequest) -> str:
    """A fresh repository in moto's ECR; returns its URI (as `pulumi up` would export it)."""
    name = f"gitops/{request.node.name.lower().replace('_', '-')[:60].strip('-[]')}"
    client = boto3.client("ecr", region_name="eu-west-1")
    uri = client.create_repository(repositoryName=name)["repository"]["repositoryUri"]
    yield uri
    client.delete_repository(repositoryName=name, force=True)


def test_resolve_digest_of_present_tag(ecr_repository: str) -> None:
    name = ecr_repository.split("/", 1)[1]
    put = boto3.client("ecr", region_name="eu-west-1").put_image(
        repositoryName=name, imageManifest=json.dumps(MANIFEST), imageTag="a" * 40
    )
    digest = registry.resolve_digest(ecr_repository, "a" * 40)
    assert digest == put["image"]["imageId"]["imageDigest"]
    assert digest.startswith("sha256:")


def test_absent_tag_resolves_to_none(ecr_repository: str) -> None:
    assert registry.resolve_digest(ecr_repository, "b" * 40) is None


def test_missing_repository_is_a_clear_error(aws_env: str) -> None:
    with pytest.raises(RegistryError) as err:
        registry.resolve_digest(f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/no-such-repo", "c" * 40)
    message = str(err.value)
    assert "no-such-repo" in message
    assert "does not exist" in message
    assert "pulumi up" in message


def test_missing_aws_credentials_is_a_clear_error(
    aws_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(RegistryError, match="check the AWS credentials"):
        registry.resolve_digest(f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/app", "d" * 40)
    with pytest.raises(RegistryError, match="ECR login to account 123456789012 in eu-west-1 failed"):
        registry.login(f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/app")


def test_login_sends_the_token_on_stdin_only(
    docker_engine: None,
    ecr_repository: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    spy = spy_on_docker(tmp_path, monkeypatch)
    token = boto3.client("ecr", region_name="eu-west-1").get_authorization_token()["authorizationData"][0]
    password = base64.b64decode(token["authorizationToken"]).decode().partition(":")[2]

    # moto has no registry endpoint, so the real `docker login` fails; what it was given is what counts.
    with pytest.raises(RegistryError) as err:
        registry.login(ecr_repository)

    registry_host = ecr_repository.split("/", 1)[0]
    assert spy.calls() == [f"login --username AWS --password-stdin {registry_host}"]
    assert spy.stdin_log.read_text() == password
    out, errout = capfd.readouterr()
    for text in (str(err.value), out, errout, "\n".join(spy.calls())):
        assert password not in text
    assert f"docker login to {registry_host} failed" in str(err.value)


def test_login_is_a_noop_for_other_registries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = spy_on_docker(tmp_path, monkeypatch)
    registry.login("127.0.0.1:5000/app")
    assert spy.calls() == []
