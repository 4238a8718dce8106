"""The Flux objects the stack declares, rendered from the real program under mocks and applied as they
are (plane/localcluster.py says exactly what is pointed at this machine), and the whole loop:
app commit -> `python -m jenkins release` (real Docker and registry) -> bot commit -> push event ->
Flux -> the Deployment rolled out at the new image by digest (kube-controller-manager, kube-scheduler
and the KWOK node do the rollout); then a rollback and an unhold.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from jenkins import manifest
from jenkins.core import NOTHING_RELEASED
from jenkins.registry import resolve_digest
from plane.localcluster import FluxLoop, condition, keygen, rendered_k8s
from plane.sandbox import MANIFEST, Run, build_arg_flags, git, hermetic_build_args, jenkins_cli
from tests.infra.conftest import STACK

HOLD_BY = "release.gitops/held-by"


def test_source_controller_clones_over_ssh_with_the_stacks_secret(flux: FluxLoop) -> None:
    revision = f"main@sha1:{flux.repo.tip()}"

    def cloned() -> bool:
        source = flux.status("GitRepository")
        ready = condition(source, "Ready")
        artifact = source.get("status", {}).get("artifact", {})
        return bool(ready and ready["status"] == "True" and artifact.get("revision") == revision)

    # The object may still carry the status of an earlier run's repository: wait for this one's commit.
    flux.cluster.wait_for(f"the GitRepository to be Ready at {revision}", cloned)


def test_each_secret_holds_exactly_the_keys_the_stack_declares(flux: FluxLoop) -> None:
    """The API server outlives a test session, and server-side apply never removes a key that an earlier
    session's `stringData` set (stringData is not stored, so no field manager owns the key): a stale
    `token` would let a Receiver or Provider work with a key the stack no longer declares."""
    for secret in (o for o in flux.objects if o["kind"] == "Secret"):
        meta = secret["metadata"]
        stored = flux.cluster.get("secret", meta["name"], meta["namespace"])
        assert sorted(stored.get("data", {})) == sorted(secret["stringData"]), meta["name"]  # keys only


def test_kustomize_controller_applies_k8s_and_reports_ready_at_the_commit(flux: FluxLoop) -> None:
    tip = flux.repo.tip()

    flux.wait_applied(tip)

    kustomization = flux.status("Kustomization")
    inventory = {entry["id"] for entry in kustomization["status"]["inventory"]["entries"]}
    for obj in rendered_k8s():
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        namespace = obj["metadata"].get("namespace", "")
        assert f"{namespace}_{obj['metadata']['name']}_{group}_{obj['kind']}" in inventory
    # The image the tip's manifest names: the seed's placeholder in a fresh session, a release's digest
    # once a test (in any order; the fixture is the session's) has released.
    flux.repo.checkout_tip()
    overlay = (flux.repo.work / MANIFEST).parent
    (deployment,) = [o for o in rendered_k8s(overlay) if o["kind"] == "Deployment"]
    assert flux.deployment_image() == deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def pods_of(flux: FluxLoop) -> list[dict]:
    """The app's Pods in its namespace (by the Deployment's selector)."""
    selector = flux.deployment()["spec"]["selector"]["matchLabels"]
    labels = ",".join(f"{key}={value}" for key, value in selector.items())
    got = flux.cluster.kubectl("get", "pods", "-n", flux.app_namespace, "-l", labels, "-o", "json")
    return json.loads(got.stdout)["items"]


def test_day0_nothing_released_yet_is_ready_and_reported_success_with_no_pod(flux: FluxLoop) -> None:
    """Before any release the shipped manifest names an image that does not exist; its `replicas:` entry
    of 0 asks for no pod, so none can wait for that image, and the Kustomization's health check passes.

    kstatus (fluxcd/cli-utils v1.2.2, what kustomize-controller v1.9.4 builds with), in
    pkg/kstatus/status/core.go deploymentConditions, compares spec.replicas 0 with the status counts (all
    0) and then requires the Progressing condition with reason NewReplicaSetAvailable and Available True;
    the Deployment controller sets both for 0 replicas (k8s.io/kubernetes v1.35.4
    pkg/controller/deployment/util/deployment_util.go DeploymentComplete: every count equals 0;
    sync.go: available 0 >= 0 - maxUnavailable gives MinimumReplicasAvailable)."""
    tip = flux.repo.tip()
    text = flux.repo.file_at_tip(MANIFEST)
    assert manifest.read_image(text).new_tag == NOTHING_RELEASED, (
        "another test released first in this session: this one checks the seeded state (pytest runs "
        "this file first among the plane's tests)"
    )

    # The tip is the commit `pulumi up` pushes on the trust anchor (infra/signing_switch.py, which the
    # plane runs to switch signing on): empty, by the bot, signed with its key without gpg.
    assert git(flux.repo.remote, "log", "-1", "--format=%ae %s", tip).startswith(
        "gitops-bot@users.noreply.github.com Switch release signing on [skip ci]"
    )

    flux.wait_applied(tip)
    verified = condition(flux.status("GitRepository"), "SourceVerified")
    assert verified and verified["status"] == "True", verified

    deployment = flux.deployment()
    assert deployment["spec"]["replicas"] == 0
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":" + NOTHING_RELEASED)
    assert flux.available(NOTHING_RELEASED)  # Available, every (zero) replica updated: the rollout is done
    progressing = condition(deployment, "Progressing")
    assert progressing and progressing["reason"] == "NewReplicaSetAvailable", progressing
    # An API server that outlives a session may still hold an earlier session's pods while they go: wait
    # for none, the state the Deployment asks for.
    flux.cluster.wait_for("no pod of the app", lambda: not pods_of(flux), timeout=60)

    def reported() -> list[dict]:
        return [s for s in flux.github.statuses_for(tip) if s["state"] == "success"]

    (status,) = flux.cluster.wait_for(f"a success status on {tip[:12]}", reported, timeout=60)
    assert status["context"] == f"gitops-eks/{STACK}"


@pytest.fixture(scope="module")
def releases(
    flux: FluxLoop, base_image: str, wheelhouse_url: str, registry: str
) -> tuple[str, dict[str, str]]:
    return f"{registry}/cluster/hello-gitops", hermetic_build_args(wheelhouse_url, base_image)


def release(flux: FluxLoop, repository: str, build_args: dict[str, str], commit: str) -> Run:
    flux.repo.checkout(commit)
    args = ["--image-repository", repository, "--build-network", "host", *build_arg_flags(build_args)]
    run = jenkins_cli(flux.repo.work, "release", args, env=flux.bot_env)
    assert run.returncode == 0, run.stderr
    return run


def not_verified(flux: FluxLoop, commit: str) -> bool:
    """source-controller refused to verify commit (SourceVerified False, naming it)."""
    verified = condition(flux.status("GitRepository"), "SourceVerified")
    return bool(verified and verified["status"] == "False" and commit in verified.get("message", ""))


def cli(flux: FluxLoop, command: str, *args: str) -> Run:
    flux.repo.checkout_tip()
    run = jenkins_cli(flux.repo.work, command, list(args), env=flux.bot_env)
    assert run.returncode == 0, run.stderr
    return run


@pytest.mark.docker
@pytest.mark.slow
def test_the_loop_commit_release_push_event_deployment_rollback_unhold(
    flux: FluxLoop, releases: tuple[str, dict[str, str]]
) -> None:
    repository, build_args = releases
    first = flux.repo.app_commit("First app change", flux.merges)
    run = release(flux, repository, build_args, first)
    assert run.outcome and run.outcome["outcome"] == "changed"
    digest = resolve_digest(repository, first)
    assert run.outcome["image"] == f"{repository}:{first}@{digest}"
    bot = flux.repo.tip()
    assert run.outcome["commit"] == bot

    flux.push_event()
    flux.wait_applied(bot)
    assert flux.deployment_image() == f"{repository}:{first}@{digest}"
    # The Kustomization's health check (`wait: true`) passed only once the rollout was complete.
    assert flux.available(f"{repository}:{first}@{digest}")
    # The first release removed the day-0 `replicas:` entry: the Deployment's own 2 pods run.
    assert flux.deployment()["spec"]["replicas"] == 2
    assert flux.deployment()["status"]["availableReplicas"] == 2

    second = flux.repo.app_commit("Second app change (the bad one)", flux.merges)
    release(flux, repository, build_args, second)
    flux.push_event()
    flux.wait_applied(flux.repo.tip())
    assert flux.deployment_image().startswith(f"{repository}:{second}@sha256:")

    run = cli(
        flux, "rollback", "--image-repository", repository, "--to", first, "--reason", "second breaks /readyz"
    )
    assert run.outcome and run.outcome["outcome"] == "changed"
    flux.push_event()
    flux.wait_applied(flux.repo.tip())
    assert flux.deployment_image() == f"{repository}:{first}@{digest}"

    third = flux.repo.app_commit("Third app change while held", flux.merges)
    run = release(flux, repository, build_args, third)
    assert run.outcome and run.outcome["outcome"] == "held"
    held_tip = flux.repo.tip()
    flux.push_event()
    # While held the bot commits nothing, so the tip is the merge, which Flux does not deploy (only the
    # bot's signature counts): the last bot commit stays applied.
    flux.cluster.wait_for(
        f"source-controller to refuse {held_tip[:12]}", lambda: not_verified(flux, held_tip)
    )
    assert flux.deployment_image() == f"{repository}:{first}@{digest}"

    cli(flux, "unhold")
    assert HOLD_BY not in flux.repo.file_at_tip(MANIFEST)
    run = release(flux, repository, build_args, third)
    assert run.outcome and run.outcome["outcome"] == "changed"
    flux.push_event()
    flux.wait_applied(flux.repo.tip())
    image = flux.deployment_image()
    assert re.fullmatch(rf"{re.escape(repository)}:{third}@sha256:[0-9a-f]{{64}}", image), image
    assert image == f"{repository}:{third}@{resolve_digest(repository, third)}"
    assert flux.available(image)


@pytest.mark.docker
@pytest.mark.slow
def test_an_unreviewed_commit_pushed_with_a_stolen_write_key_never_deploys(
    flux: FluxLoop, releases: tuple[str, dict[str, str]]
) -> None:
    """The write key bypasses the ruleset, so a thief can push an app change GitHub names no reviewed merge
    for. As the tip it is unsigned, and source-controller refuses it; the release on top of it refuses to
    sign (exit 1, nothing pushed). So it never reaches the cluster: Flux checks only the tip
    (`verify.mode: HEAD`), and the bot never puts its signature over an unreviewed commit."""
    repository, build_args = releases
    flux.repo.checkout_tip()
    applied = flux.commit_signed("--allow-empty", "-m", "A tip Flux applies [skip ci]")
    flux.push_event()
    flux.wait_applied(applied)
    deployed = flux.deployment_image()
    stolen = flux.repo.app_commit("A change pushed around review")  # no reviewed merge recorded for it
    flux.push_event()
    flux.cluster.wait_for(f"source-controller to refuse {stolen[:12]}", lambda: not_verified(flux, stolen))
    try:
        flux.repo.checkout(stolen)
        args = ["--image-repository", repository, "--build-network", "host", *build_arg_flags(build_args)]
        run = jenkins_cli(flux.repo.work, "release", args, env=flux.bot_env)
        assert run.returncode == 1, run.stderr
        assert run.outcome and run.outcome["outcome"] == "error"
        assert f"refusing to sign on top of origin at {stolen[:12]}" in run.outcome["error"]
        assert flux.repo.tip() == stolen  # nothing pushed
        assert flux.deployment_image() == deployed
    finally:
        # The tests after this one need a tip Flux applies: an empty bot-signed commit, as an operator
        # would add after checking the commit (it changes no manifest, so nothing new deploys).
        flux.repo.checkout_tip()
        tip = flux.commit_signed("--allow-empty", "-m", "Checked the commit pushed around review [skip ci]")
        flux.push_event()
        flux.wait_applied(tip)


def test_a_host_key_that_is_not_the_pinned_one_is_refused(flux: FluxLoop, tmp_path: Path) -> None:
    """source-controller checks the sshd's host key against the Secret's known_hosts (no TOFU)."""
    (source,) = [o for o in flux.objects if o["kind"] == "GitRepository"]
    auth = next(
        o
        for o in flux.objects
        if o["kind"] == "Secret" and o["metadata"]["name"] == source["spec"]["secretRef"]["name"]
    )
    pinned = auth["stringData"]["known_hosts"]
    host = pinned.split(" ", 1)[0]
    _, impostor = keygen(tmp_path / "impostor")
    flux.cluster.apply(
        [{**auth, "stringData": {**auth["stringData"], "known_hosts": f"{host} {impostor}\n"}}]
    )
    try:
        flux.push_event()

        def refused() -> str:
            ready = condition(flux.status("GitRepository"), "Ready")
            return ready["message"] if ready and ready["status"] == "False" else ""

        message = flux.cluster.wait_for("the GitRepository to refuse the host key", refused, timeout=120)
        assert "knownhosts" in message or "host key" in message, message
    finally:
        flux.cluster.apply([auth])
        flux.push_event()


# Objects a commit to k8s/ could hold that the Kustomization's targetNamespace cannot pull into the
# app's namespace: cluster-scoped kinds (a namespaced object in another namespace is rewritten into the
# app's, as tests/infra/test_gitops_rbac.py shows with `kubectl kustomize`).
ESCAPES = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "take-over"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "kube-system"}],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "read-every-secret"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}],
    },
]


def commit_to_k8s(flux: FluxLoop, obj: dict | None, message: str) -> str:
    """Push a commit that adds `obj` to k8s/base (as escape.yaml, listed in its kustomization), or
    removes it again when obj is None, signed with the bot's key (Flux deploys nothing else); returns
    the commit."""
    repo = flux.repo
    repo.checkout_tip()
    base = repo.work / "k8s" / "base"
    path, listing = base / "escape.yaml", base / "kustomization.yaml"
    kustomization = yaml.safe_load(listing.read_text())
    if obj is None:
        path.unlink()
        kustomization["resources"].remove("escape.yaml")
    else:
        path.write_text(yaml.safe_dump(obj, sort_keys=False))
        kustomization["resources"].append("escape.yaml")
    listing.write_text(yaml.safe_dump(kustomization, sort_keys=False))
    git(repo.work, "add", "--all", "k8s")
    return flux.commit_signed("-m", message)


@pytest.mark.parametrize("escape", ESCAPES, ids=lambda o: o["kind"])
def test_an_object_outside_the_app_is_refused_by_the_real_rbac(flux: FluxLoop, escape: dict) -> None:
    """Issue 12 test 4: kustomize-controller, which holds no cluster-admin, only Flux's `crd-controller` and
    `impersonate` (production's RBAC, plane/fluxchart.py), applies as the Kustomization's service
    account; the API server's RBAC refuses it the object, and nothing is created."""
    kustomization = flux.named("Kustomization")
    namespace, account = kustomization["metadata"]["namespace"], kustomization["spec"]["serviceAccountName"]
    user = f"system:serviceaccount:{namespace}:{account}"
    clean = flux.repo.tip()
    flux.push_event()
    flux.wait_applied(clean)

    bad = commit_to_k8s(flux, escape, f"Add a {escape['kind']}")
    flux.push_event()

    def refused() -> str:
        status = flux.status("Kustomization")
        ready = condition(status, "Ready")
        attempted = status.get("status", {}).get("lastAttemptedRevision")
        failed = ready and ready["status"] == "False" and attempted == f"main@sha1:{bad}"
        return ready["message"] if failed else ""

    message = flux.cluster.wait_for(f"the Kustomization to refuse {bad[:12]}", refused)
    assert "forbidden" in message.lower() and user in message, message
    assert escape["metadata"]["name"] in message, message
    status = flux.status("Kustomization")["status"]
    assert status["lastAppliedRevision"] == f"main@sha1:{clean}"
    found = flux.cluster.kubectl("get", escape["kind"].lower(), escape["metadata"]["name"], check=False)
    assert found.returncode != 0 and "NotFound" in found.stderr, found.stdout
    # The deploy report: the refused commit gets a failure status on GitHub (tests/cluster/
    # test_notification.py has the success side), so the author sees it on the commit.
    failures = flux.cluster.wait_for(
        f"a failure status on {bad[:12]}",
        lambda: [s for s in flux.github.statuses_for(bad) if s["state"] == "failure"],
        timeout=60,
    )
    assert failures[0]["context"] == f"gitops-eks/{STACK}"

    # The app still applies once the repository is clean again.
    clean = commit_to_k8s(flux, None, f"Remove the {escape['kind']}")
    flux.push_event()
    flux.wait_applied(clean)


def test_a_stack_that_followed_one_directory_moves_to_its_overlay_and_the_deployment_stays(
    flux: FluxLoop,
) -> None:
    """The upgrade of a stack whose Kustomization followed one flat directory (`./k8s` before the
    overlays) to `./k8s/overlays/<environment>`: `pulumi up` changes only spec.path (tests/infra/
    test_gitops.py). kustomize-controller v1.9.4 (internal/controller/kustomization_controller.go) applies
    the new path's objects, then prunes `inventory.Diff(old, new)`: the objects both render keep their
    identity, what only the old path had goes."""
    metadata = flux.named("Kustomization")["metadata"]
    declared = flux.named("Kustomization")["spec"]["path"]
    assert declared == f"./{Path(MANIFEST).parent}"
    repo = flux.repo
    repo.checkout_tip()
    legacy = repo.work / "legacy"
    legacy.mkdir()
    # The old directory: the same app, plus one Service the overlay does not have (to see the prune).
    (legacy / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [f"../{Path(MANIFEST).parent}", "extra.yaml"]})
    )
    extra = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "legacy-only", "namespace": flux.app_namespace},
        "spec": {"selector": {"app.kubernetes.io/name": "hello-gitops"}, "ports": [{"port": 8080}]},
    }
    (legacy / "extra.yaml").write_text(yaml.safe_dump(extra))
    git(repo.work, "add", "legacy")
    tip = flux.commit_signed("-m", "The old single-directory layout")
    flux.push_event()

    def at(path: str) -> dict | None:
        """The Kustomization once it has applied tip from path (its spec change observed), else None."""
        flux.cluster.kubectl(
            "patch", "kustomization", metadata["name"], "-n", metadata["namespace"], "--type=merge",
            "-p", json.dumps({"spec": {"path": path}}),
        )  # fmt: skip

        def applied() -> dict | None:
            found = flux.status("Kustomization")
            status, ready = found.get("status", {}), condition(found, "Ready")
            done = (
                status.get("observedGeneration") == found["metadata"]["generation"]
                and status.get("lastAppliedRevision") == f"main@sha1:{tip}"
                and ready is not None
                and ready["status"] == "True"
            )
            return found if done else None

        return flux.cluster.wait_for(f"the Kustomization to apply {path}", applied, timeout=120)

    try:
        at("./legacy")
        before = flux.deployment()["metadata"]["uid"]
        assert flux.cluster.get("service", "legacy-only", flux.app_namespace)["metadata"]["uid"]

        at(declared)

        assert flux.deployment()["metadata"]["uid"] == before
        gone = flux.cluster.kubectl("get", "service", "legacy-only", "-n", flux.app_namespace, check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr, gone.stdout
    finally:
        at(declared)
