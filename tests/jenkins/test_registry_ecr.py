"""ECR adapter against moto's server (the AWS API); docker login runs for real, behind a recording wrapper."""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

import boto3
import pytest

from infra.registry import DEPLOYED_PATTERN, lifecycle_policy
from jenkins import registry
from jenkins.registry import RegistryError, deployed_tag
from tests.conftest import ROOT
from tests.jenkins.conftest import Cli, GitopsRepo, run_cli
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


# --- issue 8 point 11: what is deployed, and what a hold pins, never expires -------------------------


@pytest.fixture
def protected_repository(aws_env: str, request: pytest.FixtureRequest) -> str:
    """A repository configured as infra/registry.py declares it: immutable tags but the environments'
    marks, and the lifecycle policy (moto validates it against ECR's schema)."""
    name = f"gitops/{request.node.name.lower().replace('_', '-')[:60].strip('-[]')}"
    client = boto3.client("ecr", region_name="eu-west-1")
    uri = client.create_repository(
        repositoryName=name,
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filter": DEPLOYED_PATTERN, "filterType": "WILDCARD"}],
    )["repository"]["repositoryUri"]
    client.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=lifecycle_policy(30))
    yield uri
    client.delete_repository(repositoryName=name, force=True)


def put_commit_image(repository_uri: str, commit: str) -> str:
    """A distinct image tagged with the commit SHA; returns its digest. (moto derives an image's digest
    from its layer digests, not from the manifest bytes: each image gets a layer of its own.)"""
    layer = {
        "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "size": 1,
        "digest": "sha256:" + commit.ljust(64, "0"),
    }
    body = {**MANIFEST, "layers": [layer]}
    put = boto3.client("ecr", region_name="eu-west-1").put_image(
        repositoryName=repository_uri.split("/", 1)[1], imageManifest=json.dumps(body), imageTag=commit
    )
    return put["image"]["imageId"]["imageDigest"]


def deployed_digest(repository_uri: str, environment: str = "dev") -> str | None:
    """What the environment's mark (`deployed-<environment>`) points at."""
    return registry.resolve_digest(repository_uri, deployed_tag(environment))


def test_the_deployed_marker_follows_promote_rollback_and_hold(
    protected_repository: str, gitops_repo: GitopsRepo
) -> None:
    first = gitops_repo.app_commit("v1")
    second = gitops_repo.app_commit("v2")
    digests = {sha: put_commit_image(protected_repository, sha) for sha in (first, second)}
    assert digests[first] != digests[second]
    ws = gitops_repo.workspace(second)

    promoted = run_cli(ws, "promote", "--image-repository", protected_repository, "--json")
    assert promoted.returncode == 0, promoted.output
    assert deployed_digest(protected_repository) == digests[second]

    rolled = run_cli(
        ws, "rollback", "--image-repository", protected_repository, "--to", first, "--reason", "INC-1"
    )
    assert rolled.returncode == 0, rolled.output
    assert deployed_digest(protected_repository) == digests[first]  # what the hold pins

    third = gitops_repo.app_commit("v3")
    put_commit_image(protected_repository, third)
    held = run_cli(
        gitops_repo.workspace(third), "promote", "--image-repository", protected_repository, "--json"
    )
    assert held.json["outcome"] == "held"
    assert deployed_digest(protected_repository) == digests[first]  # a held run moves nothing

    # The commit tags stay immutable: only the marker moved (moto enforces the exclusion filter).
    other = {**MANIFEST, "layers": [{"mediaType": "x", "size": 1, "digest": "sha256:" + "e" * 64}]}
    client = boto3.client("ecr", region_name="eu-west-1")
    with pytest.raises(client.exceptions.ImageAlreadyExistsException):
        client.put_image(
            repositoryName=protected_repository.split("/", 1)[1],
            imageManifest=json.dumps(other),
            imageTag=first,
        )


def test_a_noop_promote_marks_an_unmarked_deployed_image(
    protected_repository: str, gitops_repo: GitopsRepo
) -> None:
    sha = gitops_repo.app_commit("v1")
    digest = put_commit_image(protected_repository, sha)
    ws = gitops_repo.workspace(sha)
    assert run_cli(ws, "promote", "--image-repository", protected_repository).returncode == 0
    client = boto3.client("ecr", region_name="eu-west-1")
    client.batch_delete_image(
        repositoryName=protected_repository.split("/", 1)[1], imageIds=[{"imageTag": deployed_tag("dev")}]
    )
    assert deployed_digest(protected_repository) is None  # e.g. a repository from before the marker

    again = run_cli(ws, "promote", "--image-repository", protected_repository, "--json")

    assert again.returncode == 0 and again.json["outcome"] == "noop", again.output
    assert deployed_digest(protected_repository) == digest


def test_each_environment_keeps_its_own_mark(protected_repository: str, gitops_repo: GitopsRepo) -> None:
    """One registry serves every environment: a deploy to dev moves `deployed-dev` only, a deploy (and a
    rollback) in prod `deployed-prod` only, so neither environment's image is left unmarked."""
    gitops_repo.add_overlay("prod")
    first, second = gitops_repo.app_commit("v1"), gitops_repo.app_commit("v2")
    digests = {sha: put_commit_image(protected_repository, sha) for sha in (first, second)}
    ws = gitops_repo.workspace(second)
    to_prod = ("--image-repository", protected_repository, "--environment", "prod")

    assert run_cli(ws, "promote", *to_prod, "--commit", first).returncode == 0
    assert run_cli(ws, "promote", "--image-repository", protected_repository).returncode == 0  # dev
    assert (deployed_digest(protected_repository, "prod"), deployed_digest(protected_repository)) == (
        digests[first],
        digests[second],
    )
    assert run_cli(ws, "promote", *to_prod, "--commit", second).returncode == 0
    rolled = run_cli(ws, "rollback", *to_prod, "--to", first, "--reason", "INC-2")
    assert rolled.returncode == 0, rolled.output
    assert deployed_digest(protected_repository, "prod") == digests[first]
    assert deployed_digest(protected_repository) == digests[second]


def test_a_manifest_dir_is_marked_as_the_environment_whose_overlay_it_is(
    protected_repository: str, gitops_repo: GitopsRepo
) -> None:
    """--manifest-dir k8s/overlays/prod deploys prod (its mark moves), whatever the stack's environment:
    here the release side's (dev) pinning a commit in prod with a rollback, the way a chosen commit
    reaches a later environment."""
    gitops_repo.add_overlay("prod")
    sha = gitops_repo.app_commit("v1")
    digest = put_commit_image(protected_repository, sha)
    done = run_cli(gitops_repo.workspace(sha), "rollback", "--image-repository", protected_repository,
                   "--manifest-dir", "./k8s/overlays/prod/", "--to", sha, "--reason", "INC-1",
                   env={"GITOPS_ENVIRONMENT": "dev"})  # fmt: skip
    assert done.returncode == 0, done.output
    assert (deployed_digest(protected_repository, "prod"), deployed_digest(protected_repository)) == (
        digest,
        None,
    )


def promote_twice_into_an_all_immutable_repository(gitops_repo: GitopsRepo, name: str) -> tuple[str, Cli]:
    """A repository whose every tag is immutable (no exclusion for the marks): the first promotion
    tags its image `deployed-dev`, the second cannot move the tag. Returns (second commit, its --json run)."""
    client = boto3.client("ecr", region_name="eu-west-1")
    uri = client.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")["repository"][
        "repositoryUri"
    ]
    first = gitops_repo.app_commit("v1")
    second = gitops_repo.app_commit("v2")
    put_commit_image(uri, first)
    put_commit_image(uri, second)
    assert run_cli(gitops_repo.workspace(first), "promote", "--image-repository", uri).returncode == 0
    return second, run_cli(gitops_repo.workspace(second), "promote", "--image-repository", uri, "--json")


def test_marking_needs_the_movable_tag_and_says_so(aws_env: str, gitops_repo: GitopsRepo) -> None:
    _, result = promote_twice_into_an_all_immutable_repository(gitops_repo, "gitops/all-immutable")

    assert result.returncode == 1
    assert "marking it as deployed failed" in result.json["error"]
    assert "image tag mutability exclusion matching 'deployed-dev'" in result.json["error"]
    assert "re-run" in result.stderr


def test_ecr_adapter_imports_nothing_of_ours() -> None:
    """Issue 8, Shape: registry.py depends on ecr.py, never the other way round."""
    tree = ast.parse((ROOT / "jenkins" / "ecr.py").read_text())
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    assert not {name for name in imported if name.split(".")[0] == "jenkins"}
