"""`python -m jenkins.field FILE KEY`: one value of the JSON line a command wrote, for a pipeline step.

Prints the value of KEY in the last line of FILE (true/false for booleans, as JSON spells them) and exits
0; exits 2 with a message naming the file and the key when the file holds no JSON object on its last
line or the key is absent or null, so that `x=$(python -m jenkins.field f k)` under `set -e` stops the
step instead of passing an empty value on.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

USAGE = "usage: python -m jenkins.field FILE KEY"


def value(text: str, key: str) -> str | None:
    """KEY's value in the last line of text as a pipeline step prints it, or None if absent or null."""
    lines = text.strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else None
    except ValueError:
        data = None
    found = data.get(key) if isinstance(data, dict) else None
    if found is None:
        return None
    return json.dumps(found) if isinstance(found, bool | int | float) else str(found)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(USAGE, file=sys.stderr)
        return 2
    path, key = argv
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    found = value(text, key)
    if found is None:
        print(f"error: {path} has no {key!r} in the JSON object on its last line", file=sys.stderr)
        return 2
    print(found)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
