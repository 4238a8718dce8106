"""k8s/ against a real API server: every object accepted by a server-side apply, the Deployment's pods
admitted by Pod Security "restricted", a privileged pod in the same namespace refused.

Pod Security admission checks a pod, not a Deployment (the API server only warns about a template), so
the pod the Deployment would create is sent to the API server in a server-side dry run, where admission
runs in full and nothing is stored. The refused pod is sent for real.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from plane.localcluster import Cluster, rendered_k8s


def pod_from_template(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    """The pod the Deployment's ReplicaSet would create: its template, named, in its namespace."""
    template = copy.deepcopy(deployment["spec"]["template"])
    metadata = {
        **template.get("metadata", {}),
        "name": name,
        "namespace": deployment["metadata"]["namespace"],
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def deployment_object() -> dict[str, Any]:
    (found,) = [o for o in rendered_k8s() if o["kind"] == "Deployment"]
    return found


def server_side_apply(cluster: Cluster, objects: list[dict[str, Any]], *extra: str) -> Any:
    """kubectl writes the API server's warnings to stderr (k8s.io/kubectl v0.35.4 pkg/cmd/cmd.go:
    `rest.NewWarningWriter(o.IOStreams.ErrOut, ...)`), and `--warnings-as-errors` makes one fail."""
    text = yaml.safe_dump_all(objects, sort_keys=False)
    return cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "--warnings-as-errors", "-f", "-", *extra,
        stdin=text, check=False,
    )  # fmt: skip


def test_every_object_of_k8s_is_accepted_by_a_server_side_apply(cluster: Cluster, app_namespace: str) -> None:
    objects = rendered_k8s()
    result = server_side_apply(cluster, objects)
    assert result.returncode == 0, result.stderr

    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        namespace = obj["metadata"].get("namespace")
        args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
        stored = json.loads(cluster.kubectl(*args).stdout)
        assert stored["metadata"]["uid"], f"{kind}/{name} was not stored"
    assert "Warning" not in result.stderr, result.stderr


def test_a_warning_from_the_api_server_would_fail_that_apply(cluster: Cluster, app_namespace: str) -> None:
    """The check above can fail: a Deployment whose pods break `restricted` is admitted with a Pod
    Security warning (the API server warns on workload templates), which kubectl prints on stderr."""
    deployment = copy.deepcopy(deployment_object())
    deployment["metadata"]["name"] = "warned"
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    result = server_side_apply(cluster, [deployment], "--dry-run=server")
    assert result.returncode != 0
    assert 'Warning: would violate PodSecurity "restricted:latest"' in result.stderr, result.stderr
    assert "Warning" not in result.stdout


def test_the_deployments_pod_is_admitted_by_pod_security_restricted(
    cluster: Cluster, app_namespace: str
) -> None:
    namespace = json.loads(cluster.kubectl("get", "namespace", app_namespace, "-o", "json").stdout)
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

    pod = pod_from_template(deployment_object(), "template-admission-check")
    result = cluster.kubectl(
        "create", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(pod), check=False
    )

    assert result.returncode == 0, result.stderr
    assert "PodSecurity" not in result.stderr  # not even a warning
    admitted = json.loads(result.stdout)
    # The ServiceAccount admission plugin ran too: the pod was given the namespace's default account.
    assert admitted["spec"]["serviceAccountName"] == "default"


def test_a_privileged_pod_in_the_apps_namespace_is_refused(cluster: Cluster, app_namespace: str) -> None:
    pod = pod_from_template(deployment_object(), "privileged-intruder")
    container = pod["spec"]["containers"][0]
    # The API server's validation refuses privileged together with allowPrivilegeEscalation: false, so
    # the intruder replaces the container's security context rather than adding to it.
    container["securityContext"] = {"privileged": True}

    result = cluster.kubectl("create", "-f", "-", stdin=json.dumps(pod), check=False)

    assert result.returncode != 0
    # The API server runs with --allow-privileged=true (as EKS does): the refusal is Pod Security's.
    assert 'violates PodSecurity "restricted:latest"' in result.stderr, result.stderr
    assert "privileged" in result.stderr
    missing = cluster.kubectl("get", "pod", "privileged-intruder", "-n", app_namespace, check=False)
    assert missing.returncode != 0
