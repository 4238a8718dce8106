"""The trust anchor: the branch's head at creation, recorded once by the stack and handed to the release
bot as GITOPS_TRUST_ANCHOR (through gitops.env and JCasC's global environment)."""

from __future__ import annotations

import pytest
import yaml

from tests.infra.conftest import (
    GITHUB_BRANCH_HEAD,
    GITHUB_HOST_KEYS,
    InvokeFailure,
    Program,
    config_error,
    controller_user_data,
    run_program,
)
from tests.infra.envfile import bash_reads

PARAMETER = "aws:ssm/parameter:Parameter"


def _written(program: Program) -> dict[str, str]:
    document = yaml.safe_load(controller_user_data(program))
    return {f["path"]: f["content"] for f in document["write_files"]}


def test_the_branch_head_is_read_from_github_and_recorded_once(dev_program: Program) -> None:
    (invoke,) = dev_program.invokes_of("github:index/getBranch:getBranch")
    assert invoke.args == {"repository": "hello-gitops", "branch": "main"}
    parameter = dev_program.one(PARAMETER, "trust-anchor-commit")
    assert parameter.inputs["type"] == "String"
    assert parameter.inputs["insecureValue"] == GITHUB_BRANCH_HEAD
    assert "value" not in parameter.inputs  # a commit id, not a secret: kept out of the secret-marked field
    # Pulumi's ignoreChanges (pulumi/pulumi pkg/resource/deploy/step_generator.go, processIgnoreChanges):
    # on an update the engine sends the state's old value; only a create, or `--replace` of this resource
    # ("if the resource has been targeted for replacement, ignore its old state"), takes the program's.
    assert parameter.options["ignoreChanges"] == ["insecureValue"]
    assert dev_program.outputs["trustAnchor"] == GITHUB_BRANCH_HEAD
    assert dev_program.outputs["trustAnchorUrn"] == parameter.urn


def test_the_controller_gives_it_to_every_build_as_gitops_trust_anchor(dev_program: Program) -> None:
    written = _written(dev_program)
    assert bash_reads(written["/etc/jenkins/gitops.env"])["GITOPS_TRUST_ANCHOR"] == GITHUB_BRANCH_HEAD
    casc = yaml.safe_load(written["/etc/jenkins/casc.yaml"])
    (properties,) = casc["jenkins"]["globalNodeProperties"]
    env = {e["key"]: e["value"] for e in properties["envVars"]["env"]}
    assert env["GITOPS_TRUST_ANCHOR"] == "${GITOPS_TRUST_ANCHOR}"


def test_the_anchor_is_the_value_in_the_state_not_the_head_github_answers_later() -> None:
    """What a later `pulumi up` renders is the parameter's value (the state's, under ignoreChanges), never
    the head GitHub answers then: a push around review after creation cannot become the anchor."""
    recorded = "a" * 40
    program = run_program(
        invoke_results={
            "github:index/getBranch:getBranch": lambda args: {
                "id": "hello-gitops:main", "repository": "hello-gitops", "branch": "main",
                "ref": "refs/heads/main", "sha": "b" * 40, "etag": "",
            },
        },
        extra_outputs={PARAMETER: lambda _name, _inputs: {"insecureValue": recorded}},
    )  # fmt: skip
    environment = bash_reads(_written(program)["/etc/jenkins/gitops.env"])
    assert environment["GITOPS_TRUST_ANCHOR"] == recorded


@pytest.mark.parametrize("sha", ["", None])
def test_a_branch_github_does_not_have_is_refused_before_anything_is_declared(sha: str | None) -> None:
    # The data source answers a 404 with no error and no sha (data_source_github_branch.go: d.SetId("")).
    message = config_error(
        {},
        reads=True,
        invoke_results={
            "github:index/getBranch:getBranch": lambda args: {"id": "", "sha": sha},
        },
    )
    assert message.startswith("gitops-eks:branch: hello-gitops has no branch 'main'")
    assert "push the repository's first commit" in message


def test_a_refused_read_names_the_token() -> None:
    def refuse(args: dict) -> dict:
        raise InvokeFailure(
            "GET https://api.github.com/repos/example-org/hello-gitops/git/ref/heads/main: 401"
        )

    message = config_error({}, reads=True, invoke_results={"github:index/getBranch:getBranch": refuse})
    assert message.startswith("gitops-eks:branch: GitHub refused reading branch 'main' of hello-gitops")
    assert "github:token" in message


def test_a_pinned_anchor_is_the_commit_the_operator_named_not_the_live_head() -> None:
    """Re-anchoring with `gitops-eks:trustAnchor`: the commit the operator checked is recorded as given
    (no ignoreChanges, so an update writes it), whatever head GitHub answers while `pulumi up` runs: a
    push between the check and the update cannot become the anchor."""
    checked = "c" * 40
    program = run_program({"trustAnchor": checked})
    parameter = program.one(PARAMETER, "trust-anchor-commit")
    assert parameter.inputs["insecureValue"] == checked != GITHUB_BRANCH_HEAD
    assert parameter.options["ignoreChanges"] == []
    assert program.outputs["trustAnchor"] == checked
    assert bash_reads(_written(program)["/etc/jenkins/gitops.env"])["GITOPS_TRUST_ANCHOR"] == checked


@pytest.mark.parametrize("value", ["HEAD", "c" * 39, "C" * 40, "c" * 40 + "\n", "main"])
def test_a_trust_anchor_that_is_not_a_full_sha_is_refused_before_anything_is_declared(value: str) -> None:
    message = config_error({"trustAnchor": value}, reads=True)
    assert message.startswith(f"gitops-eks:trustAnchor: {value!r} is not a full commit SHA")
    assert "`pulumi config set gitops-eks:trustAnchor <sha>`" in message


SWITCH = "pulumi-python:dynamic/gitops:SigningSwitch"


def test_the_stack_switches_signing_on_at_the_anchor_with_the_write_key_and_the_bots_key(
    dev_program: Program,
) -> None:
    """infra/signing_switch.py pushes the signed empty commit on the anchor (its test runs it against a
    real sshd): the write deploy key is registered first, the keys are secrets, GitHub's host keys from
    its API are the only ones trusted."""
    switch = dev_program.one(SWITCH, "trust-anchor-switch")
    anchor = dev_program.one(PARAMETER, "trust-anchor-commit")
    assert switch.inputs["url"] == "git@github.com:example-org/hello-gitops.git"
    assert switch.inputs["branch"] == "main"
    assert switch.inputs["anchor"] == GITHUB_BRANCH_HEAD
    assert switch.property_dependencies["anchor"] == (anchor.urn,)
    deploy_keys = {
        r.name: r for r in dev_program.of_type("github:index/repositoryDeployKey:RepositoryDeployKey")
    }
    write_key = deploy_keys["deploy-keys-jenkins"]
    assert write_key.inputs["readOnly"] is False
    assert write_key.urn in switch.dependencies
    (tls_key,) = [
        r for r in dev_program.of_type("tls:index/privateKey:PrivateKey") if r.name == "deploy-keys-jenkins"
    ]
    assert switch.inputs["deploy_key"] == tls_key.outputs["privateKeyOpenssh"]
    signing = dev_program.one("pulumi-python:dynamic/openpgp:Key")
    assert switch.inputs["signing_key"] == signing.outputs["private_key"]
    assert {"deploy_key", "signing_key"} <= switch.secret_inputs
    assert dev_program.invokes_of("github:index/getSshKeys:getSshKeys")
    assert switch.inputs["known_hosts"].splitlines() == [f"github.com {key}" for key in GITHUB_HOST_KEYS]
    # Flux's GitRepository is created after the push, so its first reconcile finds the signed tip.
    source = dev_program.one("kubernetes:source.toolkit.fluxcd.io/v1:GitRepository")
    assert switch.urn in source.dependencies
    assert dev_program.outputs["signingSwitch"] == "pushed"
    assert dev_program.outputs["signingSwitchCommit"] == switch.outputs["commit"]


def test_a_failed_switch_warns_with_its_reason_and_the_stack_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reason = "fetch main from git@github.com:example-org/hello-gitops.git: ssh: connect to host port 22"
    program = run_program(
        extra_outputs={SWITCH: lambda name, inputs: {"outcome": "failed", "commit": "", "reason": reason}}
    )
    assert program.outputs["signingSwitch"] == "failed"
    assert program.one(
        "kubernetes:source.toolkit.fluxcd.io/v1:GitRepository"
    )  # Flux is declared all the same
    (warning,) = [r for r in caplog.records if "signing was not switched on" in r.getMessage()]
    assert reason in warning.getMessage() and "the next `pulumi up` tries again" in warning.getMessage()


def test_a_switch_that_pushed_warns_nothing(caplog: pytest.LogCaptureFixture, dev_program: Program) -> None:
    assert "signing was not switched on" not in caplog.text
