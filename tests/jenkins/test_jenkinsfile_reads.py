"""Everything jenkins/Jenkinsfile reads from Jenkins, each with the line of Jenkins' or a plugin's source
that provides it for this job: a plain `pipelineJob` whose definition is an inline script
(`CpsFlowDefinition`, jenkins/server/casc.yaml), not a multibranch job and not `cpsScm`: the `scm`
global aborts here (workflow-multibranch SCMVar.java lines 74-85: only a branch job or a
CpsScmFlowDefinition has one), so the checkouts name the repository and the
branch from the node properties. The test fails when the Jenkinsfile reads anything not listed here,
and when a listed read is gone (so the list stays true).

Why it matters: in this job type BRANCH_NAME is never set (multibranch only), and under
skipDefaultCheckout() GIT_BRANCH reaches `env` only through Declarative's own checkout
(pipeline-model-definition CheckoutScript.groovy, `withEnv(checkoutMap)`). A condition on either is
silently false forever. So the Jenkinsfile decides nothing: `python -m jenkins plan` decides from git,
and the Jenkinsfile passes the JSON on.

Sources, as fetched (repository, commit):
- jenkinsci/workflow-multibranch-plugin 59f7718ddedeadd734a1683104b06f56f4df1fda
- jenkinsci/git-plugin add6e4dc74e64874e32f53fc90e8b8da3590afe5
- jenkinsci/workflow-cps-plugin e007b7ff217858d076756b06a9cc352a881fda4c
- jenkinsci/pipeline-model-definition-plugin 42c9dc3e440b8e1b52d1859ea60fed20e8b54aa4
- jenkinsci/workflow-durable-task-step-plugin 46cb22ff3686c9e427aab1096bd255489b003140
- jenkinsci/ssh-agent-plugin e275343791a60e25a4c9416e46612bf9c6de5cc8
- jenkinsci/credentials-binding-plugin 0331934a05485a730f36de06f91fe2d080a6672d
- jenkinsci/jenkins 0afb1b7c09bfd8fe5c3a13fec6886ae5ea28c2c4 (EnvironmentVariablesNodeProperty, unchanged
  in its buildEnvVars since 1.286); ff9430ee1dc6e319349a488650d914444fe141f3 (Computer.buildEnvironment)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from tests.conftest import ROOT
from tests.jenkins.test_jenkinsfile import CODE

CASC = yaml.safe_load((ROOT / "jenkins" / "server" / "casc.yaml").read_text())


@dataclass(frozen=True)
class Source:
    repository: str
    path: str
    line: str
    why: str


NODE_ENV = Source(
    "jenkinsci/jenkins",
    "core/src/main/java/hudson/slaves/EnvironmentVariablesNodeProperty.java",
    "75-76",
    "buildEnvVars puts the global node properties' env (casc.yaml jenkins.globalNodeProperties envVars) "
    "into every step's environment",
)
ENV_WRITE = Source(
    "jenkinsci/workflow-cps-plugin",
    "plugin/src/main/java/org/jenkinsci/plugins/workflow/cps/EnvActionImpl.java",
    "138-139",
    "`env.X = v` stores String.valueOf(v) in the build's environment (the `env` global: line 198)",
)
# `env.X` in Groovy inside a node block: EnvActionImpl.getProperty reads the context's EnvVars
# (workflow-cps EnvActionImpl.java lines 105-113), which the node step filled with the computer's
# environment and the global node properties (workflow-durable-task-step ExecutorStepExecution.java
# lines 1108-1109; jenkins core Computer.java lines 1190-1197 at ff9430ee).
NODE_ENV_GROOVY = Source(
    "jenkinsci/workflow-durable-task-step-plugin",
    "src/main/java/org/jenkinsci/plugins/workflow/support/steps/ExecutorStepExecution.java",
    "1108-1109",
    "the node step's EnvVars: computer.buildEnvironment, which applies the global node properties "
    "(casc.yaml envVars); read in Groovy through EnvActionImpl.getProperty (workflow-cps, lines 105-113)",
)
STEP_STDOUT = Source(
    "jenkinsci/workflow-durable-task-step-plugin",
    "src/main/java/org/jenkinsci/plugins/workflow/steps/durable_task/DurableTaskStep.java",
    "690-691",
    "sh with returnStdout: true returns the script's stdout as a String (exit 0), fails otherwise",
)

# kind:name -> where Jenkins provides it. Kinds: scm (the `scm` global: none here), env-write (set by
# this file), env (read in Groovy), when-env (a `when { environment }` read), shell-env (a variable a
# `sh` script or the `environment` directive expands), step (a step's return value), build (currentBuild).
READS: dict[str, Source] = {
    # Inside checkoutReadOnly(), which each stage calls on its agent (a node block).
    "env:GITOPS_BRANCH": NODE_ENV_GROOVY,
    "env:GITOPS_REPOSITORY_URL": NODE_ENV_GROOVY,
    "env-write:GITOPS_RELEASE": ENV_WRITE,
    "when-env:GITOPS_RELEASE": Source(
        "jenkinsci/pipeline-model-definition-plugin",
        "pipeline-model-definition/src/main/resources/org/jenkinsci/plugins/pipeline/modeldefinition/when/"
        "impl/EnvironmentConditionalScript.groovy",
        "41",
        "`when { environment name: N, value: V }` compares V with script.env's property N, the value set "
        "above (@Symbol('environment'): EnvironmentConditional.java line 87)",
    ),
    "shell-env:IMAGE_REPOSITORY": NODE_ENV,
    "shell-env:GITOPS_BRANCH": NODE_ENV,
    "shell-env:GITOPS_TRUST_ANCHOR": NODE_ENV,
    "shell-env:WORKSPACE_TMP": Source(
        "jenkinsci/workflow-durable-task-step-plugin",
        "src/main/java/org/jenkinsci/plugins/workflow/support/steps/ExecutorStepExecution.java",
        "1133-1135",
        "the node step sets WORKSPACE_TMP to the workspace's temporary sibling (WorkspaceList.tempDir, "
        "`<workspace>@tmp`; JENKINS-60634): outside the checkout, so the branch's tree cannot own it",
    ),
    "shell-env:GITOPS_BOT_PUBLIC_KEY_FILE": Source(
        "jenkinsci/credentials-binding-plugin",
        "src/main/java/org/jenkinsci/plugins/credentialsbinding/impl/AbstractOnDiskBinding.java",
        "39",
        "file(credentialsId: 'gitops-signing-public-key', variable) binds the path of a temporary copy of "
        "the bot's public key for the verification step only",
    ),
    "shell-env:GNUPGHOME": Source(
        "(not Jenkins: set by the verification step itself)",
        "-",
        "-",
        "a fresh `mktemp -d` that holds only the bot's public key while git verify-commit runs",
    ),
    "shell-env:HOME": Source(
        "(not Jenkins: the agent's operating system)",
        "-",
        "-",
        "the login environment of user jenkins, whom the SSH launcher logs in as (agent_boot.py)",
    ),
    "step:sh-returnStdout": STEP_STDOUT,
    "build:description": Source(
        "jenkinsci/workflow-cps-plugin",
        "plugin/src/main/java/org/jenkinsci/plugins/workflow/cps/RunWrapperBinder.java",
        "36",
        "the `currentBuild` global (RunWrapper); written, never read",
    ),
}

# What the bound steps put into the environment of the commands inside them (read by our Python and
# by git/ssh, not by this file's text), with their source.
BOUND = {
    "SSH_AUTH_SOCK": Source(
        "jenkinsci/ssh-agent-plugin",
        "src/main/java/com/cloudbees/jenkins/plugins/sshagent/exec/ExecRemoteAgent.java",
        "129-130",
        "sshagent starts an ssh-agent and exports its socket to the steps inside the block only",
    ),
    "GITOPS_SIGNING_KEY_FILE": Source(
        "jenkinsci/credentials-binding-plugin",
        "src/main/java/org/jenkinsci/plugins/credentialsbinding/impl/AbstractOnDiskBinding.java",
        "39",
        "file(credentialsId, variable) (FileBinding @Symbol('file'), line 82) binds the path of a "
        "temporary copy of the secret file, deleted when the block ends",
    ),
    "GITOPS_PULLS_TOKEN": Source(
        "jenkinsci/credentials-binding-plugin",
        "src/main/java/org/jenkinsci/plugins/credentialsbinding/impl/StringBinding.java",
        "57",
        "string(credentialsId, variable) (StringBinding @Symbol('string'), line 60) binds the secret "
        "text itself, for the block only (the plugin masks it in the build log)",
    ),
}

# Variables a plain pipelineJob never has, or has only through Declarative's own checkout, which this
# file skips; and conditions that only a multibranch job can satisfy.
FORBIDDEN_ENV = {"BRANCH_NAME", "GIT_BRANCH", "GIT_COMMIT", "GIT_LOCAL_BRANCH", "TAG_NAME", "BUILD_NUMBER"}
FORBIDDEN_WHEN = ("branch", "changeRequest", "tag", "buildingTag", "changelog", "changeset")


def reads(code: str) -> set[str]:
    """Every read of Jenkins' state in the Jenkinsfile's code, as READS keys."""
    found: set[str] = set()
    for name in re.findall(r"\benv\.([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)", code):
        found.add(f"env-write:{name}")
    for name in re.findall(r"\benv\.([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*=(?!=))", code):
        found.add(f"env:{name}")
    for name in re.findall(r"\bparams\.([A-Za-z_][A-Za-z0-9_]*)", code):
        found.add(f"params:{name}")
    for name in re.findall(r"environment name: '([^']*)'", code):
        found.add(f"when-env:{name}")
    if re.search(r"\bscm\b(?!Git)", code):
        found.add("scm")
    for name in re.findall(r"\bscm\.(\w+)", code):
        found.add(f"scm:{name}")
    for name in re.findall(r"\bcurrentBuild\.(\w+)", code):
        found.add(f"build:{name}")
    if re.search(r"returnStdout:\s*true", code):
        found.add("step:sh-returnStdout")
    if re.search(r"returnStatus:\s*true", code):
        found.add("step:sh-returnStatus")
    # A step's value used as data: `= checkout(...)`, `= unstash(...)`, and the like.
    for step in re.findall(r"=\s*(checkout|unstash|stash|readJSON|readFile|git|input)\b", code):
        found.add(f"step:{step}")
    strings = re.findall(r"'''(.*?)'''", code, flags=re.DOTALL) + re.findall(r"= '([^'\n]*)'", code)
    for name in re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", "\n".join(strings)):
        found.add(f"shell-env:{name}")
    return found


def test_every_read_is_listed_with_its_source() -> None:
    assert reads(CODE) == set(READS)


def test_the_check_notices_a_new_read() -> None:
    assert "env:BRANCH_NAME" in reads(CODE + "\nif (env.BRANCH_NAME == 'main') {}")
    assert "params:X" in reads(CODE + "\necho params.X")
    assert "shell-env:GIT_COMMIT" in reads(CODE + "\nsh '''echo $GIT_COMMIT'''")
    assert "step:checkout" in reads(CODE + "\ndef vars = checkout(scm)")
    assert "build:result" in reads(CODE + "\nif (currentBuild.result) {}")


def test_nothing_only_multibranch_or_the_default_checkout_sets() -> None:
    text = CODE
    for name in FORBIDDEN_ENV:
        assert name not in text, name
    when_blocks = re.findall(r"when \{(.*?)\n            \}", text, flags=re.DOTALL)
    assert when_blocks
    for block in when_blocks:
        for condition in FORBIDDEN_WHEN:
            assert not re.search(rf"\b{condition}\s*[({{']", block), (condition, block)


def test_shell_env_comes_from_casc_yaml_node_properties() -> None:
    (properties,) = CASC["jenkins"]["globalNodeProperties"]
    provided = {entry["key"] for entry in properties["envVars"]["env"]}
    from_node = {
        key.split(":", 1)[1] for key, source in READS.items() if source in (NODE_ENV, NODE_ENV_GROOVY)
    }
    assert from_node <= provided


def test_the_keys_reach_only_the_commands_inside_their_blocks() -> None:
    """SSH_AUTH_SOCK, GITOPS_SIGNING_KEY_FILE and GITOPS_PULLS_TOKEN are never expanded by the
    Jenkinsfile itself: only promote (our Python, and git/ssh under it) reads them, inside the blocks
    that bind them."""
    for name in BOUND:
        assert name not in re.sub(r"variable: '[^']*'", "", CODE)
    assert "variable: 'GITOPS_SIGNING_KEY_FILE'" in CODE
    assert "variable: 'GITOPS_PULLS_TOKEN'" in CODE


# --- jenkins/operate.Jenkinsfile (the operator jobs, plain pipelineJobs with an inline script too) --
# Sources, as fetched: jenkinsci/workflow-support-plugin 3ea02551ef074ab9b4df23d5b766811249292543,
# jenkinsci/jenkins ff9430ee1dc6e319349a488650d914444fe141f3.
OPERATE_TEXT = (ROOT / "jenkins" / "operate.Jenkinsfile").read_text()
OPERATE_CODE = "\n".join(line for line in OPERATE_TEXT.splitlines() if not line.strip().startswith("//"))
CORE = "ff9430ee1dc6e319349a488650d914444fe141f3"
BUILD_CAUSES = Source(
    "jenkinsci/workflow-support-plugin",
    "src/main/java/org/jenkinsci/plugins/workflow/support/steps/build/RunWrapper.java",
    "164-176",
    "getBuildCauses(String className) is @Whitelisted (callable from the sandbox) and returns a JSONArray "
    "of the build's causes of that class, each as Jenkins exports it; for hudson.model.Cause$UserIdCause "
    f"that includes userId (jenkinsci/jenkins {CORE} core/src/main/java/hudson/model/Cause.java 469-471, "
    "@Exported getUserId(), null for an anonymous start). The build-user-vars plugin is not used",
)
# The checkout and the verification step are the Release stage's (their reads are READS' entries).
SHARED = (
    "env:GITOPS_BRANCH",
    "env:GITOPS_REPOSITORY_URL",
    "shell-env:GITOPS_BRANCH",
    "shell-env:GITOPS_TRUST_ANCHOR",
    "shell-env:WORKSPACE_TMP",
    "shell-env:GITOPS_BOT_PUBLIC_KEY_FILE",
    "shell-env:GNUPGHOME",
    "shell-env:HOME",
    "step:sh-returnStdout",
    "build:description",
)
OPERATE_READS: dict[str, Source] = {
    **{key: READS[key] for key in SHARED},
    "build:getBuildCauses": BUILD_CAUSES,
    "env-write:GITOPS_STARTED_BY": ENV_WRITE,
}
PARAMETER_ENV = Source(
    "jenkinsci/jenkins",
    "core/src/main/java/hudson/model/StringParameterValue.java",
    "61-62",
    "a string parameter's buildEnvironment puts NAME=value into the build's environment (for every "
    "parameter: ParametersAction.buildEnvironment, line 141, called from Run.getEnvironment line 2417)",
)
# What `python -m jenkins.operate` (run by the job's one bound step) reads from the build's environment.
OPERATE_ENV: dict[str, Source] = {
    "JOB_BASE_NAME": Source(
        "jenkinsci/jenkins",
        "core/src/main/java/hudson/model/Job.java",
        "403",
        "Job.getCharacteristicEnvVars puts JOB_BASE_NAME = the job's name (gitops-rollback, ...) into "
        "every build's environment (Run.getCharacteristicEnvVars, Run.java 2409 and 2429)",
    ),
    "COMMIT": PARAMETER_ENV,
    "REASON": PARAMETER_ENV,
    "DIGEST": PARAMETER_ENV,
    "TO": PARAMETER_ENV,
    "ENVIRONMENT": PARAMETER_ENV,
    "DRY_RUN": Source(
        "jenkinsci/jenkins",
        "core/src/main/java/hudson/model/BooleanParameterValue.java",
        "59-60",
        "a boolean parameter's buildEnvironment puts NAME=Boolean.toString(value): `true` or `false`",
    ),
    "GITOPS_STARTED_BY": ENV_WRITE,
    "IMAGE_REPOSITORY": NODE_ENV,
    "GITOPS_BRANCH": NODE_ENV,
    "GITOPS_ENVIRONMENT": NODE_ENV,
}


def test_the_operator_jobs_reads_are_listed_with_their_sources() -> None:
    assert reads(OPERATE_CODE) == set(OPERATE_READS)
    assert "env-write:GITOPS_STARTED_BY" in reads(OPERATE_CODE)
    assert "currentBuild.getBuildCauses('hudson.model.Cause$UserIdCause')" in OPERATE_CODE


def test_the_operator_command_reads_only_the_listed_variables() -> None:
    """Every environment variable jenkins/operate.py reads by name is in OPERATE_ENV, and back
    (GITOPS_BRANCH and GITOPS_ENVIRONMENT through the CLI it runs: --branch's and --environment's
    defaults)."""
    source = (ROOT / "jenkins" / "operate.py").read_text()
    found = set(re.findall(r"""env\.get\(\s*["']([A-Z_]+)["']""", source))
    cli = (ROOT / "jenkins" / "cli.py").read_text()
    assert 'os.environ.get("GITOPS_BRANCH"' in cli and 'os.environ["GITOPS_ENVIRONMENT"]' in cli
    assert found | {"GITOPS_BRANCH", "GITOPS_ENVIRONMENT"} == set(OPERATE_ENV)
    for name in FORBIDDEN_ENV:
        assert name not in OPERATE_CODE, name


def test_the_operator_job_binds_the_release_keys_only_around_its_command() -> None:
    """The operator jobs sign over the same history the release does, so they bind what promote binds
    (the signing key, the pulls token the history check asks GitHub with, the deploy key), and never
    expand them in the file itself."""
    for name in BOUND:
        assert name not in re.sub(r"variable: '[^']*'", "", OPERATE_CODE)
    assert "variable: 'GITOPS_SIGNING_KEY_FILE'" in OPERATE_CODE
    assert "string(credentialsId: 'gitops-pulls-token', variable: 'GITOPS_PULLS_TOKEN')" in OPERATE_CODE
