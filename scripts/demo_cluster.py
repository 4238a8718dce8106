"""`make demo-cluster`: the GitOps loop against the real control plane of `make cluster-up`.

Same stand-ins as `make demo` (a bare git remote for GitHub, docker-registry for ECR), but what Flux
applies is no longer a `kubectl kustomize` rendering: the stack's own GitRepository, Secret and
Kustomization (rendered from the Pulumi program) are in a real kube-apiserver, source-controller clones
the repository over SSH, GitHub's signed push event reaches the stack's Receiver in
notification-controller, kustomize-controller applies dev's overlay, kube-controller-manager rolls the
Deployment out (ReplicaSet, Pods bound by kube-scheduler to a KWOK node, where they become Ready without
running), the Provider reports a commit status, and the demo reads the rollout back from the API server.
Then a rollback goes through the same path. Needs root (sshd) and Docker.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: make the repo importable

from plane.localcluster import Cluster, ClusterError, FluxLoop, condition, flux_loop
from plane.sandbox import (
    BASE_IMAGE,
    MANIFEST,
    hermetic_build_args,
    image_present,
    jenkins_cli,
    run_registry,
    wheelhouse,
)
from scripts.demo import CACHE, DemoError, banner, check_tools, expect, release, say


def applied(loop: FluxLoop, what: str) -> str:
    """Send the push event to the Receiver, wait until Flux has applied the branch tip, the Deployment
    has rolled it out and Flux has reported it on the commit; return the Deployment's image."""
    tip, started = loop.repo.tip(), time.monotonic()
    loop.push_event()
    loop.wait_applied(tip)
    image = loop.deployment_image()
    loop.cluster.wait_for(f"the Deployment to roll out {image}", lambda: loop.available(image))
    seconds = time.monotonic() - started
    say(f"{what}: applied main@{tip[:12]}, Deployment Available {seconds:.1f}s after the push event")
    say(f"    Deployment in the API server: image {image}")
    say(f"    {rollout(loop, image)}")
    (status, *_) = loop.cluster.wait_for(
        f"the commit status on {tip[:12]}", lambda: loop.github.statuses_for(tip), timeout=60
    )
    say(f"    commit status on {tip[:12]}: {status['state']} ({status['context']}: {status['description']})")
    return image


def rollout(loop: FluxLoop, image: str) -> str:
    """One line on the pods that run `image`: how many are Ready, on which nodes, from which ReplicaSet."""
    selector = loop.deployment()["spec"]["selector"]["matchLabels"]
    labels = ",".join(f"{key}={value}" for key, value in selector.items())
    listed = loop.cluster.kubectl("get", "pods", "-n", loop.app_namespace, "-l", labels, "-o", "json").stdout
    pods = [p for p in json.loads(listed)["items"] if p["spec"]["containers"][0]["image"] == image]
    ready = [p for p in pods if (condition(p, "Ready") or {}).get("status") == "True"]
    nodes = sorted({p["spec"].get("nodeName", "") for p in pods})
    owners = sorted({ref["name"] for p in pods for ref in p["metadata"].get("ownerReferences", [])})
    return f"pods Ready: {len(ready)}/{len(pods)} on {', '.join(nodes)}, ReplicaSet {', '.join(owners)}"


def demo(loop: FluxLoop, repository: str, build_args: dict[str, str]) -> None:
    banner("1. Flux follows the repository: the stack's objects, in a real API server")
    loop.wait_applied(loop.repo.tip())
    url = loop.named("GitRepository")["spec"]["url"]
    say(f"GitRepository {url} cloned with the stack's deploy-key Secret")
    say(f"Kustomization applied ./{Path(MANIFEST).parent}; Deployment image: {loop.deployment_image()}")

    banner("2. A developer pushes an app change; Jenkins releases it")
    first = loop.repo.app_commit("Say hello from the cluster demo", loop.merges)
    expect(release(loop.repo, repository, build_args, loop.bot_env), "changed")
    image = applied(loop, "3. Push event -> Flux")
    if f":{first}@sha256:" not in image:
        raise DemoError(f"the Deployment names {image}, not {first} by digest")

    banner("4. A second change, then a rollback to the first")
    loop.repo.app_commit("A change we will regret", loop.merges)
    expect(release(loop.repo, repository, build_args, loop.bot_env), "changed")
    applied(loop, "second release")
    loop.repo.checkout_tip()
    args = ["--image-repository", repository, "--to", first, "--reason", "demo: roll back"]
    rollback = jenkins_cli(loop.repo.work, "rollback", args, echo=True, env=loop.bot_env)
    if rollback.returncode != 0:
        raise DemoError("rollback failed; its console output is above")
    if f":{first}@sha256:" not in applied(loop, "rollback"):
        raise DemoError("the rollback did not reach the API server")
    banner("Done: app commit -> image -> bot commit -> Flux -> Deployment in a real API server, and back")


def main() -> int:
    try:
        check_tools()
        cluster = Cluster.find()
        if cluster is None:
            raise DemoError("no control plane at .cluster/kubeconfig: run `make cluster-up` first")
        with contextlib.ExitStack() as stack:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gitops-demo-cluster-")))
            (scratch / "registry").mkdir()
            registry = stack.enter_context(run_registry(scratch / "registry"))
            build_args = {}
            if image_present(BASE_IMAGE):
                build_args = hermetic_build_args(stack.enter_context(wheelhouse(CACHE / "wheels")))
            banner(
                f"0. kube-apiserver {cluster.env.get('kubernetes')}, Flux controllers, registry {registry}"
            )
            loop = stack.enter_context(flux_loop(cluster, scratch / "flux"))
            demo(loop, f"{registry}/hello-gitops", build_args)
    except (DemoError, ClusterError, RuntimeError) as exc:
        say(f"\ndemo FAILED: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
