"""The pipeline as a script (tests/e2e/pipeline.py: the Jenkinsfile's stages on two separate machines)
against the real control plane: the manifest commit the release machine pushes, signed with the stack's
key, is the one Flux applies, and the Deployment in the API server names the image the build machine
pushed, by digest."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from jenkins.registry import resolve_digest
from plane.localcluster import FluxLoop
from tests.e2e.pipeline import add_pipeline_files, machines_root, require_machines, run_on_machines

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def pipeline_files(flux: FluxLoop) -> Iterator[None]:
    """The pipeline's files in the shared loop's repository; the app's real Dockerfile is put back
    afterwards, for the other tests that build it, by a commit signed with the bot's key: the shared
    loop's tip stays one Flux applies (the later tests wait for it)."""
    dockerfile = (flux.repo.work / "app" / "Dockerfile").read_text()
    add_pipeline_files(flux.repo, flux.merges)
    # The release agent runs the code of the newest bot-signed commit (docs/release.md, "Which code the
    # release runs"): an empty one on top anchors on the pipeline's files, as the docs' manual anchor.
    flux.commit_signed("--allow-empty", "-m", "Anchor release signing [skip ci]")
    yield
    flux.repo.checkout_tip()
    (flux.repo.work / "app" / "Dockerfile").write_text(dockerfile)
    flux.commit_signed("-am", "Put the app's Dockerfile back [skip ci]")


def test_the_pipelines_release_is_what_flux_applies(
    flux: FluxLoop, pipeline_files: None, registry: str, docker_engine: None
) -> None:
    require_machines()
    commit = flux.repo.app_commit("A change the pipeline releases", flux.merges)
    repository = f"{registry}/cluster-pipeline-{uuid.uuid4().hex[:8]}"
    with machines_root() as machines:
        # The release machine holds the stack's signing key (the only key Flux accepts) and the pulls
        # token of the GitHub that answers for the loop's repository.
        public = machines / "signing.pub.asc"
        public.write_text(flux.secret_value("commit-signers", "gitops-bot.asc"))
        keys = {"gitops-signing-key": flux.signing_key, "gitops-signing-public-key": public}
        run, _ = run_on_machines(flux.repo.remote, machines, repository, flux.merges, signing=keys)
        assert run.build_status == 0, run.console(run.build)
        assert run.release is not None and run.release_status == 0, run.console(run.release)
    bot = flux.repo.tip()
    assert bot != commit  # the manifest commit landed on top

    flux.push_event()
    flux.wait_applied(bot)
    assert flux.deployment_image() == f"{repository}:{commit}@{resolve_digest(repository, commit)}"
