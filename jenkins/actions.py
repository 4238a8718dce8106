"""The four commands as steps: gather facts through the adapters, decide with the core, commit back.

`release` = build and push the image if the registry lacks it, then `promote`. `promote` moves the
manifest to an image that the registry already has, pinned by digest. `rollback` writes an older image
plus a hold; `unhold` lifts the hold. Inputs arrive here already validated by the CLI.
"""

from __future__ import annotations

import datetime
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from jenkins import build, core, environments, log, manifest, registry
from jenkins.core import Hold, Outcome, RetryPolicy
from jenkins.gitops import Edit, Git, GitError, Identity, commit_manifest
from jenkins.signing import Signer

PENDING_DIGEST = "sha256:<digest of the image this run would build>"
HISTORY_WINDOW = 200  # first-parent commits searched for the newest human commit under a bot commit
# Rounds of "mark what the manifest deploys, then look again" before giving up on a branch that keeps
# changing what it deploys while we mark.
MARK_ROUNDS = 5
# Commits from the branch tip down to an overlay's last change asked for Flux's newest report on them.
HEALTH_WINDOW = 20
HEALTHY = "success"


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
    manifest_path: str  # relative to the repository root, e.g. k8s/overlays/dev/kustomization.yaml
    image_name: str
    bot: Identity
    policy: RetryPolicy
    dry_run: bool
    environment: str  # whose deploy this is: names its mark in the registry (registry.deployed_tag)
    signer: Signer | None = None  # signs every commit pushed (GITOPS_SIGNING_KEY_FILE)


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
    manifest.read_replicas(text, ctx.image_name)
    if current.new_name == repository and current.new_tag == target and core.is_digest(current.digest):
        # Already deployed (a retried job, or this very release's bot commit): nothing to build or
        # look up; the digest was verified when it was written.
        log.info(f"the manifest already deploys {repository}:{target} ({current.digest}); skipping the build")
        return promote(ctx, repository, target, current.digest)
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
    """Fetch the branch and refuse (BadInput) a commit that is not on its first-parent line; return the
    branch tip.

    Production runs only states the branch was in: not an unpushed commit, not another branch's, not a
    pull request's commit that is reachable only through a merge's second parent.
    """
    # The refusal is raised inside the step, so the step logs FAILED, never "ok" before the error.
    with log.step(f"check whether {commit[:12]} is on {ctx.remote}/{ctx.branch}"):
        tip = ctx.git.fetch_branch(ctx.remote, ctx.branch)
        if not (ctx.git.ensure_commit(ctx.remote, commit) and ctx.git.on_line(ctx.remote, commit, tip)):
            raise BadInput(
                f"{flag} {commit}: not on {ctx.remote}/{ctx.branch} (tip {tip[:12]}) as one of its own "
                "states (its first-parent line; a commit merged in from a pull request is deployed as "
                f"the merge commit): push it, or pick one from `git log --first-parent "
                f"{ctx.remote}/{ctx.branch}`"
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


def promote(
    ctx: Context,
    repository: str,
    commit: str,
    digest: str,
    by: str | None = None,
    promoted_from: str | None = None,
) -> Report:
    """Point the manifest at REPOSITORY:COMMIT@DIGEST unless held, stale or already there. A person's
    change of the image in git since the bot's last commit is kept and becomes a hold. `by` (who asked,
    for a promote started by a person) goes into the commit as a Promoted-By trailer, `promoted_from`
    (the environment whose image this is) as a Promoted-From trailer."""

    def plan(tip: str, text: str) -> Edit:
        current = manifest.read_image(text, ctx.image_name)
        hold = manifest.read_hold(text)
        desired = core.desired_entry(current, repository, commit, digest)
        relation = ctx.git.relation(ctx.remote, current.new_tag, commit)
        on_branch = ctx.git.on_line(ctx.remote, commit, tip)
        change = None if hold is not None else hand_change(ctx, tip, current)
        decision = core.decide_promote(
            current, hold, desired, relation, on_branch=on_branch, hand_change=change
        )
        if decision.outcome is Outcome.CHANGED:
            return Edit(decision, text, manifest.with_image(text, desired))
        if decision.outcome is Outcome.HELD and change is not None:
            new_hold = change.hold(utc_now())
            held = core.commit_message(
                f"hold {ctx.image_name} at the image set by {change.commit[:12]}",
                f"Keep what {change.commit} deploys; releases wait for `unhold`.",
                {"Held-By": new_hold.by, core.ACTION_TRAILER: "hold"},
            )
            return Edit(decision, text, manifest.with_hold(text, new_hold), held)
        return Edit(decision, text, text)

    image = f"{repository}:{commit}@{digest}"
    message = core.commit_message(
        f"deploy {ctx.image_name} {commit[:12]}",
        f"Deploy {image}.",
        {
            "Source-Commit": commit,
            "Image-Digest": digest,
            **({"Promoted-By": by} if by else {}),
            **({"Promoted-From": promoted_from} if promoted_from else {}),
            core.ACTION_TRAILER: "promote",
        },
    )
    return _commit(ctx, plan, message, image=image, digest=digest, source_commit=commit, mark=repository)


def status_context(environment: str) -> str:
    """The context of the commit status the environment's Flux posts (infra/gitops.py status_context)."""
    return f"gitops-eks/{environment}"


@dataclass(frozen=True)
class Deployed:
    """What an environment's overlay on the branch tip deploys, and the newest commit that changed it."""

    environment: str
    path: str
    entry: core.ImageEntry
    hold: Hold | None
    changed: str | None


def deployed(git: Git, remote: str, tip: str, environment: str, image_name: str) -> Deployed:
    """The environment's overlay as the branch tip has it; BadInput if the tip has none."""
    path = f"{environments.overlay(environment)}/{manifest.FILE_NAME}"
    text = git.read_file(tip, path)
    if text is None:
        raise BadInput(f"{path} does not exist at {tip[:12]}: the overlay of {environment} is missing")
    entry = manifest.read_image(text, image_name)
    return Deployed(environment, path, entry, manifest.read_hold(text), git.last_change(remote, tip, path))


# The state of the environment's commit status on a commit (None: none posted), as GitHub answers.
StateOf = Callable[[str], "str | None"]


def health(git: Git, tip: str, changed: str | None, state_of: StateOf) -> tuple[str | None, str]:
    """(state, commit) of the newest report Flux posted for the environment on a commit from tip down to
    changed (the overlay's last change: every commit above it deploys the same image): a later revision's
    report is the newer word on what runs. (None, changed) if none has one."""
    for sha, _ in git.first_parent_line(tip, HEALTH_WINDOW):
        state = state_of(sha)
        if state is not None or sha == changed:
            return state, sha
    target = changed or tip
    return state_of(target), target


def promote_from(
    ctx: Context, repository: str, source: str, state_of: StateOf, by: str | None = None
) -> Report:
    """Deploy to this manifest the exact image (commit and digest) the source environment's overlay
    pins on the branch tip, if Flux reported success for it there; ActionError (nothing written) if the
    source runs no release yet, pins no digest, is not reported healthy, or repository lacks that image."""
    with log.step(f"read what {source} deploys on {ctx.remote}/{ctx.branch}"):
        tip = ctx.git.fetch_branch(ctx.remote, ctx.branch)
        runs = deployed(ctx.git, ctx.remote, tip, source, ctx.image_name)
    entry = runs.entry
    where = f"{runs.path} on {ctx.remote}/{ctx.branch} ({tip[:12]})"
    if not core.names_release(entry.new_tag):
        raise ActionError(
            f"{source} runs no release yet: {where} pins newTag {entry.new_tag!r} (day 0); release to "
            f"{source} first, then promote what runs healthy there"
        )
    if not core.is_digest(entry.digest):
        raise ActionError(
            f"{where} pins {entry.new_name}:{entry.new_tag} without a digest: only an image pinned by "
            f"digest is promoted (every release writes one); release to {source} again"
        )
    context = status_context(source)
    with log.step(f"ask GitHub for the {context} status of {source}'s revision"):
        state, at = health(ctx.git, tip, runs.changed, state_of)
    if state != HEALTHY:
        found = "missing (Flux has not reported it yet?)" if state is None else f"{state!r}"
        raise ActionError(
            f"{source} is not reported healthy: the commit status {context} on {at} is {found}; "
            f"promotion takes only what Flux reported `{HEALTHY}` for in {source}: wait for it, or fix "
            f"{source}"
        )
    image = f"{repository}:{entry.new_tag}"
    with log.step(f"look up {image} in the registry"):
        digest = registry.resolve_digest(repository, entry.new_tag)
    if digest is None:
        raise ActionError(
            f"{image} is not in the registry; {source} runs {entry.reference}. Give --image-repository the "
            f"repository {source} pulls from (every environment pulls from the release side's, "
            'docs/environments.md, "Promotion model"), or copy that image by digest into '
            f"{repository} with the tag {entry.new_tag}, then re-run"
        )
    if digest != entry.digest:
        raise ActionError(
            f"the registry has {image} as {digest}, but {source} runs {entry.digest}: not the same image. "
            "Give --image-repository the repository it pulls from, or copy it keeping its digest, then re-run"
        )
    return promote(ctx, repository, entry.new_tag, digest, by, promoted_from=source)


def hand_change(ctx: Context, tip: str, current: core.ImageEntry) -> core.HandChange | None:
    """The newest commit on tip's first-parent line that changed the app's image entry since the
    starting point, when the entry differs from the one there; None if it does not.

    The starting point is the bot's newest commit. Where that commit has no image entry at this path
    (the manifest moved there since, as in an upgrade to the overlays, or is a new environment's), it is
    the manifest as merged: the newest commit that added the path. A bot that never committed has none:
    the manifest as it is is the starting point."""
    if ctx.git.is_shallow() and ctx.git.newest_by(tip, ctx.bot.email, ctx.manifest_path) is None:
        ctx.git.unshallow(ctx.remote)
    # The bot's newest commit to this manifest: its commits to other environments' overlays say
    # nothing about what a person did to this one.
    bot = ctx.git.newest_by(tip, ctx.bot.email, ctx.manifest_path)
    if bot is None and ctx.git.newest_by(tip, ctx.bot.email) is None:
        return None
    present = bot is not None and _entry_at(ctx, bot) is not None
    base = bot if present else ctx.git.added_in(ctx.remote, tip, ctx.manifest_path)
    if base is None or _entry_at(ctx, base) in (None, current):
        return None
    for sha, email in ctx.git.file_changes(base, tip, ctx.manifest_path):
        if _entry_at(ctx, sha) != _entry_at(ctx, f"{sha}^1"):
            return core.HandChange(sha, email)
    return core.HandChange(tip, ctx.git.commit_info(tip)[1])


def _entry_at(ctx: Context, rev: str) -> core.ImageEntry | None:
    """The app's image entry in the manifest at rev; None where there is none that can be read."""
    text = ctx.git.read_file(rev, ctx.manifest_path)
    try:
        return None if text is None else manifest.read_image(text, ctx.image_name)
    except manifest.ManifestError:
        return None


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
        on_branch = ctx.git.on_line(ctx.remote, commit, tip)
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
    return _commit(ctx, plan, message, image=image, digest=digest, source_commit=commit, mark=repository)


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


def protect(ctx: Context, repository: str, text: str, pushed: str | None) -> None:
    """Tag what the manifest deploys with its environment's mark, so the registry's lifecycle policy
    never expires it.

    text is the manifest this run left on the branch. Another run (a rollback racing this promote) may
    push and mark in between, so after marking, the branch is read again and what it deploys by then is
    marked, until a look finds what was marked last: whichever run marks last has seen the newest
    manifest, so the tag ends on what the branch deploys. Only images of repository are marked.
    pushed is the manifest commit this run pushed (None for a noop): a failure here must say it landed.
    """
    if ctx.dry_run:
        return
    marked: str | None = None
    for _ in range(MARK_ROUNDS):
        try:
            entry = manifest.read_image(text, ctx.image_name)
        except manifest.ManifestError:
            return  # a person broke the manifest meanwhile: it deploys nothing we could mark
        digest = entry.digest
        if entry.new_name != repository or not core.is_digest(digest) or not registry.is_ecr(repository):
            return
        if digest == marked:
            return
        try:
            with log.step(f"mark {digest} as deployed to {ctx.environment} in {repository}"):
                registry.mark_deployed(repository, digest, ctx.environment)
        except registry.RegistryError as exc:
            landed = f"manifest commit {pushed[:12]} is on {ctx.remote}/{ctx.branch} and " if pushed else ""
            raise ActionError(
                f"the {landed}manifest deploys {digest}, but marking it as deployed failed: {exc}. Until "
                f"it is marked the lifecycle policy may expire it: run the same job or command again; while "
                f"{ctx.environment}'s overlay still deploys it, that is a no-op that marks it",
                commit=pushed,
            ) from None
        marked = digest
        try:
            with log.step(f"check that {ctx.remote}/{ctx.branch} still deploys {digest}"):
                tip = ctx.git.fetch_branch(ctx.remote, ctx.branch)
                text = ctx.git.read_file(tip, ctx.manifest_path) or "{}"
        except GitError as exc:
            raise ActionError(
                f"marked {digest} as deployed, but could not check that {ctx.remote}/{ctx.branch} still "
                f"deploys it: {exc}; re-run to mark what it deploys",
                commit=pushed,
            ) from None
    raise ActionError(
        f"{ctx.remote}/{ctx.branch} changed what it deploys {MARK_ROUNDS} times while this run marked it; "
        "re-run to mark what it deploys now",
        commit=pushed,
    )


def _commit(
    ctx: Context,
    plan: Callable[[str, str], Edit],
    message: str,
    *,
    image: str | None = None,
    digest: str | None = None,
    source_commit: str | None = None,
    mark: str | None = None,
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
        signer=ctx.signer,
    )
    edit = result.edit
    if mark is not None:
        protect(ctx, mark, edit.new_text, result.commit)
    if image is None:  # unhold: report what the manifest deploys
        deployed = manifest.read_image(edit.new_text, ctx.image_name)
        image, digest = deployed.reference, deployed.digest
    return Report(
        outcome=edit.decision.outcome,
        reason=edit.decision.reason + _scaled_to_zero_note(ctx, edit.new_text),
        image=image,
        digest=digest,
        commit=result.commit,
        source_commit=source_commit,
        diff=manifest.unified_diff(edit.old_text, edit.new_text, ctx.manifest_path),
        attempts=result.attempts,
    )


def _scaled_to_zero_note(ctx: Context, text: str) -> str:
    """A note for the report when the manifest keeps the app at 0 pods: only the first release removes
    the day-0 `replicas:` entry, so a count of 0 that stays is a person's choice, but nobody should
    read "deployed" and think the app runs."""
    try:
        count = manifest.read_replicas(text, ctx.image_name)
    except manifest.ManifestError:
        return ""  # kustomize refuses that manifest too; Flux's status names it
    if count != 0:
        return ""
    if manifest.read_image(text, ctx.image_name).new_tag == core.NOTHING_RELEASED:
        # Day 0 kept (an unhold, say): the entry is what keeps Flux from starting pods on no image.
        return (
            f"; note: nothing is released to {ctx.manifest_path} yet, so the app runs 0 pods; the first "
            "release removes day 0's `replicas:` entry"
        )
    return (
        f"; note: the `replicas:` entry named {ctx.image_name!r} in {ctx.manifest_path} keeps it at 0 "
        "pods: remove that entry in git to run it"
    )


def utc_now() -> str:
    """Now, as a hold records it (ISO 8601, UTC, seconds)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
