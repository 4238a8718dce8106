"""`python -m jenkins.operate`: the operator jobs' one command (jenkins/operate.Jenkinsfile).

The jobs gitops-rollback, gitops-unhold and gitops-promote (jenkins/server/casc.yaml) run this on a
release agent, with the write key and the signing key bound around it. It turns what Jenkins gives the
build into the CLI's own arguments and runs the CLI, so every check (a commit on the branch, a reason
on one line, a digest that matches the registry) is the CLI's, and the JSON outcome is the CLI's too.

What it reads from the build's environment (each with the Jenkins source that sets it in
tests/jenkins/test_jenkinsfile_reads.py):
- JOB_BASE_NAME: which job runs, hence which action (ACTIONS);
- the job's parameters COMMIT, REASON, DIGEST, TO, ENVIRONMENT and DRY_RUN (Jenkins puts every
  parameter in the environment under its name, so a value never passes through the pipeline script's
  text); gitops-promote with TO runs `promote --to TO` (the image the environment before TO runs), with
  COMMIT and DIGEST empty; ENVIRONMENT names the environment whose overlay the job edits (`--environment`;
  empty: the stack's own, GITOPS_ENVIRONMENT), so the release side's Jenkins operates every environment;
- GITOPS_STARTED_BY: the JSON of `currentBuild.getBuildCauses('hudson.model.Cause$UserIdCause')`, which
  the Jenkinsfile sets; the signed-in user who started the build becomes `--by`;
- IMAGE_REPOSITORY and GITOPS_BRANCH: casc.yaml's node properties, as for the release.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping

from jenkins import cli

ACTIONS = {"gitops-rollback": "rollback", "gitops-unhold": "unhold", "gitops-promote": "promote"}
# Each job's string parameters as casc.yaml declares them (every job also has the boolean DRY_RUN);
# tests/jenkins/test_operate.py holds casc.yaml to this table.
PARAMETERS = {
    "gitops-rollback": ("COMMIT", "REASON", "ENVIRONMENT"),
    "gitops-unhold": ("ENVIRONMENT",),
    "gitops-promote": ("COMMIT", "DIGEST", "TO", "ENVIRONMENT"),
}


class OperateError(Exception):
    """The build's environment does not make a valid command; the message names the input."""


def started_by(causes: str) -> str:
    """The user id of the first UserIdCause in the JSON array getBuildCauses returns."""
    try:
        found = json.loads(causes) if causes.strip() else []
    except ValueError:
        found = None
    if not isinstance(found, list):
        raise OperateError("GITOPS_STARTED_BY: not the JSON array of the build's causes")
    users = [c["userId"] for c in found if isinstance(c, dict) and isinstance(c.get("userId"), str)]
    if not users or not users[0].strip():
        raise OperateError(
            "no signed-in user started this build (a timer, an SCM change or a remote trigger has no "
            "user to record): start it from Jenkins with `Build with Parameters`, signed in"
        )
    return users[0]


def command(env: Mapping[str, str]) -> list[str]:
    """The CLI arguments this build asks for (without --json)."""
    job = env.get("JOB_BASE_NAME", "")
    action = ACTIONS.get(job)
    if action is None:
        raise OperateError(
            f"JOB_BASE_NAME={job!r}: this pipeline runs as one of the jobs {', '.join(ACTIONS)} only"
        )
    dry_run = env.get("DRY_RUN", "false")
    if dry_run not in ("true", "false"):
        raise OperateError(f"DRY_RUN={dry_run!r}: must be true or false")
    # FLAG=VALUE, one word each: a value that starts with `-` stays a value, never becomes a flag.
    argv = [action, f"--by={started_by(env.get('GITOPS_STARTED_BY', ''))}"]
    # Empty: the stack's own environment (the CLI's default, GITOPS_ENVIRONMENT); the CLI checks the name.
    environment = env.get("ENVIRONMENT", "").strip()
    if "TO" in PARAMETERS[job] and (target := env.get("TO", "").strip()):
        given = [name for name in ("COMMIT", "DIGEST") if env.get(name, "").strip()]
        if given:
            raise OperateError(
                f"TO={target!r} and {' and '.join(given)}: TO deploys the commit and digest the environment "
                "before it runs; leave COMMIT and DIGEST empty, or TO empty to deploy a commit of your choice"
            )
        if environment not in ("", target):
            raise OperateError(
                f"TO={target!r} and ENVIRONMENT={environment!r}: TO is the environment the promotion "
                "deploys to; leave ENVIRONMENT empty or give it the same value"
            )
        argv += [f"--image-repository={env.get('IMAGE_REPOSITORY', '')}", f"--to={target}"]
        return [*argv, *(["--dry-run"] if dry_run == "true" else [])]
    if environment:
        argv.append(f"--environment={environment}")
    if "COMMIT" in PARAMETERS[job]:
        argv.append(f"--image-repository={env.get('IMAGE_REPOSITORY', '')}")
        commit = env.get("COMMIT", "").strip()
        if not commit:
            raise OperateError(f"COMMIT: empty; give the full SHA of the commit whose image to {action}")
        argv.append(f"{'--to' if action == 'rollback' else '--commit'}={commit}")
    if "REASON" in PARAMETERS[job]:
        argv.append(f"--reason={env.get('REASON', '')}")
    if "DIGEST" in PARAMETERS[job] and (digest := env.get("DIGEST", "").strip()):
        argv.append(f"--digest={digest}")
    return [*argv, *(["--dry-run"] if dry_run == "true" else [])]


def main(env: Mapping[str, str]) -> int:
    """Run the CLI with the build's arguments; bad build input ends like the CLI's bad input (exit 2,
    JSON line with outcome `error`)."""
    try:
        argv = command(env)
    except OperateError as exc:
        action = ACTIONS.get(env.get("JOB_BASE_NAME", ""))
        args = argparse.Namespace(json=True, command=action)
        return cli.fail(args, cli.EXIT_BAD_INPUT, f"bad input: {exc}", "nothing was changed")
    return cli.main([*argv, "--json"])


if __name__ == "__main__":
    sys.exit(main(os.environ))
