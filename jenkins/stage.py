"""`plan` and `build`: what the Build stage decides from git and what it hands the Release stage.

`plan` decides from git alone (this working copy, no network) whether this build releases and which
commit: the checked-out commit must be on the first-parent line of <remote>/<branch> as the checkout
fetched it (a build of another branch, an unpushed commit or a commit that only a merge's second
parent reaches is never released), and a release-bot commit releases the newest human commit under
it on that line. Nothing here reads which variables Jenkins
sets: the Jenkinsfile only runs these commands and passes their JSON on.

`build` builds and pushes the planned commit's image, from that commit's own tree, unless the registry
already has it. Its JSON (the plan plus the image and its digest) is the one piece of data the Release
stage receives; `promote --digest` re-verifies that digest against the registry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from jenkins import actions, core, log, registry
from jenkins.gitops import Git

WINDOW = actions.HISTORY_WINDOW  # first-parent commits of the branch searched for the checked-out one


class PlanInputError(Exception):
    """Bad input to `plan` or `build` (exit 2): the message names the flag or file and what to do."""


@dataclass(frozen=True)
class Plan:
    """The Build stage's decision. source_commit is the commit to release (None: no release)."""

    release: bool
    source_commit: str | None
    head: str
    tip: str
    on_branch: bool
    reason: str


@dataclass(frozen=True)
class StageReport:
    """A plan or build result, with the fields the CLI's summary line and JSON object print."""

    plan: Plan
    image: str | None = None
    digest: str | None = None
    built: bool = False
    commit: None = None  # the contract's manifest commit: these commands never push to git
    attempts: int = 0
    diff: str = ""

    @property
    def outcome(self) -> str:
        return "release" if self.plan.release else "skip"

    def as_json(self) -> dict[str, object]:
        return {
            "outcome": self.outcome,
            **asdict(self.plan),
            "image": self.image,
            "digest": self.digest,
            "built": self.built,
            "commit": self.commit,
        }


def decide(head: str, line: list[tuple[str, str]], bot_email: str, where: str) -> Plan:
    """The plan for a build of head, given (sha, author email) of the branch's first-parent line,
    newest first (line[0] is the branch tip)."""
    tip = line[0][0]
    shas = [sha for sha, _ in line]
    if head not in shas:
        return Plan(
            release=False,
            source_commit=None,
            head=head,
            tip=tip,
            on_branch=False,
            reason=(
                f"{head[:12]} is not on the first-parent line of {where} (tip {tip[:12]}, newest "
                f"{len(line)} commits): only commits pushed to that branch are released"
            ),
        )
    target = core.newest_human(line[shas.index(head) :], bot_email)
    if target is None:
        return Plan(
            False, None, head, tip, True, f"only release-bot commits under {head[:12]}; nothing to release"
        )
    why = "" if target == head else f", the newest human commit under the release-bot commit {head[:12]}"
    reason = f"release {target[:12]}{why}"
    return Plan(release=True, source_commit=target, head=head, tip=tip, on_branch=True, reason=reason)


def plan(git: Git, head: str, remote: str, branch: str, bot_email: str) -> Plan:
    """Decide from this working copy alone: <remote>/<branch> as the checkout fetched it. No network,
    so no key: the build agent's checkout key is bound only while Jenkins checks out."""
    where = f"{remote}/{branch}"
    tip = git.resolve_commit(f"refs/remotes/{remote}/{branch}")
    if tip is None:
        raise PlanInputError(
            f"--branch {branch!r} / --remote {remote!r}: this checkout has no {where} (Jenkins' checkout "
            f"fetches it; by hand: git fetch {remote} {branch}:refs/remotes/{remote}/{branch})"
        )
    line = git.first_parent_line(tip, WINDOW)
    decided = decide(head, line, bot_email, where)
    if not decided.release and len(line) < WINDOW and git.is_shallow():
        decided = replace(
            decided,
            reason=f"{decided.reason}; this checkout is shallow, so a full clone may decide otherwise",
        )
    log.info(decided.reason)
    return decided


def read_plan(path: Path) -> Plan:
    """The plan `plan --json` wrote to path (its last line)."""
    try:
        lines = path.read_text().strip().splitlines()
        data = json.loads(lines[-1]) if lines else None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PlanInputError(f"--plan {str(path)!r}: cannot read a JSON line from it ({exc})") from None
    fields = Plan.__dataclass_fields__
    if not isinstance(data, dict) or not set(fields) <= set(data):
        raise PlanInputError(
            f"--plan {str(path)!r}: not the output of `python -m jenkins plan --json` (it needs "
            f"{', '.join(fields)})"
        )
    found = Plan(**{name: data[name] for name in fields})
    if not isinstance(found.release, bool) or (found.release and not core.is_sha(found.source_commit)):
        raise PlanInputError(
            f"--plan {str(path)!r}: `release` must be true or false, and a release needs a full source_commit"
        )
    return found


def build(
    git: Git,
    planned: Plan,
    repository: str,
    *,
    context: str,
    build_args: Mapping[str, str],
    network: str | None,
) -> StageReport:
    """Push REPOSITORY:<source_commit> built from that commit's tree unless the registry has it."""
    if not planned.release or planned.source_commit is None:
        return StageReport(planned)
    commit = planned.source_commit
    image = f"{repository}:{commit}"
    with log.step(f"look up {image} in the registry"):
        digest = registry.resolve_digest(repository, commit)
    if digest is not None:
        log.info(f"{image} is already in the registry ({digest}); skipping the build")
        return StageReport(planned, image=image, digest=digest)
    digest = actions.build_and_push(git, repository, commit, context, build_args, network)
    return StageReport(planned, image=image, digest=digest, built=True)
