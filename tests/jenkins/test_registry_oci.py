"""Registry HTTP API v2 adapter against a real local registry (docker-registry), with and without auth."""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

import jenkins.registry as api
from jenkins.build import build_image, push_image
from jenkins.registry import Reference, RegistryError
from tests.conftest import free_port, require, run_registry

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
    """A registry that demands Basic auth (htpasswd, bcrypt)."""
    require(shutil.which("docker-registry") is not None, "docker-registry is not installed")
    storage = tmp_path_factory.mktemp("auth-registry")
    hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))  # noqa: S324 - bcrypt
    (storage / "htpasswd").write_text(f"{USER}:{hashed}\n")
    with run_registry(
        storage, auth=f"{{htpasswd: {{realm: test, path: {storage / 'htpasswd'}}}}}"
    ) as address:
        yield address


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


class TokenIssuer(http.server.BaseHTTPRequestHandler):
    """A registry token server (the Bearer flow of Docker Hub, GHCR, ...): anonymous callers get pull,
    callers with the right Basic credentials get pull and push. Tokens are RS256 JWTs whose x5c header
    carries the issuer certificate that docker-registry trusts (its rootcertbundle)."""

    key: rsa.RSAPrivateKey
    cert_der: bytes
    seen: list[tuple[str, str]]  # (account or "anonymous", scope) per token request

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        header = self.headers.get("Authorization", "")
        account = ""
        if header.startswith("Basic "):
            account, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if (account, password) != (USER, PASSWORD):
                self.send_response(401)
                self.end_headers()
                return
        access = []
        for scope in query.get("scope", []):
            kind, name, _ = scope.split(":")
            self.seen.append((account or "anonymous", scope))
            access.append({"type": kind, "name": name, "actions": ["pull", "push"] if account else ["pull"]})
        body = json.dumps({"token": self.jwt(account, query.get("service", [""])[0], access)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def jwt(self, subject: str, audience: str, access: list[dict[str, object]]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        claims = {"iss": "test-issuer", "sub": subject, "aud": audience, "iat": now, "nbf": now - 10,
                  "exp": now + 300, "jti": uuid.uuid4().hex, "access": access}  # fmt: skip
        signing_input = ".".join(b64url(json.dumps(part).encode()) for part in (header, claims))
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"

    def log_message(self, format: str, *args: object) -> None:
        pass


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issuer_certificate(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-issuer")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """A docker-registry with token auth and its token server; yields (host:port, token requests seen)."""
    storage = tmp_path_factory.mktemp("token-registry")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = issuer_certificate(key)
    (storage / "issuer.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    seen: list[tuple[str, str]] = []
    der = cert.public_bytes(serialization.Encoding.DER)
    issuer = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), type("Issuer", (TokenIssuer,), {"key": key, "cert_der": der, "seen": seen})
    )
    threading.Thread(target=issuer.serve_forever, daemon=True).start()
    realm = f"http://127.0.0.1:{issuer.server_address[1]}/token"
    bundle = storage / "issuer.pem"
    auth = (
        f"{{token: {{realm: '{realm}', service: test-registry, issuer: test-issuer,"
        f" rootcertbundle: {bundle}}}}}"
    )
    try:
        require(shutil.which("docker-registry") is not None, "docker-registry is not installed")
        with run_registry(storage, auth) as address:
            yield address, seen
    finally:
        issuer.shutdown()


def test_bearer_challenge_gets_an_anonymous_pull_token(
    docker_engine: None,
    token_registry: tuple[str, list[tuple[str, str]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    address, seen = token_registry
    repository = f"{address}/oci/bearer"
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "pusher"))
    api.docker_login(address, USER, PASSWORD)  # push needs the push scope: an authenticated token
    pushed = push_tiny_image(repository, "7" * 40, tmp_path)

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "anonymous"))  # no credentials at all
    seen.clear()
    assert api.resolve_digest(repository, "7" * 40) == pushed
    assert api.resolve_digest(repository, "8" * 40) is None
    assert seen == [("anonymous", "repository:oci/bearer:pull")] * 2

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "pusher"))  # credentials from docker login
    seen.clear()
    assert api.resolve_digest(repository, "7" * 40) == pushed
    assert seen == [(USER, "repository:oci/bearer:pull")]
