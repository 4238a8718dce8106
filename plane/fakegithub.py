"""GitHub's commit-status API, as a GitHub Enterprise Server on 127.0.0.1 over HTTPS, for the Flux
`github` Provider in the test cluster (plane/localcluster.py points the stack's Provider at it).

Only what notification-controller's github notifier calls is served, with GitHub's shapes
(github/docs content/rest/commits/statuses.md, "Commit statuses"):
- `GET  /api/v3/repos/{owner}/{repo}/commits/{ref}/statuses` -> 200, the statuses recorded so far, newest
  first;
- `POST /api/v3/repos/{owner}/{repo}/statuses/{sha}` -> 201, `state` one of error, failure, pending,
  success, else 422.
A request without `Authorization: Bearer <the expected token>` gets 401 `Bad credentials`, and the
repository must be the one the Provider names, else 404. `/api/v3/` is where a GitHub Enterprise Server
serves its REST API, and where go-github's `WithEnterpriseURLs(host, host)` sends a Provider whose
address is not on github.com (notification-controller v1.9.2 internal/notifier/github_helpers.go).

The certificate is made per run by a CA made per run (openssl, EC P-256); `ca_pem` is what the Provider's
`certSecretRef` Secret carries as `ca.crt`.
"""

from __future__ import annotations

import contextlib
import re
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

from plane.httpserve import json_api, serving

STATES = {"error", "failure", "pending", "success"}
LIST = re.compile(r"/api/v3/repos/(?P<repo>[^/]+/[^/]+)/commits/(?P<ref>[^/?]+)/statuses(?:\?.*)?")
CREATE = re.compile(r"/api/v3/repos/(?P<repo>[^/]+/[^/]+)/statuses/(?P<sha>[0-9a-f]{40})")


@dataclass
class Recorded:
    method: str
    path: str
    authorization: str = field(repr=False)  # a credential: never in what pytest prints
    body: Any


@dataclass
class FakeGitHub:
    repository: str
    token: str = field(repr=False)  # pytest prints reprs of a failing assertion's arguments
    port: int = 0
    ca_pem: str = ""
    requests: list[Recorded] = field(default_factory=list)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def address(self) -> str:
        """What the Provider's `spec.address` becomes: this server, then the repository."""
        return f"https://127.0.0.1:{self.port}/{self.repository}"

    def statuses_for(self, sha: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.statuses.get(sha, []))

    def answer(self, method: str, path: str, authorization: str, body: Any) -> tuple[int, Any]:
        with self.lock:
            self.requests.append(Recorded(method, path, authorization, body))
            if authorization != f"Bearer {self.token}":
                return 401, {"message": "Bad credentials"}
            listing, creating = LIST.fullmatch(path), CREATE.fullmatch(path)
            match = listing if method == "GET" else creating if method == "POST" else None
            if match is None or match["repo"] != self.repository:
                return 404, {"message": "Not Found"}
            if listing:
                return 200, list(self.statuses.get(listing["ref"], []))
            if not isinstance(body, dict) or body.get("state") not in STATES:
                return 422, {"message": "Validation Failed"}
            status = {
                "id": len(self.requests),
                "state": body["state"],
                "description": body.get("description"),
                "context": body.get("context", "default"),
                "target_url": body.get("target_url"),
            }
            self.statuses.setdefault(creating["sha"], []).insert(0, status)  # type: ignore[index]
            return 201, status


def _certificates(workdir: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca.crt, server.crt, server.key)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, crt = (workdir / n for n in ("ca.key", "ca.crt", "tls.key", "tls.csr", "tls.crt"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", *ec, "-days", "2", "-subj", "/CN=fake-github-ca", "-keyout", ca_key, "-out", ca)
    run("req", *ec, "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr)
    extensions = workdir / "ext.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
        "-extfile", extensions, "-out", crt)  # fmt: skip
    return ca, crt, key


@contextlib.contextmanager
def fake_github(repository: str, token: str, workdir: Path) -> Iterator[FakeGitHub]:
    """Serve the commit-status API for `repository` to holders of `token` until the block ends."""
    ca, crt, key = _certificates(workdir)
    github = FakeGitHub(repository, token, ca_pem=ca.read_text())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(crt, key)

    def answer(method: str, path: str, headers: Message, body: Any) -> tuple[int, Any]:
        return github.answer(method, path, headers.get("Authorization", ""), body)

    with serving(json_api(answer), "fake-github", tls=context) as port:
        github.port = port
        yield github
