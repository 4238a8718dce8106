"""The committed Pulumi.prod.yaml: valid under the stack's own validation, holding no stand-in for an
operator's value (the first run names what is missing), and declaring the production shape when the
program runs as the `prod` stack under the mocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Any

import pulumi
import pytest
import yaml
from pulumi_policy.proxy import unknown_checking_proxy

from infra import policies
from infra.config import CREDENTIAL_KEYS, OBJECT_KEYS, RELEASE_KEYS, SCALAR_KEYS
from infra.gitops import COMMIT_SIGNERS, SIGNER_KEY
from tests.infra.conftest import (
    DELETE,
    OPERATOR_CIDRS,
    OPERATOR_CONFIG,
    PULUMI_ORG,
    ROOT,
    Program,
    apply_overrides,
    committed_config,
    config_error,
    run_program,
)
from tests.infra.test_policies import http_policy_violations, program_resources, stack_violations

KUSTOMIZATION = "kubernetes:kustomize.toolkit.fluxcd.io/v1:Kustomization"
STACK = "prod"
EGRESS = "your egress address is `curl -s https://checkip.amazonaws.com` (add /32)"
RELEASE_FROM = f"{PULUMI_ORG}/gitops-eks/dev"
# What the header asks the operator to set, besides the GitHub token: the release side's keys (Jenkins,
# previews, the pulls token) are the dev stack's.
OPERATOR = {
    "repository": OPERATOR_CONFIG["repository"],
    "github:owner": OPERATOR_CONFIG["github:owner"],
    "cluster.publicAccessCidrs": OPERATOR_CIDRS,
    "releaseFrom": RELEASE_FROM,
}
RELEASE_KEY_VALUES = {
    "jenkins": {"instanceType": "t3.medium"},
    "registry": {"keepImages": 30},
    "preview": {"enabled": False},
    "pullsToken": "github_pat_x",
    "trustAnchor": "0" * 40,
    "requiredApprovals": 1,
}
STACK_REFERENCE = "pulumi:pulumi:StackReference"


def release_side(program: Program) -> Callable[[str, dict], dict]:
    """A StackReference's outputs as the engine gives them: every output the dev program exported, with
    the names of the secret ones (pulumi/stack_reference.py reads `outputs` and `secretOutputNames`)."""

    def outputs(_name: str, _inputs: dict) -> dict:
        return {"outputs": dict(program.outputs), "secretOutputNames": sorted(program.secret_outputs)}

    return outputs


def run_prod(
    dev: Program,
    overrides: Mapping[str, Any] | None = None,
    extra_outputs: Mapping[str, Callable[[str, dict], dict]] | None = None,
    **kwargs: Any,
) -> Program:
    """The program as the `prod` stack, Pulumi.prod.yaml plus what its header asks for, its StackReference
    answered with what the dev program exported."""
    return run_program(
        config=apply_overrides(committed_config(STACK), {**OPERATOR, **(overrides or {})}),
        stack=STACK,
        extra_outputs={**(extra_outputs or {}), STACK_REFERENCE: release_side(dev)},
        **kwargs,
    )


@pytest.fixture(scope="module")
def dev_outputs() -> Program:
    """The dev stack as the operator runs it (Pulumi.dev.yaml), the release side prod references."""
    return run_program()


@pytest.fixture(scope="module")
def prod_program(dev_outputs: Program) -> Program:
    return run_prod(dev_outputs)


def test_the_committed_prod_file_names_every_operator_key_on_the_first_run() -> None:
    message = config_error({}, config=committed_config(STACK), stack=STACK)
    assert message == (
        "gitops-eks:repository, github:owner, gitops-eks:releaseFrom, gitops-eks:cluster.publicAccessCidrs: "
        "missing; set each before the first run: "
        "`pulumi config set gitops-eks:repository <owner>/<name>`; "
        "`pulumi config set github:owner <owner>`; "
        "`pulumi config set gitops-eks:releaseFrom <organization>/gitops-eks/<stack of the first "
        "environment>` (`pulumi stack ls --all` names it; docs/environments.md); "
        "`pulumi config set --path 'gitops-eks:cluster.publicAccessCidrs[0]' <CIDR>`; " + EGRESS
    )


def test_the_header_gives_the_command_for_every_key_the_file_leaves_to_the_operator() -> None:
    header = "\n".join(
        line for line in (ROOT / "Pulumi.prod.yaml").read_text().splitlines() if line.startswith("#")
    )
    for command in (
        "pulumi config set gitops-eks:releaseFrom <organization>/gitops-eks/dev",
        "pulumi config set gitops-eks:repository <owner>/<name>",
        "pulumi config set github:owner <owner>",
        "pulumi config set --path 'gitops-eks:cluster.publicAccessCidrs[0]'",
        "pulumi config set --secret github:token",
        "pulumi config set --secret gitops-eks:commitStatusToken",
    ):
        assert command in header


def test_the_committed_prod_file_holds_only_keys_the_stack_reads_and_no_placeholder() -> None:
    committed = committed_config(STACK)
    known = {f"gitops-eks:{key}" for key in (*SCALAR_KEYS, *OBJECT_KEYS)} | {"aws:region"}
    assert set(committed) <= known
    for name, fields in OBJECT_KEYS.items():
        assert set(committed.get(f"gitops-eks:{name}", {})) <= set(fields)
    # The release side's keys are the dev stack's: prod refuses each (below).
    assert {f"gitops-eks:{key}" for key in RELEASE_KEYS}.isdisjoint(committed)
    # Operator values and credentials are absent, not stood in for.
    assert "github:owner" not in committed and "gitops-eks:repository" not in committed
    assert "gitops-eks:releaseFrom" not in committed
    assert "publicAccessCidrs" not in committed["gitops-eks:cluster"]
    assert set(CREDENTIAL_KEYS).isdisjoint(committed)
    body = [
        line
        for line in (ROOT / "Pulumi.prod.yaml").read_text().splitlines()
        if not line.lstrip().startswith("#")
    ]
    assert "example" not in "\n".join(body)
    assert yaml.safe_load("\n".join(body))["config"] == committed


def test_prod_has_a_nat_gateway_per_zone_in_its_own_address_range(prod_program: Program) -> None:
    vpc = prod_program.one("awsx:ec2:Vpc").inputs
    assert vpc["natGateways"] == {"strategy": "OnePerAz"}
    assert vpc["numberOfAvailabilityZones"] == 3
    assert vpc["cidrBlock"] == "10.1.0.0/16"
    dev = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]["gitops-eks:network"]
    assert "cidrBlock" not in dev, "dev uses the default 10.0.0.0/16, which prod must not overlap"


def test_prod_nodes_and_api_endpoint(prod_program: Program) -> None:
    group = prod_program.one("eks:index:ManagedNodeGroup").inputs
    assert group["scalingConfig"] == {"desiredSize": 3, "minSize": 3, "maxSize": 6}
    assert group["instanceTypes"] == ["m7i.large"]
    eks = prod_program.one("eks:index:Cluster").inputs
    assert eks["version"] == "1.35"
    assert eks["endpointPrivateAccess"] is True
    # CIDR-limited: only the operator's VPN egress reaches the public endpoint.
    assert eks["publicAccessCidrs"] == OPERATOR_CIDRS


def test_prod_declares_no_release_side_only_a_read_key_for_its_flux(prod_program: Program) -> None:
    """The release side (Jenkins, registry, bot key, trust anchor, ruleset) is the dev stack's."""
    declared = prod_program.types()
    for absent in (
        "aws:ec2/instance:Instance",
        "aws:ecr/repository:Repository",
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:dlm/lifecyclePolicy:LifecyclePolicy",
        "github:index/repositoryRuleset:RepositoryRuleset",
        "gitops:infra:JenkinsServer",
        "gitops:infra:Registry",
        "gitops:infra:TrustAnchor",
        "gitops:infra:OpenPgpKey",
    ):
        assert absent not in declared, absent
    assert not [r for r in prod_program.resources if "signing" in r.name or "trust-anchor" in r.name]
    (key,) = prod_program.of_type("github:index/repositoryDeployKey:RepositoryDeployKey")
    assert key.inputs["readOnly"] is True
    assert key.inputs["title"] == "flux, stack prod (read-only, managed by Pulumi)"
    assert set(prod_program.outputs) == {
        "environment",
        "releaseFrom",
        "kubeconfig",
        "fluxWebhookUrl",
        "appUrlCommand",
    }
    assert prod_program.outputs["releaseFrom"] == RELEASE_FROM


def test_prod_flux_verifies_with_the_release_side_s_key_and_follows_its_overlay(
    dev_outputs: Program, prod_program: Program
) -> None:
    """Flux verifies the branch tip only (source-controller `verify.mode: HEAD`), so every environment on
    the branch must trust the key that signs it: the one the dev stack exported."""
    (reference,) = [r for r in prod_program.reads if r.type == STACK_REFERENCE]
    assert reference.id == RELEASE_FROM  # pulumi/stack_reference.py reads the stack named as the id
    secrets = {
        r.inputs["metadata"]["name"]: r.inputs
        for r in prod_program.of_type("kubernetes:core/v1:Secret")
        if r.inputs["metadata"]["name"] == COMMIT_SIGNERS
    }
    assert secrets[COMMIT_SIGNERS]["stringData"] == {SIGNER_KEY: dev_outputs.outputs["botSigningPublicKey"]}
    paths = {program.one(KUSTOMIZATION).inputs["spec"]["path"] for program in (dev_outputs, prod_program)}
    assert paths == {"./k8s/overlays/dev", "./k8s/overlays/prod"}


def test_prod_declares_no_preview_gate(prod_program: Program) -> None:
    """The repository's one preview Environment belongs to the dev stack."""
    assert not [r for r in prod_program.resources if r.type.startswith("github:index/repositoryEnvironment")]
    assert not prod_program.of_type("github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable")


def test_prod_passes_every_policy(prod_program: Program) -> None:
    """The policy pack (infra/policies.py) against the prod stack: no resource or stack problem."""
    found = {
        r.name: problems
        for r in prod_program.resources
        if (problems := policies.problems_for(r.type, unknown_checking_proxy(r.inputs)))
    }
    assert found == {}
    keys = [
        (r.type, r.name, r.inputs)
        for r in prod_program.of_type("github:index/repositoryDeployKey:RepositoryDeployKey")
    ]
    assert len(keys) == 1 and stack_violations(keys) == []
    assert http_policy_violations(program_resources(prod_program)) == []


def test_prod_polls_every_five_minutes(prod_program: Program) -> None:
    flux = [
        r
        for r in prod_program.resources
        if r.type.startswith("kubernetes:") and r.inputs.get("kind") in {"GitRepository", "Kustomization"}
    ]
    assert {r.inputs["kind"] for r in flux} == {"GitRepository", "Kustomization"}
    assert {r.inputs["spec"]["interval"] for r in flux} == {"5m"}


def test_prod_reports_its_deploys_under_its_own_context(dev_outputs: Program) -> None:
    """The environment defaults to the stack's name, so dev's and prod's Flux post distinct contexts."""
    program = run_prod(dev_outputs, {"commitStatusToken": "t"}, secrets=["commitStatusToken"])
    (provider,) = program.of_type("kubernetes:notification.toolkit.fluxcd.io/v1beta3:Provider")
    assert provider.inputs["spec"]["commitStatusExpr"] == "'gitops-eks/prod'"


# --- wrong input: each refusal names the key and what to do, and nothing is declared ----------------


def prod_config(overrides: Mapping[str, Any]) -> dict[str, Any]:
    return apply_overrides(committed_config(STACK), {**OPERATOR, **overrides})


def test_a_later_environment_without_release_from_is_refused_naming_the_command() -> None:
    message = config_error({}, config=prod_config({"releaseFrom": DELETE}), stack=STACK)
    assert message.startswith(
        "gitops-eks:releaseFrom: missing; prod comes after dev in k8s/environments.yaml, so its releases "
        "come from the stack that releases dev"
    )
    assert "`pulumi config set gitops-eks:releaseFrom <organization>/gitops-eks/" in message
    # A prod stack of an earlier version released itself, alone on its repository: the way out that keeps
    # it so is named too.
    assert "A stack alone on its repository is its first environment instead: " in message
    assert "`pulumi config set gitops-eks:environment dev`" in message


def test_a_lone_stack_named_prod_is_told_both_ways_out() -> None:
    """The default environment is the stack's name: an earlier version's lone `prod` stack (its own
    Jenkins and registry) meets the same refusal on its unchanged config."""
    message = config_error({}, stack=STACK)
    assert message.startswith("gitops-eks:releaseFrom: missing; prod comes after dev")
    assert "`pulumi config set gitops-eks:environment dev`" in message


def test_release_from_in_the_first_environment_s_stack_is_refused() -> None:
    message = config_error({"releaseFrom": RELEASE_FROM})
    assert message == (
        "gitops-eks:releaseFrom: this stack deploys dev, the first environment of k8s/environments.yaml, "
        "and so releases itself; remove it: `pulumi config rm gitops-eks:releaseFrom`"
    )


@pytest.mark.parametrize(
    "value",
    [
        "org/dev",
        "org/gitops-eks/dev/x",
        "org/gitops eks/dev",
        "/gitops-eks/dev",
        "org//dev",
        "org/gitops-eks/dév",
    ],
)
def test_a_release_from_that_is_not_a_stack_name_is_refused(value: str) -> None:
    """Pulumi's forms: <organization>/<project>/<stack>, or a legacy self-managed backend's bare <stack>;
    each part letters, digits, `-`, `_`, `.` ("Stacks", docs/verified-identifiers.md)."""
    message = config_error({}, config=prod_config({"releaseFrom": value}), stack=STACK)
    assert message.startswith(f"gitops-eks:releaseFrom: {value!r} is not a stack name; ")


@pytest.mark.parametrize("value", ["dev", "organization/gitops-eks/dev", f"{PULUMI_ORG}/gitops-eks/dev.eu-1"])
def test_both_stack_name_forms_are_taken(value: str) -> None:
    from infra import config as stack_config
    from tests.infra.conftest import flatten

    pulumi.runtime.set_all_config(flatten(prod_config({"releaseFrom": value})), [])
    assert stack_config.load(STACK).release_from == value


def test_a_release_from_in_another_project_is_refused() -> None:
    message = config_error({}, config=prod_config({"releaseFrom": f"{PULUMI_ORG}/other/dev"}), stack=STACK)
    assert message.startswith(
        "gitops-eks:releaseFrom: 'example-pulumi-org/other/dev' is a stack of the project 'other'; name a "
        "stack of gitops-eks, this project"
    )


@pytest.mark.parametrize("value", [f"{PULUMI_ORG}/gitops-eks/prod", "prod"])
def test_a_release_from_naming_the_stack_itself_is_refused(value: str) -> None:
    message = config_error({}, config=prod_config({"releaseFrom": value}), stack=STACK)
    assert message.startswith(f"gitops-eks:releaseFrom: {value!r} names this stack")


@pytest.mark.parametrize("key", RELEASE_KEYS)
def test_a_release_side_key_in_a_later_environment_s_stack_is_refused(key: str) -> None:
    value = RELEASE_KEY_VALUES[key]
    message = config_error({}, config=prod_config({key: value}), stack=STACK)
    assert message == (
        f"gitops-eks:{key}: set, but this stack takes its releases from {RELEASE_FROM} "
        "(gitops-eks:releaseFrom), whose Jenkins, registry and branch rules serve every environment; "
        f"remove it: `pulumi config rm gitops-eks:{key}`"
    )


def test_every_release_side_key_set_is_named_in_one_refusal() -> None:
    """An earlier version's prod file sets several: one run names them all."""
    message = config_error({}, config=prod_config(RELEASE_KEY_VALUES), stack=STACK)
    keys = ", ".join(f"gitops-eks:{key}" for key in RELEASE_KEYS)
    assert message.startswith(f"{keys}: set, but this stack takes its releases from {RELEASE_FROM} ")
    assert message.endswith("; ".join(f"`pulumi config rm gitops-eks:{key}`" for key in RELEASE_KEYS))


def test_every_release_side_key_has_a_value_in_the_refusal_test() -> None:
    assert set(RELEASE_KEY_VALUES) == set(RELEASE_KEYS)


REFUSE_IN_OWN_PROCESS = """
import json, sys
from infra.stack import ReleaseSideError
from tests.infra.conftest import _build, _start

given = json.load(sys.stdin)
answer = {"outputs": given["outputs"], "secretOutputNames": []}
_mocks, monitor = _start(
    None, config=given["config"], stack=given["stack"],
    extra_outputs={given["type"]: lambda _name, _inputs: answer},
)
try:
    _build()
    error = None
except ReleaseSideError as exc:
    error = str(exc)
print(json.dumps({"error": error, "registered": [urn for urn, _ in monitor.registrations]}))
"""


def release_side_error(outputs: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> str:
    """Run prod's program against a release side that exported `outputs`; the ReleaseSideError's message,
    after asserting that nothing was declared. In a process of its own: the refusal is raised inside an
    `apply`, and the mocked runtime's outstanding registrations would fail the next test's program."""
    given = {
        "config": prod_config(overrides or {}),
        "stack": STACK,
        "type": STACK_REFERENCE,
        "outputs": dict(outputs),
    }
    run = subprocess.run(
        [sys.executable, "-c", REFUSE_IN_OWN_PROCESS],
        input=json.dumps(given),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["registered"] == [], "resources were declared before the release side was checked"
    assert result["error"] is not None, "the program accepted the release side"
    return result["error"]


def test_a_release_side_of_an_earlier_version_is_refused(dev_outputs: Program) -> None:
    """A dev stack not yet updated to this version exports no public key: say to update it first."""
    old = {
        k: v
        for k, v in dev_outputs.outputs.items()
        if k not in {"botSigningPublicKey", "environment", "repository", "branch"}
    }
    assert release_side_error(old) == (
        f"gitops-eks:releaseFrom {RELEASE_FROM}: the stack exports no botSigningPublicKey, environment, "
        "repository, branch, so it is not the release side of this version: run `pulumi up` in it from "
        "this checkout first (or, if it was destroyed, create it again), then `pulumi up` here"
    )


def test_a_release_side_that_is_not_the_first_environment_s_stack_is_refused(dev_outputs: Program) -> None:
    message = release_side_error({**dev_outputs.outputs, "environment": "prod"})
    assert message == (
        f"gitops-eks:releaseFrom {RELEASE_FROM}: that stack deploys 'prod', not 'dev', the first environment "
        "of k8s/environments.yaml, whose stack releases every environment; name the dev stack"
    )


@pytest.mark.parametrize(
    ("key", "overrides"),
    [
        ("branch", {"branch": "release"}),
        ("repository", {"repository": "example-org/other-repo"}),
    ],
)
def test_a_later_environment_on_another_branch_or_repository_than_its_release_side_is_refused(
    dev_outputs: Program, key: str, overrides: dict[str, Any]
) -> None:
    """Only the release side's Jenkins writes prod's overlay, on its own repository and branch: a prod
    Flux that follows another would never see a promotion."""
    message = release_side_error(dev_outputs.outputs, overrides)
    mine, theirs = overrides[key], dev_outputs.outputs[key]
    assert message == (
        f"gitops-eks:{key}: {mine!r}, but the release side {RELEASE_FROM} writes {theirs!r}, so no "
        f"promotion would ever reach this stack's Flux; set it: `pulumi config set gitops-eks:{key} {theirs}`"
    )


def test_a_release_side_in_another_aws_account_is_refused(dev_outputs: Program) -> None:
    """The nodes pull with AmazonEC2ContainerRegistryReadOnly (infra/cluster.py): their own account's
    repositories; another account's needs a repository policy the stack does not declare."""
    url = "210987654321.dkr.ecr.us-east-1.amazonaws.com/dev/hello-gitops"
    message = release_side_error({**dev_outputs.outputs, "ecrRepositoryUrl": url})
    assert message.startswith(
        f"gitops-eks:releaseFrom {RELEASE_FROM}: its registry {url} is in AWS account 210987654321, this "
        "stack in 123456789012;"
    )
