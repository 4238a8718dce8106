"""Push -> Deployment Available through the real Flux controllers and the real rollout: push event
against polling.

Each run pushes a manifest commit as the release bot does (a new `newTag` in the first environment's
overlay) and times how long, from the moment the push returned, until the Kustomization is Ready at that
commit and the Deployment has rolled out the new tag: kube-controller-manager's Deployment controller
reports every replica updated and available and `Available` True, for pods its ReplicaSet controller created,
kube-scheduler bound and KWOK made Ready (plane/cluster.sh). "webhook" posts GitHub's push event,
signed with the stack's webhook secret, to the stack's Receiver in notification-controller right after
the push; "polling" waits for the GitRepository's own interval (the stack's flux.interval).
Needs `make cluster-up` (and root, for the local sshd).
"""

from __future__ import annotations

import secrets
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from jenkins import manifest
from plane.localcluster import Cluster, FluxLoop, flux_loop
from plane.sandbox import MANIFEST, OpenPgpSigner, git

RUNS = {"webhook": 5, "polling": 3}


def bot_commit(loop: FluxLoop) -> tuple[str, str]:
    """Push a commit that moves the app to a new tag, signed with the bot's key, as the release bot's
    commit is (Flux verifies it)."""
    tag = secrets.token_hex(20)
    work = loop.repo.work
    loop.repo.checkout_tip()
    path = work / MANIFEST
    # As the release writes it (jenkins/manifest.py): the first one also drops day 0's `replicas: 0`,
    # so every timed run rolls out the Deployment's own replicas (asserted in one_run).
    text = path.read_text()
    path.write_text(manifest.with_image(text, replace(manifest.read_image(text), new_tag=tag)))
    with OpenPgpSigner.of(loop.signing_key.read_text()) as bot:
        bot.commit(work, "-am", f"bench: deploy {tag[:12]} [skip ci]")
    git(work, "push", "--quiet", "origin", "HEAD:main")
    return git(work, "rev-parse", "HEAD"), tag


def one_run(loop: FluxLoop, webhook: bool) -> float:
    commit, tag = bot_commit(loop)
    started = time.monotonic()
    if webhook:
        loop.push_event()
    loop.cluster.wait_for(
        f"Flux to apply {commit[:12]} and the Deployment to roll it out",
        lambda: loop.applied(commit) and loop.available(f":{tag}"),
        timeout=300,
        interval=0.05,
    )
    elapsed = time.monotonic() - started
    rolled = loop.deployment()["status"].get("availableReplicas", 0)
    assert rolled >= 2, f"the run timed a rollout of {rolled} pods, not the app's 2"
    return elapsed


def main() -> None:
    cluster = Cluster.find()
    if cluster is None:
        print("no control plane at .cluster/kubeconfig: run `make cluster-up` first; skipped")
        return
    with tempfile.TemporaryDirectory() as tmp, flux_loop(cluster, Path(tmp)) as loop:
        loop.wait_applied(loop.repo.tip())
        interval = loop.named("GitRepository")["spec"]["interval"]
        results = {mode: [one_run(loop, mode == "webhook") for _ in range(n)] for mode, n in RUNS.items()}
    print(
        "push -> Deployment Available (Kustomization Ready at the commit, new tag rolled out); "
        f"poll interval {interval}"
    )
    print(f"{'mode':<8} {'runs':>4} {'p50 s':>7} {'min s':>7} {'max s':>7}")
    for mode, seconds in results.items():
        median, low, high = statistics.median(seconds), min(seconds), max(seconds)
        print(f"{mode:<8} {len(seconds):>4} {median:>7.2f} {low:>7.2f} {high:>7.2f}")
    ratio = statistics.median(results["polling"]) / statistics.median(results["webhook"])
    print(f"polling / webhook (p50): {ratio:.1f}x")


if __name__ == "__main__":
    main()
