"""A stack whose bot released from one manifest at k8s/kustomization.yaml, upgraded to one overlay per
environment (docs/environments.md, "Upgrading a stack that followed ./k8s"): the reviewed merge moves
the manifest to k8s/overlays/<environment>/, and the release module, run against the real git history
of both layouts, takes it from there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from jenkins import manifest
from jenkins.core import ImageEntry
from tests.jenkins.conftest import MANIFEST, ROOT, GitopsRepo, git, run_cli

PushImage = Callable[[str, str], str]
OVERLAY = str(Path(MANIFEST).parent)


def released_on_the_old_layout(gitops_repo: GitopsRepo, image_repository: str, push: PushImage) -> str:
    """The layout before the overlays (the manifest and its resources in k8s/), and a release there by
    the bot (the CLI with `--manifest-dir k8s`, what the old layout's release edited). Returns the
    released commit."""
    dev = gitops_repo.dev
    for name in ("kustomization.yaml", "deployment.yaml"):
        git(dev, "mv", f"{OVERLAY}/{name}", f"k8s/{name}")
    git(dev, "commit", "--quiet", "-m", "the layout before the overlays")
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    v1 = gitops_repo.app_commit("v1")
    push(image_repository, v1)
    first = run_cli(gitops_repo.workspace(v1), "promote", "--image-repository", image_repository,
                    "--manifest-dir", "k8s", "--json")  # fmt: skip
    assert first.returncode == 0 and first.json["outcome"] == "changed", first.output
    return v1


def merge_the_overlays(gitops_repo: GitopsRepo, edit: Callable[[str], str] = lambda text: text) -> str:
    """The upgrade as a person merges it: the overlay as this project ships it (its resource: this
    repository's deployment.yaml; edit may change it, as the person carrying something over by hand),
    k8s/kustomization.yaml gone."""
    dev = gitops_repo.dev
    git(dev, "pull", "--quiet", "--rebase", "origin", "main")
    git(dev, "mv", "k8s/deployment.yaml", f"{OVERLAY}/deployment.yaml")
    shipped = (ROOT / "k8s" / "overlays" / "dev" / "kustomization.yaml").read_text()
    (dev / MANIFEST).write_text(edit(shipped.replace("../../base", "deployment.yaml")))
    git(dev, "rm", "--quiet", "k8s/kustomization.yaml")
    git(dev, "add", MANIFEST)
    git(dev, "commit", "--quiet", "-m", "Upgrade: one overlay per environment")
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    return git(dev, "rev-parse", "HEAD").strip()


@pytest.mark.parametrize("overlay", ["as shipped", "pinning what runs"])
def test_the_first_release_after_the_move_deploys_into_the_overlay(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage, overlay: str
) -> None:
    """The overlay did not exist at the bot's newest commit, so the bot never deployed from it: as
    before the bot's first commit, the merged overlay is the starting point (jenkins/actions.py
    hand_change), not a person's change of the deployed image to keep and hold, whether it is the
    shipped one (day-0 `replicas:` entry and all) or carries the running image over. The release
    deploys, without the `replicas:` entry; the old manifest's history stays readable by its path."""
    v1 = released_on_the_old_layout(gitops_repo, image_repository, push_test_image)
    old_bot_commit = gitops_repo.bot_commits()[0]
    running = manifest.read_image(git(gitops_repo.remote, "show", "main:k8s/kustomization.yaml"))
    assert running.new_tag == v1
    merge_the_overlays(gitops_repo, (lambda text: text) if overlay == "as shipped" else pin(running))
    assert manifest.read_replicas(gitops_repo.manifest_at()) == (0 if overlay == "as shipped" else None)
    v2 = gitops_repo.app_commit("v2")
    digest = push_test_image(image_repository, v2)

    run = run_cli(gitops_repo.workspace(v2), "release", "--image-repository", image_repository, "--json")

    assert run.returncode == 0 and run.json["outcome"] == "changed", run.output
    text = gitops_repo.manifest_at()
    entry = manifest.read_image(text)
    assert (entry.new_name, entry.new_tag, entry.digest) == (image_repository, v2, digest)
    assert manifest.read_hold(text) is None and manifest.read_replicas(text) is None
    # docs/environments.md: the history before the move, by both paths.
    history = git(gitops_repo.remote, "log", "--format=%H", "main", "--", "k8s/kustomization.yaml", MANIFEST)
    assert old_bot_commit in history.split() and gitops_repo.tip() in history.split()


def pin(entry: ImageEntry) -> Callable[[str], str]:
    """What a person does by hand in the merge: the running image entry over the shipped one, and the
    day-0 `replicas:` entry deleted (with_image removes it, as a release does)."""
    return lambda text: manifest.with_image(text, entry)


def test_a_hold_carried_over_in_the_merge_keeps_holding(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    """A hold in the old manifest, carried over by hand into the overlay with the deployed image entry
    (with_image drops the day-0 `replicas:` entry, as the person must): the first release after the
    move reports `held` and pushes nothing. Ending the hold is the bot's first commit in the overlay:
    it keeps the carried-over image, so Flux, following that signed commit, runs what ran; the next
    release deploys again."""
    v1 = released_on_the_old_layout(gitops_repo, image_repository, push_test_image)
    held = run_cli(gitops_repo.workspace(v1), "rollback", "--image-repository", image_repository,
                   "--to", v1, "--reason", "incident", "--by", "oncall", "--manifest-dir", "k8s")  # fmt: skip
    assert held.returncode == 0, held.output
    old = git(gitops_repo.remote, "show", "main:k8s/kustomization.yaml")
    old_entry, old_hold = manifest.read_image(old), manifest.read_hold(old)
    assert old_hold is not None

    merge_the_overlays(gitops_repo, lambda text: manifest.with_hold(pin(old_entry)(text), old_hold))
    assert manifest.read_replicas(gitops_repo.manifest_at()) is None
    v2 = gitops_repo.app_commit("v2")
    digest = push_test_image(image_repository, v2)
    before = gitops_repo.tip()

    run = run_cli(gitops_repo.workspace(v2), "release", "--image-repository", image_repository, "--json")

    assert run.returncode == 0 and run.json["outcome"] == "held", run.output
    assert "oncall" in run.json["reason"] and gitops_repo.tip() == before
    unheld = run_cli(gitops_repo.workspace(v2), "unhold", "--by", "oncall", "--json")
    assert unheld.returncode == 0 and unheld.json["outcome"] == "changed", unheld.output
    text = gitops_repo.manifest_at()
    assert manifest.read_image(text) == old_entry and manifest.read_hold(text) is None
    assert gitops_repo.bot_commits()[0] == gitops_repo.tip()
    again = run_cli(gitops_repo.workspace(v2), "release", "--image-repository", image_repository, "--json")
    assert again.returncode == 0 and again.json["outcome"] == "changed", again.output
    assert manifest.read_image(gitops_repo.manifest_at()).digest == digest


def test_a_persons_change_of_the_overlay_after_the_merge_is_kept_as_a_hold(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    """Until the bot writes the new overlay, its starting point is the overlay as merged: a person's image
    change committed after the merge is a deploy decision in git, which the next release holds, as it
    does on a manifest the bot wrote (docs/release.md, "A person's change of the deployed image")."""
    released_on_the_old_layout(gitops_repo, image_repository, push_test_image)
    running = manifest.read_image(git(gitops_repo.remote, "show", "main:k8s/kustomization.yaml"))
    merge_the_overlays(gitops_repo, pin(running))
    dev = gitops_repo.dev
    git(dev, "pull", "--quiet", "--rebase", "origin", "main")
    text = (dev / MANIFEST).read_text()
    assert running.digest and running.digest in text
    (dev / MANIFEST).write_text(text.replace(running.digest, "sha256:" + "1" * 64))
    git(dev, "commit", "--quiet", "-am", "Pin another digest by hand")
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    edited = gitops_repo.tip()
    v2 = gitops_repo.app_commit("v2")
    push_test_image(image_repository, v2)

    run = run_cli(gitops_repo.workspace(v2), "release", "--image-repository", image_repository, "--json")

    assert run.returncode == 0, run.output
    assert run.json["outcome"] == "held", run.json
    assert edited[:12] in run.json["reason"], run.json["reason"]
    assert manifest.read_image(gitops_repo.manifest_at()).digest == "sha256:" + "1" * 64
