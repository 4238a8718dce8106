"""One row per check: ✓ or ✗, what was found, and for a ✗ the fix. A ✗ blocks `pulumi up` (exit 1)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

OK, FAIL, SKIP = "✓", "✗", "-"


@dataclass(frozen=True)
class Row:
    mark: str
    check: str
    detail: str
    fix: str = ""

    @property
    def blocks(self) -> bool:
        return self.mark == FAIL


def ok(check: str, detail: str) -> Row:
    return Row(OK, check, detail)


def fail(check: str, detail: str, fix: str) -> Row:
    return Row(FAIL, check, detail, fix)


def skip(check: str, detail: str) -> Row:
    """Not checkable now (and not a blocker); the detail says why."""
    return Row(SKIP, check, detail)


def guarded(check: str, run: Callable[[], Iterable[Row]], fix: str) -> list[Row]:
    """The rows of `run`, then one ✗ row naming what went wrong if it failed: never a traceback."""
    rows: list[Row] = []
    try:
        rows.extend(run())
    except Exception as error:
        rows.append(fail(check, f"{type(error).__name__}: {error}", fix))
    return rows


def render(rows: Iterable[Row]) -> str:
    rows = list(rows)
    width = max((len(r.check) for r in rows), default=0)
    lines = []
    for row in rows:
        lines.append(f"{row.mark}  {row.check.ljust(width)}  {row.detail}")
        if row.fix:
            lines.append(f"   {' ' * width}  fix: {row.fix}")
    blocking = sum(r.blocks for r in rows)
    lines.append("")
    lines.append(
        f"{blocking} blocker(s): fix each ✗ above, then run `make preflight` again"
        if blocking
        else "no blockers: `pulumi up` can start"
    )
    return "\n".join(lines)
