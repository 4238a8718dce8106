"""Promotion between two environments on the real control plane: dev and prod, each a namespace with the
stack's own Flux objects (GitRepository, Kustomization, the `github` Provider and Alert that report each
applied revision) on one branch, each Kustomization following its overlay into its namespace
(`spec.targetNamespace`, kustomize-controller v1 api/v1/kustomization_types.go: "TargetNamespace sets or
overrides the namespace in the kustomization.yaml file"). Flux's reports are the real
notification-controller's, posted to plane/fakegithub.py, and `promote --to` reads them back from there
(GitHub's "List commit statuses for a reference").

- a commit released to dev rolls out, dev's Flux reports `success`, and `promote --to prod` moves prod to
  that exact digest, which rolls out in prod;
- a rollback in prod leaves dev alone;
- every command runs as the release side's Jenkins does: GITOPS_ENVIRONMENT=dev, `promote --to prod`,
  `rollback --environment prod`;
- a dev release that never becomes Ready (its pods add a capability the namespace's `restricted` Pod
  Security level forbids, so the ReplicaSet controller's creates are refused) gets no `success`, and
  promotion refuses it.

The two environments follow a branch of their own, so the session's Flux (plane/localcluster.py) never
applies what this module breaks.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from infra.gitops import APP_NAMESPACE, RECEIVER_AUTH, status_context
from jenkins import manifest
from plane.localcluster import REQUESTED_AT, Cluster, FluxLoop, condition, rendered_k8s
from plane.sandbox import OpenPgpSigner, git, jenkins_cli
from tests.jenkins.conftest import push_image

BRANCH = "promotion"
ENVIRONMENTS = ("dev", "prod")
# What the stack declares in the app's namespace, per environment; its Receiver is GitHub's (the test
# asks for each reconcile with the annotation the Receiver would set).
COPIED = {"Namespace", "ServiceAccount", "Role", "RoleBinding", "Secret", "GitRepository", "Kustomization",
          "Provider", "Alert"}  # fmt: skip


@dataclass
class Environment:
    name: str
    namespace: str
    cluster: Cluster

    @property
    def overlay(self) -> str:
        return f"k8s/overlays/{self.name}/kustomization.yaml"

    def kustomization(self) -> dict[str, Any]:
        return self.cluster.get("kustomization", "app", self.namespace)

    def applied(self, commit: str) -> bool:
        status = self.kustomization().get("status", {})
        ready = condition(self.kustomization(), "Ready")
        at_commit = status.get("lastAppliedRevision") == f"{BRANCH}@sha1:{commit}"
        return bool(ready and ready["status"] == "True" and at_commit)

    def reconcile(self) -> None:
        stamp = datetime.now(UTC).isoformat()
        for kind in ("gitrepository", "kustomization"):
            self.cluster.kubectl(
                "annotate", "--overwrite", kind, "app", "-n", self.namespace, f"{REQUESTED_AT}={stamp}"
            )

    def deployment(self) -> dict[str, Any]:
        (name,) = [o["metadata"]["name"] for o in rendered_k8s() if o["kind"] == "Deployment"]
        return self.cluster.get("deployment", name, self.namespace)

    def image(self) -> str:
        return self.deployment()["spec"]["template"]["spec"]["containers"][0]["image"]

    def available(self, image: str) -> bool:
        """Rolled out at image: the Deployment controller's status, as `kubectl rollout status` reads it."""
        deployment = self.deployment()
        spec, status = deployment["spec"], deployment.get("status", {})
        replicas = spec.get("replicas", 1)
        ok = condition(deployment, "Available")
        return bool(
            spec["template"]["spec"]["containers"][0]["image"] == image
            and status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
            and status.get("updatedReplicas", 0) >= replicas >= 1
            and status.get("replicas", 0) <= status.get("updatedReplicas", 0)
            and status.get("availableReplicas", 0) >= status.get("updatedReplicas", 0)
            and ok
            and ok["status"] == "True"
        )


def environment_objects(flux: FluxLoop, name: str, namespace: str) -> list[dict[str, Any]]:
    """The stack's objects of the app's namespace for one environment: moved to `namespace`, following
    BRANCH and the environment's overlay, reporting with the environment's context."""
    found = []
    for original in flux.objects:
        meta = original["metadata"]
        if original["kind"] not in COPIED or meta["name"] == RECEIVER_AUTH:
            continue
        if (meta.get("namespace") or meta["name"]) != APP_NAMESPACE:
            continue
        obj = copy.deepcopy(original)
        if obj["kind"] == "Namespace":
            obj["metadata"]["name"] = namespace
        else:
            obj["metadata"]["namespace"] = namespace
        spec = obj.get("spec", {})
        if obj["kind"] == "RoleBinding":
            for subject in obj["subjects"]:
                subject["namespace"] = namespace
        if obj["kind"] == "GitRepository":
            spec["ref"] = {"branch": BRANCH}
        if obj["kind"] == "Kustomization":
            spec["path"] = f"./k8s/overlays/{name}"
            spec["targetNamespace"] = namespace
        if obj["kind"] == "Provider":
            spec["commitStatusExpr"] = f"'{status_context(name)}'"
        found.append(obj)
    kinds = sorted(o["kind"] for o in found)
    assert {"GitRepository", "Kustomization", "Provider", "Alert", "Namespace"} <= set(kinds), kinds
    return found


@pytest.fixture(scope="module")
def envs(flux: FluxLoop) -> Iterator[dict[str, Environment]]:
    """dev and prod on BRANCH, cut from the session's branch tip."""
    git(flux.repo.work, "fetch", "--quiet", "origin", "main")
    git(flux.repo.work, "push", "--quiet", "--force", "origin", f"FETCH_HEAD:refs/heads/{BRANCH}")
    suffix = secrets.token_hex(3)
    made = {}
    for name in ENVIRONMENTS:
        namespace = f"promotion-{name}-{suffix}"
        objects = environment_objects(flux, name, namespace)
        flux.cluster.apply([o for o in objects if o["kind"] == "Namespace"])
        flux.cluster.apply([o for o in objects if o["kind"] != "Namespace"])
        made[name] = Environment(name, namespace, flux.cluster)
    try:
        yield made
    finally:
        # A Kustomization's finalizer prunes what it applied once its reconcile ends, and the one of the
        # release that cannot roll out is held by its health check until the timeout: let the namespace's
        # deletion take the objects instead.
        for env in made.values():
            unfinalized = '{"metadata": {"finalizers": null}}'
            for kind in ("kustomization", "gitrepository"):
                env.cluster.kubectl(
                    "patch", kind, "app", "-n", env.namespace, "--type=merge", "-p", unfinalized, check=False
                )
            env.cluster.kubectl("delete", "namespace", env.namespace, "--wait=false", check=False)
        git(flux.repo.work, "push", "--quiet", "origin", f":refs/heads/{BRANCH}")


def cli(flux: FluxLoop, *args: str, github_ca: Path | None = None) -> tuple[int, str]:
    """The release module as the release side's Jenkins runs it (the first environment's stack, which
    releases to dev and promotes to, rolls back and holds every later environment): the bot's key, the
    pulls token; for promotion, GitHub is the commit-status API Flux posts to (its CA trusted through
    SSL_CERT_FILE)."""
    env = {**flux.bot_env, "GITOPS_ENVIRONMENT": ENVIRONMENTS[0], "GITOPS_BRANCH": BRANCH}
    if github_ca is not None:
        env |= {
            "GITOPS_PULLS_TOKEN": flux.github.token,
            "GITOPS_GITHUB_API_URL": f"https://127.0.0.1:{flux.github.port}/api/v3",
            "SSL_CERT_FILE": str(github_ca),
        }
    run = jenkins_cli(flux.repo.work, args[0], list(args[1:]), env=env)
    return run.returncode, run.stdout + run.stderr


def signed_app_change(flux: FluxLoop, label: str, overlay_patch: str | None = None) -> str:
    """A change at BRANCH's tip signed with the bot's key (so the history check needs GitHub for
    nothing), optionally adding a patch to dev's overlay; returns the commit."""
    work = flux.repo.work
    git(work, "fetch", "--quiet", "origin", BRANCH)
    git(work, "checkout", "--quiet", "--detach", f"origin/{BRANCH}")
    with (work / "app" / "app.py").open("a") as source:
        source.write(f"# {label}\n")
    git(work, "add", "app/app.py")
    if overlay_patch is not None:
        path = work / "k8s" / "overlays" / "dev" / "kustomization.yaml"
        path.write_text(path.read_text() + overlay_patch)
        git(work, "add", str(path))
    with OpenPgpSigner.of(flux.signing_key.read_text()) as bot:
        commit = bot.commit(work, "-m", label)
    git(work, "push", "--quiet", "origin", f"HEAD:{BRANCH}")
    return commit


def tip(flux: FluxLoop) -> str:
    return git(flux.repo.remote, "rev-parse", f"refs/heads/{BRANCH}").strip()


def at_tip(flux: FluxLoop, path: str) -> str:
    return git(flux.repo.remote, "show", f"{BRANCH}:{path}")


def release_to_dev(flux: FluxLoop, repository: str, label: str, patch: str | None = None):
    """An app change released to dev: (its commit, the image reference, dev's bot commit)."""
    commit = signed_app_change(flux, label, patch)
    digest = push_image(repository, commit)
    code, out = cli(flux, "promote", "--image-repository", repository, "--commit", commit)
    assert code == 0, out
    return commit, f"{repository}:{commit}@{digest}", tip(flux)


def reported(flux: FluxLoop, commit: str, environment: str) -> list[str]:
    context = status_context(environment)
    return [s["state"] for s in flux.github.statuses_for(commit) if s["context"] == context]


def replica_failure(env: Environment) -> bool:
    """A ReplicaSet of the environment's Deployment whose pod creates are refused (`ReplicaFailure`)."""
    found = env.cluster.kubectl("get", "replicasets", "-n", env.namespace, "-o", "json")
    items = json.loads(found.stdout)["items"]
    return any((c := condition(rs, "ReplicaFailure")) and c["reason"] == "FailedCreate" for rs in items)


PRIVILEGED = """patches:  # a change the namespace's Pod Security level refuses for every pod
  - target:
      kind: Deployment
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/securityContext/capabilities/add
        value: [NET_ADMIN]
"""


def test_promotion_follows_flux_s_report_and_a_prod_rollback_leaves_dev_alone(
    flux: FluxLoop, envs: dict[str, Environment], registry: str, tmp_path: Path
) -> None:
    dev, prod = envs["dev"], envs["prod"]
    ca = tmp_path / "fake-github-ca.pem"
    ca.write_text(flux.github.ca_pem)
    cluster = flux.cluster
    repository = f"{registry}/promotion-{secrets.token_hex(3)}"

    def roll_out(env: Environment, commit: str, image: str) -> None:
        env.reconcile()
        cluster.wait_for(f"{env.name} to apply {commit[:12]}", lambda: env.applied(commit), timeout=120)
        cluster.wait_for(f"{env.name} to roll out {image}", lambda: env.available(image), timeout=60)

    # 1. A release reaches dev, becomes Available, and dev's Flux reports success on it.
    first, first_image, applied = release_to_dev(flux, repository, "first release")
    roll_out(dev, applied, first_image)
    cluster.wait_for("dev's success report", lambda: "success" in reported(flux, applied, "dev"), timeout=60)

    # 2. Promoted to prod: that exact digest, which prod's Flux rolls out.
    code, out = cli(flux, "promote", "--to", "prod", "--image-repository", repository, github_ca=ca)
    assert code == 0, out
    promoted = tip(flux)
    entry = manifest.read_image(at_tip(flux, prod.overlay))
    assert f"{entry.new_name}:{entry.new_tag}@{entry.digest}" == first_image
    assert "Promoted-From: dev" in git(flux.repo.remote, "log", "-1", "--format=%B", promoted)
    roll_out(prod, promoted, first_image)

    # 3. A second release, promoted too; then prod rolls back to the first: dev keeps the second.
    _, second_image, applied = release_to_dev(flux, repository, "second release")
    roll_out(dev, applied, second_image)
    cluster.wait_for("dev's success report", lambda: "success" in reported(flux, applied, "dev"), timeout=60)
    code, out = cli(flux, "promote", "--to", "prod", "--image-repository", repository, github_ca=ca)
    assert code == 0, out
    roll_out(prod, tip(flux), second_image)
    dev_overlay = at_tip(flux, dev.overlay)
    args = (
        "--environment",
        "prod",
        "--image-repository",
        repository,
        "--to",
        first,
        "--reason",
        "5xx in prod",
    )
    code, out = cli(flux, "rollback", *args)
    assert code == 0, out
    roll_out(prod, tip(flux), first_image)
    assert at_tip(flux, dev.overlay) == dev_overlay
    assert dev.image() == second_image and dev.available(second_image)

    # 4. A dev release that never becomes Ready: no success, so no promotion; prod stays as it is.
    before = tip(flux)
    _, bad_image, applied = release_to_dev(flux, repository, "breaks restricted", PRIVILEGED)
    dev.reconcile()

    # Applied, but the rollout cannot finish: the health check (`wait: true`) holds the reconcile open
    # until its timeout, and no `success` is posted meanwhile.
    cluster.wait_for("dev to apply the release that cannot roll out", lambda: dev.image() == bad_image)
    cluster.wait_for("the ReplicaSet controller's FailedCreate", lambda: replica_failure(dev), timeout=60)
    assert not dev.available(bad_image)
    code, out = cli(flux, "promote", "--to", "prod", "--image-repository", repository, github_ca=ca)
    assert code == 1, out
    assert f"dev is not reported healthy: the commit status {status_context('dev')} on {applied}" in out
    assert "success" not in reported(flux, applied, "dev")
    assert tip(flux) == applied and applied != before
    assert prod.image() == first_image
