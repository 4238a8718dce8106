"""The four commands as steps: gather facts through the adapters, decide with the core, commit back.

`release` = build and push the image if the registry lacks it, then `promote`. `promote` moves the
manifest to an image that the registry already has, pinned by digest. `rollback` writes an older image
plus a hold; `unhold` lifts the hold. Inputs arrive here already validated by the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from jenkins import build, core, log, manifest, registry
from jenkins.core import Hold, Outcome, RetryPolicy
from jenkins.gitops import Edit, Git, Identity, commit_manifest

PENDING_DIGEST = "sha256:<digest of the image this run would build>"


class ActionError(Exception):
    """A step failed in a way that is not bad input (exit 1); the message says what to try."""


@dataclass(frozen=True)
class Context:
    """Where and how to commit the manifest back."""

    git: Git
    remote: str
    branch: str
    manifest_path: str  # relative to the repository root, e.g. k8s/kustomization.yaml
    image_name: str
    bot: Identity
    policy: RetryPolicy
    dry_run: bool


@dataclass(frozen=True)
class Report:
    """What happened, for the summary line and the JSON object."""

    outcome: Outcome
    reason: str
    image: str | None = None
    digest: str | None = None
    commit: str | None = None
    source_commit: str | None = None
    diff: str = ""
    attempts: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "outcome": str(self.outcome),
            "image": self.image,
            "digest": self.digest,
            "commit": self.commit,
            "source_commit": self.source_commit,
            "reason": self.reason,
            "attempts": self.attempts,
        }


def release(
    ctx: Context,
    repository: str,
    commit: str,
    *,
    context_dir: Path,
    build_args: Mapping[str, str],
    network: str | None,
) -> Report:
    """Build and push REPOSITORY:COMMIT unless the registry has it, then promote it."""
    image = f"{repository}:{commit}"
    message, author = ctx.git.commit_info(commit)
    if core.is_bot_commit(message, author, ctx.bot.email):
        # The bot's own manifest commit: building it again would only loop CI.
        return Report(Outcome.NOOP, f"{commit[:12]} is a release-bot commit; nothing to release", image=image)
    with log.step(f"look up {image} in the registry"):
        digest = registry.resolve_digest(repository, commit)
    if digest is not None:
        log.info(f"{image} is already in the registry ({digest}); skipping the build")
    elif ctx.dry_run:
        log.info(f"dry run: {image} is not in the registry; a real run would build and push it")
        digest = PENDING_DIGEST
    else:
        digest = build_and_push(repository, commit, context_dir, build_args, network)
    return promote(ctx, repository, commit, digest)


def build_and_push(
    repository: str, commit: str, context_dir: Path, build_args: Mapping[str, str], network: str | None
) -> str:
    """docker build + push, then check that the registry serves the digest we pushed."""
    image = f"{repository}:{commit}"
    with log.step(f"log in to the registry of {repository}"):
        registry.login(repository)
    with log.step(f"docker build {image}"):
        build.build_image(context_dir, image, git_commit=commit, build_args=build_args, network=network)
    with log.step(f"docker push {image}"):
        pushed = build.push_image(image)
    with log.step(f"verify {image} in the registry"):
        served = registry.resolve_digest(repository, commit)
    if served != pushed:
        raise ActionError(
            f"pushed {image} as {pushed} but the registry serves {served}; "
            "another build may have pushed the same tag: check the registry, then re-run"
        )
    return pushed


def promote(ctx: Context, repository: str, commit: str, digest: str) -> Report:
    """Point the manifest at REPOSITORY:COMMIT@DIGEST unless held, stale or already there."""

    def plan(text: str) -> Edit:
        current = manifest.read_image(text, ctx.image_name)
        desired = core.desired_entry(current, repository, commit, digest)
        relation = ctx.git.relation(ctx.remote, current.new_tag, commit)
        decision = core.decide_promote(current, manifest.read_hold(text), desired, relation)
        changed = decision.outcome is Outcome.CHANGED
        return Edit(decision, text, manifest.with_image(text, desired) if changed else text)

    image = f"{repository}:{commit}@{digest}"
    message = core.commit_message(
        f"deploy {ctx.image_name} {commit[:12]}",
        f"Deploy {image}.",
        {"Source-Commit": commit, "Image-Digest": digest, core.ACTION_TRAILER: "promote"},
    )
    return _commit(ctx, plan, message, image=image, digest=digest, source_commit=commit)


def verified_digest(repository: str, commit: str, expected: str | None = None) -> str:
    """The registry's digest for REPOSITORY:COMMIT; ActionError if absent. Mismatch is for the caller."""
    with log.step(f"look up {repository}:{commit} in the registry"):
        digest = registry.resolve_digest(repository, commit)
    if digest is None:
        raise ActionError(
            f"image {repository}:{commit} is not in the registry; run `release` for that commit first, "
            "or check --image-repository and --commit"
        )
    return digest


def rollback(ctx: Context, repository: str, commit: str, digest: str, hold: Hold) -> Report:
    """Deploy an older, verified image and hold the manifest there (the ancestry guard is bypassed)."""

    def plan(text: str) -> Edit:
        current = manifest.read_image(text, ctx.image_name)
        desired = core.desired_entry(current, repository, commit, digest)
        decision = core.decide_rollback(current, manifest.read_hold(text), desired, hold)
        new_text = manifest.with_hold(manifest.with_image(text, desired), hold)
        return Edit(decision, text, new_text if decision.outcome is Outcome.CHANGED else text)

    image = f"{repository}:{commit}@{digest}"
    message = core.commit_message(
        f"rollback {ctx.image_name} to {commit[:12]}",
        f"Roll back to {image} and hold.\n\nReason: {hold.reason}",
        {
            "Source-Commit": commit,
            "Image-Digest": digest,
            "Held-By": hold.by,
            core.ACTION_TRAILER: "rollback",
        },
    )
    return _commit(ctx, plan, message, image=image, digest=digest, source_commit=commit)


def unhold(ctx: Context, by: str) -> Report:
    """Remove the hold so the next release moves the manifest again."""

    def plan(text: str) -> Edit:
        decision = core.decide_unhold(manifest.read_hold(text))
        changed = decision.outcome is Outcome.CHANGED
        return Edit(decision, text, manifest.with_hold(text, None) if changed else text)

    message = core.commit_message(
        f"unhold {ctx.image_name}",
        f"Released by {by}.",
        {core.ACTION_TRAILER: "unhold"},
    )
    return _commit(ctx, plan, message)


def _commit(
    ctx: Context,
    plan: Callable[[str], Edit],
    message: str,
    *,
    image: str | None = None,
    digest: str | None = None,
    source_commit: str | None = None,
) -> Report:
    result = commit_manifest(
        ctx.git,
        remote=ctx.remote,
        branch=ctx.branch,
        path=ctx.manifest_path,
        plan=plan,
        message=message,
        bot=ctx.bot,
        policy=ctx.policy,
        dry_run=ctx.dry_run,
    )
    edit = result.edit
    if image is None:  # unhold: report what the manifest deploys
        deployed = manifest.read_image(edit.new_text, ctx.image_name)
        image, digest = deployed.reference, deployed.digest
    return Report(
        outcome=edit.decision.outcome,
        reason=edit.decision.reason,
        image=image,
        digest=digest,
        commit=result.commit,
        source_commit=source_commit,
        diff=manifest.unified_diff(edit.old_text, edit.new_text, ctx.manifest_path),
        attempts=result.attempts,
    )
