"""AWS's API rules as policies (infra/policies.py): each fires on the shape AWS would refuse and passes
the one it accepts, and the whole program, as `pulumi up` would send it, passes all of them.

Sources (docs/verified-identifiers.md, 2026-12-01): EC2 API reference (CreateSecurityGroup
GroupDescription/GroupName, IpRange/UserIdGroupPair Description), ELB user guide "Listener rules" and
"Condition types" (one host-header/http-request-method/path-pattern/source-ip per rule, three match
values per condition, five per rule, five wildcards per rule), ELB RuleCondition API reference and the
AWS provider (one field per condition block), ELB/IAM/Secrets Manager/EKS/ECR name limits, tag limits.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from pulumi_policy.proxy import unknown_checking_proxy

from infra import policies
from tests.infra.conftest import Program, Resource, run_program
from tests.infra.test_policies import violations

INSTANCE = "aws:ec2/instance:Instance"
TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"

SG = "aws:ec2/securityGroup:SecurityGroup"
RULE = "aws:lb/listenerRule:ListenerRule"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
HOOK_PATH = {"pathPattern": {"values": ["/github-webhook/*"]}}


def sources(*cidrs: str) -> dict[str, Any]:
    return {"sourceIp": {"values": list(cidrs)}}


def policy_of(size: int) -> str:
    """A policy document of exactly `size` non-whitespace characters (IAM's measure)."""
    head = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"'
    tail = '"}]}'
    return head + "x" * (size - len(head) - len(tail)) + tail


CASES = {
    # security groups: EC2's character set and 255 characters
    "sg description ok": (
        "aws-security-group-text",
        SG,
        {"description": "Jenkins ALB: HTTP(S) from admins"},
        None,
    ),
    "sg description apostrophe (the old ALB group)": (
        "aws-security-group-text",
        SG,
        {"description": "Jenkins ALB: HTTP from the admin CIDRs and GitHub's webhook ranges only"},
        'has characters AWS refuses: "\'"',
    ),
    "sg description trailing newline": (  # `$` alone would let it through
        "aws-security-group-text",
        SG,
        {"description": "Jenkins ALB\n"},
        "has characters AWS refuses: '\\n'",
    ),
    "sg description too long": ("aws-security-group-text", SG, {"description": "x" * 256}, "AWS allows 255"),
    "sg name sg-": ("aws-security-group-text", SG, {"name": "sg-jenkins"}, "starts with sg-"),
    "sg rule description ampersand": (
        "aws-security-group-text",
        SG,
        {"ingress": [{"protocol": "tcp", "fromPort": 80, "toPort": 80, "description": "admins & hooks"}]},
        "ingress[0] description 'admins & hooks' has characters AWS refuses: '&'",
    ),
    "sg rule description unicode": (
        "aws-security-group-text",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        {"description": "from the ALB \u2013 port 8080"},
        "has characters AWS refuses",
    ),
    "sg rule description ok": (
        "aws-security-group-text",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        {"description": "from the Jenkins ALB (port 8080)"},
        None,
    ),
    # security group rules quota (prefix lists count by their size; ours use none)
    "sg 60 admin cidrs ok": (
        "aws-security-group-rule-quota",
        SG,
        {
            "ingress": [
                {
                    "protocol": "tcp",
                    "fromPort": 80,
                    "toPort": 80,
                    "cidrBlocks": [f"1.2.{i}.0/24" for i in range(60)],
                }
            ]
        },
        None,
    ),
    "sg 61 ipv4 ingress": (
        "aws-security-group-rule-quota",
        SG,
        {
            "ingress": [
                {
                    "protocol": "tcp",
                    "fromPort": 80,
                    "toPort": 80,
                    "cidrBlocks": [f"1.2.{i}.0/24" for i in range(31)],
                },
                {
                    "protocol": "tcp",
                    "fromPort": 443,
                    "toPort": 443,
                    "cidrBlocks": [f"1.2.{i}.0/24" for i in range(30)],
                },
            ]
        },
        "61 IPv4 ingress rules; a security group holds 60 by default",
    ),
    "sg ipv6 counted apart": (
        "aws-security-group-rule-quota",
        SG,
        {
            "ingress": [
                {
                    "protocol": "tcp",
                    "fromPort": 80,
                    "toPort": 80,
                    "cidrBlocks": [f"1.2.{i}.0/24" for i in range(60)],
                },
                {
                    "protocol": "tcp",
                    "fromPort": 80,
                    "toPort": 80,
                    "ipv6CidrBlocks": [f"2600:{i:x}::/32" for i in range(60)],
                },
            ]
        },
        None,
    ),
    # listener rules
    "rule two blocks ok": (
        "aws-listener-rule-shape",
        RULE,
        {"conditions": [HOOK_PATH, sources("1.2.3.0/24")]},
        None,
    ),
    "rule two fields in one block (the old webhook rule)": (
        "aws-listener-rule-shape",
        RULE,
        {"conditions": [{**HOOK_PATH, **sources("1.2.3.0/24")}]},
        "conditions[0] sets ['pathPattern', 'sourceIp']; each condition block takes exactly one",
    ),
    "rule empty block": ("aws-listener-rule-shape", RULE, {"conditions": [{}]}, "sets no field"),
    "rule four sources": (
        "aws-listener-rule-shape",
        RULE,
        {"conditions": [sources("1.0.0.0/8", "2.0.0.0/8", "3.0.0.0/8", "4.0.0.0/8")]},
        "conditions[0].sourceIp has 4 values; ELB allows 3",
    ),
    "rule six values": (
        "aws-listener-rule-shape",
        RULE,
        {
            "conditions": [
                {"pathPattern": {"values": ["/a", "/b", "/c"]}},
                {"hostHeader": {"values": ["a.example.com", "b.example.com", "c.example.com"]}},
            ]
        },
        "the rule has 6 condition values; ELB allows 5 per rule",
    ),
    "rule source twice": (
        "aws-listener-rule-shape",
        RULE,
        {"conditions": [sources("1.0.0.0/8"), sources("2.0.0.0/8")]},
        "sourceIp appears in 2 conditions; ELB allows one per rule",
    ),
    "rule headers twice ok": (
        "aws-listener-rule-shape",
        RULE,
        {
            "conditions": [
                {"httpHeader": {"httpHeaderName": "X-A", "values": ["a"]}},
                {"httpHeader": {"httpHeaderName": "X-B", "values": ["b"]}},
            ]
        },
        None,
    ),
    "rule wildcards": (
        "aws-listener-rule-shape",
        RULE,
        {"conditions": [{"pathPattern": {"values": ["/*/*/*"]}}, {"hostHeader": {"values": ["*.*.*"]}}]},
        "the rule has 6 wildcards; ELB allows 5 per rule",
    ),
    "rule priority": (
        "aws-listener-rule-shape",
        RULE,
        {"priority": 50001, "conditions": [HOOK_PATH]},
        "1-50000",
    ),
    # names
    "alb name 32": ("aws-name-limits", "aws:lb/loadBalancer:LoadBalancer", {"name": "a" * 32}, None),
    "alb name 33": (
        "aws-name-limits",
        "aws:lb/loadBalancer:LoadBalancer",
        {"name": "a" * 33},
        "AWS allows 32",
    ),
    "alb name internal-": (
        "aws-name-limits",
        "aws:lb/loadBalancer:LoadBalancer",
        {"name": "internal-jenkins"},
        "not starting with internal-",
    ),
    "tg name underscore": (
        "aws-name-limits",
        "aws:lb/targetGroup:TargetGroup",
        {"name": "jenkins_tg"},
        "letters",
    ),
    "tg name trailing newline": (
        "aws-name-limits",
        "aws:lb/targetGroup:TargetGroup",
        {"name": "jenkins\n"},
        "letters",
    ),
    "tg prefix 7": (
        "aws-name-limits",
        "aws:lb/targetGroup:TargetGroup",
        {"namePrefix": "jenkins"},
        "allows 6",
    ),
    "role name 65": ("aws-name-limits", "aws:iam/role:Role", {"name": "r" * 65}, "AWS allows 64"),
    "role prefix 39": ("aws-name-limits", "aws:iam/role:Role", {"namePrefix": "r" * 39}, "AWS allows 38"),
    "secret prefix ok": (
        "aws-name-limits",
        "aws:secretsmanager/secret:Secret",
        {"namePrefix": "jenkins/a-"},
        None,
    ),
    "eks name 101": ("aws-name-limits", "aws:eks/cluster:Cluster", {"name": "c" * 101}, "AWS allows 100"),
    # descriptions
    "role description 1001": (
        "aws-description-limits",
        "aws:iam/role:Role",
        {"description": "d" * 1001},
        "1000",
    ),
    "role description emoji": (
        "aws-description-limits",
        "aws:iam/role:Role",
        {"description": "Jenkins \U0001f680"},
        "has characters AWS refuses",
    ),
    "kms description ok": (
        "aws-description-limits",
        "aws:kms/key:Key",
        {"description": "Jenkins secrets"},
        None,
    ),
    # tags
    "tags ok": ("aws-tag-limits", "aws:ec2/instance:Instance", {"tags": {"Name": "jenkins"}}, None),
    "tag value 257": (
        "aws-tag-limits",
        "aws:ebs/volume:Volume",
        {"tags": {"Name": "v" * 257}},
        "AWS allows 256",
    ),
    "51 tags": ("aws-tag-limits", "aws:kms/key:Key", {"tags": {f"k{i}": "v" for i in range(51)}}, "51 tags"),
    "tag key aws:": ("aws-tag-limits", "aws:ec2/instance:Instance", {"tags": {"aws:owner": "x"}}, "aws:"),
    "tag key AWS: any case": ("aws-tag-limits", "aws:ebs/volume:Volume", {"tags": {"AWS:x": "y"}}, "aws:"),
    # IAM: documents' size (non-whitespace characters) and character set; names' character set
    "managed policy 6144": ("aws-iam-documents", "aws:iam/policy:Policy", {"policy": policy_of(6144)}, None),
    "managed policy 6145": (
        "aws-iam-documents",
        "aws:iam/policy:Policy",
        {"policy": policy_of(6145)},
        "6145 non-whitespace characters; IAM allows 6144",
    ),
    "whitespace is not counted": (
        "aws-iam-documents",
        "aws:iam/policy:Policy",
        {"policy": policy_of(6144).replace(",", ",   \n  ")},
        None,
    ),
    "role inline policy 10241": (
        "aws-iam-documents",
        "aws:iam/rolePolicy:RolePolicy",
        {"policy": policy_of(10241)},
        "IAM allows 10240",
    ),
    "user inline policy 2049": (
        "aws-iam-documents",
        "aws:iam/userPolicy:UserPolicy",
        {"policy": policy_of(2049)},
        "IAM allows 2048",
    ),
    "trust policy 2049": (
        "aws-iam-documents",
        "aws:iam/role:Role",
        {"assumeRolePolicy": policy_of(2049)},
        "assumeRolePolicy is 2049",
    ),
    "trust policy as a mapping": (
        "aws-iam-documents",
        "aws:iam/role:Role",
        {"assumeRolePolicy": json.loads(policy_of(2048))},
        None,
    ),
    "policy document emoji": (
        "aws-iam-documents",
        "aws:iam/policy:Policy",
        {"policy": policy_of(200).replace("xxxx", "\U0001f680", 1)},
        "has characters AWS refuses",
    ),
    "role name with a space": ("aws-iam-documents", "aws:iam/role:Role", {"name": "jenkins role"}, "' '"),
    "role name ok": ("aws-iam-documents", "aws:iam/role:Role", {"name": "jenkins+ci=a,b.c@d_e-f"}, None),
    "inline policy name slash": (
        "aws-iam-documents",
        "aws:iam/rolePolicy:RolePolicy",
        {"name": "ecr/push"},
        "'/'",
    ),
}


@pytest.mark.parametrize(("policy", "resource_type", "props", "expected"), CASES.values(), ids=CASES.keys())
def test_aws_rule_fires_on_what_aws_refuses_and_passes_what_it_accepts(
    policy: str, resource_type: str, props: dict[str, Any], expected: str | None
) -> None:
    reported = violations(policy, resource_type, props)
    if expected is None:
        assert reported == []
    else:
        assert any(expected in message for message in reported), reported


def as_sent(resource: Resource) -> dict[str, Any]:
    """The inputs as the provider would send them: an auto-named resource gets Pulumi's autoname (its
    logical name plus "-" and 7 random characters) where it declares neither name nor prefix."""
    inputs = dict(resource.inputs)
    if resource.type in policies.NAME_LIMITS and "name" not in inputs and "namePrefix" not in inputs:
        inputs["name"] = f"{resource.name}-abcdef0"
    return inputs


def problems(program: Program) -> dict[str, dict[str, list[str]]]:
    return {
        r.name: found
        for r in program.resources
        if (found := policies.problems_for(r.type, unknown_checking_proxy(as_sent(r))))
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "jenkins.certificateArn": CERTIFICATE,
            "jenkins.hostname": "jenkins.example.com",
            "jenkins.allowedCidrs": [f"100.20.{i}.0/24" for i in range(8)],
        },
    ],
    ids=["dev", "tls-many-cidrs"],
)
def test_the_whole_program_passes_every_aws_rule(overrides: dict[str, Any]) -> None:
    program = run_program(overrides)
    assert problems(program) == {}
    governed = {r.type for r in program.resources} & set().union(*(t for _, t, _ in policies.CHECKS.values()))
    assert {"aws:ec2/securityGroup:SecurityGroup", RULE, "aws:lb/loadBalancer:LoadBalancer"} <= governed


def test_too_many_admin_cidrs_fail_at_preview_not_halfway_through_the_first_up() -> None:
    """With TLS the admin CIDRs are allowed on 80 and 443 beside GitHub's four IPv4 hook ranges on 443:
    28 CIDRs make 2 x 28 + 4 = 60 IPv4 ingress rules on the ALB's group; 29 make 62, which AWS refuses."""
    tls = {"jenkins.certificateArn": CERTIFICATE, "jenkins.hostname": "jenkins.example.com"}
    fits = run_program({**tls, "jenkins.allowedCidrs": [f"100.20.{i}.0/24" for i in range(28)]})
    assert problems(fits) == {}
    over = run_program({**tls, "jenkins.allowedCidrs": [f"100.20.{i}.0/24" for i in range(29)]})
    assert problems(over) == {
        "jenkins-alb": {
            "aws-security-group-rule-quota": ["62 IPv4 ingress rules; a security group holds 60 by default"]
        }
    }


def test_the_rules_catch_the_old_program_shapes() -> None:
    """The shapes the first real `pulumi up` would have sent before issue 7, fed to the same checks."""
    old_alb_group = {"description": "Jenkins ALB: HTTP from the admin CIDRs and GitHub's webhook ranges only"}
    old_webhook_rule = {"conditions": [{**HOOK_PATH, **sources("192.30.252.0/22", "185.199.108.0/22")}]}
    old_instance = {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2}}
    assert policies.problems_for(SG, old_alb_group)
    assert policies.problems_for(RULE, old_webhook_rule)
    assert "imdsv2-required" in policies.problems_for("aws:ec2/instance:Instance", old_instance)


def _api_shape(service: str, shape: str) -> dict[str, Any]:
    """A shape of AWS's own API model, as botocore ships it (botocore/data/<service>/<version>)."""
    import gzip
    import json
    from pathlib import Path

    import botocore

    (model,) = sorted((Path(botocore.__file__).parent / "data" / service).glob("*/service-2.json*"))[-1:]
    opener = gzip.open if model.suffix == ".gz" else open
    with opener(model, "rt") as handle:
        return json.load(handle)["shapes"][shape]


@pytest.mark.parametrize(
    ("limit", "service", "shape"),
    [
        (policies.NAME_LIMITS["aws:iam/role:Role"][0], "iam", "roleNameType"),
        (policies.NAME_LIMITS["aws:iam/policy:Policy"][0], "iam", "policyNameType"),
        (
            policies.NAME_LIMITS["aws:iam/instanceProfile:InstanceProfile"][0],
            "iam",
            "instanceProfileNameType",
        ),
        (policies.NAME_LIMITS["aws:iam/rolePolicy:RolePolicy"][0], "iam", "policyNameType"),
        (policies.NAME_LIMITS["aws:secretsmanager/secret:Secret"][0], "secretsmanager", "NameType"),
        (policies.NAME_LIMITS["aws:ecr/repository:Repository"][0], "ecr", "RepositoryName"),
        (policies.NAME_LIMITS["aws:eks/cluster:Cluster"][0], "eks", "ClusterName"),
        (policies.DESCRIPTION_LIMITS["aws:iam/role:Role"][1], "iam", "roleDescriptionType"),
        (policies.DESCRIPTION_LIMITS["aws:iam/policy:Policy"][1], "iam", "policyDescriptionType"),
        (
            policies.DESCRIPTION_LIMITS["aws:secretsmanager/secret:Secret"][1],
            "secretsmanager",
            "DescriptionType",
        ),
        (policies.DESCRIPTION_LIMITS["aws:kms/key:Key"][1], "kms", "DescriptionType"),
        (policies.TAG_KEY_MAX, "ec2", "TagKey"),
        (policies.TAG_KEY_MAX, "elbv2", "TagKey"),
        (policies.TAG_VALUE_MAX, "elbv2", "TagValue"),
        (policies.TAG_KEY_MAX, "iam", "tagKeyType"),
        (policies.TAG_VALUE_MAX, "kms", "TagValueType"),
        (50000, "elbv2", "RulePriority"),
    ],
)
def test_limits_match_awss_own_api_model(limit: int, service: str, shape: str) -> None:
    """The numbers come from AWS's API model (what the service validates), not from memory."""
    assert _api_shape(service, shape)["max"] == limit


@pytest.mark.parametrize(
    ("ours", "shape"),
    [
        ("_IAM_DOCUMENT", "policyDocumentType"),
        ("_IAM_NAME", "roleNameType"),
        ("_IAM_NAME", "policyNameType"),  # PutRolePolicy's PolicyName too
        ("_IAM_NAME", "instanceProfileNameType"),
    ],
)
def test_iam_character_sets_are_the_api_models(ours: str, shape: str) -> None:
    """Our patterns accept exactly what IAM's model accepts, over all of Latin-1 plus a few beyond
    (Java's \\w, as in the model, is [a-zA-Z_0-9])."""
    model = re.compile(_api_shape("iam", shape)["pattern"].replace("\\w", "a-zA-Z_0-9"))
    pattern = getattr(policies, ours)
    for c in [*map(chr, range(0x100)), "\u0100", "\u2013", "\U0001f680"]:
        assert bool(pattern.fullmatch(c)) == bool(model.fullmatch(c)), repr(c)


def test_name_prefixes_leave_room_for_the_providers_26_character_suffix() -> None:
    """terraform-plugin-sdk helper/id: a prefixed unique id is the prefix plus a 26-digit suffix; the AWS
    provider documents the result for target groups as "cannot be longer than 6 characters" (32 - 26)."""
    for limit, prefix in policies.NAME_LIMITS.values():
        assert prefix is None or prefix == limit - 26
    assert policies.NAME_LIMITS["aws:lb/targetGroup:TargetGroup"] == (32, 6)


def test_the_iam_description_character_set_is_awss() -> None:
    assert _api_shape("iam", "roleDescriptionType")["pattern"] == (
        "[\\u0009\\u000A\\u000D\\u0020-\\u007E\\u00A1-\\u00FF]*"
    )


# --- user data: EC2 User Guide, "Work with instance user data": "User data is limited to 16 KB, in raw
# form, before it is base64-encoded"; RequestLaunchTemplateData.UserData: base64 text, "limited to 16 KB".


def test_user_data_over_16_kb_raw_is_refused_as_ec2_would() -> None:
    from infra.policies import USER_DATA_MAX, user_data_problems

    big = "#cloud-config\n" + "#" * USER_DATA_MAX
    assert user_data_problems(INSTANCE, {"userData": big})  # the old shape: 17 KB of plain user data
    assert user_data_problems(INSTANCE, {"userDataBase64": base64.b64encode(big.encode()).decode()})
    assert user_data_problems(TEMPLATE, {"userData": base64.b64encode(big.encode()).decode()})
    assert user_data_problems(TEMPLATE, {"userData": "#!/bin/bash\n"}) == [
        "user data is not valid base64 text; EC2 refuses it"
    ]


def test_user_data_within_16_kb_raw_passes_even_when_its_base64_is_longer() -> None:
    from infra.policies import USER_DATA_MAX, user_data_problems

    exact = b"x" * USER_DATA_MAX  # its base64 is 21848 characters: the limit is on the raw bytes
    assert user_data_problems(INSTANCE, {"userDataBase64": base64.b64encode(exact).decode()}) == []
    assert user_data_problems(TEMPLATE, {"userData": base64.b64encode(exact).decode()}) == []
    assert user_data_problems(INSTANCE, {"userData": "#cloud-config\n"}) == []
    assert user_data_problems(INSTANCE, {}) == []
