"""`python -m jenkins.operate`, the operator jobs' command: the jobs casc.yaml declares are the ones it
knows, with the same parameters; bad build input exits 2 with the CLI's JSON and changes nothing; the
user who started the build is who the commit records. Real git, a real registry (the whole job runs on
a release machine in tests/e2e/test_operate.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import yaml

from jenkins import manifest, operate
from tests.conftest import ROOT
from tests.jenkins.conftest import MANIFEST, Cli, GitopsRepo, git
from tests.jenkins.test_cli_errors import snapshot

CASC = yaml.safe_load((ROOT / "jenkins" / "server" / "casc.yaml").read_text())
# What RunWrapper.getBuildCauses('hudson.model.Cause$UserIdCause') returns for a build started from the
# UI: each cause as Jenkins exports it, userId among its @Exported fields (sources in
# tests/jenkins/test_jenkinsfile_reads.py).
ALICE = json.dumps(
    [
        {
            "_class": "hudson.model.Cause$UserIdCause",
            "shortDescription": "Started by user Alice",
            "userId": "alice",
            "userName": "Alice",
        }
    ]
)


def operator_jobs() -> dict[str, tuple[str, ...]]:
    """job name -> string parameters, as casc.yaml's Job DSL script declares them."""
    (script,) = [job["script"] for job in CASC["jobs"] if "/etc/jenkins/operate.Jenkinsfile" in job["script"]]
    rows = re.findall(r"'(gitops-[a-z]+)': \['(?:[^'\\]|\\.)*', \[([^\]]*)\]\]", script)
    assert (
        "booleanParam('DRY_RUN', false," in script
        and "script(new File('/etc/jenkins/operate.Jenkinsfile').getText('UTF-8'))" in script
    )
    return {name: tuple(re.findall(r"'([A-Z_]+)'", params)) for name, params in rows}


def test_casc_declares_exactly_the_jobs_and_parameters_the_command_reads() -> None:
    assert operator_jobs() == operate.PARAMETERS
    assert set(operate.PARAMETERS) == set(operate.ACTIONS)


def run_operate(cwd: Path, env: Mapping[str, str]) -> Cli:
    proc = subprocess.run(
        [sys.executable, "-m", "jenkins.operate"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DRY_RUN": "false", **env},
        timeout=120,
        check=False,
    )
    return Cli(proc.returncode, proc.stdout, proc.stderr)


REPO = "127.0.0.1:5000/hello"
ROLLBACK = {"JOB_BASE_NAME": "gitops-rollback", "IMAGE_REPOSITORY": REPO, "GITOPS_STARTED_BY": ALICE}
BAD = {
    "a timer started it": ({**ROLLBACK, "GITOPS_STARTED_BY": "[]"}, "no signed-in user started this build"),
    "an anonymous cause": (
        {**ROLLBACK, "GITOPS_STARTED_BY": '[{"userId": null}]'},
        "no signed-in user started this build",
    ),
    "causes not JSON": ({**ROLLBACK, "GITOPS_STARTED_BY": "alice"}, "GITOPS_STARTED_BY: not the JSON"),
    "another job": ({**ROLLBACK, "JOB_BASE_NAME": "gitops-release"}, "JOB_BASE_NAME='gitops-release'"),
    "no commit": ({**ROLLBACK, "COMMIT": " ", "REASON": "x"}, "COMMIT: empty"),
    "dry run not a boolean": ({**ROLLBACK, "DRY_RUN": "yes"}, "DRY_RUN='yes'"),
    # Values stay values: an option-like COMMIT is a bad --to, never a flag of the CLI.
    "option-like commit": ({**ROLLBACK, "COMMIT": "--dry-run", "REASON": "x"}, "--to '--dry-run'"),
    "no reason": ({**ROLLBACK, "COMMIT": "HEAD", "REASON": ""}, "--reason: must say why"),
    "reason with a control character": ({**ROLLBACK, "COMMIT": "HEAD", "REASON": "a\x1b[2Jb"}, "--reason"),
    "promote to with a commit": (
        {**ROLLBACK, "JOB_BASE_NAME": "gitops-promote", "COMMIT": "HEAD", "TO": "prod"},
        "TO='prod' and COMMIT",
    ),
    "promote to the first environment": (
        {**ROLLBACK, "JOB_BASE_NAME": "gitops-promote", "TO": "dev", "GITOPS_ENVIRONMENT": "dev"},
        "--to 'dev': the first environment",
    ),
    "promote to another environment than ENVIRONMENT": (
        {**ROLLBACK, "JOB_BASE_NAME": "gitops-promote", "TO": "prod", "ENVIRONMENT": "dev"},
        "TO='prod' and ENVIRONMENT='dev'",
    ),
    # The CLI checks the name against k8s/environments.yaml (cli.manifest_dir) before anything else.
    "rollback in an unknown environment": (
        {**ROLLBACK, "COMMIT": "HEAD", "REASON": "x", "ENVIRONMENT": "qa"},
        "--environment 'qa': not an environment of k8s/environments.yaml (dev, prod)",
    ),
    "unhold in an unknown environment": (
        {**ROLLBACK, "JOB_BASE_NAME": "gitops-unhold", "ENVIRONMENT": "Prod"},
        "--environment 'Prod': not an environment of k8s/environments.yaml (dev, prod)",
    ),
    "option-like environment": (
        {**ROLLBACK, "JOB_BASE_NAME": "gitops-unhold", "ENVIRONMENT": "--dry-run"},
        "--environment '--dry-run': not an environment",
    ),
    "promote digest malformed": (
        {**ROLLBACK, "JOB_BASE_NAME": "gitops-promote", "COMMIT": "HEAD", "DIGEST": "sha256:x"},
        "--digest 'sha256:x'",
    ),
}


@pytest.mark.parametrize(("env", "named"), BAD.values(), ids=BAD.keys())
def test_bad_build_input_exits_2_names_it_and_changes_nothing(
    gitops_repo: GitopsRepo, env: dict[str, str], named: str
) -> None:
    ws = gitops_repo.workspace(gitops_repo.app_commit("v1"))
    before = snapshot(gitops_repo, ws)
    result = run_operate(ws, env)
    assert result.returncode == 2, result.output
    assert named in result.stderr
    assert result.json["outcome"] == "error" and result.json["exit_code"] == 2
    assert snapshot(gitops_repo, ws) == before


def test_the_user_who_started_the_build_holds_and_lifts_the_hold(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: Callable[[str, str], str]
) -> None:
    """gitops-rollback then gitops-unhold, each as the job runs it: the commits name the user from the
    build's cause, not the agent's git identity or login."""
    old = gitops_repo.app_commit("v1")
    push_test_image(image_repository, old)
    ws = gitops_repo.workspace(gitops_repo.app_commit("v2"))
    base = {"IMAGE_REPOSITORY": image_repository, "GITOPS_STARTED_BY": ALICE}

    dry = run_operate(
        ws, {**base, "JOB_BASE_NAME": "gitops-rollback", "COMMIT": old, "REASON": "5xx", "DRY_RUN": "true"}
    )
    assert dry.returncode == 0 and dry.json["dry_run"] is True, dry.output
    assert gitops_repo.bot_commits() == []

    held = run_operate(ws, {**base, "JOB_BASE_NAME": "gitops-rollback", "COMMIT": old, "REASON": "5xx"})
    assert held.returncode == 0 and held.json["outcome"] == "changed", held.output
    assert "Held-By: alice" in git(gitops_repo.remote, "log", "-1", "--format=%B", "main")

    lifted = run_operate(ws, {**base, "JOB_BASE_NAME": "gitops-unhold"})
    assert lifted.returncode == 0 and lifted.json["outcome"] == "changed", lifted.output
    assert "Released by alice." in git(gitops_repo.remote, "log", "-1", "--format=%B", "main")


def test_promote_with_to_asks_the_cli_for_a_promotion_and_empty_to_keeps_a_chosen_commit() -> None:
    """TO empty is the job as it was (COMMIT, optional DIGEST); TO set is `promote --to`, whose checks
    (the stack's own environment, not the first one, Flux's report) are the CLI's."""
    base = {"JOB_BASE_NAME": "gitops-promote", "IMAGE_REPOSITORY": REPO, "GITOPS_STARTED_BY": ALICE}
    assert operate.command({**base, "TO": " prod ", "COMMIT": " ", "DRY_RUN": "true"}) == [
        "promote",
        "--by=alice",
        f"--image-repository={REPO}",
        "--to=prod",
        "--dry-run",
    ]
    assert operate.command({**base, "TO": "", "COMMIT": "abc"}) == [
        "promote",
        "--by=alice",
        f"--image-repository={REPO}",
        "--commit=abc",
    ]


def test_environment_names_the_overlay_and_empty_keeps_the_stacks_own() -> None:
    """ENVIRONMENT is `--environment` for every job (the release side operates every environment);
    empty leaves the CLI's default, the stack's GITOPS_ENVIRONMENT; with TO it may only repeat TO."""
    base = {"IMAGE_REPOSITORY": REPO, "GITOPS_STARTED_BY": ALICE}
    rollback = {**base, "JOB_BASE_NAME": "gitops-rollback", "COMMIT": "abc", "REASON": "5xx"}
    assert operate.command({**rollback, "ENVIRONMENT": " prod "}) == [
        "rollback",
        "--by=alice",
        "--environment=prod",
        f"--image-repository={REPO}",
        "--to=abc",
        "--reason=5xx",
    ]
    assert "--environment" not in " ".join(operate.command({**rollback, "ENVIRONMENT": " "}))
    unhold = {**base, "JOB_BASE_NAME": "gitops-unhold", "ENVIRONMENT": "prod", "DRY_RUN": "true"}
    assert operate.command(unhold) == ["unhold", "--by=alice", "--environment=prod", "--dry-run"]
    promote = {**base, "JOB_BASE_NAME": "gitops-promote"}
    assert operate.command({**promote, "COMMIT": "abc", "ENVIRONMENT": "prod"}) == [
        "promote",
        "--by=alice",
        "--environment=prod",
        f"--image-repository={REPO}",
        "--commit=abc",
    ]
    assert operate.command({**promote, "TO": "prod", "ENVIRONMENT": "prod"}) == operate.command(
        {**promote, "TO": "prod"}
    )


def test_a_rollback_in_a_later_environment_leaves_the_first_alone(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: Callable[[str, str], str]
) -> None:
    """The first environment's Jenkins (GITOPS_ENVIRONMENT=dev) rolls prod back and lifts prod's hold:
    each a commit that changes prod's overlay only."""
    prod = gitops_repo.add_overlay("prod")
    old = gitops_repo.app_commit("v1")
    push_test_image(image_repository, old)
    ws = gitops_repo.workspace(gitops_repo.app_commit("v2"))
    base = {"IMAGE_REPOSITORY": image_repository, "GITOPS_STARTED_BY": ALICE, "GITOPS_ENVIRONMENT": "dev"}
    dev_before = git(gitops_repo.remote, "show", f"main:{MANIFEST}")

    held = run_operate(
        ws,
        {**base, "JOB_BASE_NAME": "gitops-rollback", "COMMIT": old, "REASON": "5xx", "ENVIRONMENT": "prod"},
    )
    assert held.returncode == 0 and held.json["outcome"] == "changed", held.output
    assert gitops_repo.changed_paths(gitops_repo.tip()) == [prod]
    assert manifest.read_hold(git(gitops_repo.remote, "show", f"main:{prod}")) is not None

    lifted = run_operate(ws, {**base, "JOB_BASE_NAME": "gitops-unhold", "ENVIRONMENT": "prod"})
    assert lifted.returncode == 0 and lifted.json["outcome"] == "changed", lifted.output
    assert gitops_repo.changed_paths(gitops_repo.tip()) == [prod]
    assert git(gitops_repo.remote, "show", f"main:{MANIFEST}") == dev_before
