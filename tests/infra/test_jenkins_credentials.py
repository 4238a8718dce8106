"""Jenkins' credentials as the AWS Secrets Manager Credentials Provider serves them, computed from the
stack's secrets in moto with the provider configuration of jenkins/server/casc.yaml.

The provider's logic, from its source at tag 2.222.v376939a_9ffb_b
(jenkinsci/aws-secrets-manager-credentials-provider-plugin): `supplier/CredentialsSupplier.java` lists
the secrets with ListSecrets and the configured filters (AWS applies them; here moto does), names each
credential by the secret's name through the `removePrefix` transformation (`transformer/name/
RemovePrefix.java`: removed if present); `factory/CredentialsFactory.java` makes a credential only for a
known `jenkins:credentials:type` tag, with the username from `jenkins:credentials:username`, and reads
the value at binding time, from SecretString for `string` and `sshUserPrivateKey`, from SecretBinary
for `file`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

import infra.stack
from infra.jenkins.boot import JENKINSFILE, OPERATE_JENKINSFILE, SERVER_DIR
from infra.jenkins.clouds import AGENT_CREDENTIALS_ID
from infra.jenkins.controller import JenkinsServerArgs
from infra.jenkins.credentials import TYPE_TAG, USERNAME_TAG
from tests.infra.conftest import Program, controller_user_data, run_program
from tests.infra.envfile import bash_reads
from tests.infra.secrets_manager import SECRET, create_secret, store_versions

# CredentialsFactory.create: the `switch (type)` cases; any other value (or none) makes no credential.
JOBS = yaml.safe_load((SERVER_DIR / "casc.yaml").read_text())["jobs"]
KNOWN_TYPES = {"string", "usernamePassword", "sshUserPrivateKey", "certificate", "file"}
BINARY_TYPES = {"certificate", "file"}


def provider_config(env: dict[str, str]) -> dict[str, Any]:
    """casc.yaml's awsCredentialsProvider with JCasC's `${VAR}` substitution from the given environment."""
    text = re.sub(r"\$\{([A-Z_]+)\}", lambda m: env.get(m[1], m[0]), (SERVER_DIR / "casc.yaml").read_text())
    return yaml.safe_load(text)["unclassified"]["awsCredentialsProvider"]


def served(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """credential id -> type, username and the value a binding reads, as the provider serves them."""
    config = provider_config(env)
    client = boto3.client("secretsmanager", region_name=config["client"]["region"])
    filters = [{"Key": f["key"], "Values": f["values"]} for f in config["listSecrets"]["filters"]]
    prefix = config["transformations"]["name"]["removePrefix"]["prefix"]
    credentials = {}
    for page in client.get_paginator("list_secrets").paginate(Filters=filters):
        for entry in page["SecretList"]:
            tags = {t["Key"]: t["Value"] for t in entry.get("Tags", [])}
            kind = tags.get(TYPE_TAG, "")
            if kind not in KNOWN_TYPES:
                continue
            value = client.get_secret_value(SecretId=entry["ARN"])
            credentials[entry["Name"].removeprefix(prefix)] = {
                "type": kind,
                "username": tags.get(USERNAME_TAG),
                "value": value.get("SecretBinary", b"").decode()
                if kind in BINARY_TYPES
                else value.get("SecretString"),
            }
    return credentials


def deploy(tmp_path: Path) -> tuple[Program, dict[str, str], dict[str, str]]:
    """The program with its secrets real in moto; returns it, the values stored, and gitops.env as read
    on the instance (the prefix carries this run's own prefix, as the secrets in the shared moto do)."""
    program = run_program(
        extra_outputs={SECRET: lambda _name, inputs: {"arn": create_secret(inputs, tmp_path.name)}}
    )
    stored = store_versions(program)
    document = yaml.safe_load(controller_user_data(program))
    (env_text,) = [f["content"] for f in document["write_files"] if f["path"] == "/etc/jenkins/gitops.env"]
    env = bash_reads(env_text)
    env["JENKINS_CREDENTIALS_PREFIX"] = f"{tmp_path.name}/{env['JENKINS_CREDENTIALS_PREFIX']}"
    return program, stored, env


def test_jenkins_serves_exactly_the_credentials_the_pipeline_and_jcasc_name(
    aws_env: str, tmp_path: Path
) -> None:
    _, stored, env = deploy(tmp_path)
    credentials = served(env)
    assert {cid: (c["type"], c["username"]) for cid, c in credentials.items()} == {
        "gitops-deploy-key": ("sshUserPrivateKey", "git"),
        "gitops-checkout-key": ("sshUserPrivateKey", "git"),
        AGENT_CREDENTIALS_ID: ("sshUserPrivateKey", "jenkins"),
        "github-webhook-secret": ("string", None),
        "gitops-signing-key": ("file", None),
        "gitops-signing-public-key": ("file", None),
        "gitops-pulls-token": ("string", None),
    }
    # Each binding reads the value the stack stored.
    assert credentials["gitops-deploy-key"]["value"] == stored["jenkins-deploy-key"]
    assert credentials["gitops-checkout-key"]["value"] == stored["jenkins-checkout-key"]
    assert credentials[AGENT_CREDENTIALS_ID]["value"] == stored["jenkins-agent-ssh-key"]
    assert credentials["github-webhook-secret"]["value"] == stored["jenkins-webhook-secret"]
    assert credentials["gitops-pulls-token"]["value"] == stored["jenkins-pulls-token"]
    # What JCasC itself names: the webhook secret and the job's checkout key.
    casc = (SERVER_DIR / "casc.yaml").read_text()
    assert set(re.findall(r"credentialsId: ([\w.-]+)", casc)) | set(
        re.findall(r"credentials\('([\w.-]+)'\)", casc)
    ) <= set(credentials)


def test_the_admin_password_another_stacks_and_untyped_secrets_are_not_credentials(
    aws_env: str, tmp_path: Path
) -> None:
    _, _, env = deploy(tmp_path)
    client = boto3.client("secretsmanager", region_name="us-east-1")
    ours = env["JENKINS_CREDENTIALS_PREFIX"]
    other_stack = ours.replace("gitops-eks-dev/", "gitops-eks-prod/")
    assert other_stack != ours
    client.create_secret(
        Name=f"{other_stack}gitops-deploy-key",
        SecretString="another stack's key",
        Tags=[{"Key": TYPE_TAG, "Value": "sshUserPrivateKey"}, {"Key": USERNAME_TAG, "Value": "git"}],
    )
    client.create_secret(Name=f"{ours}untyped", SecretString="not a credential")
    client.create_secret(
        Name=f"{ours}unknown-type", SecretString="x", Tags=[{"Key": TYPE_TAG, "Value": "token"}]
    )
    credentials = served(env)
    assert "untyped" not in credentials and "unknown-type" not in credentials
    assert all(c["value"] != "another stack's key" for c in credentials.values())
    assert not any("admin" in cid for cid in credentials)


def test_the_signing_key_and_its_public_key_are_served_as_secret_files(aws_env: str, tmp_path: Path) -> None:
    """The release agent binds them with `file(credentialsId: 'gitops-signing-key', ...)` and
    `file(credentialsId: 'gitops-signing-public-key', ...)`: the provider's `file` type, whose value is
    the SecretBinary: the stack's OpenPGP key pair (infra/openpgp.py)."""
    program, _, env = deploy(tmp_path)
    (key,) = program.of_type("pulumi-python:dynamic/openpgp:Key")
    credentials = served(env)
    signing, public = credentials["gitops-signing-key"], credentials["gitops-signing-public-key"]
    assert (signing["type"], signing["value"]) == ("file", key.outputs["private_key"])
    assert (public["type"], public["value"]) == ("file", key.outputs["public_key"])
    jenkinsfile = (SERVER_DIR.parent / "Jenkinsfile").read_text()
    assert set(re.findall(r"credentialsId: '([\w.-]+)'", jenkinsfile)) <= set(credentials)


def test_a_signing_key_without_its_public_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def without_public_key(**kwargs: Any) -> JenkinsServerArgs:
        return JenkinsServerArgs(**{**kwargs, "signing_public_key": None})

    monkeypatch.setattr(infra.stack, "JenkinsServerArgs", without_public_key)
    with pytest.raises(Exception, match="signing_private_key and signing_public_key together"):
        run_program()


def test_the_pipeline_that_binds_the_signing_key_does_not_come_from_the_branch_the_deploy_key_writes(
    aws_env: str, tmp_path: Path
) -> None:
    """The ruleset lets deploy keys push without review (infra/branch_protection.py), and the Release stage
    binds `gitops-signing-key`. A `cpsScm` definition would load the Jenkinsfile from the branch head
    (workflow-cps `CpsScmFlowDefinition`), so a push made with the deploy key would replace it. The job's
    definition is instead an inline script read from the file the stack writes (its own copy of
    jenkins/Jenkinsfile); what that script runs from the branch on the release agent is chosen by
    `git verify-commit` first (tests/e2e/test_pipeline.py runs it against an unsigned push)."""
    (script,) = [job["script"] for job in JOBS if "pipelineJob('gitops-release')" in job["script"]]
    assert "cpsScm" not in script and "scriptPath" not in script
    assert f"script(new File('{JENKINSFILE}').getText('UTF-8'))" in script
    program, _, _ = deploy(tmp_path)
    written = {f["path"]: f["content"] for f in yaml.safe_load(controller_user_data(program))["write_files"]}
    assert written[JENKINSFILE] == (SERVER_DIR.parent / "Jenkinsfile").read_text()


def test_the_operator_jobs_that_bind_the_keys_do_not_load_their_pipeline_from_the_branch(
    aws_env: str, tmp_path: Path
) -> None:
    """The same for the operator jobs (rollback, unhold, promote on the release agent, with the deploy
    and signing keys bound): an inline script from the stack's copy of jenkins/operate.Jenkinsfile, whose
    stage runs the Release stage's verification step first (tests/jenkins/test_jenkinsfile.py)."""
    (script,) = [job["script"] for job in JOBS if "operate.Jenkinsfile" in job["script"]]
    assert "cpsScm" not in script and "scriptPath" not in script
    assert f"script(new File('{OPERATE_JENKINSFILE}').getText('UTF-8'))" in script
    assert "sandbox(true)" in script
    program, _, _ = deploy(tmp_path)
    written = {f["path"]: f["content"] for f in yaml.safe_load(controller_user_data(program))["write_files"]}
    assert written[OPERATE_JENKINSFILE] == (SERVER_DIR.parent / "operate.Jenkinsfile").read_text()
