"""The four commands as steps: gather facts through the adapters, decide with the core, commit back.

`release` = build and push the image if the registry lacks it, then `promote`. `promote` moves the
manifest to an image that the registry already has, pinned by digest. `rollback` writes an older image
plus a hold; `unhold` lifts the hold. Inputs arrive here already validated by the CLI.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from jenkins import build, core, log, manifest, registry
from jenkins.core import Hold, Outcome, RetryPolicy
from jenkins.gitops import Edit, Git, Identity, commit_manifest

PENDING_DIGEST = "sha256:<digest of the image this run would build>"
HISTORY_WINDOW = 200  # first-parent commits searched for the newest human commit under a bot commit
# Outcomes after which the deployed image is marked in the registry: a noop marks too, so a re-run
# repairs a mark that failed (or predates the marker).
MARK_ON = {Outcome.CHANGED, Outcome.NOOP}


class ActionError(Exception):
    """A step failed in a way that is not bad input (exit 1); the message says what to try.

    commit is the manifest commit this run already pushed when the failure came after the push.
    """

    def __init__(self, message: str, commit: str | None = None) -> None:
        super().__init__(message)
        self.commit = commit


class BadInput(Exception):
    """The input names something that may not be deployed (exit 2); nothing was built or pushed."""


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
    context: str,
    build_args: Mapping[str, str],
    network: str | None,
) -> Report:
    """Build and push REPOSITORY:<sha> from that commit's own tree unless the registry has it, then
    promote it. <sha> is commit, or for a bot commit the newest human commit under it."""
    tip = check_on_branch(ctx, commit, "--commit")
    target = newest_human_commit(ctx, commit)
    if target is None:
        return Report(Outcome.NOOP, f"only release-bot commits under {commit[:12]}; nothing to release")
    if target != commit:
        # The build checked out a bot commit (a release, rollback or unhold that landed on top): the
        # human commit under it is what this push asked for, and it may not be deployed yet.
        log.info(f"{commit[:12]} is a release-bot commit; releasing {target[:12]}, the human commit under it")
    # The manifest on the branch must be one we can edit before anything is built (exit 2, nothing done).
    text = ctx.git.read_file(tip, ctx.manifest_path)
    if text is None:
        raise BadInput(f"{ctx.manifest_path} does not exist on {ctx.remote}/{ctx.branch} ({tip[:12]})")
    current = manifest.read_image(text, ctx.image_name)
    manifest.read_hold(text)
    if current.new_name == repository and current.new_tag == target and core.is_digest(current.digest):
        # Already deployed (a retried job, or this very release's bot commit): nothing to build or
        # look up; the digest was verified when it was written.
        log.info(f"the manifest already deploys {repository}:{target} ({current.digest}); skipping the build")
        return promote(ctx, repository, target, current.digest, mark_noop=False)
    image = f"{repository}:{target}"
    with log.step(f"look up {image} in the registry"):
        digest = registry.resolve_digest(repository, target)
    if digest is not None:
        log.info(f"{image} is already in the registry ({digest}); skipping the build")
    elif ctx.dry_run:
        log.info(f"dry run: {image} is not in the registry; a real run would build and push it")
        digest = PENDING_DIGEST
    else:
        digest = build_and_push(ctx.git, repository, target, context, build_args, network)
    try:
        return promote(ctx, repository, target, digest)
    except manifest.ManifestError as exc:
        raise ActionError(
            f"{image} is in the registry, but the manifest on {ctx.remote}/{ctx.branch} changed into one "
            f"that cannot be edited: {exc}; fix it in git and re-run (the build is skipped then)"
        ) from None


def check_on_branch(ctx: Context, commit: str, flag: str) -> str:
    """Fetch the branch and refuse (BadInput) a commit that is not on it; return the branch tip.

    Production runs only code that is in git on the branch: not an unpushed commit, not another
    branch's, whatever this checkout holds.
    """
    with log.step(f"check that {commit[:12]} is on {ctx.remote}/{ctx.branch}"):
        tip = ctx.git.fetch_branch(ctx.remote, ctx.branch)
        on_branch = ctx.git.ensure_commit(ctx.remote, commit) and ctx.git.reachable(ctx.remote, commit, tip)
    if not on_branch:
        raise BadInput(
            f"{flag} {commit}: not on {ctx.remote}/{ctx.branch} (tip {tip[:12]}); only commits pushed to "
            f"that branch are deployed: push it, or pick one from `git log {ctx.remote}/{ctx.branch}`"
        )
    return tip


def newest_human_commit(ctx: Context, commit: str) -> str | None:
    """commit, or if the bot made it, the newest commit under it on its first-parent line that a
    person made (deepening a shallow clone when the bot's commits reach its boundary)."""
    for attempt in range(2):
        line = ctx.git.first_parent_line(commit, HISTORY_WINDOW)
        found = core.newest_human(line, ctx.bot.email)
        if found is not None or attempt or len(line) >= HISTORY_WINDOW or not ctx.git.is_shallow():
            return found
        ctx.git.unshallow(ctx.remote)
    return None


def build_and_push(
    git: Git, repository: str, commit: str, context: str, build_args: Mapping[str, str], network: str | None
) -> str:
    """docker build of the commit's own tree + push, then check that the registry serves that digest."""
    image = f"{repository}:{commit}"
    with log.step(f"log in to the registry of {repository}"):
        registry.login(repository)
    with tempfile.TemporaryDirectory(prefix="gitops-context-") as tmp:
        with log.step(f"export {context}/ as committed in {commit[:12]}"):
            git.export_tree(commit, context, Path(tmp))
        with log.step(f"docker build {image}"):
            build.build_image(Path(tmp), image, git_commit=commit, build_args=build_args, network=network)
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


def promote(ctx: Context, repository: str, commit: str, digest: str, *, mark_noop: bool = True) -> Report:
    """Point the manifest at REPOSITORY:COMMIT@DIGEST unless held, stale or already there."""

    def plan(tip: str, text: str) -> Edit:
        current = manifest.read_image(text, ctx.image_name)
        desired = core.desired_entry(current, repository, commit, digest)
        relation = ctx.git.relation(ctx.remote, current.new_tag, commit)
        on_branch = ctx.git.reachable(ctx.remote, commit, tip)
        decision = core.decide_promote(
            current, manifest.read_hold(text), desired, relation, on_branch=on_branch
        )
        changed = decision.outcome is Outcome.CHANGED
        return Edit(decision, text, manifest.with_image(text, desired) if changed else text)

    image = f"{repository}:{commit}@{digest}"
    message = core.commit_message(
        f"deploy {ctx.image_name} {commit[:12]}",
        f"Deploy {image}.",
        {"Source-Commit": commit, "Image-Digest": digest, core.ACTION_TRAILER: "promote"},
    )
    mark = (repository, MARK_ON if mark_noop else {Outcome.CHANGED})
    return _commit(ctx, plan, message, image=image, digest=digest, source_commit=commit, mark=mark)


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


def rollback(ctx: Context, repository: str, commit: str, hold: Hold) -> Report:
    """Deploy an older, verified image and hold the manifest there (the ancestry guard is bypassed)."""
    check_on_branch(ctx, commit, "--to")
    digest = verified_digest(repository, commit)

    def plan(tip: str, text: str) -> Edit:
        current = manifest.read_image(text, ctx.image_name)
        desired = core.desired_entry(current, repository, commit, digest)
        on_branch = ctx.git.reachable(ctx.remote, commit, tip)
        decision = core.decide_rollback(current, manifest.read_hold(text), desired, hold, on_branch=on_branch)
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
    mark = (repository, MARK_ON)
    return _commit(ctx, plan, message, image=image, digest=digest, source_commit=commit, mark=mark)


def unhold(ctx: Context, by: str) -> Report:
    """Remove the hold so the next release moves the manifest again."""

    def plan(_tip: str, text: str) -> Edit:
        manifest.read_image(text, ctx.image_name)  # the report names it: refuse a bad manifest before pushing
        decision = core.decide_unhold(manifest.read_hold(text))
        changed = decision.outcome is Outcome.CHANGED
        return Edit(decision, text, manifest.with_hold(text, None) if changed else text)

    message = core.commit_message(
        f"unhold {ctx.image_name}",
        f"Released by {by}.",
        {core.ACTION_TRAILER: "unhold"},
    )
    return _commit(ctx, plan, message)


def protect(ctx: Context, repository: str, digest: str, pushed: str | None) -> None:
    """Tag what the manifest now deploys so the registry's lifecycle policy never expires it.

    pushed is the manifest commit this run pushed (None for a noop): a failure here must say it landed.
    """
    if ctx.dry_run or not core.is_digest(digest):
        return
    try:
        with log.step(f"mark {digest} as deployed in {repository}"):
            registry.mark_deployed(repository, digest)
    except registry.RegistryError as exc:
        landed = f"manifest commit {pushed[:12]} is on {ctx.remote}/{ctx.branch} and " if pushed else ""
        raise ActionError(
            f"the {landed}manifest deploys {digest}, but marking it as deployed failed: {exc}. Until it "
            "is marked the lifecycle policy may expire it: re-run (a noop that marks it again)",
            commit=pushed,
        ) from None


def _commit(
    ctx: Context,
    plan: Callable[[str, str], Edit],
    message: str,
    *,
    image: str | None = None,
    digest: str | None = None,
    source_commit: str | None = None,
    mark: tuple[str, set[Outcome]] | None = None,
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
    if mark is not None and digest is not None and edit.decision.outcome in mark[1]:
        protect(ctx, mark[0], digest, result.commit)
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
