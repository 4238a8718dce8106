"""Policy validations, called directly (a PolicyPack would block waiting for the engine): each one
accepts compliant props and reports non-compliant ones; the real program passes all of them."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from infra import policies
from tests.infra.conftest import DELETE, ROOT, Program, run_program

OPTS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def violations(policy: str, resource_type: str, props: dict[str, Any]) -> list[str]:
    """Run one policy of the pack on one resource, as the analyzer would."""
    (chosen,) = [p for p in policies.resource_policies() if p.name == policy]
    reported: list[str] = []
    urn = f"urn:pulumi:dev::gitops-eks::{resource_type}::r"
    # As the analyzer does: props arrive wrapped in proxies that raise on values unknown in preview.
    args = ResourceValidationArgs(resource_type, unknown_checking_proxy(props), urn, "r", OPTS, None)
    chosen.validate(args, lambda message, urn=None: reported.append(message))
    return reported


def stack_violations(resources: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    reported: list[str] = []
    args = StackValidationArgs(
        [
            PolicyResource(t, props, f"urn:{name}", name, OPTS, None, None, [], {})
            for t, name, props in resources
        ]
    )
    policies.deploy_keys_separate(args, lambda message, urn=None: reported.append(message))
    return reported


ECR = "aws:ecr/repository:Repository"
EKS = "aws:eks/cluster:Cluster"
INSTANCE = "aws:ec2/instance:Instance"
SG = "aws:ec2/securityGroup:SecurityGroup"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
REPO_ARN = "arn:aws:ecr:us-east-1:123456789012:repository/dev/hello-gitops"
GOOD_EKS = {
    "accessConfig": {"authenticationMode": "API"},
    "enabledClusterLogTypes": ["api", "audit", "authenticator"],
    "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": "arn:aws:kms:us-east-1:1:key/k"}},
    "vpcConfig": {
        "endpointPrivateAccess": True,
        "endpointPublicAccess": True,
        "publicAccessCidrs": ["203.0.113.0/24"],
    },
}
GOOD_INSTANCE = {
    "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
    "rootBlockDevice": {"encrypted": True},
    "ebsBlockDevices": [{"encrypted": True}],
}


def iam(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"policy": {"Version": "2012-10-17", "Statement": list(statements)}}


def allow(action: Any, resource: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


# (policy, resource type, props, expected fragment or None when compliant)
CASES = {
    "ecr ok": (
        "ecr-immutable-and-scanned",
        ECR,
        {"imageTagMutability": "IMMUTABLE", "imageScanningConfiguration": {"scanOnPush": True}},
        None,
    ),
    "ecr mutable": (
        "ecr-immutable-and-scanned",
        ECR,
        {"imageTagMutability": "MUTABLE", "imageScanningConfiguration": {"scanOnPush": True}},
        "IMMUTABLE",
    ),
    "ecr deployed marks movable": (
        "ecr-immutable-and-scanned",
        ECR,
        {
            "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [{"filter": "deployed*", "filterType": "WILDCARD"}],
            "imageScanningConfiguration": {"scanOnPush": True},
        },
        None,
    ),
    "ecr commit tags movable": (
        "ecr-immutable-and-scanned",
        ECR,
        {
            "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [{"filter": "*", "filterType": "WILDCARD"}],
            "imageScanningConfiguration": {"scanOnPush": True},
        },
        "IMMUTABLE",
    ),
    "ecr no scan": (
        "ecr-immutable-and-scanned",
        ECR,
        {"imageTagMutability": "IMMUTABLE"},
        "scan images on push",
    ),
    "kms rotates": ("kms-key-rotation", "aws:kms/key:Key", {"enableKeyRotation": True}, None),
    "kms static": ("kms-key-rotation", "aws:kms/key:Key", {}, "rotation"),
    "kms asymmetric": ("kms-key-rotation", "aws:kms/key:Key", {"customerMasterKeySpec": "RSA_2048"}, None),
    "eks ok": ("eks-cluster-hardened", EKS, GOOD_EKS, None),
    "eks configmap auth": (
        "eks-cluster-hardened",
        EKS,
        {**GOOD_EKS, "accessConfig": {"authenticationMode": "CONFIG_MAP"}},
        "access entries",
    ),
    "eks no audit log": (
        "eks-cluster-hardened",
        EKS,
        {**GOOD_EKS, "enabledClusterLogTypes": ["api"]},
        "logs missing: audit, authenticator",
    ),
    "eks no kms": ("eks-cluster-hardened", EKS, {**GOOD_EKS, "encryptionConfig": None}, "envelope-encrypted"),
    "eks no private endpoint": (
        "eks-cluster-hardened",
        EKS,
        {**GOOD_EKS, "vpcConfig": {"endpointPublicAccess": False}},
        "private API endpoint",
    ),
    "eks public by default": (
        "eks-cluster-hardened",
        EKS,
        {**GOOD_EKS, "vpcConfig": {"endpointPrivateAccess": True}},
        "never 0.0.0.0/0",
    ),
    "eks public to world": (
        "eks-cluster-hardened",
        EKS,
        {**GOOD_EKS, "vpcConfig": {"endpointPrivateAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]}},
        "never 0.0.0.0/0",
    ),
    "eks private only": (
        "eks-cluster-hardened",
        EKS,
        {**GOOD_EKS, "vpcConfig": {"endpointPrivateAccess": True, "endpointPublicAccess": False}},
        None,
    ),
    "eks component": (
        "eks-cluster-hardened",
        "eks:index:Cluster",
        {
            "authenticationMode": "API",
            "enabledClusterLogTypes": ["api", "audit", "authenticator"],
            "encryptionConfigKeyArn": "arn:k",
            "endpointPrivateAccess": True,
            "endpointPublicAccess": False,
        },
        None,
    ),
    "eks component open": (
        "eks-cluster-hardened",
        "eks:index:Cluster",
        {
            "authenticationMode": "API",
            "enabledClusterLogTypes": ["api", "audit", "authenticator"],
            "encryptionConfigKeyArn": "arn:k",
            "endpointPrivateAccess": True,
        },
        "never 0.0.0.0/0",
    ),
    "imds required": ("imdsv2-required", INSTANCE, GOOD_INSTANCE, None),
    "imds optional": (
        "imdsv2-required",
        INSTANCE,
        {**GOOD_INSTANCE, "metadataOptions": {"httpTokens": "optional"}},
        "IMDSv2",
    ),
    "imds two hops": (
        "imdsv2-required",
        INSTANCE,
        {**GOOD_INSTANCE, "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2}},
        "hop limit must be 1",
    ),
    "imds launch template unset": ("imdsv2-required", "aws:ec2/launchTemplate:LaunchTemplate", {}, "IMDSv2"),
    "imds node group off": (
        "imdsv2-required",
        "eks:index:ManagedNodeGroup",
        {"enableIMDSv2": False},
        "IMDSv2",
    ),
    "imds node group on": ("imdsv2-required", "eks:index:ManagedNodeGroup", {"enableIMDSv2": True}, None),
    "volumes encrypted": ("volumes-encrypted", INSTANCE, GOOD_INSTANCE, None),
    "root unencrypted": (
        "volumes-encrypted",
        INSTANCE,
        {**GOOD_INSTANCE, "rootBlockDevice": {}},
        "encrypted",
    ),
    "data unencrypted": (
        "volumes-encrypted",
        INSTANCE,
        {**GOOD_INSTANCE, "ebsBlockDevices": [{"encrypted": False}]},
        "encrypted",
    ),
    "ebs unencrypted": (
        "volumes-encrypted",
        "aws:ebs/volume:Volume",
        {"size": 30},
        "EBS volumes must be encrypted",
    ),
    "ebs encrypted": ("volumes-encrypted", "aws:ebs/volume:Volume", {"encrypted": True}, None),
    "sg office https": (
        "no-world-or-ssh-ingress",
        SG,
        {
            "ingress": [
                {"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["203.0.113.0/24"]}
            ],
            "egress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}],
        },
        None,
    ),
    "sg world https": (
        "no-world-or-ssh-ingress",
        SG,
        {"ingress": [{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]}]},
        "open to the world",
    ),
    "sg world v6": (
        "no-world-or-ssh-ingress",
        SG,
        {"ingress": [{"protocol": "tcp", "fromPort": 80, "toPort": 80, "ipv6CidrBlocks": ["::/0"]}]},
        "open to the world",
    ),
    "sg ssh office": (
        "no-world-or-ssh-ingress",
        SG,
        {"ingress": [{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["10.0.0.0/8"]}]},
        "opens SSH",
    ),
    "sg all ports office": (
        "no-world-or-ssh-ingress",
        SG,
        {"ingress": [{"protocol": "tcp", "fromPort": 0, "toPort": 65535, "cidrBlocks": ["10.0.0.0/8"]}]},
        "opens SSH",
    ),
    "sg from another sg": (
        "no-world-or-ssh-ingress",
        SG,
        {"ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "securityGroups": ["sg-alb"]}]},
        None,
    ),
    "rule world ingress": (
        "no-world-or-ssh-ingress",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        {"type": "ingress", "protocol": "tcp", "fromPort": 8080, "toPort": 8080, "cidrBlocks": ["0.0.0.0/0"]},
        "open to the world",
    ),
    "rule world egress": (
        "no-world-or-ssh-ingress",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        {"type": "egress", "protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]},
        None,
    ),
    "vpc rule world": (
        "no-world-or-ssh-ingress",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "cidrIpv4": "0.0.0.0/0"},
        "open to the world",
    ),
    "lb service ranges": (
        "load-balancer-services-restricted",
        "kubernetes:core/v1:Service",
        {"spec": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["192.30.252.0/22"]}},
        None,
    ),
    "lb service open": (
        "load-balancer-services-restricted",
        "kubernetes:core/v1:Service",
        {"spec": {"type": "LoadBalancer"}},
        "loadBalancerSourceRanges",
    ),
    "lb service world": (
        "load-balancer-services-restricted",
        "kubernetes:core/v1:Service",
        {"spec": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["0.0.0.0/0"]}},
        "whole internet",
    ),
    "cluster ip service": (
        "load-balancer-services-restricted",
        "kubernetes:core/v1:Service",
        {"spec": {"type": "ClusterIP"}},
        None,
    ),
    "iam scoped": (
        "iam-least-privilege",
        ROLE_POLICY,
        iam(
            allow(["ecr:PutImage", "ecr:UploadLayerPart"], [REPO_ARN]),
            allow("ecr:GetAuthorizationToken", "*"),
        ),
        None,
    ),
    "iam star": ("iam-least-privilege", ROLE_POLICY, iam(allow("*", "*")), "wildcards"),
    "iam service star": (
        "iam-least-privilege",
        ROLE_POLICY,
        iam(allow("s3:*", ["arn:aws:s3:::b"])),
        "wildcards",
    ),
    "iam push anywhere": (
        "iam-least-privilege",
        ROLE_POLICY,
        iam(allow("ecr:PutImage", "*")),
        "ECR push/delete must be scoped",
    ),
    "iam secrets anywhere": (
        "iam-least-privilege",
        "aws:iam/policy:Policy",
        iam(allow("secretsmanager:GetSecretValue", "*")),
        "reading secrets must be scoped",
    ),
    "iam not action": (
        "iam-least-privilege",
        ROLE_POLICY,
        iam({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}),
        "NotAction",
    ),
    "iam deny star": (
        "iam-least-privilege",
        ROLE_POLICY,
        iam({"Effect": "Deny", "Action": "*", "Resource": "*"}),
        None,
    ),
    "iam json string": (
        "iam-least-privilege",
        ROLE_POLICY,
        {"policy": '{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'},
        "wildcards",
    ),
    "iam unknown in preview": ("iam-least-privilege", ROLE_POLICY, {}, None),
}


@pytest.mark.parametrize(("policy", "resource_type", "props", "expected"), CASES.values(), ids=CASES.keys())
def test_policy_reports_exactly_the_non_compliant_resources(
    policy: str, resource_type: str, props: dict[str, Any], expected: str | None
) -> None:
    reported = violations(policy, resource_type, props)
    if expected is None:
        assert reported == []
    else:
        assert reported and all(message.startswith("r: ") for message in reported)
        assert any(expected in message for message in reported), reported


def test_values_unknown_in_preview_are_not_judged() -> None:
    """pulumi-policy turns UnknownValueError into "can't run during preview", neither pass nor violation."""
    with pytest.raises(UnknownValueError):
        violations("iam-least-privilege", ROLE_POLICY, {"policy": UNKNOWN_STRING_VALUE})


def test_policies_ignore_resource_types_they_do_not_govern() -> None:
    assert violations("ecr-immutable-and-scanned", "aws:s3/bucket:Bucket", {}) == []
    assert violations("iam-least-privilege", ECR, iam(allow("*", "*"))) == []


FLUX_KEY = (
    "github:index/repositoryDeployKey:RepositoryDeployKey",
    "flux",
    {"key": "ssh-ed25519 AAAA1", "readOnly": True},
)
JENKINS_KEY = (
    "github:index/repositoryDeployKey:RepositoryDeployKey",
    "jenkins",
    {"key": "ssh-ed25519 AAAA2", "readOnly": False},
)


def test_deploy_keys_separate_accepts_one_reader_and_one_writer() -> None:
    assert stack_violations([FLUX_KEY, JENKINS_KEY]) == []
    defaulted = (FLUX_KEY[0], "flux", {"key": "ssh-ed25519 AAAA1"})  # the provider's default is read-only
    assert stack_violations([defaulted, JENKINS_KEY]) == []


def test_deploy_keys_separate_refuses_a_shared_key_pair() -> None:
    shared = (JENKINS_KEY[0], "jenkins", {**JENKINS_KEY[2], "key": "ssh-ed25519 AAAA1 \n"})
    assert any("share one key pair" in m for m in stack_violations([FLUX_KEY, shared]))


def test_deploy_keys_separate_refuses_two_writers() -> None:
    writer = (FLUX_KEY[0], "flux", {**FLUX_KEY[2], "readOnly": False})
    assert any("only one deploy key may write" in m for m in stack_violations([writer, JENKINS_KEY]))


# --- the real program against the whole pack -----------------------------------------------------------


def governed(program: Program) -> set[str]:
    return {
        name for r in program.resources for name, (_, types, _) in policies.CHECKS.items() if r.type in types
    }


@pytest.mark.parametrize(
    "overrides",
    [{}, {"cluster": DELETE, "kubeconfig": '{"clusters": [1], "contexts": [1], "users": [1]}'}],
    ids=["dev", "byo-cluster"],
)
def test_the_program_passes_every_policy(overrides: dict[str, Any]) -> None:
    program = run_program(overrides, secrets=["kubeconfig"])  # plain credentials are refused
    found = {
        r.name: problems
        for r in program.resources
        if (problems := policies.problems_for(r.type, unknown_checking_proxy(r.inputs)))
    }
    assert found == {}
    keys = [(r.type, r.name, r.inputs) for r in program.of_type(FLUX_KEY[0])]
    # Flux's, Jenkins' read-only checkout key and its release (write) key: one writer.
    assert len(keys) == 3 and stack_violations(keys) == []


def test_every_resource_policy_governs_something_the_program_declares(dev_program: Program) -> None:
    """Without this, a policy aimed at a type we no longer declare would pass forever, checking nothing."""
    assert governed(dev_program) == set(policies.CHECKS)


def requirement_lines(path: Path) -> set[str]:
    return {
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    }


def test_policy_pack_directory_runs_these_policies() -> None:
    manifest = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    tree = ast.parse((ROOT / "policy" / "__main__.py").read_text())
    calls = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "PolicyPack"
    ]
    assert len(calls) == 1
    kwargs = {k.arg: k.value for k in calls[0].keywords}
    assert ast.unparse(kwargs["policies"]) == "all_policies()"
    # What each names (the *.in); the locks agree on every version (tests/test_locks.py).
    pins = requirement_lines(ROOT / "policy" / "requirements.in")
    assert any(pin.startswith("pulumi-policy==") for pin in pins)
    assert pins <= requirement_lines(ROOT / "requirements.in"), "the pack must pin what the project pins"


def test_policy_names_are_unique() -> None:
    names = [p.name for p in policies.all_policies()]
    assert len(names) == len(set(names)) == len(policies.CHECKS) + 2


# --- advisory: internet-facing listeners on plain HTTP --------------------------------------------------

ALB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
RULE = "aws:lb/listenerRule:ListenerRule"
FORWARD = [{"type": "forward", "targetGroupArn": "arn:tg"}]
DENY = [{"type": "fixed-response", "fixedResponse": {"statusCode": "403"}}]
REDIRECT = [{"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}]


def http_policy_violations(resources: list[PolicyResource]) -> list[tuple[str, str | None]]:
    """Run the `alb-http-forwards` stack policy as the analyzer would; (message, urn) pairs."""
    (chosen,) = [p for p in policies.all_policies() if p.name == "alb-http-forwards"]
    reported: list[tuple[str, str | None]] = []
    chosen.validate(StackValidationArgs(resources), lambda message, urn=None: reported.append((message, urn)))
    return reported


def policy_resource(type_: str, name: str, props: dict[str, Any], **links: PolicyResource) -> PolicyResource:
    """A resource whose `links` props (loadBalancerArn=alb) come from other resources, as in a preview."""
    return PolicyResource(
        type_,
        unknown_checking_proxy(props),
        f"urn:{name}",
        name,
        OPTS,
        None,
        None,
        [],
        {k: [v] for k, v in links.items()},
    )


def alb_with(
    listener_props: dict[str, Any], rule_actions: list | None = None, internal: bool = False
) -> list[PolicyResource]:
    alb = policy_resource(ALB, "alb", {"internal": internal, "loadBalancerType": "application"})
    listener = policy_resource(LISTENER, "listener", listener_props, loadBalancerArn=alb)
    rules = (
        []
        if rule_actions is None
        else [policy_resource(RULE, "rule", {"actions": rule_actions}, listenerArn=listener)]
    )
    return [alb, listener, *rules]


def test_http_policy_is_advisory() -> None:
    (chosen,) = [p for p in policies.all_policies() if p.name == "alb-http-forwards"]
    assert chosen.enforcement_level == EnforcementLevel.ADVISORY


@pytest.mark.parametrize(
    ("resources", "flagged"),
    [
        (alb_with({"protocol": "HTTP", "port": 80, "defaultActions": FORWARD}), True),
        (alb_with({"protocol": "HTTP", "port": 80, "defaultActions": DENY}, FORWARD), True),
        (alb_with({"port": 80, "defaultActions": FORWARD}), True),  # HTTP is the ALB's default protocol
        (alb_with({"protocol": "HTTP", "port": 80, "defaultActions": REDIRECT}), False),
        (alb_with({"protocol": "HTTP", "port": 80, "defaultActions": DENY}, DENY), False),
        (alb_with({"protocol": "HTTPS", "port": 443, "defaultActions": DENY}, FORWARD), False),
        (alb_with({"protocol": "HTTP", "port": 80, "defaultActions": FORWARD}, internal=True), False),
    ],
    ids=["forward", "rule-forwards", "default-protocol", "redirect", "deny-only", "https", "internal"],
)
def test_http_policy_flags_internet_facing_http_that_forwards(
    resources: list[PolicyResource], flagged: bool
) -> None:
    reported = http_policy_violations(resources)
    if flagged:
        assert reported == [
            (
                "listener: internet-facing listener serves plain HTTP; add an HTTPS listener "
                "(jenkins.certificateArn) and make this one redirect to it",
                "urn:listener",
            )
        ]
    else:
        assert reported == []


def test_http_policy_links_by_arn_when_there_is_no_property_dependency() -> None:
    """An imported load balancer's ARN is a plain string in the listener's props."""
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/jenkins/1"
    alb = policy_resource(ALB, "alb", {"internal": False, "arn": arn})
    listener = policy_resource(
        LISTENER, "listener", {"protocol": "HTTP", "loadBalancerArn": arn, "defaultActions": FORWARD}
    )
    assert len(http_policy_violations([alb, listener])) == 1
    other = policy_resource(ALB, "alb", {"internal": False, "arn": arn + "0"})
    assert http_policy_violations([other, listener]) == []


def program_resources(program: Program) -> list[PolicyResource]:
    """The program's resources as a stack policy sees them: outputs, linked by property dependency."""
    by_urn = {
        r.urn: PolicyResource(r.type, {**r.inputs, **r.outputs}, r.urn, r.name, OPTS, None, None, [], {})
        for r in program.resources
    }
    for r in program.resources:
        by_urn[r.urn].property_dependencies.update(
            {prop: [by_urn[u] for u in urns if u in by_urn] for prop, urns in r.property_dependencies.items()}
        )
    return list(by_urn.values())


def test_http_policy_flags_the_dev_stacks_plain_http_jenkins(dev_program: Program) -> None:
    (http_listener,) = dev_program.of_type(LISTENER)
    assert [urn for _, urn in http_policy_violations(program_resources(dev_program))] == [http_listener.urn]


def test_http_policy_passes_a_stack_with_a_jenkins_certificate() -> None:
    program = run_program(
        {
            "jenkins.certificateArn": f"arn:aws:acm:us-east-1:123456789012:certificate/{uuid.uuid4()}",
            "jenkins.hostname": "jenkins.example.com",
        }
    )
    assert len(program.of_type(LISTENER)) == 2
    assert http_policy_violations(program_resources(program)) == []
