"""The incident recipe of docs/operations.md, run as the operator jobs run it: the steps are read from
jenkins/operate.Jenkinsfile (tests/e2e/pipeline.py) and run on fresh release machines against the bare
remote over a real sshd and a real registry. Two releases go through the real pipeline first; then
gitops-rollback goes back to the first with the documented parameters, gitops-unhold lifts the hold
and gitops-promote deploys the second again, each as a signed bot commit naming the user who started
the build."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jenkins import manifest, operate
from jenkins.registry import resolve_digest
from plane.sandbox import MANIFEST, GitOpsRepo, ReviewedMerges, git
from tests.conftest import ROOT
from tests.e2e.pipeline import (
    OPERATE_CODE,
    Machine,
    add_pipeline_files,
    controller,
    machines_root,
    require_machines,
    run_operator_job,
    run_pipeline,
    stage_steps,
    stage_text,
)
from tests.e2e.test_pipeline import ATTACK

DOCS = ROOT / "docs" / "operations.md"
USER_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# What getBuildCauses('hudson.model.Cause$UserIdCause') gives the job for a user's build (its sources:
# tests/jenkins/test_jenkinsfile_reads.py, BUILD_CAUSES).
STARTED_BY_ALICE = json.dumps([{"_class": "hudson.model.Cause$UserIdCause", "userId": "alice"}])


def documented_jobs() -> dict[str, tuple[str, ...]]:
    """job -> parameters, from the incident table of docs/operations.md."""
    rows = re.findall(r"^\| [^|]+ \| `(gitops-[a-z]+)` \| ([^|]+) \|$", DOCS.read_text(), flags=re.MULTILINE)
    return {job: tuple(re.findall(r"`([A-Z_]+)`", params)) for job, params in rows}


def test_the_documented_jobs_and_parameters_are_the_jobs_casc_declares() -> None:
    assert documented_jobs() == operate.PARAMETERS


def test_no_doc_tells_a_person_to_push_with_the_cli() -> None:
    """A person's push is refused by the branch's ruleset: the docs name the CLI's writing commands
    only with --dry-run (or for --help)."""
    for path in USER_DOCS:
        text = " ".join(path.read_text().split())
        for match in re.finditer(r"python -m jenkins (rollback|unhold|promote)\b[^`]*", text):
            assert "--dry-run" in match[0] or "--help" in match[0], (path.name, match[0])


def test_the_job_is_the_steps_this_harness_runs() -> None:
    steps, post = stage_steps("Operate", OPERATE_CODE)
    assert [s.kind for s in steps] == ["checkout", "sh", "sh"]
    # The code is chosen by the verification step (the Release stage's), before the keys are bound.
    assert steps[1].bound == ("file:gitops-signing-public-key:GITOPS_BOT_PUBLIC_KEY_FILE",)
    assert steps[2].bound == (
        "file:gitops-signing-key:GITOPS_SIGNING_KEY_FILE",
        "string:gitops-pulls-token:GITOPS_PULLS_TOKEN",
        "sshagent:gitops-deploy-key",
    )
    assert '"$WORKSPACE_TMP/release-venv/bin/python" -P -m jenkins.operate' in steps[2].text
    assert "-m jenkins.operate" not in steps[1].text
    assert [s.kind for s in post] == ["stdout"]
    # On a release agent, under the release's lock (a stage option: held before the agent starts).
    stage = stage_text("Operate", OPERATE_CODE)
    assert "agent { label 'release-agent' }" in stage and "lock('gitops-release')" in stage
    assert re.search(r"^pipeline \{\n    agent none$", OPERATE_CODE, flags=re.MULTILINE)


@pytest.fixture
def merges() -> Iterator[ReviewedMerges]:
    with ReviewedMerges.served() as merges:
        yield merges


@pytest.fixture
def machines() -> Iterator[Path]:
    with machines_root() as root:
        yield root


def outcome(machine: Machine) -> dict[str, object]:
    return json.loads((machine.workspace / "operate.json").read_text().splitlines()[-1])


def console(machine: Machine) -> str:
    return (machine.dir / "console.log").read_text(errors="replace")


def description(machine: Machine) -> str:
    """What the post step put on the build page (its returnStdout step's output, line 2)."""
    (out,) = sorted(machine.dir.glob("*.out"))
    return out.read_text().splitlines()[1]


@pytest.mark.docker
@pytest.mark.slow
def test_the_incident_recipe_runs_as_the_jobs(
    machines: Path, merges: ReviewedMerges, registry: str, docker_engine: None
) -> None:
    require_machines()
    gitops = GitOpsRepo.seed(machines / "gitops")
    add_pipeline_files(gitops, merges)
    repository = f"{registry}/operate-{uuid.uuid4().hex[:8]}"
    jobs = documented_jobs()
    # Both commits before the controller starts: the trust anchor (the branch's head at stack creation)
    # is the newer one; both are reviewed pull requests' merges, as GitHub answers.
    good = gitops.app_commit("good", merges)
    bad = gitops.app_commit("bad", merges)
    report = machines / "attack.report"
    report.touch()
    attack = {"ATTACK_REPORT": str(report)}  # where the module planted below reports who imported it
    with controller(gitops.remote, machines, repository, merges, extra_env=attack) as (pipeline, _, _):
        first = run_pipeline(pipeline)  # releases the tip, `bad`
        assert first.release_status == 0, console(first.release or first.build)
        # `good`'s image, as its own earlier release built it: the Build stage's two commands.
        plan = machines / "plan-good.json"
        stage = {**os.environ, "PYTHONPATH": str(ROOT)}
        with plan.open("w") as out:
            subprocess.run([sys.executable, "-m", "jenkins", "plan", "--commit", good, "--json"],
                           cwd=gitops.work, env=stage, stdout=out, check=True)  # fmt: skip
        subprocess.run(
            [sys.executable, "-m", "jenkins", "build", "--plan", str(plan), "--image-repository", repository],
            cwd=gitops.work, env=stage, check=True, capture_output=True,
        )  # fmt: skip
        assert resolve_digest(repository, good) is not None

        def build(job: str, n: int, **parameters: str) -> Machine:
            assert set(parameters) - {"DRY_RUN"} <= set(jobs[job])  # only the documented parameters
            env = {"JOB_BASE_NAME": job, "GITOPS_STARTED_BY": STARTED_BY_ALICE, "DRY_RUN": "false"}
            machine, status = run_operator_job(pipeline, f"{job}-{n}", {**env, **parameters})
            assert status == 0, console(machine)
            return machine

        before = gitops.tip()
        dry = build("gitops-rollback", 1, COMMIT=good, REASON="5xx after the bad release", DRY_RUN="true")
        assert outcome(dry)["outcome"] == "changed" and gitops.tip() == before
        assert description(dry).startswith("dry run, nothing written: changed")

        held = build("gitops-rollback", 2, COMMIT=good, REASON="5xx after the bad release")
        assert outcome(held)["outcome"] == "changed", console(held)
        message = git(gitops.remote, "log", "-1", "--format=%B", "main")
        assert "Held-By: alice" in message
        assert "\ngpgsig " in git(gitops.remote, "cat-file", "commit", "main")  # signed by the bot
        text = gitops.file_at_tip(MANIFEST)
        assert manifest.read_image(text, manifest.DEFAULT_IMAGE_NAME).new_tag == good
        hold = manifest.read_hold(text)
        assert hold is not None and hold.by == "alice" and hold.reason == "5xx after the bad release"

        lifted = build("gitops-unhold", 3)
        assert outcome(lifted)["outcome"] == "changed" and "Released by alice." in git(
            gitops.remote, "log", "-1", "--format=%B", "main"
        )

        promoted = build("gitops-promote", 4, COMMIT=bad, DIGEST=str(resolve_digest(repository, bad)))
        assert outcome(promoted)["outcome"] == "changed", console(promoted)
        assert "Promoted-By: alice" in git(gitops.remote, "log", "-1", "--format=%B", "main")
        entry = manifest.read_image(gitops.file_at_tip(MANIFEST), manifest.DEFAULT_IMAGE_NAME)
        assert (entry.new_tag, entry.digest) == (bad, resolve_digest(repository, bad))
        assert description(promoted).startswith("changed:")

        # TO runs `promote --to TO`; ENVIRONMENT, the environment a job acts on, may only repeat it.
        env = {"JOB_BASE_NAME": "gitops-promote", "GITOPS_STARTED_BY": STARTED_BY_ALICE, "DRY_RUN": "false"}
        before = gitops.tip()
        parameters = {**env, "TO": "prod", "ENVIRONMENT": "dev"}
        elsewhere, status = run_operator_job(pipeline, "gitops-promote-5", parameters)
        assert status != 0 and outcome(elsewhere)["exit_code"] == 2, console(elsewhere)
        assert "TO='prod' and ENVIRONMENT='dev'" in console(elsewhere)
        assert gitops.tip() == before

        # A push around review (the write deploy key) plants code in the release module: the operator
        # job runs the code of the newest commit the bot signed, whose history check refuses to sign on
        # top of the unsigned head. The planted module never runs with the keys bound; nothing is pushed.
        signed = gitops.tip()
        gitops.checkout_tip()
        (gitops.work / "jenkins" / "__init__.py").write_text(ATTACK)
        git(gitops.work, "add", "jenkins/__init__.py")
        attacked = gitops.app_commit("Harmless-looking change")
        env = {"JOB_BASE_NAME": "gitops-rollback", "GITOPS_STARTED_BY": STARTED_BY_ALICE, "DRY_RUN": "false"}
        parameters = {**env, "COMMIT": good, "REASON": "bypassed review"}
        refused, status = run_operator_job(pipeline, "gitops-rollback-5", parameters)
        assert status != 0 and f"release code: {signed}" in console(refused), console(refused)
        assert outcome(refused)["outcome"] == "error", console(refused)
        assert gitops.tip() == attacked
        assert str(refused.home) not in report.read_text().split()
