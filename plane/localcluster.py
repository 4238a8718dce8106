"""The real control plane of `make cluster-up`, as the tests, `make demo-cluster` and `make bench` use it.

`Cluster` wraps `.cluster/kubeconfig` (kubectl as cluster-admin); `serve_repository` serves a bare
repository over SSH on 127.0.0.1 for source-controller to clone with a deploy key; `flux_loop` applies
the Flux objects the stack declares, rendered from the real program, pointed at a local repository.
Deployments roll out as in a cluster: kube-controller-manager writes their ReplicaSets, Pods and status,
kube-scheduler binds the Pods to the simulated node, and KWOK marks them Ready (plane/cluster.sh).

Two things are pointed at this machine, and nothing else is touched: the GitRepository's URL (github.com
-> the sshd on 127.0.0.1) and, to match it, the host name in front of each known_hosts line. The deploy
keys are real ED25519 pairs and the sshd's host key is the one host key "GitHub's API" returns, so
source-controller clones with exactly the Secret the stack builds. The bot's OpenPGP key is made by the
stack's own provider (infra/openpgp.py), so source-controller verifies commits against the Secret of
public keys the stack builds, and the loop signs as the bot does with the private half
(`FluxLoop.signing_key`, what the pipeline binds as GITOPS_SIGNING_KEY_FILE).

GitHub's side of the Receiver is `post_github_event`: a push event as GitHub delivers it (its headers, an
HMAC-SHA256 and an HMAC-SHA1 signature with the Receiver's secret), posted to notification-controller's
receiver port at the path the Receiver reports in its status. `FluxLoop.push_event` sends one for the
branch tip; nothing else wakes Flux up.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.openpgp import OpenPgpKeyProvider
from infra.signing_switch import PUSHED, switch_on
from plane.fakegithub import FakeGitHub, fake_github
from plane.localservices import ROOT, free_port
from plane.sandbox import BRANCH, MANIFEST, GitOpsRepo, OpenPgpSigner, ReviewedMerges, git

STATE = ROOT / ".cluster"
# Flux itself: its controllers run from plane/cluster.sh, which also applies the RBAC the install
# declares (plane/fluxchart.py `plane_objects`, the stack's impersonator included).
SKIPPED_TYPES = {
    "kubernetes:helm.sh/v3:Release",
    "kubernetes:fluxcd.controlplane.io/v1:FluxInstance",
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
}
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
"""The annotation that asks a Flux object to reconcile now (fluxcd/pkg/apis/meta ReconcileRequestAnnotation):
what notification-controller's Receiver sets on each of its resources for a valid delivery."""


class ClusterError(RuntimeError):
    """The control plane is missing or refused a request."""


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    env: Mapping[str, str]

    @classmethod
    def find(cls, state: Path = STATE) -> Cluster | None:
        """The cluster `make cluster-up` started, or None when none answers."""
        kubeconfig, env_file = state / "kubeconfig", state / "env"
        if not (kubeconfig.is_file() and env_file.is_file()):
            return None
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        cluster = cls(kubeconfig, env)
        try:
            cluster.kubectl("get", "--raw", "/readyz", timeout=10)
        except (ClusterError, subprocess.TimeoutExpired):
            return None
        return cluster

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise ClusterError(f"kubectl {args[0]} failed: {proc.stderr.strip()}")
        return proc

    def apply(self, objects: Sequence[Mapping[str, Any]], *extra: str) -> str:
        """Server-side apply of the objects as they are; returns kubectl's report."""
        text = yaml.safe_dump_all(list(objects), sort_keys=False)
        return self.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-", *extra, stdin=text
        ).stdout

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)

    def wait_for(
        self, what: str, probe: Callable[[], Any], timeout: float = 120, interval: float = 0.2
    ) -> Any:
        """Poll probe() until it returns something truthy; fail with `what` and the last value."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            time.sleep(interval)
        raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what} (last seen: {value!r})")


def github_push_payload(repository: str, branch: str, before: str, after: str) -> bytes:
    """The parts of GitHub's `push` event payload a receiver reads (github/docs,
    content/webhooks/webhook-events-and-payloads.md, "push")."""
    owner, name = repository.split("/", 1)
    return json.dumps(
        {
            "ref": f"refs/heads/{branch}",
            "before": before,
            "after": after,
            "created": False,
            "deleted": False,
            "forced": False,
            "repository": {
                "name": name,
                "full_name": repository,
                "owner": {"login": owner, "name": owner},
                "default_branch": branch,
                "ssh_url": f"git@github.com:{repository}.git",
                "clone_url": f"https://github.com/{repository}.git",
            },
            "pusher": {"name": "gitops-bot", "email": "gitops-bot@users.noreply.github.com"},
            "head_commit": {"id": after},
        }
    ).encode()


def github_signatures(secret: str, body: bytes) -> dict[str, str]:
    """The two signature headers GitHub sends for a webhook with a secret: the HMAC hex digest of the
    body, SHA-256 (`X-Hub-Signature-256: sha256=...`) and the legacy SHA-1 (`X-Hub-Signature: sha1=...`)
    (github/docs, content/webhooks/using-webhooks/validating-webhook-deliveries.md)."""
    key = secret.encode()
    return {
        "X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(),
        "X-Hub-Signature": "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest(),
    }


def post_github_event(
    url: str, event: str, body: bytes, headers: Mapping[str, str], timeout: float = 30
) -> tuple[int, str]:
    """POST a webhook delivery as GitHub does (the delivery headers of webhook-events-and-payloads.md);
    `headers` adds the signatures (or whatever a test wants to send instead). Returns (status, body)."""
    request = urllib.request.Request(  # noqa: S310 - a loopback URL the caller built
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/gitops-test",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "1",
            **headers,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback URL
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c.get("type") == type_), None)


@dataclass(frozen=True)
class Sshd:
    """A real sshd on 127.0.0.1 that serves git-upload-pack of one repository to one deploy key."""

    port: int
    host_public_key: str

    def url(self, repository: Path) -> str:
        return f"ssh://root@127.0.0.1:{self.port}{repository}"

    @property
    def known_hosts_host(self) -> str:
        return f"[127.0.0.1]:{self.port}"


def keygen(path: Path) -> tuple[str, str]:
    """A new ed25519 key pair at path: (private key in OpenSSH format, `type key` public line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)
    public = path.with_suffix(".pub").read_text().split()
    return path.read_text(), f"{public[0]} {public[1]}"


@contextlib.contextmanager
def serve_repository(
    repository: Path, deploy_public_key: str, host_key: Path, workdir: Path
) -> Iterator[Sshd]:
    """Serve `repository` read-only over SSH to the holder of `deploy_public_key` (needs root), with the
    host key `host_key` (see `keygen`)."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    workdir.mkdir(parents=True, exist_ok=True)
    gate = workdir / "gate.sh"
    # The deploy key may only fetch this one repository, as a read-only GitHub deploy key may.
    gate.write_text(
        "#!/bin/sh\n"
        f'[ "$SSH_ORIGINAL_COMMAND" = "git-upload-pack \'{repository}\'" ] || exit 1\n'
        'exec git-shell -c "$SSH_ORIGINAL_COMMAND"\n'
    )
    gate.chmod(0o755)
    (workdir / "authorized_keys").write_text(f'restrict,command="{gate}" {deploy_public_key.strip()}\n')
    port = free_port()
    config = workdir / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {workdir / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {workdir / 'authorized_keys'}\nStrictModes no\nUsePAM no\nAllowUsers root\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "LogLevel ERROR\n"
    )
    proc = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["bash", "-c", f"</dev/tcp/127.0.0.1/{port}"], capture_output=True).returncode:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ClusterError(
                    f"sshd did not start: {proc.stderr.read().decode() if proc.stderr else ''}"
                )
            time.sleep(0.05)
        public = host_key.with_suffix(".pub").read_text().split()
        yield Sshd(port, f"{public[0]} {public[1]}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def rendered_k8s(directory: Path = (ROOT / MANIFEST).parent) -> list[dict[str, Any]]:
    """`kubectl kustomize` of an overlay (the first environment's by default): what its Flux applies."""
    out = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def app_namespace_name(objects: Sequence[Mapping[str, Any]]) -> str:
    (name,) = {o["metadata"]["namespace"] for o in objects if o["kind"] == "Deployment"}
    return name


def ensure_app_namespace(cluster: Cluster) -> str:
    """Create the app's namespace with the labels it is declared with: from k8s/ while it lives there,
    else from the stack (which owns it once the trust-boundaries work lands)."""
    from tests.infra.conftest import run_program

    objects = rendered_k8s()
    name = app_namespace_name(objects)
    declared = [o for o in objects if o["kind"] == "Namespace" and o["metadata"]["name"] == name]
    if not declared:
        declared = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": r.inputs["metadata"]}
            # With a commitStatusToken, so the program does not warn that deploys will not report.
            for r in run_program(
                {"commitStatusToken": "github_pat_unused"}, secrets=["commitStatusToken"]
            ).of_type("kubernetes:core/v1:Namespace")
            if r.inputs.get("metadata", {}).get("name") == name
        ]
    if not declared:
        raise ClusterError(f"namespace {name} is declared neither in k8s/ nor by the stack")
    cluster.apply(declared)
    # The ServiceAccount admission plugin refuses pods whose service account does not exist: wait until
    # kube-controller-manager's serviceaccount controller has created `default`, as it does in every
    # namespace.
    cluster.wait_for(
        f"the `default` ServiceAccount in {name}",
        lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
        timeout=60,
    )
    return name


def flux_objects(keys: Path, host_public_key: str, status_token: str) -> tuple[list[dict[str, Any]], str]:
    """Every Kubernetes object the stack declares (but the Helm release), from the real program under
    mocks, and the repository it names. Deploy keys are real key pairs made under `keys`, and so is the
    bot's OpenPGP key (its private half in `keys/signing.asc`); the one host key GitHub's API returns is
    `host_public_key`; `status_token` is set as the secret `commitStatusToken`, so the deploy-report
    Provider and Alert are declared."""
    import pytest

    import tests.infra.conftest as harness

    def real_key(name: str, _inputs: dict) -> dict[str, str]:
        private, public = keygen(keys / name)
        return {"privateKeyOpenssh": private, "publicKeyOpenssh": public + "\n"}

    def real_openpgp_key(_name: str, inputs: dict) -> dict[str, str]:
        outs = OpenPgpKeyProvider().create({"user_id": inputs["user_id"]}).outs
        signing_key_file(keys).write_text(outs["private_key"])
        return outs

    signing_key_file(keys).touch(mode=0o600)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(harness, "GITHUB_HOST_KEYS", [host_public_key])
        program = harness.run_program(
            {"commitStatusToken": status_token},
            secrets=["commitStatusToken"],
            extra_outputs={
                "tls:index/privateKey:PrivateKey": real_key,
                "pulumi-python:dynamic/openpgp:Key": real_openpgp_key,
            },
        )
    objects = [
        dict(r.inputs)  # a Kubernetes resource's inputs are the object's own fields, camelCase
        for r in program.resources
        if r.type.startswith("kubernetes:") and r.custom and r.type not in SKIPPED_TYPES
    ]
    return objects, harness.dev_config()[f"{harness.PROJECT}:repository"]


def signing_key_file(keys: Path) -> Path:
    """Where `flux_objects` keeps the bot's private OpenPGP key (ASCII-armored, mode 0600)."""
    keys.mkdir(parents=True, exist_ok=True)
    return keys / "signing.asc"


def pointed_at(
    objects: list[dict[str, Any]], repository: str, sshd: Sshd, bare: Path, github: FakeGitHub
) -> list[dict[str, Any]]:
    """The objects with github.com replaced by the local sshd in the GitRepository URL and known_hosts,
    and by the local commit-status API in the Provider's address, with its CA in a `certSecretRef`
    Secret (the one object added)."""
    (source,) = [o for o in objects if o["kind"] == "GitRepository"]
    expected = f"ssh://git@github.com/{repository}.git"
    if source["spec"]["url"] != expected:
        raise ClusterError(f"the stack's GitRepository URL is {source['spec']['url']}, expected {expected}")
    source["spec"]["url"] = sshd.url(bare)
    auth = next(
        o
        for o in objects
        if o["kind"] == "Secret" and o["metadata"]["name"] == source["spec"]["secretRef"]["name"]
    )
    lines = auth["stringData"]["known_hosts"].splitlines()
    if lines != [f"github.com {sshd.host_public_key}"]:
        raise ClusterError(f"unexpected known_hosts from the stack: {lines}")
    auth["stringData"]["known_hosts"] = f"{sshd.known_hosts_host} {sshd.host_public_key}\n"
    (provider,) = [o for o in objects if o["kind"] == "Provider"]
    spec = provider["spec"]
    if spec["address"] != f"https://github.com/{repository}" or "certSecretRef" in spec:
        raise ClusterError(f"unexpected Provider spec from the stack: {provider['spec']}")
    ca = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "fake-github-ca", "namespace": provider["metadata"]["namespace"]},
        "type": "Opaque",
        "stringData": {"ca.crt": github.ca_pem},
    }
    provider["spec"]["address"] = github.address()
    provider["spec"]["certSecretRef"] = {"name": ca["metadata"]["name"]}
    return [*objects, ca]


@dataclass
class FluxLoop:
    """The stack's Flux objects in the API server, following `repo` over SSH."""

    cluster: Cluster
    repo: GitOpsRepo
    objects: list[dict[str, Any]] = field(repr=False)
    """The stack's objects, its Secrets' values among them: kept out of the repr pytest prints for a
    failing assertion's arguments."""
    app_namespace: str
    repository: str
    """The GitHub repository the stack names (`owner/name`), as GitHub's events carry it."""
    github: FakeGitHub
    """Where the stack's `github` Provider posts commit statuses."""
    signing_key: Path
    """The bot's private OpenPGP key, as the stack made it (a file, as Jenkins binds it)."""
    merges: ReviewedMerges
    """GitHub's REST API for `repository`: app changes are recorded as reviewed pull requests' merges,
    which is what the bot asks before it signs over them (`bot_env`)."""

    def commit_signed(self, *commit_args: str) -> str:
        """`git commit -S COMMIT_ARGS` in the working copy with the bot's key, as the bot signs (the only
        commits Flux deploys), pushed to the branch; returns the commit."""
        with OpenPgpSigner.of(self.signing_key.read_text()) as bot:
            commit = bot.commit(self.repo.work, *commit_args)
        git(self.repo.work, "push", "--quiet", "origin", f"HEAD:{BRANCH}")
        return commit

    @property
    def bot_env(self) -> dict[str, str]:
        """What the pipeline gives the bot's pushing command: its signing key, and the token and API
        that say which commits are reviewed pull requests' merges."""
        return {"GITOPS_SIGNING_KEY_FILE": str(self.signing_key), **self.merges.env}

    def named(self, kind: str) -> dict[str, Any]:
        (found,) = [o for o in self.objects if o["kind"] == kind]
        return found

    def status(self, kind: str) -> dict[str, Any]:
        """The object of `kind` as the API server has it, in the namespace the stack declares it in."""
        metadata = self.named(kind)["metadata"]
        return self.cluster.get(kind.lower(), metadata["name"], metadata["namespace"])

    def applied(self, commit: str) -> bool:
        """The Kustomization is Ready, at `commit` of the branch."""
        kustomization = self.status("Kustomization")
        ready = condition(kustomization, "Ready")
        revision = kustomization.get("status", {}).get("lastAppliedRevision", "")
        return bool(ready and ready["status"] == "True" and revision == f"main@sha1:{commit}")

    def wait_applied(self, commit: str, timeout: float = 180) -> None:
        self.cluster.wait_for(f"Flux to apply {commit[:12]}", lambda: self.applied(commit), timeout=timeout)

    def deployment(self) -> dict[str, Any]:
        """The app's Deployment as the API server has it."""
        (name,) = [o["metadata"]["name"] for o in rendered_k8s() if o["kind"] == "Deployment"]
        return self.cluster.get("deployment", name, self.app_namespace)

    def deployment_image(self) -> str:
        return self.deployment()["spec"]["template"]["spec"]["containers"][0]["image"]

    def available(self, image_part: str) -> bool:
        """The Deployment's rollout is complete at an image naming `image_part`, by the status the
        Deployment controller writes: what `kubectl rollout status` waits for (k8s.io/kubectl v0.35.4
        pkg/polymorphichelpers/rollout_status.go: generation observed, every replica updated, no old
        replica left, every updated replica available) and the `Available` condition True."""
        deployment = self.deployment()
        spec, status = deployment["spec"], deployment.get("status", {})
        replicas = spec.get("replicas", 1)
        available = condition(deployment, "Available")
        return bool(
            image_part in spec["template"]["spec"]["containers"][0]["image"]
            and status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
            and status.get("updatedReplicas", 0) >= replicas
            and status.get("replicas", 0) <= status.get("updatedReplicas", 0)
            and status.get("availableReplicas", 0) >= status.get("updatedReplicas", 0)
            and available
            and available["status"] == "True"
        )

    def secret_value(self, secret_name: str, key: str) -> str:
        """A value of one of the stack's Secrets, as declared (stringData)."""
        (secret,) = [
            o for o in self.objects if o["kind"] == "Secret" and o["metadata"]["name"] == secret_name
        ]
        return secret["stringData"][key]

    def receiver_url(self, timeout: float = 60) -> str:
        """Where GitHub would deliver: notification-controller's receiver port, at the path the Receiver
        reports once it is Ready (`status.webhookPath`)."""

        def path() -> str:
            receiver = self.status("Receiver")
            ready = condition(receiver, "Ready")
            ok = ready and ready["status"] == "True"
            return receiver.get("status", {}).get("webhookPath", "") if ok else ""

        webhook_path = self.cluster.wait_for("the Receiver to be Ready", path, timeout=timeout)
        return f"http://127.0.0.1:{self.cluster.env['RECEIVER_PORT']}{webhook_path}"

    def receiver_token(self) -> str:
        return self.secret_value(self.named("Receiver")["spec"]["secretRef"]["name"], "token")

    def push_event(self) -> None:
        """GitHub's push event for the branch tip, signed with the Receiver's secret, delivered to the
        Receiver; notification-controller asks the GitRepository to reconcile."""
        tip = self.repo.tip()
        body = github_push_payload(self.repository, BRANCH, "0" * 40, tip)
        status, text = post_github_event(
            self.receiver_url(), "push", body, github_signatures(self.receiver_token(), body)
        )
        if status != 200:
            raise ClusterError(f"the Receiver answered the push event with HTTP {status}: {text.strip()}")


@contextlib.contextmanager
def flux_loop(cluster: Cluster, workdir: Path) -> Iterator[FluxLoop]:
    """Seed a GitOps repository under workdir, serve it over SSH, apply the stack's Flux objects."""
    from tests.infra.conftest import operator_codeowners

    # The program reads the operator's CODEOWNERS, as in their checkout after the quickstart.
    with operator_codeowners(workdir / "checkout"):
        namespace = ensure_app_namespace(cluster)
        repo = GitOpsRepo.seed(workdir / "gitops")
        host_key = workdir / "sshd" / "host_key"
        _, host_public = keygen(host_key)
        status_token = "github_pat_" + secrets.token_urlsafe(30)
        objects, repository = flux_objects(workdir / "keys", host_public, status_token)
    signing_key = signing_key_file(workdir / "keys")
    # Flux deploys only a tip the bot signed: as `pulumi up` does on the trust anchor, the stack's own
    # code pushes one empty commit signed with the bot's key onto the seed (infra/signing_switch.py).
    # (The remote is a local path here, so no SSH key or host key is used.)
    outcome, _ = switch_on(
        str(repo.remote),
        BRANCH,
        repo.tip(),
        deploy_key="",
        known_hosts="",
        signing_key=signing_key.read_text(),
    )
    if outcome != PUSHED:
        raise ClusterError(f"switching signing on in {repo.remote}: {outcome}")
    repo.checkout_tip()
    (source,) = [o for o in objects if o["kind"] == "GitRepository"]
    auth = next(
        o
        for o in objects
        if o["kind"] == "Secret" and o["metadata"]["name"] == source["spec"]["secretRef"]["name"]
    )
    with (
        serve_repository(repo.remote, auth["stringData"]["identity.pub"], host_key, workdir / "sshd") as sshd,
        fake_github(repository, status_token, workdir / "github") as github,
        ReviewedMerges.served(repository) as merges,
    ):
        merges.name_remote(repo.work)
        objects = pointed_at(objects, repository, sshd, repo.remote, github)
        cluster.apply([o for o in objects if o["kind"] == "Namespace"])
        # The API server outlives a session, and server-side apply never drops a key an earlier session's
        # stringData set (stringData is not stored, so no field manager owns it): start from the
        # declared keys.
        for secret in (o for o in objects if o["kind"] == "Secret"):
            meta = secret["metadata"]
            cluster.kubectl("delete", "secret", meta["name"], "-n", meta["namespace"], "--ignore-not-found")
        cluster.apply([o for o in objects if o["kind"] != "Namespace"])
        yield FluxLoop(cluster, repo, objects, namespace, repository, github, signing_key, merges)
