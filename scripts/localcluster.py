"""The real control plane of `make cluster-up`, as the tests, `make demo-cluster` and `make bench` use it.

`Cluster` wraps `.cluster/kubeconfig` (kubectl as cluster-admin); `serve_repository` serves a bare
repository over SSH on 127.0.0.1 for source-controller to clone with a deploy key; `RolloutReporter`
writes the status a Deployment gets once its pods are Ready, because nothing here runs pods; `flux_loop`
applies the Flux objects the stack declares, rendered from the real program, pointed at a local repository.

Two things are pointed at this machine, and nothing else is touched: the GitRepository's URL (github.com
-> the sshd on 127.0.0.1) and, to match it, the host name in front of each known_hosts line. The deploy
keys are real ED25519 pairs and the sshd's host key is the one host key "GitHub's API" returns, so
source-controller clones with exactly the Secret the stack builds.

No notification-controller runs here (its module is not served by the Go module proxy; see
docs/cluster.md), so where GitHub's push event would reach the Receiver, `FluxLoop.push_event` does what
the Receiver does for a valid event: it sets `reconcile.fluxcd.io/requestedAt` on the GitRepository.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scripts.localservices import ROOT, free_port
from scripts.sandbox import GitOpsRepo

STATE = ROOT / ".cluster"
SKIPPED_TYPES = {"kubernetes:helm.sh/v3:Release"}  # Flux itself: its controllers run from scripts/cluster.sh
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
"""The annotation that asks a Flux object to reconcile now (fluxcd/pkg/apis/meta ReconcileRequestAnnotation):
what notification-controller's Receiver sets on its resources for a valid webhook, and `flux reconcile`."""


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

    def request_reconcile(self, kind: str, name: str, namespace: str) -> None:
        """What a Receiver does for a valid webhook: annotate the object with the time of the request."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S") + f".{time.time_ns() % 1_000_000_000:09d}Z"
        self.kubectl("annotate", "--overwrite", "-n", namespace, kind, name, f"{REQUESTED_AT}={stamp}")

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


class RolloutReporter:
    """Stands in for the kubelet and the Deployment controller, which do not run here: every
    Deployment in `namespace` whose status lags its spec is given the status it gets once all its
    pods are Ready (the fields kstatus reads), so Flux's health check can pass."""

    def __init__(self, cluster: Cluster, namespace: str, interval: float = 0.5) -> None:
        self.cluster, self.namespace, self.interval = cluster, namespace, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rollout-reporter", daemon=True)

    def __enter__(self) -> RolloutReporter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(ClusterError, subprocess.TimeoutExpired, ValueError):
                self.report_once()

    def report_once(self) -> None:
        listed = self.cluster.kubectl("get", "deployments", "-n", self.namespace, "-o", "json", check=False)
        if listed.returncode != 0:
            return
        for deployment in json.loads(listed.stdout)["items"]:
            generation = deployment["metadata"]["generation"]
            if deployment.get("status", {}).get("observedGeneration") == generation:
                continue
            replicas = deployment["spec"].get("replicas", 1)
            status = {
                "observedGeneration": generation,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
                ],
            }
            self.cluster.kubectl(
                "patch", "deployment", deployment["metadata"]["name"], "-n", self.namespace,
                "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}),
            )  # fmt: skip


def rendered_k8s(directory: Path = ROOT / "k8s") -> list[dict[str, Any]]:
    """`kubectl kustomize k8s`: the objects Flux applies from this repository."""
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
            for r in run_program().of_type("kubernetes:core/v1:Namespace")
            if r.inputs.get("metadata", {}).get("name") == name
        ]
    if not declared:
        raise ClusterError(f"namespace {name} is declared neither in k8s/ nor by the stack")
    cluster.apply(declared)
    # The ServiceAccount admission plugin refuses pods whose service account does not exist; in a real
    # cluster kube-controller-manager creates `default` in every namespace, and it does not run here.
    default = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": name},
    }
    cluster.apply([default])
    return name


def flux_objects(keys: Path, host_public_key: str) -> tuple[list[dict[str, Any]], str]:
    """Every Kubernetes object the stack declares (but the Helm release), from the real program under
    mocks, and the repository it names. Deploy keys are real key pairs made under `keys`; the one host
    key GitHub's API returns is `host_public_key`."""
    import pytest

    import tests.infra.conftest as harness

    def real_key(name: str, _inputs: dict) -> dict[str, str]:
        private, public = keygen(keys / name)
        return {"privateKeyOpenssh": private, "publicKeyOpenssh": public + "\n"}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(harness, "GITHUB_HOST_KEYS", [host_public_key])
        program = harness.run_program(extra_outputs={"tls:index/privateKey:PrivateKey": real_key})
    objects = [
        dict(r.inputs)  # a Kubernetes resource's inputs are the object's own fields, camelCase
        for r in program.resources
        if r.type.startswith("kubernetes:") and r.custom and r.type not in SKIPPED_TYPES
    ]
    return objects, harness.dev_config()[f"{harness.PROJECT}:repository"]


def pointed_at(
    objects: list[dict[str, Any]], repository: str, sshd: Sshd, bare: Path
) -> list[dict[str, Any]]:
    """The objects with github.com replaced by the local sshd in the GitRepository URL and known_hosts."""
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
    return objects


@dataclass
class FluxLoop:
    """The stack's Flux objects in the API server, following `repo` over SSH."""

    cluster: Cluster
    repo: GitOpsRepo
    objects: list[dict[str, Any]]
    app_namespace: str

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

    def deployment_image(self) -> str:
        (name,) = [o["metadata"]["name"] for o in rendered_k8s() if o["kind"] == "Deployment"]
        deployment = self.cluster.get("deployment", name, self.app_namespace)
        return deployment["spec"]["template"]["spec"]["containers"][0]["image"]

    def push_event(self) -> None:
        """GitHub's push event reaching the Receiver: the Receiver's effect (see the module docstring)."""
        metadata = self.named("GitRepository")["metadata"]
        self.cluster.request_reconcile("gitrepository", metadata["name"], metadata["namespace"])


@contextlib.contextmanager
def flux_loop(cluster: Cluster, workdir: Path) -> Iterator[FluxLoop]:
    """Seed a GitOps repository under workdir, serve it over SSH, apply the stack's Flux objects."""
    namespace = ensure_app_namespace(cluster)
    repo = GitOpsRepo.seed(workdir / "gitops")
    host_key = workdir / "sshd" / "host_key"
    _, host_public = keygen(host_key)
    objects, repository = flux_objects(workdir / "keys", host_public)
    (source,) = [o for o in objects if o["kind"] == "GitRepository"]
    auth = next(
        o
        for o in objects
        if o["kind"] == "Secret" and o["metadata"]["name"] == source["spec"]["secretRef"]["name"]
    )
    with serve_repository(
        repo.remote, auth["stringData"]["identity.pub"], host_key, workdir / "sshd"
    ) as sshd:
        objects = pointed_at(objects, repository, sshd, repo.remote)
        cluster.apply([o for o in objects if o["kind"] == "Namespace"])
        cluster.apply([o for o in objects if o["kind"] != "Namespace"])
        with RolloutReporter(cluster, namespace):
            yield FluxLoop(cluster, repo, objects, namespace)
