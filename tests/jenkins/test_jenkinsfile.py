"""Properties of jenkins/Jenkinsfile that no Jenkins is needed to check: quoting of secrets, the lock,
timeouts, pinned host keys, and that its shell steps and release command are valid."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest

from jenkins import cli, core
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
    # `$class:` is a map key naming a describable (no string, so nothing to interpolate).
    assert "$" not in groovy.replace("[$class:", "[")


def test_every_sh_step_is_single_quoted() -> None:
    steps = re.findall(r"\bsh[\s(]+(?:script:\s*)?(.)", CODE)
    assert steps and all(quote == "'" for quote in steps), steps


def test_release_stage_is_locked_timed_and_uses_the_deploy_key() -> None:
    release = stage("Release")
    assert "lock('gitops-release')" in release
    assert re.search(r"timeout\(time: \d+, unit: 'MINUTES'\)", release)
    assert "sshagent(credentials: ['gitops-deploy-key'])" in release
    assert "not { changeRequest() }" in release


def test_release_command_is_valid_for_our_cli() -> None:
    script = shell_text(next(s for s in SCRIPTS if "python -m jenkins release" in s))
    line = next(line for line in script.splitlines() if "python -m jenkins release" in line)
    argv = shlex.split(line.split(">")[0])
    assert argv[:4] == [".venv/bin/python", "-m", "jenkins", "release"]
    assert argv[4:6] == ["--image-repository", "$IMAGE_REPOSITORY"]
    args = cli.parser().parse_args(argv[3:])
    assert args.json is True and args.dry_run is False and args.commit == "HEAD"


def test_the_jenkins_tree_holds_no_pulumi_token() -> None:
    """Jenkins runs no Pulumi: a token there would reach whatever code the job builds. Previews run in
    GitHub Actions with a short-lived team token (.github/workflows/pull-request.yaml)."""
    for path in sorted([*(ROOT / "jenkins").rglob("*"), *(ROOT / "infra" / "jenkins").rglob("*")]):
        if path.is_file() and "__pycache__" not in path.parts:
            text = path.read_text(errors="replace")
            assert "pulumi-access-token" not in text and "PULUMI_ACCESS_TOKEN" not in text, path
    assert "pulumi " not in CODE


def test_git_over_ssh_pins_host_keys() -> None:
    command = re.search(r"GIT_SSH_COMMAND = '([^']*)'", CODE)
    assert command
    assert "StrictHostKeyChecking=yes" in command.group(1)
    assert "UserKnownHostsFile=" in command.group(1)
    assert "StrictHostKeyChecking=no" not in CODE and "accept-new" not in CODE


def test_bot_commits_never_schedule_a_build() -> None:
    """Issue 8 point 12: skip bot commits before a build is scheduled, where the git plugin can.

    jenkinsci/git-plugin (add6e4dc, 2026-08-10): MessageExclusion(String excludedMessage) matches the
    whole commit message with Pattern.matches(); UserExclusion(String excludedUsers) compares the author
    *name*, one per line; neither has a @Symbol ("done with a trait in Pipeline"), so `$class`. Both act
    in polling (GitSCM.isRevExcluded), which is what githubPush() and pollSCM run.
    """
    checkout = stage("Checkout")
    assert "skipDefaultCheckout()" in CODE
    assert "checkout(scmGit(" in checkout  # GitSCM's @Symbol({"scmGit", "gitSCM"})
    message = re.search(r"\[\$class: 'MessageExclusion', excludedMessage: '([^']*)'\]", checkout)
    assert message
    pattern = re.compile(message.group(1).replace("\\\\", "\\"))  # the Groovy string's value
    bot_message = core.commit_message("deploy hello-gitops 0123456789ab", "Deploy x.", {"A": "b"})
    assert pattern.fullmatch(bot_message)  # multi-line: (?s) lets `.` cross line breaks, as in Java
    assert not pattern.fullmatch("app: a human change\n\nwith a body\n")
    user = re.search(
        r"\[\$class: 'UserExclusion', excludedUsers: env.GITOPS_BOT_NAME \?: '([^']*)'\]", checkout
    )
    assert user and user.group(1) == cli.DEFAULT_BOT.name


def test_no_stage_is_skipped_because_head_is_a_bot_commit() -> None:
    """A build for a human push can check out a bot commit that landed on top (issue 8 point 3):
    skipping on HEAD would lose that push; `release` releases the human commit under it instead."""
    assert "BOT_COMMIT" not in CODE
    assert "git log -1" not in CODE


def test_a_lost_webhook_delays_a_release_instead_of_losing_it() -> None:
    triggers = re.search(r"triggers \{(.*?)\n    \}", CODE, flags=re.DOTALL)
    assert triggers
    assert "githubPush()" in triggers.group(1)  # github plugin GitHubPushTrigger @Symbol("githubPush")
    poll = re.search(r"pollSCM\('H/(\d+) \* \* \* \*'\)", triggers.group(1))
    assert poll and 5 <= int(poll.group(1)) <= 60  # slow: a fallback, not the main path


def test_the_lock_is_only_taken_by_builds_that_release() -> None:
    """`when { beforeOptions true }` (pipeline-model-definition, ModelASTWhen.beforeOptions): the
    condition is evaluated before the stage's options, so skipped builds never queue for the lock."""
    release = stage("Release")
    when = release[: release.index("options {")]
    assert "beforeOptions true" in when
    assert release.index("beforeOptions true") < release.index("lock('gitops-release')")


def test_the_outcome_is_on_the_build_and_stale_or_held_is_unstable() -> None:
    """unstable(message) (workflow-basic-steps UnstableStep, function name `unstable`, message required)
    marks the build UNSTABLE; the exit code contract (0 for stale/held) stays as it is."""
    release = stage("Release")
    post = release[release.index("post {") :]
    assert ".venv/bin/python -m jenkins.outcome release.json" in post
    assert "currentBuild.description = result[1]" in post
    assert "if (result[0] == 'stale' || result[0] == 'held')" in post
    assert "unstable(result[1])" in post
    script = shell_text(next(s for s in SCRIPTS if "python -m jenkins release" in s))
    assert "|| status=$?" in script and 'exit "$status"' in script  # the JSON is read on failure too


def test_pipeline_options() -> None:
    options = re.search(r"options \{(.*?)\n    \}", CODE, flags=re.DOTALL)
    assert options
    assert "buildDiscarder(logRotator(" in options.group(1)
    assert re.search(r"timeout\(time: \d+, unit: 'MINUTES'\)", options.group(1))
    assert "sh 'make test'" in stage("Test")
    assert "--no-cache" not in CODE


def test_only_contract_environment_is_assumed() -> None:
    used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", "\n".join(SCRIPTS)))
    bound = {"HOME"}  # from the shell
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
