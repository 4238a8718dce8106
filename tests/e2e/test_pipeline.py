"""The Jenkinsfile's two stages, run as a script on two separate machines (tests/e2e/pipeline.py): a human
commit on main is tested, planned, built from its own tree, pushed by digest to a real registry, handed
over as JSON, re-planned and promoted on a release machine that holds the write key only around
`promote`, and the manifest commit lands on the bare remote, over SSH through a real sshd.

A process the build leaves behind (started by the repository's own `make test`) scans for ssh-agent
sockets for the whole release and never finds the release key's; the same scan on the release machine,
while the key is loaded, does find it, so the scan is one that would have found it."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jenkins.registry import resolve_digest
from scripts.sandbox import GitOpsRepo, git
from tests.conftest import ROOT, require
from tests.e2e.pipeline import (
    LURKER,
    Credentials,
    Pipeline,
    Run,
    add_pipeline_files,
    keygen,
    python311_dir,
    release_wheels,
    run_pipeline,
    serve_git,
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
    assert [s.kind for s in release] == ["checkout", "unstash", "sh", "sh"]
    assert [s.bound for s in release] == [
        (),
        (),
        (),
        ("file:gitops-signing-key:GITOPS_SIGNING_KEY_FILE", "sshagent:gitops-deploy-key"),
    ]
    assert "-m jenkins promote" in release[3].text
    assert [s.kind for s in release_post] == ["stdout"]


@pytest.fixture
def repo(tmp_path: Path) -> tuple[GitOpsRepo, str]:
    """The GitOps repository with what the pipeline runs, and a human commit on main to release. The
    app's Dockerfile is a one-file scratch image: the build reads only the commit's own tree, and no
    base image or package index is reachable from a build here."""
    repo = GitOpsRepo.seed(tmp_path / "gitops")
    add_pipeline_files(repo.work)
    (repo.work / "app" / "Dockerfile").write_text("FROM scratch\nCOPY app.py /app.py\n")
    git(repo.work, "add", "-A")
    git(repo.work, "commit", "--quiet", "-m", "Pipeline files and a scratch image")
    git(repo.work, "push", "--quiet", "origin", "HEAD:main")
    return repo, repo.app_commit("A change to release")


@pytest.fixture
def machines() -> Iterator[Path]:
    """Where the machines, the stash and the controller's credentials live: outside /tmp, which each
    machine has to itself."""
    root = Path(tempfile.mkdtemp(prefix="pipeline-", dir=ROOT / ".cache"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_a_human_commit_is_released_and_the_builds_leftover_finds_no_key(
    tmp_path: Path, machines: Path, repo: tuple[GitOpsRepo, str], registry: str, docker_engine: None
) -> None:
    require(os.geteuid() == 0, "separate machines (unshare) and a real sshd need root")
    require(shutil.which("unshare") is not None, "unshare (util-linux) is not installed")
    require(Path("/usr/sbin/sshd").exists(), "openssh-server is not installed")
    require(shutil.which("gpg") is not None, "gpg is not installed")
    gitops, commit = repo
    controller = machines / "controller"
    files = {
        "gitops-checkout-key": controller / "checkout_key",
        "gitops-deploy-key": controller / "deploy_key",
    }
    checkout_public, deploy_public = keygen(files["gitops-checkout-key"]), keygen(files["gitops-deploy-key"])
    files["gitops-signing-key"] = controller / "signing.asc"
    signing_key(files["gitops-signing-key"])
    repository = f"{registry}/pipeline-{uuid.uuid4().hex[:8]}"
    agents = machines / "agents"
    probe = machines / "lurker.sh"
    probe.write_text(LURKER)

    with serve_git(gitops.remote, checkout_public, deploy_public, tmp_path / "sshd") as server:
        pipeline = Pipeline(
            root=agents,
            url=server.url(gitops.remote),
            known_hosts=server.known_hosts,
            credentials=Credentials(files, controller / "release"),
            env={
                # casc.yaml's node properties
                "IMAGE_REPOSITORY": repository,
                "GITOPS_BRANCH": "main",
                # what the machines have installed: python3.11, and the index's stand-in for pip
                "PATH": f"{python311_dir(machines / 'bin')}:{os.environ['PATH']}",
                "PIP_NO_INDEX": "1",
                "PIP_FIND_LINKS": str(release_wheels(ROOT / ".cache" / "release-wheels")),
                # the stand-in `make test`: the project's venv, and where the leftover reports
                "PROJECT_VENV": sys.prefix,
                "LURK_REPORT": str(agents / "lurker.report"),
                "LURK_STOP": str(agents / "build-agent" / "shutdown"),
                "LURK_SEARCH": str(machines),
            },
        )
        run = run_pipeline(pipeline, lurker=probe)

    assert run.build_status == 0, run.console(run.build)
    assert run.released == "true", run.console(run.build)
    assert run.release is not None and run.release_status == 0, run.console(run.release)
    print("build machine steps (ms):", run.timings(run.build))
    print("release machine steps (ms):", run.timings(run.release))
    check_release(run, gitops, commit, repository)
    check_no_key_reached_the_build(run, agents, files)


def check_release(run: Run, gitops: GitOpsRepo, commit: str, repository: str) -> None:
    assert run.release is not None
    built = json.loads((run.build.workspace / "build.json").read_text().splitlines()[-1])
    digest = resolve_digest(repository, commit)
    assert (built["source_commit"], built["digest"], built["built"]) == (commit, digest, True)
    released = json.loads((run.release.workspace / "release.json").read_text().splitlines()[-1])
    assert released["outcome"] == "changed", released
    assert released["commit"] == gitops.tip()  # the manifest commit landed
    assert released["image"] == f"{repository}:{commit}@{digest}"
    manifest = gitops.file_at_tip("k8s/kustomization.yaml")
    assert f"newTag: {commit}" in manifest or f"newTag: '{commit}'" in manifest or f'"{commit}"' in manifest
    assert digest in manifest
    # The release machine ran nothing the build ran: no venv of `make`, only its hashed install.
    assert not (run.release.workspace / ".venv").exists()
    assert (run.release.workspace / ".venv-release").is_dir()
    console = run.console(run.release)
    assert "docker build" not in console and "make test" not in console


def check_no_key_reached_the_build(run: Run, agents: Path, files: dict[str, Path]) -> None:
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
