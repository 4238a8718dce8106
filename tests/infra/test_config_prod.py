"""The committed Pulumi.prod.yaml: valid under the stack's own validation, holding no stand-in for an
operator's value (the first run names what is missing), and declaring the production shape when the
program runs as the `prod` stack under the mocks."""

from __future__ import annotations

import json

import pytest
import yaml
from pulumi_policy.proxy import unknown_checking_proxy

from infra import policies
from infra.config import AGENTS_FIELDS, CREDENTIAL_KEYS, OBJECT_KEYS, SCALAR_KEYS
from tests.infra.conftest import (
    OPERATOR_CIDRS,
    OPERATOR_CONFIG,
    ROOT,
    Program,
    apply_overrides,
    committed_config,
    config_error,
    run_program,
)
from tests.infra.test_policies import http_policy_violations, program_resources, stack_violations

STACK = "prod"
EGRESS = "your egress address is `curl -s https://checkip.amazonaws.com` (add /32)"
# What the header asks the operator to set, besides the GitHub token: previews are the dev stack's.
OPERATOR = {key: value for key, value in OPERATOR_CONFIG.items() if not key.startswith("preview.")}
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
HOSTNAME = "jenkins.example.com"
HTTPS = {"jenkins.certificateArn": CERTIFICATE, "jenkins.hostname": HOSTNAME}


@pytest.fixture(scope="module")
def prod_program() -> Program:
    """The program run as the `prod` stack with Pulumi.prod.yaml and what its header asks for."""
    return run_program(config=apply_overrides(committed_config(STACK), {**OPERATOR, **HTTPS}), stack=STACK)


def test_the_committed_prod_file_names_every_operator_key_on_the_first_run() -> None:
    message = config_error({}, config=committed_config(STACK), stack=STACK)
    assert message == (
        "gitops-eks:repository, github:owner, gitops-eks:cluster.publicAccessCidrs, "
        "gitops-eks:jenkins.allowedCidrs, gitops-eks:pullsToken: missing; set each before the first run: "
        "`pulumi config set gitops-eks:repository <owner>/<name>`; "
        "`pulumi config set github:owner <owner>`; "
        "`pulumi config set --path 'gitops-eks:cluster.publicAccessCidrs[0]' <CIDR>`; "
        "`pulumi config set --path 'gitops-eks:jenkins.allowedCidrs[0]' <CIDR>`; "
        "`pulumi config set --secret gitops-eks:pullsToken` (a fine-grained token for this repository with "
        "only Pull requests: Read-only; the release checks with it that what it signs was reviewed); "
        + EGRESS
    )


def test_the_header_gives_the_command_for_every_key_the_file_leaves_to_the_operator() -> None:
    header = "\n".join(
        line for line in (ROOT / "Pulumi.prod.yaml").read_text().splitlines() if line.startswith("#")
    )
    for command in (
        "pulumi config set gitops-eks:repository <owner>/<name>",
        "pulumi config set github:owner <owner>",
        "pulumi config set --path 'gitops-eks:cluster.publicAccessCidrs[0]'",
        "pulumi config set --path 'gitops-eks:jenkins.allowedCidrs[0]'",
        "pulumi config set --path 'gitops-eks:jenkins.hostname'",
        "pulumi config set --path 'gitops-eks:jenkins.certificateArn'",
        "pulumi config set --secret github:token",
        "pulumi config set --secret gitops-eks:pullsToken",
        "pulumi config set --secret gitops-eks:commitStatusToken",
    ):
        assert command in header


def test_the_committed_prod_file_holds_only_keys_the_stack_reads_and_no_placeholder() -> None:
    committed = committed_config(STACK)
    known = {f"gitops-eks:{key}" for key in (*SCALAR_KEYS, *OBJECT_KEYS)} | {"aws:region"}
    assert set(committed) <= known
    for name, fields in OBJECT_KEYS.items():
        assert set(committed.get(f"gitops-eks:{name}", {})) <= set(fields)
    assert set(committed["gitops-eks:jenkins"]["agents"]) <= set(AGENTS_FIELDS)
    # Operator values and credentials are absent, not stood in for.
    assert "github:owner" not in committed and "gitops-eks:repository" not in committed
    assert "publicAccessCidrs" not in committed["gitops-eks:cluster"]
    assert {"allowedCidrs", "certificateArn", "hostname"}.isdisjoint(committed["gitops-eks:jenkins"])
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


def test_prod_jenkins_agents_and_https(prod_program: Program) -> None:
    (instance,) = prod_program.of_type("aws:ec2/instance:Instance")
    assert instance.inputs["instanceType"] == "m7i.large"
    (volume,) = prod_program.of_type("aws:ebs/volume:Volume")
    assert volume.inputs["size"] == 100
    # The build agents' pool (infra/jenkins/agents.py names its parts after the component).
    assert prod_program.one("aws:autoscaling/group:Group", "jenkins-agents-agents").inputs["maxSize"] == 2
    template = prod_program.one("aws:ec2/launchTemplate:LaunchTemplate", "jenkins-agents-agent")
    assert template.inputs["instanceType"] == "t3.large"
    listeners = {r.inputs["port"]: r.inputs for r in prod_program.of_type("aws:lb/listener:Listener")}
    assert listeners[443]["certificateArn"] == CERTIFICATE


def test_prod_resources_are_its_own_not_dev_s(prod_program: Program) -> None:
    """One set per stack (docs/environments.md): the registry and the snapshot policy carry the stack."""
    assert prod_program.one("aws:ecr/repository:Repository").inputs["name"] == "prod/hello-gitops"
    policy = prod_program.one("aws:dlm/lifecyclePolicy:LifecyclePolicy").inputs["policyDetails"]
    assert policy["targetTags"] == {"gitops-eks:jenkins-home-backup": "gitops-eks-prod"}
    # JENKINS_HOME snapshot retention is the same in every stack (infra/jenkins/backup.py), not a key.
    assert policy["schedules"][0]["retainRule"] == {"count": 14}


def test_prod_keeps_a_hundred_images_and_polls_every_five_minutes(prod_program: Program) -> None:
    policy = prod_program.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"]
    keep = [
        r["selection"]["countNumber"]
        for r in json.loads(policy)["rules"]
        if r["selection"].get("tagPatternList") == ["*"]
    ]
    assert keep == [100]
    flux = [
        r
        for r in prod_program.resources
        if r.type.startswith("kubernetes:") and r.inputs.get("kind") in {"GitRepository", "Kustomization"}
    ]
    assert {r.inputs["kind"] for r in flux} == {"GitRepository", "Kustomization"}
    assert {r.inputs["spec"]["interval"] for r in flux} == {"5m"}


def test_prod_declares_no_preview_gate(prod_program: Program) -> None:
    """The repository's one preview Environment belongs to the dev stack."""
    assert not [r for r in prod_program.resources if r.type.startswith("github:index/repositoryEnvironment")]
    assert not prod_program.of_type("github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable")


def test_prod_passes_every_policy_and_the_http_advice_only_without_https(prod_program: Program) -> None:
    """The policy pack (infra/policies.py) against the prod stack: no resource or stack problem, and its
    advisory plain-HTTP policy, silent with the HTTPS the header asks for, flags a prod run without it."""
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
    assert len(keys) == 3 and stack_violations(keys) == []
    assert http_policy_violations(program_resources(prod_program)) == []
    plain = run_program(config=apply_overrides(committed_config(STACK), OPERATOR), stack=STACK)
    assert len(http_policy_violations(program_resources(plain))) == 1


def test_prod_reports_its_deploys_under_its_own_context() -> None:
    """The environment defaults to the stack's name, so dev's and prod's Flux post distinct contexts."""
    program = run_program(
        config=apply_overrides(committed_config(STACK), {**OPERATOR, **HTTPS, "commitStatusToken": "t"}),
        secrets=["commitStatusToken"],
        stack=STACK,
    )
    (provider,) = program.of_type("kubernetes:notification.toolkit.fluxcd.io/v1beta3:Provider")
    assert provider.inputs["spec"]["commitStatusExpr"] == "'gitops-eks/prod'"
