"""Properties of jenkins/Jenkinsfile that no Jenkins is needed to check: quoting of secrets, the lock,
timeouts, pinned host keys, which stage binds which credential, what the release agent installs, and
that its shell steps and commands are valid for our CLI. What it reads from Jenkins is listed in
test_jenkinsfile_reads.py; its stages run as a script in tests/e2e/test_pipeline.py."""

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
CONTRACT_ENV = {"IMAGE_REPOSITORY", "GITOPS_BRANCH", "GITOPS_TRUST_ANCHOR"}
SIGNING = (
    "withCredentials([\n"
    "                    file(credentialsId: 'gitops-signing-key', variable: 'GITOPS_SIGNING_KEY_FILE'),\n"
    "                    string(credentialsId: 'gitops-pulls-token', variable: 'GITOPS_PULLS_TOKEN')\n"
    "                ])"
)
DEPLOY_KEY = "sshagent(credentials: ['gitops-deploy-key'])"


def stage(name: str) -> str:
    """The text of one stage, up to the next stage or the end of the file."""
    match = re.search(rf"stage\('{re.escape(name)}'\)(.*?)(?=\n\s*stage\(|\Z)", CODE, flags=re.DOTALL)
    assert match, f"no stage {name!r}"
    return match.group(1)


def shell_text(script: str) -> str:
    """A '''-string as the shell receives it: Groovy drops backslash-newline."""
    return script.replace("\\\n", " ")


def commands(script: str) -> list[str]:
    """The script's command lines, with runs of blanks as one space."""
    return [" ".join(line.split()) for line in shell_text(script).splitlines() if line.strip()]


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


def test_only_two_stages_build_then_release() -> None:
    assert re.findall(r"stage\('([^']*)'\)", CODE) == ["Build", "Release"]


def test_release_is_locked_timed_and_binds_the_keys_only_around_promote() -> None:
    release = stage("Release")
    assert "lock('gitops-release')" in release
    assert re.search(r"timeout\(time: \d+, unit: 'MINUTES'\)", release)
    assert release.count(SIGNING) == 1 and release.count(DEPLOY_KEY) == 1
    # The signing file is bound around the ssh-agent, and the ssh-agent around one sh step.
    assert release.index(SIGNING) < release.index(DEPLOY_KEY)
    bound = release[release.index(DEPLOY_KEY) : release.index("post {")]
    (script,) = re.findall(r"sh\s+'''(.*?)'''", bound, flags=re.DOTALL)
    lines = commands(script)
    promote = [line for line in lines if "-m jenkins promote" in line]
    assert len(promote) == 1
    # Besides promote: reading two fields of the JSON files, and the exit status. Nothing that
    # installs, builds or runs the repository's tests while the keys are reachable.
    others = [line for line in lines if line not in promote]
    assert others == [
        "set -eu",
        'python="$WORKSPACE_TMP/release-venv/bin/python"',
        'commit=$("$python" -P -m jenkins.field plan.json source_commit)',
        'digest=$("$python" -P -m jenkins.field handover/build.json digest)',
        "status=0",
        "cat release.json",
        'exit "$status"',
    ]


def test_no_stage_but_release_holds_a_write_or_signing_credential() -> None:
    build = stage("Build")
    for name in (
        "gitops-deploy-key",
        "gitops-signing-key",
        "gitops-pulls-token",
        "sshagent",
        "withCredentials",
    ):
        assert name not in build
    assert "pulumi" not in CODE.lower()  # no preview stage, no Pulumi token


def test_the_jenkins_tree_holds_no_pulumi_token() -> None:
    """Jenkins runs no Pulumi: a token there would reach whatever code the job builds. Previews run in
    GitHub Actions with a short-lived team token (.github/workflows/pull-request.yaml)."""
    for path in sorted([*(ROOT / "jenkins").rglob("*"), *(ROOT / "infra" / "jenkins").rglob("*")]):
        if path.is_file() and "__pycache__" not in path.parts:
            text = path.read_text(errors="replace")
            assert "pulumi-access-token" not in text and "PULUMI_ACCESS_TOKEN" not in text, path
    assert "pulumi " not in CODE


def test_release_agent_runs_nothing_the_build_ran() -> None:
    release = stage("Release")
    scripts = [line for s in re.findall(r"'''(.*?)'''", release, flags=re.DOTALL) for line in commands(s)]
    words = " ".join(scripts).split()
    assert "make" not in words and "docker" not in words and "build" not in words
    # Hashed, from the verified tree's lock (never the checkout's), into a venv outside the checkout.
    assert [line for line in scripts if "pip" in line] == [
        '"$WORKSPACE_TMP/release-venv/bin/python" -P -m pip install --quiet --require-hashes --no-deps '
        '--only-binary :all: -r "$WORKSPACE_TMP/release-code/requirements-release.txt"'
    ]
    # The stash is data: it lands in a directory of its own, never over the checkout the release runs.
    assert re.search(r"dir\('handover'\) \{\s*unstash 'build'\s*\}", release)
    assert "stash(name: 'build', includes: 'build.json')" in stage("Build")


@pytest.mark.parametrize("command", ["plan", "build", "promote"])
def test_stage_commands_are_valid_for_our_cli(command: str) -> None:
    lines = [line for s in SCRIPTS for line in commands(s) if f"-m jenkins {command} " in line]
    assert lines, command
    for line in lines:
        argv = shlex.split(line.split(">")[0])
        args = cli.parser().parse_args(argv[argv.index("jenkins") + 1 :])
        assert args.command == command and args.json is True and args.dry_run is False


def test_git_over_ssh_pins_host_keys() -> None:
    command = re.search(r"GIT_SSH_COMMAND = '([^']*)'", CODE)
    assert command
    assert "StrictHostKeyChecking=yes" in command.group(1)
    assert "UserKnownHostsFile=" in command.group(1)
    assert "StrictHostKeyChecking=no" not in CODE and "accept-new" not in CODE


def test_pushes_start_builds_with_ephemeral_agents() -> None:
    """The job has no SCM of its own (an inline script), so githubPush() and pollSCM poll the SCMs the
    last build's checkouts recorded (workflow-job cef6baef, WorkflowJob.poll lines 623-700), and skip
    one that needs a workspace when its agent is gone ("no such computer"), as each agent is after its
    one build. jenkinsci/git-plugin add6e4dc: GitSCM.requiresWorkspaceForPolling (lines 674-685) is
    true when any extension needs one (MessageExclusion line 39, UserExclusion line 36: both do) or the
    branch is not a single one (getSingleBranch, lines 626-654: one `*/<name>` on one remote is). So
    the checkout carries no extension and names one branch: polling runs `git ls-remote`, no agent."""
    checkout = re.search(r"def checkoutReadOnly\(\) \{(.*?)\n\}", CODE, flags=re.DOTALL)
    assert checkout
    assert "skipDefaultCheckout()" in CODE
    assert stage("Build").count("checkoutReadOnly()") == stage("Release").count("checkoutReadOnly()") == 1
    body = " ".join(checkout.group(1).split())
    assert body == (
        "checkout(scmGit( branches: [[name: '*/' + env.GITOPS_BRANCH]], userRemoteConfigs: [[url: "
        "env.GITOPS_REPOSITORY_URL, credentialsId: 'gitops-checkout-key']] ))"
    )  # GitSCM's @Symbol({"scmGit", "gitSCM"}); no `extensions`
    # A bot push starts a build that plans the newest human commit under it: already deployed, so the
    # release is a no-op and pushes nothing (no loop).
    assert "skip ci" not in CODE


def test_no_stage_is_skipped_because_head_is_a_bot_commit() -> None:
    """A build for a human push can check out a bot commit that landed on top: skipping on HEAD would
    lose that push; `plan` picks the human commit under it instead."""
    assert "BOT_COMMIT" not in CODE
    assert "git log -1" not in CODE


def test_a_lost_webhook_delays_a_release_instead_of_losing_it() -> None:
    triggers = re.search(r"triggers \{(.*?)\n    \}", CODE, flags=re.DOTALL)
    assert triggers
    assert "githubPush()" in triggers.group(1)  # github plugin GitHubPushTrigger @Symbol("githubPush")
    poll = re.search(r"pollSCM\('H/(\d+) \* \* \* \*'\)", triggers.group(1))
    assert poll and 5 <= int(poll.group(1)) <= 60  # slow: a fallback, not the main path


def test_neither_the_release_agent_nor_the_lock_is_taken_by_builds_that_do_not_release() -> None:
    """`when { beforeAgent true; beforeOptions true }` (pipeline-model-definition, ModelASTWhen): the
    condition is evaluated before the stage's agent and options, so a build that does not release
    starts no release agent and never queues for the lock."""
    release = stage("Release")
    when = release[release.index("when {") : release.index("options {")]
    assert "beforeAgent true" in when and "beforeOptions true" in when
    assert "environment name: 'GITOPS_RELEASE', value: 'true'" in when
    assert release.index("when {") < release.index("lock('gitops-release')")


def test_the_outcome_is_on_the_build_and_stale_or_held_is_unstable() -> None:
    """unstable(message) (workflow-basic-steps UnstableStep, function name `unstable`, message required)
    marks the build UNSTABLE; the exit code contract (0 for stale/held) stays as it is."""
    release = stage("Release")
    post = release[release.index("post {") :]
    # The standard library only (it reports even when the release venv failed to install), from the
    # verified tree, never the checkout's (-P: not from the current directory).
    assert 'PYTHONPATH="$WORKSPACE_TMP/release-code" python3.11 -P -m jenkins.outcome release.json' in post
    assert "currentBuild.description = result[1]" in post
    assert "if (result[0] == 'stale' || result[0] == 'held')" in post
    assert "unstable(result[1])" in post
    script = shell_text(next(s for s in SCRIPTS if "-m jenkins promote" in s))
    assert "|| status=$?" in script and 'exit "$status"' in script  # the JSON is read on failure too


def test_pipeline_options() -> None:
    options = re.search(r"options \{(.*?)\n    \}", CODE, flags=re.DOTALL)
    assert options
    assert "buildDiscarder(logRotator(" in options.group(1)
    assert re.search(r"timeout\(time: \d+, unit: 'MINUTES'\)", options.group(1))
    assert "sh 'make test'" in stage("Build")
    assert "--no-cache" not in CODE


def test_only_contract_environment_is_assumed() -> None:
    used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", "\n".join(SCRIPTS)))
    # The shell's, Jenkins' (WORKSPACE_TMP: workflow-durable-task-step ExecutorStepExecution), the
    # bound public key's path, and the verification's own GNUPGHOME.
    bound = {"HOME", "WORKSPACE_TMP", "GITOPS_BOT_PUBLIC_KEY_FILE", "GNUPGHOME"}
    assert used - bound <= CONTRACT_ENV, used - bound - CONTRACT_ENV
    locals_ = {"status", "head", "commit", "digest", "python", "anchor", "line", "code", "site"}
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


def test_the_operator_stage_runs_the_release_stages_verification_step_unchanged() -> None:
    """The operator jobs hold the Release stage's step that chooses the code; this keeps the two one
    text: the same shell with the same binding, right after the same checkout, before any other shell
    step. Jenkins' own ways to share code read it from where a push reaches: `load` evaluates a file of
    the workspace, the branch's checkout (workflow-cps LoadStep.java: "Relative path of the script
    within the current workspace"), and a shared library comes from an SCM. The job-dsl script could
    prepend a third file the boot writes, but then neither file would be a whole pipeline to read."""
    from tests.e2e.pipeline import CODE as RELEASE
    from tests.e2e.pipeline import OPERATE_CODE, stage_steps

    release, _ = stage_steps("Release", RELEASE)
    operate, _ = stage_steps("Operate", OPERATE_CODE)
    verify = release[1]
    assert verify.bound == ("file:gitops-signing-public-key:GITOPS_BOT_PUBLIC_KEY_FILE",)
    assert "git -c gpg.program=gpg verify-commit" in verify.text
    assert [s.kind for s in release[:2]] == [s.kind for s in operate[:2]] == ["checkout", "sh"]
    assert operate[1] == verify
    # The checkout before it is the same function too: the branch, with the read-only key.
    checkout = re.compile(r"^def checkoutReadOnly\(\) \{\n.*?^\}$", flags=re.DOTALL | re.MULTILINE)
    assert checkout.findall(RELEASE) == checkout.findall(OPERATE_CODE) != []
    # Every later step runs the verified code only: its venv, `-P` (never the checkout's modules).
    for step in release[2:] + operate[2:]:
        if step.kind == "sh" and "python" in step.text:
            assert '"$python" -P' in step.text or '"$WORKSPACE_TMP/release-venv/bin/python" -P' in step.text
