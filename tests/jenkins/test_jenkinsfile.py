"""Properties of jenkins/Jenkinsfile that no Jenkins is needed to check: quoting of secrets, the lock,
timeouts, pinned host keys, and that its shell steps and release command are valid."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest

from jenkins import cli
from tests.conftest import ROOT, require

TEXT = (ROOT / "jenkins" / "Jenkinsfile").read_text()
CODE = "\n".join(line for line in TEXT.splitlines() if not line.strip().startswith("//"))
SCRIPTS = re.findall(r"sh\s+'''(.*?)'''", CODE, flags=re.DOTALL)
CONTRACT_ENV = {"IMAGE_REPOSITORY", "AWS_REGION", "GITOPS_BRANCH", "PULUMI_STACK"}


def stage(name: str) -> str:
    """The text of one stage, up to the next stage or the end of the file."""
    match = re.search(rf"stage\('{re.escape(name)}'\)(.*?)(?=\n\s*stage\(|\Z)", CODE, flags=re.DOTALL)
    assert match, f"no stage {name!r}"
    return match.group(1)


def shell_text(script: str) -> str:
    """A '''-string as the shell receives it: Groovy drops backslash-newline."""
    return script.replace("\\\n", " ")


def test_no_groovy_string_interpolation_anywhere() -> None:
    # Groovy interpolates "..." and """...""": a secret bound by withCredentials would end up in the
    # script text (and Jenkins warns). Outside single-quoted strings there is no string at all.
    groovy = re.sub(r"'''.*?'''", "", CODE, flags=re.DOTALL)
    groovy = re.sub(r"'[^'\n]*'", "", groovy)
    assert '"' not in groovy
    assert "$" not in groovy


def test_every_sh_step_is_single_quoted() -> None:
    steps = re.findall(r"\bsh[\s(]+(?:script:\s*)?(.)", CODE)
    assert steps and all(quote == "'" for quote in steps), steps


def test_release_stage_is_locked_timed_and_uses_the_deploy_key() -> None:
    release = stage("Release")
    assert "lock('gitops-release')" in release
    assert re.search(r"timeout\(time: \d+, unit: 'MINUTES'\)", release)
    assert "sshagent(credentials: ['gitops-deploy-key'])" in release
    assert "not { changeRequest() }" in release
    assert "environment name: 'BOT_COMMIT', value: 'false'" in release


def test_release_command_is_valid_for_our_cli() -> None:
    script = shell_text(next(s for s in SCRIPTS if "python -m jenkins release" in s))
    line = next(line for line in script.splitlines() if "python -m jenkins release" in line)
    argv = shlex.split(line.split(">")[0])
    assert argv[:4] == [".venv/bin/python", "-m", "jenkins", "release"]
    assert argv[4:6] == ["--image-repository", "$IMAGE_REPOSITORY"]
    args = cli.parser().parse_args(argv[3:])
    assert args.json is True and args.dry_run is False and args.commit == "HEAD"


def test_preview_on_pull_requests_with_the_token_bound_and_output_archived() -> None:
    preview = stage("Pulumi preview")
    assert "changeRequest()" in preview
    assert (
        "withCredentials([string(credentialsId: 'pulumi-access-token', variable: 'PULUMI_ACCESS_TOKEN')])"
        in preview
    )
    assert 'pulumi preview --stack "$PULUMI_STACK"' in preview
    assert "archiveArtifacts(artifacts: 'pulumi-preview.txt'" in preview


def test_git_over_ssh_pins_host_keys() -> None:
    command = re.search(r"GIT_SSH_COMMAND = '([^']*)'", CODE)
    assert command
    assert "StrictHostKeyChecking=yes" in command.group(1)
    assert "UserKnownHostsFile=" in command.group(1)
    assert "StrictHostKeyChecking=no" not in CODE and "accept-new" not in CODE


def test_bot_commits_are_skipped_before_anything_runs() -> None:
    first = stage("Skip bot commits")
    assert "[skip ci]" in first and "gitops-bot@users.noreply.github.com" in first
    for name in ("Test", "Release", "Pulumi preview"):
        assert "environment name: 'BOT_COMMIT', value: 'false'" in stage(name)


def test_pipeline_options() -> None:
    options = re.search(r"options \{(.*?)\n    \}", CODE, flags=re.DOTALL)
    assert options
    assert "buildDiscarder(logRotator(" in options.group(1)
    assert re.search(r"timeout\(time: \d+, unit: 'MINUTES'\)", options.group(1))
    assert "sh 'make test'" in stage("Test")
    assert "--no-cache" not in CODE


def test_only_contract_environment_is_assumed() -> None:
    used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", "\n".join(SCRIPTS)))
    bound = {"PULUMI_ACCESS_TOKEN", "HOME"}  # from withCredentials / the shell
    assert used - bound <= CONTRACT_ENV, used - bound - CONTRACT_ENV
    locals_ = {"status"}
    assert set(re.findall(r"\$\{?([a-z_]+)", "\n".join(SCRIPTS))) <= locals_


def test_braces_balance() -> None:
    assert CODE.count("{") == CODE.count("}")
    assert CODE.count("(") == CODE.count(")")


@pytest.mark.parametrize("index", range(len(SCRIPTS)))
def test_shell_steps_pass_shellcheck(index: int, tmp_path: pytest.TempPathFactory) -> None:
    require(shutil.which("shellcheck") is not None, "shellcheck is not installed")
    script = tmp_path / "step.sh"
    script.write_text("#!/bin/sh\n" + shell_text(SCRIPTS[index]))
    proc = subprocess.run(
        ["shellcheck", "-s", "sh", str(script)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout
