"""`python -m jenkins status`: what each environment of k8s/environments.yaml deploys on the branch tip.

For each environment, in promotion order: the commit its overlay deploys (the image's newTag, the
Source-Commit of the bot commit that wrote it), the image digest, its health (the state of the commit
status `gitops-eks/<environment>` Flux posted last on a revision from the tip down to the overlay's last
change, as GitHub answers; `unknown` without GITOPS_PULLS_TOKEN) and its hold. Nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from jenkins import actions, core
from jenkins.gitops import Git

UNKNOWN = "unknown"  # no token to ask GitHub with
NONE_REPORTED = "none"  # GitHub has no such status on those revisions


@dataclass(frozen=True)
class Row:
    environment: str
    commit: str | None  # None: nothing released yet (day 0)
    image: str | None
    digest: str | None
    health: str
    health_commit: str | None  # the revision the health was read on
    hold: core.Hold | None
    overlay_commit: str | None  # the newest commit that changed the overlay

    def as_json(self) -> dict[str, object]:
        hold = self.hold
        held = None if hold is None else {"by": hold.by, "reason": hold.reason, "at": hold.at}
        return {
            "environment": self.environment,
            "commit": self.commit,
            "image": self.image,
            "digest": self.digest,
            "health": self.health,
            "health_commit": self.health_commit,
            "hold": held,
            "overlay_commit": self.overlay_commit,
        }


@dataclass(frozen=True)
class StatusReport:
    branch: str
    tip: str
    rows: tuple[Row, ...]

    def table(self) -> str:
        header = ("ENVIRONMENT", "COMMIT", "DIGEST", "HEALTH", "HOLD")
        lines = [header]
        for row in self.rows:
            held = row.hold
            hold = "-" if held is None else f"held by {held.by} since {held.at}: {held.reason}"
            lines.append(
                (
                    row.environment,
                    row.commit[:12] if row.commit else "(none released)",
                    row.digest or "-",
                    row.health if row.health_commit is None else f"{row.health} at {row.health_commit[:12]}",
                    hold,
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
        out = [f"{self.branch} at {self.tip[:12]}"]
        for line in lines:
            out.append("  ".join([*(c.ljust(w) for c, w in zip(line, widths, strict=False)), line[-1]]))
        return "\n".join(out) + "\n"

    def as_json(self) -> dict[str, object]:
        return {
            "outcome": "status",
            "command": "status",
            "branch": self.branch,
            "tip": self.tip,
            "environments": [row.as_json() for row in self.rows],
        }


def status(
    git: Git,
    remote: str,
    branch: str,
    names: tuple[str, ...],
    image_name: str,
    state_in: Callable[[str], actions.StateOf] | None,
) -> StatusReport:
    """Each environment's row; state_in(environment) reads its commit status on a commit (None: no
    token, health unknown)."""
    tip = git.fetch_branch(remote, branch)
    rows = []
    for name in names:
        runs = actions.deployed(git, remote, tip, name, image_name)
        if state_in is None:
            health, at = UNKNOWN, None
        else:
            state, at = actions.health(git, tip, runs.changed, state_in(name))
            health = state or NONE_REPORTED
        released = core.names_release(runs.entry.new_tag)
        rows.append(
            Row(
                environment=name,
                commit=runs.entry.new_tag if released else None,
                image=runs.entry.reference if released else None,
                digest=runs.entry.digest,
                health=health,
                health_commit=at,
                hold=runs.hold,
                overlay_commit=runs.changed,
            )
        )
    return StatusReport(branch, tip, tuple(rows))
