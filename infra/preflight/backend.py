"""Pulumi: a logged-in backend, where `pulumi up` keeps the stack's state."""

from __future__ import annotations

import shutil
import subprocess

from infra.preflight.report import Row, fail, ok

INSTALL_FIX = "install the Pulumi CLI (pulumi.com/docs/install), then `pulumi login`"


def check() -> Row:
    if shutil.which("pulumi") is None:
        return fail("Pulumi backend", "the Pulumi CLI is not installed", INSTALL_FIX)
    try:
        run = subprocess.run(
            ["pulumi", "whoami", "--verbose"], capture_output=True, text=True, check=False, timeout=60
        )
    except subprocess.TimeoutExpired:
        return fail(
            "Pulumi backend",
            "`pulumi whoami` did not answer in 60s",
            "check the network, then `pulumi login`",
        )
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["not logged in"])[-1]
        return fail(
            "Pulumi backend", f"`pulumi whoami`: {last}", "`pulumi login` (or `pulumi login --local`)"
        )
    return ok("Pulumi backend", " ".join(run.stdout.split()))
