"""Registry HTTP API v2 adapter against a real local registry (docker-registry), with and without auth."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import jenkins.registry as api
from jenkins.build import build_image, push_image
from jenkins.registry import Reference, RegistryError
from tests.conftest import free_port, require, wait_for_http

with warnings.catch_warnings():
    # crypt (gone in 3.13) is the stdlib's only bcrypt, the hash docker-registry's htpasswd needs.
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

USER, PASSWORD = "jenkins", "registry-password-9f3c"


def push_tiny_image(repository: str, tag: str, tmp_path: Path) -> str:
    """Build a one-file image FROM scratch (seconds to push) and return the digest docker push reported."""
    context = tmp_path / f"context-{uuid.uuid4().hex[:8]}"
    context.mkdir()
    (context / "marker").write_text(uuid.uuid4().hex)
    (context / "Dockerfile").write_text("FROM scratch\nCOPY marker /marker\n")
    image = f"{repository}:{tag}"
    build_image(context, image, git_commit=tag, build_args={}, network=None)
    return push_image(image)


def test_present_tag_resolves_to_the_pushed_digest(
    docker_engine: None, registry: str, tmp_path: Path
) -> None:
    repository = f"{registry}/oci/present"
    pushed = push_tiny_image(repository, "e" * 40, tmp_path)
    assert pushed.startswith("sha256:")
    assert api.resolve_digest(repository, "e" * 40) == pushed
    repo_digests = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", f"{repository}:{'e' * 40}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{repository}@{pushed}" in json.loads(repo_digests)


def test_absent_tag_and_absent_repository_resolve_to_none(
    docker_engine: None, registry: str, tmp_path: Path
) -> None:
    push_tiny_image(f"{registry}/oci/absent", "1" * 40, tmp_path)
    assert api.resolve_digest(f"{registry}/oci/absent", "2" * 40) is None
    assert api.resolve_digest(f"{registry}/oci/never-pushed", "2" * 40) is None


def test_unreachable_registry_is_a_clear_error() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(RegistryError) as err:
        api.resolve_digest(f"{address}/app", "3" * 40)
    message = str(err.value)
    assert f"cannot reach registry {address}, repository app at http://{address}" in message
    assert "check that the registry is running" in message


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A docker-registry that demands Basic auth (htpasswd, bcrypt) on a random loopback port."""
    require(shutil.which("docker-registry") is not None, "docker-registry is not installed")
    storage = tmp_path_factory.mktemp("auth-registry")
    hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))  # noqa: S324 - bcrypt
    (storage / "htpasswd").write_text(f"{USER}:{hashed}\n")
    port = free_port()
    config = storage / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {storage / 'data'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
        f"auth: {{htpasswd: {{realm: test, path: {storage / 'htpasswd'}}}}}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v2/")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_basic_auth_uses_docker_login_credentials(
    docker_engine: None, auth_registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    repository = f"{auth_registry}/oci/private"

    with pytest.raises(RegistryError) as err:
        api.resolve_digest(repository, "4" * 40)
    assert f"registry {auth_registry} needs credentials; run `docker login {auth_registry}`" in str(err.value)

    api.docker_login(auth_registry, USER, PASSWORD)
    pushed = push_tiny_image(repository, "4" * 40, tmp_path)
    assert api.resolve_digest(repository, "4" * 40) == pushed
    assert api.resolve_digest(repository, "5" * 40) is None


def test_wrong_password_fails_without_echoing_it(
    docker_engine: None, auth_registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    with pytest.raises(RegistryError) as err:
        api.docker_login(auth_registry, USER, "wrong-password-77ab")
    assert f"docker login to {auth_registry} failed" in str(err.value)
    assert "wrong-password-77ab" not in str(err.value)

    # A stale entry in docker's config is refused by the registry: access denied, password not shown.
    auth = base64.b64encode(f"{USER}:wrong-password-77ab".encode()).decode()
    config = {"auths": {auth_registry: {"auth": auth}}}
    (tmp_path / "docker-config").mkdir(exist_ok=True)
    (tmp_path / "docker-config" / "config.json").write_text(json.dumps(config))
    with pytest.raises(RegistryError) as err:
        api.resolve_digest(f"{auth_registry}/oci/private", "6" * 40)
    assert "access denied (HTTP 401)" in str(err.value)
    assert "wrong-password-77ab" not in str(err.value)


@pytest.mark.parametrize(
    ("repository", "expected"),
    [
        ("127.0.0.1:5000/app", Reference("127.0.0.1:5000", "app")),
        ("localhost/team/app", Reference("localhost", "team/app")),
        ("ghcr.io/owner/app", Reference("ghcr.io", "owner/app")),
        ("owner/app", Reference("registry-1.docker.io", "owner/app")),
        ("python", Reference("registry-1.docker.io", "library/python")),
    ],
)
def test_repository_names_split_like_docker(repository: str, expected: Reference) -> None:
    assert api.parse_repository(repository) == expected


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("127.1.2.3", "http://127.1.2.3"),
        ("localhost:5000", "http://localhost:5000"),
        ("[::1]:5000", "http://[::1]:5000"),
        ("ghcr.io", "https://ghcr.io"),
        ("10.0.0.5:5000", "https://10.0.0.5:5000"),
    ],
)
def test_only_loopback_registries_use_plain_http(host: str, url: str) -> None:
    assert api.registry_url(host) == url
