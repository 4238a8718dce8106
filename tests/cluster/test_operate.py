"""docs/operations.md's incident recipes, run as documented against the real control plane: releases go
through the real pipeline (tests/e2e/pipeline.py: the Jenkinsfile's stages on separate machines, over a
real sshd and registry) into the shared Flux loop's repository, the operator jobs run the stage of
jenkins/operate.Jenkinsfile with the parameters the docs' table names, and each step is checked where it
lands: the bot's signed commit on the branch, source-controller verifying it, kustomize-controller
applying it, and the app's pods running the image digest the step chose.

The freeze and thaw run the docs' `kubectl` equivalents: the Flux CLI (github.com/fluxcd/flux2/v2
cmd/flux at v2.9.3) does not build from its Go module, because it embeds install manifests that
flux2's Makefile generates (`//go:embed manifests/*.yaml` in cmd/flux/manifests.embed.go; the directory
is in flux2's .gitignore, so the published module has none). The `flux` lines of the docs therefore do
not run here; the `kubectl` lines next to them do, read from the docs' fenced blocks.

Two releases (`good`, then `bad`) roll out first, the module's one set-up; then, in order: the
troubleshooting commands on that rollout, the incident (the rollback's COMMIT found as documented, the
rollback with its hold, a release that the hold stops, unhold, promote), and a freeze during which a
release lands in git but not in the cluster, then the thaw that rolls it out. The Flux waits poll with
deadlines; nothing sleeps.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from jenkins import manifest
from jenkins.registry import resolve_digest
from plane.localcluster import REQUESTED_AT, FluxLoop, condition, rendered_k8s
from plane.sandbox import BRANCH, MANIFEST, git
from tests.conftest import ROOT
from tests.e2e.pipeline import (
    Machine,
    Pipeline,
    Run,
    add_pipeline_files,
    controller,
    machines_root,
    require_machines,
    run_operator_job,
    run_pipeline,
)
from tests.e2e.test_operate import STARTED_BY_ALICE, console, documented_jobs, outcome

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DOCS = ROOT / "docs" / "operations.md"
REASON = "5xx after the release"
FLUX_KINDS = ("gitrepository.source.toolkit.fluxcd.io", "kustomization.kustomize.toolkit.fluxcd.io")
# source-controller v1.9.3 internal/controller/gitrepository_controller.go, verifySignature: a verified
# tip sets SourceVerified True with "verified signature of\n\t- commit '<sha>' with key '<id>'".
VERIFIED = "verified signature of\n\t- commit '{}'"


def section(title: str) -> str:
    """The text of docs/operations.md under the `## title` heading, up to the next one."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", DOCS.read_text(), re.M | re.S)
    assert match, f"docs/operations.md has no section {title!r}"
    return match[1]


def commands(text: str, program: str) -> list[str]:
    """The lines of text's fenced bash blocks that run `program` (continuation lines joined)."""
    found = []
    for block in re.findall(r"^ *```bash\n(.*?)^ *```", text, re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith(f"{program} "):
                found.append(line.strip())
    return found


def run_documented(flux: FluxLoop, command: str) -> str:
    """A documented command, through bash as a person pastes it, with the plane's kubeconfig."""
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        env={"PATH": "/usr/bin:/bin", "HOME": os.environ["HOME"], "KUBECONFIG": str(flux.cluster.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, (command, proc.stderr)
    return proc.stdout


def table(output: str) -> list[dict[str, str]]:
    """kubectl's default table output as rows keyed by column header (the last column may hold blanks)."""
    found = []
    for part in output.strip().split("\n\n"):  # one table per kind
        header, *rows = part.splitlines()
        starts = [m.start() for m in re.finditer(r"\S+", header)]
        ends = [*starts[1:], None]
        found += [{name: row[a:b].strip() for name, a, b in zip(header.split(), starts, ends, strict=True)}
                  for row in rows]  # fmt: skip
    return found


@dataclass
class Plane:
    """The shared Flux loop, the operator jobs' controller and what has been released so far."""

    flux: FluxLoop
    pipeline: Pipeline
    repository: str
    commits: dict[str, str]
    jobs: int = 0

    def image(self, commit: str) -> str:
        """The reference a release of commit deploys: REPOSITORY:COMMIT@DIGEST, from the registry."""
        return f"{self.repository}:{commit}@{resolve_digest(self.repository, commit)}"

    def release(self, what: str) -> tuple[str, dict[str, object]]:
        """A reviewed app change, then the pipeline on fresh machines; returns the commit and the
        release's JSON outcome."""
        commit = self.flux.repo.app_commit(what, self.flux.merges)
        for agent in ("build-agent", "release-agent"):
            shutil.rmtree(self.pipeline.root / agent, ignore_errors=True)
        run: Run = run_pipeline(self.pipeline)
        assert run.build_status == 0 and run.release is not None, run.console(run.build)
        assert run.release_status == 0, run.console(run.release)
        text = (run.release.workspace / "release.json").read_text()
        return commit, json.loads(text.splitlines()[-1])

    def job(self, name: str, **parameters: str) -> Machine:
        """One build of the operator job `name`, started by alice, with only the documented parameters."""
        assert set(parameters) <= set(documented_jobs()[name]), parameters
        self.jobs += 1
        env = {"JOB_BASE_NAME": name, "GITOPS_STARTED_BY": STARTED_BY_ALICE, "DRY_RUN": "false"}
        machine, status = run_operator_job(self.pipeline, f"{name}-{self.jobs}", {**env, **parameters})
        assert status == 0, console(machine)
        return machine

    def running(self, image: str) -> bool:
        """The rollout is complete at `image`, and every pod of the app is Ready and runs it."""
        if not self.flux.available(image):
            return False
        pods = self.pods()
        return bool(pods) and all(
            [c["image"] for c in pod["spec"]["containers"]] == [image]
            and (condition(pod, "Ready") or {}).get("status") == "True"
            for pod in pods
        )

    def wait_deployed(self, image: str) -> None:
        """Tell Flux of the push; wait until the tip is applied and the app's pods run `image`."""
        self.flux.push_event()
        tip = self.flux.repo.tip()
        self.flux.cluster.wait_for(
            f"{tip[:12]} applied and the app's pods at {image}",
            lambda: self.flux.applied(tip) and self.running(image),
            timeout=180,
        )

    def pods(self) -> list[dict[str, object]]:
        (deployment,) = [o for o in rendered_k8s() if o["kind"] == "Deployment"]
        labels = deployment["spec"]["selector"]["matchLabels"]
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        out = self.flux.cluster.kubectl(
            "get", "pods", "-n", self.flux.app_namespace, "-l", selector, "-o", "json"
        )
        return [p for p in json.loads(out.stdout)["items"] if "deletionTimestamp" not in p["metadata"]]

    def manifest_at_tip(self) -> str:
        return self.flux.repo.file_at_tip(MANIFEST)

    def message(self, commit: str) -> str:
        return git(self.flux.repo.remote, "log", "-1", "--format=%B", commit)

    def verified(self, commit: str) -> bool:
        verified = condition(self.flux.status("GitRepository"), "SourceVerified")
        return bool(
            verified and verified["status"] == "True" and VERIFIED.format(commit) in verified["message"]
        )


@pytest.fixture(scope="module")
def plane(flux: FluxLoop, registry: str, docker_engine: None) -> Iterator[Plane]:
    """The pipeline's files on the shared loop's branch and two releases through the real pipeline,
    `good` then `bad`, the second rolled out. Afterwards the Kustomization is thawed and the app's
    Dockerfile put back, whatever happened, for the other tests of the loop."""
    require_machines()
    repo = flux.repo
    dockerfile = (repo.work / "app" / "Dockerfile").read_text()
    add_pipeline_files(repo, flux.merges)
    # The release runs the code of the newest bot-signed commit (docs/release.md, "Which code the
    # release runs"): an empty one anchors it on the pipeline's files.
    flux.commit_signed("--allow-empty", "-m", "Anchor release signing [skip ci]")
    repository = f"{registry}/cluster-operate-{uuid.uuid4().hex[:8]}"
    kustomization = flux.named("Kustomization")["metadata"]
    try:
        with machines_root() as machines:
            public = machines / "signing.pub.asc"
            public.write_text(flux.secret_value("commit-signers", "gitops-bot.asc"))
            keys = {"gitops-signing-key": flux.signing_key, "gitops-signing-public-key": public}
            with controller(repo.remote, machines, repository, flux.merges, signing=keys) as (pipeline, _, _):
                plane = Plane(flux, pipeline, repository, {})
                for name in ("good", "bad"):
                    plane.commits[name], released = plane.release(name)
                    assert released["outcome"] == "changed", released
                plane.wait_deployed(plane.image(plane.commits["bad"]))
                yield plane
    finally:
        name, namespace = kustomization["name"], kustomization["namespace"]
        thaw = ("--type", "merge", "-p", '{"spec":{"suspend":false}}')
        flux.cluster.kubectl("patch", "kustomization", name, "-n", namespace, *thaw)
        repo.checkout_tip()
        (repo.work / "app" / "Dockerfile").write_text(dockerfile)
        flux.commit_signed("-am", "Put the app's Dockerfile back [skip ci]")


def test_the_troubleshooting_commands_show_the_rollout(plane: Plane) -> None:
    """Every `kubectl` line of "Troubleshooting" runs on the plane and shows what the docs say it shows.
    The `flux` lines need the Flux CLI (module docstring); the `aws` and `pulumi` lines need AWS."""
    image = plane.image(plane.commits["bad"])
    lines = commands(section("Troubleshooting"), "kubectl")
    checked = set()
    for command in lines:
        output = run_documented(plane.flux, command)
        if " get gitrepository,kustomization " in command:
            rows = table(output)
            names = sorted(r["NAME"] for r in rows)
            assert names == [f"{kind}/app" for kind in FLUX_KINDS], output
            assert all(r["READY"] == "True" for r in rows), output
            checked.add("ready")
        elif " get pods " in command:
            rows = table(output)
            assert rows and all(r["STATUS"] == "Running" and r["READY"] == "1/1" for r in rows), output
            assert {r["NAME"] for r in rows} == {p["metadata"]["name"] for p in plane.pods()}
            checked.add("pods")
        elif " describe pods " in command:
            # On the plane no kubelet pulls an image (docs/cluster.md), so there is no pull error to
            # show; the command runs and ends with the pod's events.
            assert "Events:" in output, output
            checked.add("describe")
        elif "jsonpath=" in command:
            assert output == f"{image}\n"
            checked.add("image")
        else:
            raise AssertionError(f"no check for the documented command {command!r}")
    assert checked == {"ready", "pods", "describe", "image"}, lines


def test_the_incident_jobs_roll_back_hold_unhold_and_promote_on_the_cluster(plane: Plane) -> None:
    flux = plane.flux
    # The documented way to find COMMIT: the manifest's changes, newest first; the deploy before the
    # bad one is the last good one.
    (find,) = commands(section("Incidents: roll back, hold, release again (the operator jobs)"), "git")
    flux.repo.checkout_tip()
    listed = subprocess.run(
        ["bash", "-c", find], cwd=flux.repo.work, capture_output=True, text=True, check=True
    )
    deploys = [line.split()[0] for line in listed.stdout.splitlines() if line.split()[1:2] == ["deploy"]]
    assert deploys[0] == plane.commits["bad"], listed.stdout
    good = deploys[1]
    assert good == plane.commits["good"], listed.stdout

    # gitops-rollback: the bot's signed commit, verified by source-controller and applied; the pods run
    # the good image; the hold is in the manifest Flux applied.
    rollback = plane.job("gitops-rollback", COMMIT=good, REASON=REASON)
    assert outcome(rollback)["outcome"] == "changed", console(rollback)
    held = flux.repo.tip()
    assert "\ngpgsig " in git(flux.repo.remote, "cat-file", "commit", held)
    assert "Held-By: alice" in plane.message(held)
    plane.wait_deployed(plane.image(good))
    assert plane.verified(held)
    hold = manifest.read_hold(plane.manifest_at_tip())
    assert hold is not None and (hold.by, hold.reason) == ("alice", REASON)

    # A release after it is held: nothing is committed over the app change, so source-controller
    # refuses that unsigned tip and the cluster keeps the held image.
    fix, released = plane.release("fix")
    assert released["outcome"] == "held", released
    assert flux.repo.tip() == fix
    flux.push_event()
    flux.cluster.wait_for(f"source-controller to refuse {fix[:12]}", lambda: refused(flux, fix))
    assert flux.applied(held) and plane.running(plane.image(good))

    # gitops-unhold: releases move again; the image stays until one does.
    unhold = plane.job("gitops-unhold")
    assert outcome(unhold)["outcome"] == "changed", console(unhold)
    assert "Released by alice." in plane.message(flux.repo.tip())
    assert manifest.read_hold(plane.manifest_at_tip()) is None
    plane.wait_deployed(plane.image(good))

    # gitops-promote: the held release's image (the Build stage pushed it), by its exact digest.
    digest = resolve_digest(plane.repository, fix)
    assert digest is not None
    promote = plane.job("gitops-promote", COMMIT=fix, DIGEST=digest)
    assert outcome(promote)["outcome"] == "changed", console(promote)
    assert "Promoted-By: alice" in plane.message(flux.repo.tip())
    plane.wait_deployed(f"{plane.repository}:{fix}@{digest}")


def refused(flux: FluxLoop, commit: str) -> bool:
    verified = condition(flux.status("GitRepository"), "SourceVerified")
    return bool(verified and verified["status"] == "False" and commit in verified.get("message", ""))


def test_a_release_during_a_freeze_lands_in_git_and_rolls_out_at_the_thaw(plane: Plane) -> None:
    flux = plane.flux
    freeze_section = section("Emergency freeze and thaw")
    freeze, suspended, thaw = commands(freeze_section, "kubectl")
    before, running = flux.repo.tip(), flux.deployment_image()
    assert plane.running(running)

    run_documented(flux, freeze)
    assert run_documented(flux, suspended) == "true\n"

    # After the incident test's unhold, this is the first release: it moves the manifest again.
    assert manifest.read_hold(plane.manifest_at_tip()) is None
    later, released = plane.release("later")
    assert released["outcome"] == "changed", released
    landed = flux.repo.tip()
    assert landed not in (before, later) and "\ngpgsig " in git(
        flux.repo.remote, "cat-file", "commit", landed
    )
    flux.push_event()
    # What `flux get sources git` shows while frozen: the source has the new commit.
    flux.cluster.wait_for(f"the source to fetch {landed[:12]}", lambda: fetched(flux, landed))
    # kustomize-controller handles a reconcile request for a suspended object without applying
    # (kustomize-controller v1.9.4 internal/controller/kustomization_controller.go: "Reconciliation is
    # suspended for this object", then finalizeStatus records status.lastHandledReconcileAt).
    token = uuid.uuid4().hex
    meta = flux.named("Kustomization")["metadata"]
    flux.cluster.kubectl("annotate", "--overwrite", "kustomization", meta["name"], "-n", meta["namespace"],
                         f"{REQUESTED_AT}={token}")  # fmt: skip
    flux.cluster.wait_for(
        "the suspended Kustomization to handle the request",
        lambda: flux.status("Kustomization").get("status", {}).get("lastHandledReconcileAt") == token,
    )
    assert flux.applied(before) and plane.running(running)

    run_documented(flux, thaw)
    plane.wait_deployed(plane.image(later))
    assert flux.applied(landed)


def fetched(flux: FluxLoop, commit: str) -> bool:
    artifact = flux.status("GitRepository").get("status", {}).get("artifact", {})
    return artifact.get("revision") == f"{BRANCH}@sha1:{commit}"
