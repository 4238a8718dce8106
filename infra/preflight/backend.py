"""Pulumi: a logged-in backend, where `pulumi up` keeps the stack's state; with previews on, Pulumi Cloud,
the backend the preview workflow logs in to with GitHub's OIDC token (pulumi/auth-actions, docs/security.md).
And the tools `pulumi up` runs on this machine: git and ssh, with which it pushes the signed commit that
switches signing on (infra/signing_switch.py).
"""

from __future__ import annotations

import shutil
import subprocess

from infra.preflight.report import Row, fail, ok, skip

INSTALL_FIX = "install the Pulumi CLI (pulumi.com/docs/install), then `pulumi login`"
PREVIEWS_CHECK = "Pulumi Cloud for previews"
# pulumi/pulumi pkg/cmd/pulumi/whoami.go, `--verbose`: a line `Backend URL: <b.URL()>`. Pulumi Cloud's is its
# https console address; the DIY backends' are file://, s3://, gs:// or azblob:// (`pulumi login` docs).
URL_LINE = "Backend URL:"


TOOLS_CHECK = "git and ssh"


def tools() -> Row:
    """`pulumi up` pushes the commit that switches signing on with git over SSH from this machine."""
    missing = [tool for tool in ("git", "ssh") if shutil.which(tool) is None]
    if missing:
        return fail(
            TOOLS_CHECK,
            f"{' and '.join(missing)} not found on PATH: `pulumi up` pushes the bot-signed commit that lets "
            'Flux deploy from day 0 with git over SSH (docs/release.md, "Signing switched on at creation")',
            "install git and an OpenSSH client (e.g. `apt-get install git openssh-client`)",
        )
    return ok(TOOLS_CHECK, "on PATH (`pulumi up` pushes one signed commit to github.com over SSH)")


def check(previews: bool) -> list[Row]:
    if shutil.which("pulumi") is None:
        return [fail("Pulumi backend", "the Pulumi CLI is not installed", INSTALL_FIX)]
    try:
        run = subprocess.run(
            ["pulumi", "whoami", "--verbose"], capture_output=True, text=True, check=False, timeout=60
        )
    except subprocess.TimeoutExpired:
        return [
            fail(
                "Pulumi backend",
                "`pulumi whoami` did not answer in 60s",
                "check the network, then `pulumi login`",
            )
        ]
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["not logged in"])[-1]
        return [
            fail("Pulumi backend", f"`pulumi whoami`: {last}", "`pulumi login` (or `pulumi login --local`)")
        ]
    rows = [ok("Pulumi backend", " ".join(run.stdout.split()))]
    if previews:
        rows.append(_cloud(run.stdout))
    return rows


def _cloud(whoami: str) -> Row:
    url = next(
        (line.split(":", 1)[1].strip() for line in whoami.splitlines() if line.startswith(URL_LINE)), ""
    )
    if not url:
        return skip(PREVIEWS_CHECK, "`pulumi whoami --verbose` named no backend URL")
    if url.startswith(("https://", "http://")):
        return ok(PREVIEWS_CHECK, f"{url}: the preview workflow can log in with GitHub's OIDC token")
    return fail(
        PREVIEWS_CHECK,
        f"the backend is {url}: pull-request previews log in to Pulumi Cloud with GitHub's OIDC token, "
        "which a self-managed backend does not take",
        "`pulumi login` to Pulumi Cloud and set it up once (docs/security.md, Setting up the preview), or "
        "turn previews off: `pulumi config set --path 'gitops-eks:preview.enabled' false`",
    )
