"""`python -m infra.preflight [--stack NAME]`: exit 0 when nothing blocks `pulumi up`, 1 when something
does (each ✗ row says how to fix it), 2 when the stack's config cannot be read or is invalid."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from infra.config import Secret
from infra.preflight import aws, backend, github
from infra.preflight.report import render
from infra.preflight.stack import InputError, read

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.preflight", description=__doc__)
    parser.add_argument(
        "--stack", default=os.environ.get("PULUMI_STACK") or "dev", help="stack name (default dev)"
    )
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # A terminal that cannot show ✓/✗ gets escapes, not a UnicodeEncodeError.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        stack = read(args.root, args.stack)
    except InputError as error:
        print(f"preflight: {error}", file=sys.stderr)
        return 2
    # As the GitHub provider takes it: `github:token`, else the GITHUB_TOKEN environment variable.
    env_token = os.environ.get("GITHUB_TOKEN", "").strip()
    token = stack.github_token or (Secret(env_token) if env_token else None)
    print(
        f"preflight for stack {stack.name} ({stack.config.repository} in {stack.config.region}; "
        f"config from {stack.source})"
    )
    rows = [
        *aws.checks(stack.config),
        *github.checks(stack.config, token, stack.encrypted),
        *backend.check(stack.config.preview.enabled),
        backend.tools(),
    ]
    print(render(rows))
    return 1 if any(r.blocks for r in rows) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("preflight: interrupted", file=sys.stderr)
        sys.exit(130)
