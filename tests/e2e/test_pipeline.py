"""The Jenkinsfile's two stages, run as a script on two separate machines (tests/e2e/pipeline.py): a human
commit on main is tested, planned, built from its own tree, pushed by digest to a real registry, handed
over as JSON, re-planned and promoted on a release machine that holds the write key only around
`promote`, and the manifest commit lands on the bare remote, over SSH through a real sshd.

A process the build leaves behind (started by the repository's own `make test`) scans for ssh-agent
sockets for the whole release and never finds the release key's; the same scan on the release machine,
while the key is loaded, does find it, so the scan is one that would have found it."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jenkins import manifest
from jenkins.registry import resolve_digest
from plane.localservices import ROOT
from plane.sandbox import BRANCH, DEV, MANIFEST, GitOpsRepo, OpenPgpSigner, ReviewedMerges, git
from tests.e2e.pipeline import (
    Run,
    add_pipeline_files,
    machines_root,
    require_machines,
    run_on_machines,
    signing_key,
    stage_steps,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_the_stages_are_the_steps_this_harness_runs() -> None:
    """What the harness stands in for, step by step; a new kind of step in the Jenkinsfile fails here
    first, so the harness never silently skips it."""
    build, build_post = stage_steps("Build")
    assert [s.kind for s in build] == ["checkout", "sh", "sh", "stash", "stdout"]
    assert build[1].text == "make test" and not build_post
    assert all(not s.bound for s in build)
    release, release_post = stage_steps("Release")
    assert [s.kind for s in release] == ["checkout", "sh", "unstash", "sh", "sh"]
    assert [s.bound for s in release] == [
        (),
        ("file:gitops-signing-public-key:GITOPS_BOT_PUBLIC_KEY_FILE",),
        ("dir:handover",),
        (),
        (
            "file:gitops-signing-key:GITOPS_SIGNING_KEY_FILE",
            "string:gitops-pulls-token:GITOPS_PULLS_TOKEN",
            "sshagent:gitops-deploy-key",
        ),
    ]
    # Right after the checkout, before any Python: git and gpg choose the code (VERIFY below).
    assert "git -c gpg.program=gpg verify-commit" in release[1].text and "python -m" not in release[1].text
    assert "-m jenkins promote" in release[4].text
    # Every Python of the release machine is the venv's, importing nothing from the current directory.
    for step in release[3:] + release_post:
        runs = re.findall(
            r'(?<!=)(?:"\$python"|"\$WORKSPACE_TMP/release-venv/bin/python"|python3\.11)\s+(\S+)', step.text
        )
        assert runs and set(runs) == {"-P"}, step.text
        assert ".venv/" not in step.text, step.text
    # The outcome's standard-library Python imports only the verified tree.
    assert release_post[0].text.startswith('PYTHONPATH="$WORKSPACE_TMP/release-code" python3.11 -P ')


@pytest.fixture
def merges() -> Iterator[ReviewedMerges]:
    with ReviewedMerges.served() as merges:
        yield merges


@pytest.fixture
def repo(tmp_path: Path, merges: ReviewedMerges) -> tuple[GitOpsRepo, str]:
    """The GitOps repository with what the pipeline runs, and a human commit on main to release, each
    merged as a reviewed pull request."""
    repo = GitOpsRepo.seed(tmp_path / "gitops")
    add_pipeline_files(repo, merges)
    return repo, repo.app_commit("A change to release", merges)


@pytest.fixture
def machines() -> Iterator[Path]:
    with machines_root() as root:
        yield root


def test_a_human_commit_is_released_and_the_builds_leftover_finds_no_key(
    machines: Path,
    repo: tuple[GitOpsRepo, str],
    merges: ReviewedMerges,
    registry: str,
    docker_engine: None,
) -> None:
    require_machines()
    gitops, commit = repo
    repository = f"{registry}/pipeline-{uuid.uuid4().hex[:8]}"
    # The anchor (whose code the release runs) is the pipeline files' commit: the app commit on top is
    # one the release asks GitHub about.
    anchor = git(gitops.remote, "rev-parse", f"{commit}^")
    run, files = run_on_machines(gitops.remote, machines, repository, merges, anchor=anchor)

    assert run.build_status == 0, run.console(run.build)
    assert run.released == "true", run.console(run.build)
    assert run.release is not None and run.release_status == 0, run.console(run.release)
    print("build machine steps (ms):", run.timings(run.build))
    print("release machine steps (ms):", run.timings(run.release))
    check_release(run, gitops, commit, repository)
    check_no_key_reached_the_build(run, files)
    # The release asked GitHub, with the bound gitops-pulls-token, about each human commit it signed over.
    asked = {
        path.split("/")[5] for method, path in merges.github.requests if path.endswith("/pulls?per_page=100")
    }
    assert commit in asked


def test_a_digest_the_registry_does_not_serve_is_refused_and_nothing_is_pushed(
    machines: Path,
    repo: tuple[GitOpsRepo, str],
    merges: ReviewedMerges,
    registry: str,
    docker_engine: None,
) -> None:
    """The build machine is not trusted: a stash whose digest is not what the registry serves for the
    commit (an image swapped after the push, a forged JSON) makes the release refuse, exit 2, before
    anything is written."""
    require_machines()
    before = repo[0].tip()
    forged = "sha256:" + "f" * 64

    def forge(stash: Path) -> None:
        path = stash / "build" / "build.json"
        data = json.loads(path.read_text().splitlines()[-1])
        path.write_text(json.dumps({**data, "digest": forged}) + "\n")

    gitops, anchor = repo
    run, _ = run_on_machines(
        gitops.remote,
        machines,
        f"{registry}/forged-{uuid.uuid4().hex[:8]}",
        merges,
        anchor=anchor,
        tamper=forge,
    )

    assert run.release is not None and run.release_status == 2, run.console(run.release)
    released = json.loads((run.release.workspace / "release.json").read_text().splitlines()[-1])
    assert released["outcome"] == "error" and f"--digest {forged}" in released["error"]
    assert gitops.tip() == before  # nothing was pushed


ATTACK = """import os

# Planted by a push around review: reports every machine that imports the release module.
with open(os.environ["ATTACK_REPORT"], "a") as report:
    report.write(os.environ.get("HOME", "") + "\\n")
"""


def test_an_unsigned_push_of_release_code_never_runs_on_the_release_machine(
    machines: Path,
    repo: tuple[GitOpsRepo, str],
    merges: ReviewedMerges,
    registry: str,
    docker_engine: None,
) -> None:
    """A stolen write deploy key pushes an unsigned commit that changes jenkins/*.py (and the app, so
    that it would release). The build machine runs that code (it runs the head's, holding nothing); the
    release machine runs the code of the newest commit the bot signed (the first release's manifest
    commit, found by `git verify-commit`), whose history check refuses the unsigned head: the planted
    module never runs there, and nothing is pushed."""
    require_machines()
    gitops, commit = repo
    repository = f"{registry}/attack-{uuid.uuid4().hex[:8]}"
    report = machines / "attack.report"
    report.touch()
    first, keys = run_on_machines(gitops.remote, machines / "first", repository, merges, anchor=commit,
                               extra_env={"ATTACK_REPORT": str(report)})  # fmt: skip
    assert first.release is not None and first.release_status == 0, first.console(first.release)
    signed = gitops.tip()  # the bot's signed manifest commit
    assert f"release code: {commit}" in first.console(first.release)  # no bot commit yet: the anchor

    gitops.checkout_tip()
    (gitops.work / "jenkins" / "__init__.py").write_text(ATTACK)
    git(gitops.work, "add", "jenkins/__init__.py")
    attacked = gitops.app_commit("Harmless-looking change")  # commits the planted module with it
    assert git(gitops.work, "show", "--name-only", "--format=", attacked).split() == [
        "app/app.py",
        "jenkins/__init__.py",
    ]
    run, _ = run_on_machines(gitops.remote, machines / "second", repository, merges, anchor=commit,
                             extra_env={"ATTACK_REPORT": str(report)}, signing=keys)  # fmt: skip

    assert run.build_status == 0 and run.released == "true", run.console(run.build)
    assert run.release is not None and run.release_status == 1, run.console(run.release)
    console = run.console(run.release)
    assert f"release code: {signed}" in console
    released = json.loads((run.release.workspace / "release.json").read_text().splitlines()[-1])
    # The verified code's history check refuses to sign on top of the unsigned head: GitHub names it as
    # no reviewed pull request's merge.
    assert released["outcome"] == "error", released
    assert released["error"].startswith(f"refusing to sign on top of origin at {attacked[:12]}"), released
    assert gitops.tip() == attacked  # nothing pushed on top
    homes = report.read_text().split()
    assert str(run.build.home) in homes  # the planted module does run wherever the head's code runs
    assert str(run.release.home) not in homes and str(first.release.home) not in homes, homes


def check_release(run: Run, gitops: GitOpsRepo, commit: str, repository: str) -> None:
    """The build pushed the commit's image; the release machine promoted exactly that digest."""
    assert run.release is not None
    built = json.loads((run.build.workspace / "build.json").read_text().splitlines()[-1])
    digest = resolve_digest(repository, commit)
    assert (built["source_commit"], built["digest"], built["built"]) == (commit, digest, True)
    released = json.loads((run.release.workspace / "release.json").read_text().splitlines()[-1])
    assert released["outcome"] == "changed", released
    assert released["commit"] == gitops.tip()  # the manifest commit landed
    assert released["image"] == f"{repository}:{commit}@{digest}"
    entry = manifest.read_image(gitops.file_at_tip(MANIFEST), manifest.DEFAULT_IMAGE_NAME)
    assert (entry.new_name, entry.new_tag, entry.digest) == (repository, commit, digest)
    # The release machine ran nothing the build ran: no venv of `make`, only its hashed install, beside
    # the workspace (WORKSPACE_TMP), never inside the checkout.
    assert not (run.release.workspace / ".venv").exists()
    assert Path(f"{run.release.workspace}@tmp/release-venv").is_dir()
    console = run.console(run.release)
    assert "docker build" not in console and "make test" not in console


def check_no_key_reached_the_build(run: Run, files: dict[str, Path]) -> None:
    """The build's leftover never had or found the release key; the same scan on the release machine
    did find it."""
    agents = run.build.root
    report = (agents / "lurker.report").read_text()
    scans = [line for line in report.splitlines() if line.startswith("scan ")]
    assert report.startswith("own SSH_AUTH_SOCK=\n"), report[:200]  # never exported to the build
    assert len(scans) >= 2, report  # it was scanning while the key was loaded (the harness waited)
    assert "USABLE" not in report, report
    # The same scan on the release machine, while the key was loaded, found the agent: it would have.
    assert "USABLE" in (agents / "lurker.report.release").read_text()
    private = files["gitops-deploy-key"].read_text()
    for path in run.build.dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert private not in path.read_text(errors="replace"), path


def test_a_human_commit_pushed_around_review_stops_the_release_and_nothing_is_pushed(
    machines: Path,
    repo: tuple[GitOpsRepo, str],
    merges: ReviewedMerges,
    registry: str,
    docker_engine: None,
) -> None:
    """A commit on the branch that GitHub names as no reviewed pull request's merge (pushed with a write
    key, around review): the release machine, asking GitHub with the bound token, refuses to sign over
    it (docs/release.md: exit 1, outcome `error`, the commit named) and pushes nothing."""
    require_machines()
    gitops, anchor = repo
    pushed = gitops.app_commit("Pushed around review")  # not recorded as a merged pull request
    before = gitops.tip()

    run, _ = run_on_machines(
        gitops.remote, machines, f"{registry}/unreviewed-{uuid.uuid4().hex[:8]}", merges, anchor=anchor
    )

    assert run.release is not None and run.release_status == 1, run.console(run.release)
    released = json.loads((run.release.workspace / "release.json").read_text().splitlines()[-1])
    assert released["outcome"] == "error" and pushed in released["error"], released
    assert gitops.tip() == before


# Release code from before k8s/ held one overlay per environment, run on a tree that does: it edited
# k8s/kustomization.yaml and stopped, exit 2, where there is none (the refusal of jenkins/cli.py at
# 2d56bda: `raise InputError(f"--manifest-dir {manifest_dir!r}: no {manifest.FILE_NAME} at {path}")`).
OLD_RELEASE_CODE = """import sys

print("error: --manifest-dir 'k8s': no kustomization.yaml at k8s", file=sys.stderr)
sys.exit(2)
"""


def test_a_re_anchored_stack_runs_the_upgrades_release_code_where_the_signed_code_fails(
    machines: Path, tmp_path: Path, merges: ReviewedMerges, registry: str, docker_engine: None
) -> None:
    """An upgrade that changes what the release code expects of the repository: the bot's newest signed
    commit carries code that stops on the new layout, so it would never sign again. The stack's admin
    re-anchors on the reviewed upgrade (docs/environments.md, "Upgrading a stack that followed ./k8s"):
    the anchor, newer on the first-parent line, is the code the release runs, and the release lands. The
    same branch with the anchor below the signed commit runs the signed code, which stops (exit 2)."""
    require_machines()
    gitops = GitOpsRepo.seed(tmp_path / "gitops")
    before = add_pipeline_files(gitops, merges)
    bot = machines / "bot"
    bot.mkdir()
    keys = {
        "gitops-signing-key": bot / "signing.asc",
        "gitops-signing-public-key": bot / "signing-public.asc",
    }
    signing_key(keys["gitops-signing-key"], keys["gitops-signing-public-key"])
    gitops.checkout_tip()
    (gitops.work / "jenkins" / "__main__.py").write_text(OLD_RELEASE_CODE)
    git(gitops.work, "add", "jenkins/__main__.py")
    with OpenPgpSigner.of(keys["gitops-signing-key"].read_text()) as signer:
        signed = signer.commit(gitops.work, "-m", "The bot's last release before the upgrade")
    git(gitops.work, "push", "--quiet", "origin", f"HEAD:{BRANCH}")
    # The upgrade, merged through review: the release code that reads the overlays.
    shutil.copy(ROOT / "jenkins" / "__main__.py", gitops.work / "jenkins" / "__main__.py")
    git(gitops.work, "commit", "--quiet", "-am", "Upgrade: release code for overlays", env=DEV)
    upgrade = merges.land(gitops.work)
    commit = gitops.app_commit("A change to release", merges)

    stalled, _ = run_on_machines(gitops.remote, machines / "old-anchor", f"{registry}/stalled-{uuid.uuid4()}",
                                 merges, anchor=before, signing=keys)  # fmt: skip
    assert stalled.release is not None and stalled.release_status == 2, stalled.console(stalled.release)
    console = stalled.console(stalled.release)
    assert f"release code: {signed}" in console and "no kustomization.yaml at k8s" in console
    assert gitops.tip() == commit

    repository = f"{registry}/upgraded-{uuid.uuid4().hex[:8]}"
    run, _ = run_on_machines(gitops.remote, machines / "re-anchored", repository, merges, anchor=upgrade,
                             signing=keys)  # fmt: skip
    assert run.release is not None and run.release_status == 0, run.console(run.release)
    assert f"release code: {upgrade}" in run.console(run.release)
    check_release(run, gitops, commit, repository)


def test_a_trust_anchor_off_the_branchs_first_parent_line_is_refused(
    machines: Path,
    repo: tuple[GitOpsRepo, str],
    merges: ReviewedMerges,
    registry: str,
    docker_engine: None,
) -> None:
    """An anchor that is an ancestor of the branch only through a merge's second parent (a feature
    branch's commit) is no commit of the line the release walks: the release machine chooses no code,
    says which variable to fix, exits 2 and pushes nothing."""
    require_machines()
    gitops, _ = repo
    gitops.checkout_tip()
    (gitops.work / "FEATURE.md").write_text("A feature branch's file\n")
    git(gitops.work, "add", "FEATURE.md")
    git(gitops.work, "commit", "--quiet", "-m", "On a feature branch", env=DEV)
    side = gitops.head()
    gitops.app_commit("On main")
    git(gitops.work, "checkout", "--quiet", "--detach", side)
    merged = merges.land(gitops.work)  # the feature branch, merged through review
    assert git(gitops.remote, "rev-list", "--first-parent", BRANCH).split().count(side) == 0
    assert side in git(gitops.remote, "rev-list", BRANCH).split()

    run, _ = run_on_machines(
        gitops.remote, machines, f"{registry}/off-line-{uuid.uuid4().hex[:8]}", merges, anchor=side
    )

    assert run.release is not None and run.release_status == 2, run.console(run.release)
    console = run.console(run.release)
    assert (
        f"GITOPS_TRUST_ANCHOR={side} is not the full SHA of a commit on the first-parent line of "
        f"origin/{BRANCH}" in console
    )
    assert "release code:" not in console
    assert not Path(f"{run.release.workspace}@tmp/release-code").exists()
    assert gitops.tip() == merged
