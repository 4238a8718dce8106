"""Console log a Jenkins reader can follow: one line per step with its duration, then a summary.

Everything goes to stderr so stdout stays machine-readable (diff on --dry-run, JSON on --json).
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Iterator

# Tokens ride in https URLs (https://x-access-token:TOKEN@host/...); ssh user names are not secrets.
_USERINFO = re.compile(r"(?P<scheme>https?://)[^/@\s]+@", re.IGNORECASE)


def redact(text: str) -> str:
    """Drop user:password@ from http(s) URLs, so a remote URL with a token never reaches a log line."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def info(message: str) -> None:
    """One line on the console."""
    print(f"[gitops] {redact(message)}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Time one step; log `name ... ok (1.23s)` or `name ... FAILED (1.23s)`."""
    started = time.monotonic()
    try:
        yield
    except BaseException:
        info(f"{name} ... FAILED ({time.monotonic() - started:.2f}s)")
        raise
    info(f"{name} ... ok ({time.monotonic() - started:.2f}s)")


def summary(fields: dict[str, object]) -> None:
    """The final line: outcome, image, digest, manifest commit."""
    info("summary: " + " ".join(f"{key}={'-' if value is None else value}" for key, value in fields.items()))
