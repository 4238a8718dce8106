"""Registry adapter: log in to the image registry, resolve a tag to its digest, mark what is deployed.

ECR repositories go through the AWS API (jenkins/ecr.py, imported only for them; it never imports this
module); any other registry through the registry HTTP API v2. Credentials travel only in HTTP headers
and on docker's stdin: never in argv, a log line or an exception message.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jenkins import log
from jenkins.core import is_digest

if TYPE_CHECKING:
    import requests

# <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]/<name>
ECR_PATTERN = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)"
    r"\.amazonaws\.com(?:\.cn)?/(?P<name>[a-z0-9][a-z0-9._/-]*)$"
)
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
DOCKER_HUB = "registry-1.docker.io"
TIMEOUT = 30


class RegistryError(Exception):
    """A registry operation failed; the message says which registry, what failed and what to try."""


@dataclass(frozen=True)
class Reference:
    """An image repository split into the registry host and the repository name on it."""

    registry: str
    name: str


def deployed_tag(environment: str) -> str:
    """The mutable tag that follows what the environment's overlay deploys: `deployed-<environment>`.

    One registry serves every environment, so each keeps its own mark (one tag moved by every
    environment's deploy would leave the others' images unmarked); the lifecycle policy
    (infra/registry.py) never expires an image that carries one."""
    return f"deployed-{environment}"


def is_ecr(repository: str) -> bool:
    """True for an ECR repository URL (commercial, China and FIPS endpoints)."""
    return ECR_PATTERN.match(repository) is not None


def parse_repository(repository: str) -> Reference:
    """Split REGISTRY/NAME the way docker does: the first part is a registry when it looks like a host."""
    first, sep, rest = repository.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return Reference(first, rest)
    # Docker Hub: official images live under library/.
    return Reference(DOCKER_HUB, repository if sep else f"library/{repository}")


def login(repository: str) -> None:
    """Log docker in to an ECR repository's registry; other registries use docker's own config."""
    match = ECR_PATTERN.match(repository)
    if match is not None:
        from jenkins import ecr  # boto3 is costly to import: only the ECR path pays for it

        try:
            registry, username, password = ecr.authorization(match["account"], match["region"])
        except ecr.EcrError as exc:
            raise RegistryError(str(exc)) from None
        docker_login(registry, username, password)


def docker_login(registry: str, username: str, password: str) -> None:
    """`docker login` with the password on stdin, so it never shows in argv (ps, /proc) or logs."""
    try:
        result = subprocess.run(
            ["docker", "login", "--username", username, "--password-stdin", registry],
            input=password,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise RegistryError(
            f"docker login to {registry} failed: cannot run docker ({exc.strerror})"
        ) from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        if password:  # docker does not echo it, but this text reaches the console: scrub it anyway
            detail = detail.replace(password, "***")
        raise RegistryError(f"docker login to {registry} failed: {detail[-500:]}")
    log.info(f"docker logged in to {registry}")


def resolve_digest(repository: str, tag: str) -> str | None:
    """The digest ("sha256:...") that REPOSITORY:TAG points at, or None when the tag is absent."""
    match = ECR_PATTERN.match(repository)
    if match is not None:
        from jenkins import ecr  # boto3 is costly to import: only the ECR path pays for it

        try:
            digest = ecr.image_digest(match["account"], match["region"], match["name"], tag)
        except ecr.EcrError as exc:
            raise RegistryError(str(exc)) from None
    else:
        digest = oci_digest(parse_repository(repository), tag)
    # The answer is pinned into the manifest as `digest:`: a value that is no sha256 digest (a broken
    # proxy, another algorithm) would deploy an image reference no node can pull.
    if digest is not None and not is_digest(digest):
        raise RegistryError(
            f"the registry of {repository} answered tag {tag} with the digest {digest[:80]!r}, "
            "which is not sha256: followed by 64 lowercase hex digits; check the registry (or a proxy "
            "in front of it)"
        )
    return digest


def mark_deployed(repository: str, digest: str, environment: str) -> bool:
    """Move the environment's mark (deployed_tag) to DIGEST in an ECR repository, so its lifecycle
    policy keeps that image.

    Other registries have no lifecycle policy of ours: False, nothing done.
    """
    match = ECR_PATTERN.match(repository)
    if match is None:
        return False
    from jenkins import ecr

    try:
        ecr.tag_image(match["account"], match["region"], match["name"], digest, deployed_tag(environment))
    except ecr.EcrError as exc:
        raise RegistryError(str(exc)) from None
    return True


def oci_digest(ref: Reference, tag: str) -> str | None:
    """HEAD the manifest through the registry HTTP API v2, answering a Bearer or Basic challenge."""
    import requests  # imported where used: commands that never ask a registry skip its import cost

    url = f"{registry_url(ref.registry)}/v2/{ref.name}/manifests/{tag}"
    where = f"registry {ref.registry}, repository {ref.name}"
    session = requests.Session()
    session.headers["Accept"] = MANIFEST_TYPES
    try:
        response = session.head(url, timeout=TIMEOUT)
        if response.status_code == 401:
            session.headers["Authorization"] = answer_challenge(session, ref, response)
            response = session.head(url, timeout=TIMEOUT)
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            raise RegistryError(
                f"{where}: access denied (HTTP {response.status_code}); "
                f"run `docker login {ref.registry}` with an account that can pull"
            )
        if response.status_code != 200:
            raise RegistryError(f"{where}: HEAD manifest {tag} answered HTTP {response.status_code}")
        digest = response.headers.get("Docker-Content-Digest")
        if digest is None:
            # The header is optional in the spec: the digest is the sha256 of the manifest bytes.
            body = session.get(url, timeout=TIMEOUT)
            body.raise_for_status()
            digest = "sha256:" + hashlib.sha256(body.content).hexdigest()
    except requests.RequestException as exc:
        raise RegistryError(
            f"cannot reach {where} at {registry_url(ref.registry)}: {type(exc).__name__}; "
            "check that the registry is running and the address is right"
        ) from None
    return digest


def registry_url(registry: str) -> str:
    """http for loopback registries (what docker trusts without TLS), https for everything else."""
    host = urllib.parse.urlsplit(f"//{registry}").hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return f"{'http' if loopback else 'https'}://{registry}"


def answer_challenge(session: requests.Session, ref: Reference, response: requests.Response) -> str:
    """The Authorization header for a 401's WWW-Authenticate challenge (Bearer token or Basic)."""
    scheme, _, params = response.headers.get("WWW-Authenticate", "").partition(" ")
    credentials = docker_credentials(ref.registry)
    if scheme.lower() == "basic":
        if credentials is None:
            raise RegistryError(
                f"registry {ref.registry} needs credentials; run `docker login {ref.registry}`"
            )
        return "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
    if scheme.lower() != "bearer":
        raise RegistryError(f"registry {ref.registry} asks for unsupported authentication '{scheme}'")
    challenge = dict(re.findall(r'(\w+)="([^"]*)"', params))
    if "realm" not in challenge:
        raise RegistryError(f"registry {ref.registry} sent a Bearer challenge without a realm")
    query = {"service": challenge.get("service", ""), "scope": f"repository:{ref.name}:pull"}
    token = session.get(challenge["realm"], params=query, auth=credentials, timeout=TIMEOUT)
    if token.status_code != 200:
        raise RegistryError(
            f"registry {ref.registry}: token request answered HTTP {token.status_code}; "
            f"run `docker login {ref.registry}`"
        )
    body = token.json()
    # The distribution token spec: a JSON object with `token` (or the OAuth2 name `access_token`).
    value = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
    if not isinstance(value, str) or not value:
        raise RegistryError(
            f"registry {ref.registry}: its token endpoint answered without a token; "
            f"check the registry, then `docker login {ref.registry}`"
        )
    return "Bearer " + value


def docker_credentials(registry: str) -> tuple[str, str] | None:
    """user/password for a registry from docker's config.json `auths` (what `docker login` wrote)."""
    config = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    try:
        auths = json.loads(config.read_text()).get("auths", {})
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, not a JSON object
        return None
    keys = [registry, f"https://{registry}", f"http://{registry}"]
    if registry == DOCKER_HUB:
        keys.append("https://index.docker.io/v1/")
    for key in keys:
        entry = auths.get(key) if isinstance(auths, dict) else None
        encoded = entry.get("auth") if isinstance(entry, dict) else None
        if isinstance(encoded, str) and encoded:
            try:
                user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
            except ValueError:  # binascii.Error and UnicodeDecodeError both are
                raise RegistryError(
                    f"{config}: the `auth` of {key} is not base64 of user:password; "
                    f"run `docker login {registry}` again"
                ) from None
            return user, password
    return None
