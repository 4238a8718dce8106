"""Deployments roll out as in a cluster: kube-controller-manager writes the ReplicaSet, its Pods and the
Deployment's status, kube-scheduler binds the Pods to the simulated node, KWOK (in place of that node's
kubelet) marks them Ready, and the Pod Security admission judges the pods the ReplicaSet controller
creates. Nothing of the suite writes a status (plane/cluster.sh starts these processes)."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jenkins import manifest
from plane.localcluster import Cluster, FluxLoop, condition
from plane.sandbox import MANIFEST, git
from tests.conftest import ROOT

# plane/cluster.sh NODE_NAME: the one Node, which KWOK manages.
NODE = "kwok-node-0"
# The field manager the API server records for a request is its User-Agent up to the first "/"
# (k8s.io/apiserver v0.35.4 pkg/endpoints/handlers/create.go prefixFromUserAgent), and client-go's
# default User-Agent starts with the binary's name (k8s.io/client-go rest/config.go DefaultUserAgent).
CONTROLLER_MANAGER = "kube-controller-manager"


def managers(obj: dict[str, Any], subresource: str = "") -> set[str]:
    """Who wrote the object (or one of its subresources), from its managedFields."""
    return {
        entry["manager"]
        for entry in obj["metadata"].get("managedFields", [])
        if entry.get("subresource", "") == subresource
    }


def owned_by(items: list[dict[str, Any]], kind: str, uid: str) -> list[dict[str, Any]]:
    return [
        item
        for item in items
        if any(
            ref["kind"] == kind and ref["uid"] == uid and ref.get("controller")
            for ref in item["metadata"].get("ownerReferences", [])
        )
    ]


def shown(cluster: Cluster, kind: str, name: str, namespace: str) -> dict[str, Any]:
    """The object with its managedFields (kubectl leaves them out unless asked)."""
    got = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", "--show-managed-fields")
    return json.loads(got.stdout)


def listed(cluster: Cluster, kind: str, namespace: str) -> list[dict[str, Any]]:
    got = cluster.kubectl("get", kind, "-n", namespace, "-o", "json", "--show-managed-fields")
    return json.loads(got.stdout)["items"]


def test_the_node_is_ready_and_renews_its_lease(cluster: Cluster) -> None:
    node = cluster.get("node", NODE, "")
    ready = condition(node, "Ready")
    assert ready and ready["status"] == "True", node.get("status")
    # The node lifecycle controller removes the not-ready taint the API server put on the new Node
    # (TaintNodesByCondition); a taint left would keep every pod Pending.
    assert not [t for t in node["spec"].get("taints", []) if t["key"].startswith("node.kubernetes.io/")]
    # The kubelet's heartbeat: the node's Lease, renewed within its duration (KWOK renews it as the
    # kubelet would, --node-lease-duration-seconds=40; the node lifecycle controller reads it).
    lease = cluster.get("lease", NODE, "kube-node-lease")
    assert lease["spec"]["leaseDurationSeconds"] == 40
    renewed = datetime.fromisoformat(lease["spec"]["renewTime"].replace("Z", "+00:00"))
    assert datetime.now(UTC) - renewed < timedelta(seconds=40), renewed


def test_a_new_namespace_gets_its_account_and_ca_and_is_deleted_by_the_controller_manager(
    cluster: Cluster,
) -> None:
    """Nothing in the suite creates a `default` ServiceAccount any more: the serviceaccount controller
    does, in every namespace, and the root CA publisher writes `kube-root-ca.crt` (--root-ca-file); the
    namespace controller finishes a deletion (without it a namespace stays Terminating)."""
    name = f"rollout-probe-{secrets.token_hex(4)}"
    cluster.kubectl("create", "namespace", name)
    try:

        def present(kind: str, what: str) -> bool:
            return cluster.kubectl("get", kind, what, "-n", name, check=False).returncode == 0

        cluster.wait_for(f"`default` in {name}", lambda: present("serviceaccount", "default"), timeout=60)
        cluster.wait_for(f"kube-root-ca.crt in {name}", lambda: present("configmap", "kube-root-ca.crt"))
        ca = shown(cluster, "configmap", "kube-root-ca.crt", name)
        assert managers(ca) == {CONTROLLER_MANAGER}
        assert ca["data"]["ca.crt"] == (cluster.kubeconfig.parent / "pki" / "ca.crt").read_text()
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false")
    cluster.wait_for(
        f"namespace {name} to be deleted",
        lambda: cluster.kubectl("get", "namespace", name, check=False).returncode != 0,
        timeout=120,
    )


def scaled_up(flux: FluxLoop) -> str:
    """The branch tip, with the app at its own replica count: the shipped manifest runs no pod until the
    first release (its day-0 `replicas:` entry). When no test of this session has released yet, remove
    that entry as the first release does, in a commit signed with the bot's key (Flux deploys no other)."""
    path = MANIFEST
    text = flux.repo.file_at_tip(path)
    if manifest.read_replicas(text) != 0:
        return flux.repo.tip()
    doc, layout = manifest.load(text)
    del doc["replicas"]
    flux.repo.checkout_tip()
    (flux.repo.work / path).write_text(manifest.render(doc, layout))
    git(flux.repo.work, "add", path)
    commit = flux.commit_signed("-m", "Run the app's own replica count")
    flux.push_event()
    return commit


def test_the_apps_deployment_is_rolled_out_by_the_real_controllers(flux: FluxLoop) -> None:
    flux.wait_applied(scaled_up(flux))
    image = flux.deployment_image()
    flux.cluster.wait_for(f"the Deployment to roll out {image}", lambda: flux.available(image))
    namespace = flux.app_namespace
    deployment = shown(flux.cluster, "deployment", flux.deployment()["metadata"]["name"], namespace)
    replicas = deployment["spec"]["replicas"]
    assert managers(deployment, "status") == {CONTROLLER_MANAGER}

    (replicaset,) = [
        rs
        for rs in owned_by(
            listed(flux.cluster, "replicasets", namespace), "Deployment", deployment["metadata"]["uid"]
        )
        if rs["spec"]["replicas"] > 0
    ]
    assert managers(replicaset) == {CONTROLLER_MANAGER}
    assert replicaset["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert replicaset["status"]["readyReplicas"] == replicas

    pods = owned_by(listed(flux.cluster, "pods", namespace), "ReplicaSet", replicaset["metadata"]["uid"])
    assert len(pods) == replicas
    for pod in pods:
        assert pod["spec"]["nodeName"] == NODE
        scheduled, ready = condition(pod, "PodScheduled"), condition(pod, "Ready")
        assert scheduled and scheduled["status"] == "True"
        assert ready and ready["status"] == "True"
        assert pod["status"]["phase"] == "Running"
        assert CONTROLLER_MANAGER in managers(pod)  # created by the ReplicaSet controller
        # Its status written by KWOK, the node's stand-in kubelet, and by nothing in the suite (the
        # scheduler's binding, which sets nodeName and PodScheduled, records no manager).
        assert managers(pod, "status") == {"kwok"}, managers(pod, "status")


PRIVILEGED = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "breaks-restricted"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "breaks-restricted"}},
        "template": {
            "metadata": {"labels": {"app": "breaks-restricted"}},
            "spec": {
                "containers": [{"name": "app", "image": "busybox", "securityContext": {"privileged": True}}]
            },
        },
    },
}


@pytest.fixture
def privileged_deployment(cluster: Cluster, app_namespace: str) -> Iterator[dict[str, Any]]:
    deployment = {**PRIVILEGED, "metadata": {**PRIVILEGED["metadata"], "namespace": app_namespace}}
    cluster.apply([deployment])
    try:
        yield deployment
    finally:
        # Garbage collection (kube-controller-manager) removes its ReplicaSet.
        cluster.kubectl("delete", "deployment", "breaks-restricted", "-n", app_namespace, "--wait=false")


def test_a_pod_that_breaks_restricted_gets_failed_create_from_the_replicaset_controller(
    cluster: Cluster, app_namespace: str, privileged_deployment: dict[str, Any]
) -> None:
    """Pod Security enforces on pods, not on the Deployment (which only gets a warning): the ReplicaSet
    controller's create is refused, and it reports that as the ReplicaSet's `ReplicaFailure` condition,
    reason `FailedCreate`, message the API server's error (k8s.io/kubernetes v1.35.4
    pkg/controller/replicaset/replica_set_utils.go calculateStatus), and as a `FailedCreate` event
    "Error creating: ..." (pkg/controller/controller_utils.go createPods)."""

    def failure() -> dict[str, Any] | None:
        for rs in listed(cluster, "replicasets", app_namespace):
            if rs["metadata"]["name"].startswith("breaks-restricted-"):
                found = condition(rs, "ReplicaFailure")
                return {**found, "rs": rs["metadata"]["name"]} if found else None
        return None

    found = cluster.wait_for("the ReplicaSet's ReplicaFailure condition", failure, timeout=60)
    assert found["status"] == "True" and found["reason"] == "FailedCreate"
    # The refusal of the PodSecurity admission plugin (k8s.io/pod-security-admission), for the
    # namespace's enforce level, with the check that failed.
    assert 'violates PodSecurity "restricted:latest"' in found["message"], found["message"]
    assert "privileged" in found["message"] and 'container "app"' in found["message"], found["message"]
    pods = [p["metadata"]["name"] for p in listed(cluster, "pods", app_namespace)]
    assert not [name for name in pods if name.startswith(f"{found['rs']}-")], pods
    events = cluster.kubectl(
        "get", "events", "-n", app_namespace, "-o", "json",
        f"--field-selector=involvedObject.name={found['rs']},reason=FailedCreate",
    )  # fmt: skip
    messages = [e["message"] for e in json.loads(events.stdout)["items"]]
    assert any(m.startswith("Error creating: ") and "violates PodSecurity" in m for m in messages), messages


def test_kwoks_module_graph_is_the_one_its_own_go_mod_names() -> None:
    """tools/kwok requires only kwok (its k8s.io modules are v0.36.1, tools/kube's v0.35.4, so it has its
    own module): any version that differs from kwok's go.mod (read from the module cache by the go
    command) would be a dependency kwok was never released with."""
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"}
    tools = ROOT / "tools" / "kwok"
    module = json.loads(
        subprocess.run(
            ["go", "list", "-m", "-json", "sigs.k8s.io/kwok"],
            cwd=tools, capture_output=True, text=True, check=True, env=env,
        ).stdout
    )  # fmt: skip
    requirement = re.compile(r"^\s+(\S+) (v\S+)(?: // indirect)?$", re.M)
    upstream = dict(requirement.findall(Path(module["GoMod"]).read_text()))
    ours = dict(requirement.findall((tools / "go.mod").read_text()))
    assert {m: (v, upstream[m]) for m, v in ours.items() if m in upstream and upstream[m] != v} == {}
    assert "replace" not in Path(module["GoMod"]).read_text()
