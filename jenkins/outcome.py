"""`python -m jenkins.outcome FILE`: the release's JSON line as two lines for the Jenkinsfile.

Line 1 is the outcome (changed, noop, stale, held, error); line 2 is the build description, one line,
at most DESCRIPTION_MAX characters. The Jenkinsfile marks the build unstable for stale and held (they
exit 0 by contract, so a caller's exit-code check stays green) and shows line 2 on the build.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DESCRIPTION_MAX = 300
OUTCOMES = {"changed", "noop", "stale", "held", "error"}


def summarize(stdout: str) -> tuple[str, str]:
    """(outcome, description) from the release's stdout; ("error", why) when it holds no JSON line."""
    lines = stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except ValueError:
        result = None
    if not isinstance(result, dict) or result.get("outcome") not in OUTCOMES:
        return "error", "error: the release printed no JSON result (see the console)"
    outcome = str(result["outcome"])
    detail = result.get("error") if outcome == "error" else result.get("reason")
    dry = "dry run, nothing written: " if result.get("dry_run") is True else ""
    text = " ".join(f"{dry}{outcome}: {detail or ''}".split())
    return outcome, text if len(text) <= DESCRIPTION_MAX else text[: DESCRIPTION_MAX - 3] + "..."


def main(argv: list[str]) -> int:
    try:
        stdout = Path(argv[0]).read_text(errors="replace") if argv else ""
    except OSError:
        stdout = ""
    outcome, description = summarize(stdout)
    print(outcome)
    print(description)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
