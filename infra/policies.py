"""The stack's security properties as pulumi-policy validations (`pulumi preview --policy-pack policy`).

Each validation is a plain function over a resource's type and input properties (camelCase, as the engine
sees them), so tests call them directly: constructing a `PolicyPack` blocks waiting for the engine.
Values unknown during a preview (computed from other resources) are skipped, not guessed.
This module imports only pulumi_policy and the standard library: the policy pack runs it in its own venv.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

EKS_LOG_TYPES = frozenset({"api", "audit", "authenticator"})
# Writing to ECR is scoped to one repository; only the registry login token is account-wide.
ECR_WRITE_ACTIONS = frozenset(
    {
        "ecr:putimage",
        "ecr:initiatelayerupload",
        "ecr:uploadlayerpart",
        "ecr:completelayerupload",
        "ecr:batchdeleteimage",
        "ecr:deleterepository",
        "ecr:*",
    }
)
SECRET_READ_ACTIONS = frozenset({"secretsmanager:getsecretvalue", "secretsmanager:*"})
SSH_PORT = 22
LISTENER = "aws:lb/listener:Listener"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"

Props = Mapping[str, Any]


def _as_list(value: Any) -> list[Any]:
    # The analyzer hands props over as Mapping/Sequence proxies (they raise on values unknown during
    # preview), not as dicts and lists: test for the abstract types.
    if value is None:
        return []
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]


def _is_world(cidr: Any) -> bool:
    try:
        return isinstance(cidr, str) and ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return False


# --- per-resource checks: each returns the problems it finds in one resource's props -----------------


# The only tags that may move: the release's marks of what each environment deploys (infra/registry.py
# DEPLOYED_PATTERN). No commit tag (40 hex digits) starts with `deployed`, so none can be overwritten.
MOVABLE_TAGS = [{"filter": "deployed*", "filterType": "WILDCARD"}]


def ecr_problems(props: Props) -> list[str]:
    problems = []
    mutability = props.get("imageTagMutability")
    exclusions = [dict(f) for f in props.get("imageTagMutabilityExclusionFilters") or []]
    if not (
        mutability == "IMMUTABLE" or (mutability == "IMMUTABLE_WITH_EXCLUSION" and exclusions == MOVABLE_TAGS)
    ):
        problems.append(
            "ECR tags must be IMMUTABLE (only the `deployed*` marks may move): a pushed commit image can "
            "never be overwritten"
        )
    if not (props.get("imageScanningConfiguration") or {}).get("scanOnPush"):
        problems.append("ECR repositories must scan images on push")
    return problems


def kms_problems(props: Props) -> list[str]:
    if props.get("customerMasterKeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
        return []  # AWS rotates only symmetric keys
    return [] if props.get("enableKeyRotation") is True else ["KMS keys must have automatic rotation on"]


def _eks_view(resource_type: str, props: Props) -> dict[str, Any]:
    """The EKS settings we check, from either the AWS resource or the pulumi-eks component."""
    if resource_type == "eks:index:Cluster":
        return {
            "mode": props.get("authenticationMode"),
            "logs": props.get("enabledClusterLogTypes"),
            "encrypted": bool(props.get("encryptionConfigKeyArn")),
            "private": props.get("endpointPrivateAccess"),
            "public": props.get("endpointPublicAccess", True),
            "cidrs": props.get("publicAccessCidrs"),
        }
    vpc = props.get("vpcConfig") or {}
    encryption = _as_list(props.get("encryptionConfig"))
    return {
        "mode": (props.get("accessConfig") or {}).get("authenticationMode"),
        "logs": props.get("enabledClusterLogTypes"),
        "encrypted": any(
            "secrets" in _as_list(e.get("resources")) and (e.get("provider") or {}).get("keyArn")
            for e in encryption
        ),
        "private": vpc.get("endpointPrivateAccess"),
        "public": vpc.get("endpointPublicAccess", True),
        "cidrs": vpc.get("publicAccessCidrs"),
    }


def eks_problems(resource_type: str, props: Props) -> list[str]:
    view = _eks_view(resource_type, props)
    problems = []
    if view["mode"] != "API":
        problems.append("EKS must authenticate with access entries only (authentication mode API)")
    missing = EKS_LOG_TYPES - set(_as_list(view["logs"]))
    if missing:
        problems.append(f"EKS control-plane logs missing: {', '.join(sorted(missing))}")
    if not view["encrypted"]:
        problems.append("EKS secrets must be envelope-encrypted with a KMS key")
    if view["private"] is not True:
        problems.append("the EKS private API endpoint must be on")
    if view["public"] is not False:
        cidrs = _as_list(view["cidrs"])
        # AWS opens an unrestricted public endpoint to 0.0.0.0/0 when no CIDR is given.
        if not cidrs or any(_is_world(c) for c in cidrs):
            problems.append(
                "the EKS public API endpoint must be off or limited to listed CIDRs, never 0.0.0.0/0"
            )
    return problems


def imds_problems(resource_type: str, props: Props) -> list[str]:
    if resource_type == "eks:index:ManagedNodeGroup":
        ok = props.get("enableIMDSv2") is True or bool(props.get("launchTemplate"))
    else:
        ok = (props.get("metadataOptions") or {}).get("httpTokens") == "required"
    problems = [] if ok else ["instances must require IMDSv2 (metadata httpTokens = required)"]
    if resource_type == "aws:ec2/instance:Instance":
        # A hop limit of 2 lets every container on the host (docker builds) read the instance role's
        # credentials; nothing in a container on our instances needs IMDS. (EKS nodes: their launch template.)
        hops = (props.get("metadataOptions") or {}).get("httpPutResponseHopLimit")
        if hops != 1:
            problems.append(
                f"instance metadata hop limit must be 1 (got {hops}): containers must not reach IMDS"
            )
    return problems


def volume_problems(resource_type: str, props: Props) -> list[str]:
    if resource_type == "aws:ebs/volume:Volume":
        return [] if props.get("encrypted") is True else ["EBS volumes must be encrypted"]
    devices = [props.get("rootBlockDevice") or {}, *_as_list(props.get("ebsBlockDevices"))]
    return [] if all(d.get("encrypted") is True for d in devices) else ["instance volumes must be encrypted"]


def _ingress_rules(resource_type: str, props: Props) -> Iterable[dict[str, Any]]:
    """Ingress rules as {protocol, fromPort, toPort, cidrs}, whatever resource declares them."""
    if resource_type == "aws:ec2/securityGroup:SecurityGroup":
        for rule in _as_list(props.get("ingress")):
            yield {**rule, "cidrs": _as_list(rule.get("cidrBlocks")) + _as_list(rule.get("ipv6CidrBlocks"))}
    elif resource_type == "aws:ec2/securityGroupRule:SecurityGroupRule":
        if props.get("type") == "ingress":
            yield {
                **props,
                "cidrs": _as_list(props.get("cidrBlocks")) + _as_list(props.get("ipv6CidrBlocks")),
            }
    elif resource_type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        yield {
            "protocol": props.get("ipProtocol"),
            "fromPort": props.get("fromPort"),
            "toPort": props.get("toPort"),
            "cidrs": _as_list(props.get("cidrIpv4")) + _as_list(props.get("cidrIpv6")),
        }


def _covers_ssh(rule: Mapping[str, Any]) -> bool:
    protocol = str(rule.get("protocol", "")).lower()
    if protocol in {"-1", "all"}:
        return True
    low, high = rule.get("fromPort"), rule.get("toPort")
    return protocol in {"tcp", "6"} and isinstance(low, int | float) and low <= SSH_PORT <= (high or low)


def ingress_problems(resource_type: str, props: Props) -> list[str]:
    problems = []
    for rule in _ingress_rules(resource_type, props):
        ports = f"{rule.get('protocol')} {rule.get('fromPort')}-{rule.get('toPort')}"
        if any(_is_world(c) for c in rule["cidrs"]):
            problems.append(f"ingress {ports} is open to the world; list the CIDRs that need it")
        if rule["cidrs"] and _covers_ssh(rule):
            problems.append(f"ingress {ports} opens SSH; use SSM Session Manager instead")
    return problems


def service_problems(props: Props) -> list[str]:
    spec = props.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return []
    ranges = _as_list(spec.get("loadBalancerSourceRanges"))
    if not ranges or any(_is_world(r) for r in ranges):
        return ["LoadBalancer Services must set loadBalancerSourceRanges, and not to the whole internet"]
    return []


def _statements(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            return []
    if not isinstance(document, Mapping):
        return []
    return [s for s in _as_list(document.get("Statement")) if isinstance(s, Mapping)]


def iam_problems(props: Props) -> list[str]:
    problems = []
    for statement in _statements(props.get("policy")):
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement:
            problems.append("IAM Allow with NotAction grants everything else; list the actions instead")
        actions = {str(a).lower() for a in _as_list(statement.get("Action"))}
        resources = _as_list(statement.get("Resource"))
        if any(a == "*" or a.endswith(":*") for a in actions):
            problems.append(f"IAM actions must be listed, not wildcards: {sorted(actions)}")
        if "*" in resources and actions & ECR_WRITE_ACTIONS:
            problems.append("ECR push/delete must be scoped to the repository's ARN, not Resource *")
        if "*" in resources and actions & SECRET_READ_ACTIONS:
            problems.append("reading secrets must be scoped to the stack's own secret ARNs, not Resource *")
    return problems


# --- AWS API rules: shapes AWS (or the AWS provider) refuses, caught before anything is sent -----------
# Each limit is cited in docs/verified-identifiers.md (AWS API reference / ELB and IAM quotas, 2026-12-01).

# EC2 CreateSecurityGroup GroupDescription / GroupName: up to 255 characters of this set.
_SG_TEXT = re.compile(r"^[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*$")
# IpRange / UserIdGroupPair Description: the same set without "&".
_SG_RULE_TEXT = re.compile(r"^[a-zA-Z0-9 ._\-:/()#,@\[\]+=;{}!$*]*$")
SG_TEXT_MAX = 255
# VPC quota: 60 inbound and 60 outbound rules per security group, counted separately for IPv4 and IPv6;
# every CIDR (or referenced group) of a rule block is one rule. Adjustable; a new account has this.
SG_RULES_PER_DIRECTION = 60
# ELB listener rules: at most one of each of these condition types per rule, three match values per
# condition, five per rule, five wildcards per rule, priorities 1-50000.
CONDITION_FIELDS = ("hostHeader", "httpHeader", "httpRequestMethod", "pathPattern", "queryString", "sourceIp")
ONCE_PER_RULE = frozenset({"hostHeader", "httpRequestMethod", "pathPattern", "sourceIp"})
VALUES_PER_CONDITION = 3
VALUES_PER_RULE = 5
WILDCARDS_PER_RULE = 5
# Names AWS limits in length: resource type -> (name limit, name-prefix limit or None). A prefix leaves room
# for the 26 characters the AWS provider appends to it (terraform-plugin-sdk helper/id).
NAME_LIMITS: dict[str, tuple[int, int | None]] = {
    "aws:lb/loadBalancer:LoadBalancer": (32, 6),
    "aws:lb/targetGroup:TargetGroup": (32, 6),
    "aws:iam/role:Role": (64, 38),
    "aws:iam/policy:Policy": (128, 102),
    "aws:iam/instanceProfile:InstanceProfile": (128, 102),
    "aws:iam/rolePolicy:RolePolicy": (128, 102),
    "aws:ec2/securityGroup:SecurityGroup": (255, 229),
    "aws:secretsmanager/secret:Secret": (512, 486),
    "aws:ecr/repository:Repository": (256, None),
    "aws:eks/cluster:Cluster": (100, None),
}
# ELB names: letters, digits and hyphens, no hyphen at either end, not starting with "internal-".
_ELB_NAME = re.compile(r"^(?!internal-)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")
# Descriptions AWS limits: resource type -> (property, max length, allowed characters or None).
_IAM_TEXT = re.compile(r"^[\u0009\u000A\u000D\u0020-\u007E\u00A1-\u00FF]*$")
DESCRIPTION_LIMITS: dict[str, tuple[str, int, re.Pattern[str] | None]] = {
    "aws:iam/role:Role": ("description", 1000, _IAM_TEXT),
    "aws:iam/policy:Policy": ("description", 1000, None),
    "aws:secretsmanager/secret:Secret": ("description", 2048, None),
    "aws:kms/key:Key": ("description", 8192, None),
}
# IAM (IAM and AWS STS quotas): policy documents are measured in non-whitespace characters; an entity's
# inline policies share one budget (so one inline policy over it can never be attached); trust policies
# 2048 by default (adjustable to 4096). Characters: the IAM API model's policyDocumentType and
# roleNameType / policyNameType / instanceProfileNameType patterns (inline policy names included).
IAM_DOCUMENT_LIMITS: dict[str, tuple[str, int]] = {
    "aws:iam/policy:Policy": ("policy", 6144),
    "aws:iam/rolePolicy:RolePolicy": ("policy", 10240),
    "aws:iam/userPolicy:UserPolicy": ("policy", 2048),
    "aws:iam/groupPolicy:GroupPolicy": ("policy", 5120),
    "aws:iam/role:Role": ("assumeRolePolicy", 2048),
}
IAM_NAMED_TYPES = frozenset({*IAM_DOCUMENT_LIMITS, "aws:iam/instanceProfile:InstanceProfile"})
_IAM_DOCUMENT = re.compile(r"^[\u0009\u000A\u000D\u0020-\u00FF]*$")
_IAM_NAME = re.compile(r"^[A-Za-z0-9_+=,.@-]*$")
# Tags: 50 per resource, keys up to 128 characters, values up to 256 (EC2, ELB, IAM, KMS, Secrets Manager).
TAGS_MAX, TAG_KEY_MAX, TAG_VALUE_MAX = 50, 128, 256


def _text_problems(what: str, value: Any, limit: int, allowed: re.Pattern[str] | None) -> list[str]:
    if not isinstance(value, str):
        return []
    problems = []
    if len(value) > limit:
        problems.append(f"{what} is {len(value)} characters; AWS allows {limit}")
    if allowed is not None and not allowed.fullmatch(value):
        bad = sorted({c for c in value if not allowed.fullmatch(c)})
        problems.append(f"{what} {value!r} has characters AWS refuses: {''.join(bad)!r}")
    return problems


def security_group_text_problems(resource_type: str, props: Props) -> list[str]:
    """Security group names, descriptions and rule descriptions: EC2's character set and length."""
    problems = []
    rules: list[tuple[str, Any]] = []
    if resource_type == "aws:ec2/securityGroup:SecurityGroup":
        problems += _text_problems("description", props.get("description"), SG_TEXT_MAX, _SG_TEXT)
        name = props.get("name")
        problems += _text_problems("name", name, SG_TEXT_MAX, _SG_TEXT)
        if isinstance(name, str) and name.startswith("sg-"):
            problems.append(f"name {name!r} starts with sg-, which AWS reserves for group ids")
        for direction in ("ingress", "egress"):
            rules += [(f"{direction}[{i}]", r) for i, r in enumerate(_as_list(props.get(direction)))]
    else:
        rules = [("rule", props)]
    for where, rule in rules:
        if isinstance(rule, Mapping):
            problems += _text_problems(
                f"{where} description", rule.get("description"), SG_TEXT_MAX, _SG_RULE_TEXT
            )
    return problems


def security_group_quota_problems(props: Props) -> list[str]:
    """Inline rules of one security group against the default rules-per-group quota."""
    problems = []
    for direction in ("ingress", "egress"):
        counts = {"IPv4": 0, "IPv6": 0}
        for rule in (r for r in _as_list(props.get(direction)) if isinstance(r, Mapping)):
            counts["IPv4"] += len(_as_list(rule.get("cidrBlocks"))) + len(
                _as_list(rule.get("securityGroups"))
            )
            counts["IPv4"] += len(_as_list(rule.get("prefixListIds"))) + (1 if rule.get("self") else 0)
            counts["IPv6"] += len(_as_list(rule.get("ipv6CidrBlocks")))
        problems += [
            f"{count} {version} {direction} rules; a security group holds {SG_RULES_PER_DIRECTION} by default"
            for version, count in counts.items()
            if count > SG_RULES_PER_DIRECTION
        ]
    return problems


def listener_rule_problems(props: Props) -> list[str]:
    """ELB listener rules: one field per condition block (the AWS provider), and ELB's rule quotas."""
    problems = []
    conditions = [c for c in _as_list(props.get("conditions")) if isinstance(c, Mapping)]
    seen: dict[str, int] = {}
    values = wildcards = 0
    for i, condition in enumerate(conditions):
        fields = [f for f in CONDITION_FIELDS if condition.get(f) is not None]
        if len(fields) != 1:
            problems.append(
                f"conditions[{i}] sets {fields or 'no field'}; each condition block takes exactly one of "
                f"{', '.join(CONDITION_FIELDS)}: split it into one block per field"
            )
        for field in fields:
            seen[field] = seen.get(field, 0) + 1
            items = _as_list((condition[field] or {}).get("values"))
            if len(items) > VALUES_PER_CONDITION:
                problems.append(
                    f"conditions[{i}].{field} has {len(items)} values; ELB allows {VALUES_PER_CONDITION}"
                )
            values += len(items)
            if field != "sourceIp":
                wildcards += sum(str(v).count("*") + str(v).count("?") for v in items)
    for field, count in seen.items():
        if field in ONCE_PER_RULE and count > 1:
            problems.append(f"{field} appears in {count} conditions; ELB allows one per rule")
    if values > VALUES_PER_RULE:
        problems.append(f"the rule has {values} condition values; ELB allows {VALUES_PER_RULE} per rule")
    if wildcards > WILDCARDS_PER_RULE:
        problems.append(f"the rule has {wildcards} wildcards; ELB allows {WILDCARDS_PER_RULE} per rule")
    priority = props.get("priority")
    if isinstance(priority, int | float) and not 1 <= priority <= 50000:
        problems.append(f"priority {priority} is outside ELB's 1-50000")
    return problems


def name_problems(resource_type: str, props: Props) -> list[str]:
    """Explicit names and name prefixes within AWS's length limits (and ELB's character rules)."""
    problems = []
    limit, prefix_limit = NAME_LIMITS[resource_type]
    problems += _text_problems("name", props.get("name"), limit, None)
    prefix = props.get("namePrefix")
    if prefix_limit is not None:
        problems += _text_problems("namePrefix", prefix, prefix_limit, None)
    if resource_type in ("aws:lb/loadBalancer:LoadBalancer", "aws:lb/targetGroup:TargetGroup"):
        name = props.get("name")
        if isinstance(name, str) and not _ELB_NAME.fullmatch(name):
            problems.append(
                f"name {name!r}: letters, digits and inner hyphens only, not starting with internal-"
            )
    return problems


def description_problems(resource_type: str, props: Props) -> list[str]:
    field, limit, allowed = DESCRIPTION_LIMITS[resource_type]
    return _text_problems(field, props.get(field), limit, allowed)


def _plain(value: Any) -> Any:
    """A policy engine's read-only proxies (of mappings and lists) as plain JSON-serializable values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value


def iam_document_problems(resource_type: str, props: Props) -> list[str]:
    """IAM policy documents within IAM's size quota and character set; IAM names in their character set."""
    problems = []
    if resource_type in IAM_DOCUMENT_LIMITS:
        field, limit = IAM_DOCUMENT_LIMITS[resource_type]
        document = props.get(field)
        if isinstance(document, Mapping):
            # How the provider sends it: compact JSON (whitespace is not counted anyway).
            document = json.dumps(_plain(document), separators=(",", ":"), ensure_ascii=False)
        if isinstance(document, str):
            size = sum(1 for c in document if not c.isspace())
            if size > limit:
                problems.append(
                    f"{field} is {size} non-whitespace characters; IAM allows {limit}: split it or "
                    "use a managed policy"
                )
            problems += _text_problems(field, document, len(document), _IAM_DOCUMENT)
    if resource_type in IAM_NAMED_TYPES:
        name = props.get("name")
        problems += _text_problems("name", name, len(str(name)), _IAM_NAME)
    return problems


def tag_problems(props: Props) -> list[str]:
    tags = props.get("tags")
    if not isinstance(tags, Mapping):
        return []
    problems = [f"{len(tags)} tags; AWS allows {TAGS_MAX}"] if len(tags) > TAGS_MAX else []
    for key, value in tags.items():
        problems += _text_problems(f"tag key {key[:20]!r}", key, TAG_KEY_MAX, None)
        problems += [
            f"tag {what} {str(text)[:20]!r} starts with aws:, which AWS reserves (any case); rename it"
            for what, text in (("key", key), ("value", value))
            if isinstance(text, str) and text[:4].lower() == "aws:"
        ]
        problems += _text_problems(f"tag {key[:20]!r} value", value, TAG_VALUE_MAX, None)
    return problems


# EC2 User Guide, "Work with instance user data": "User data is limited to 16 KB, in raw form, before it
# is base64-encoded" (launch templates: RequestLaunchTemplateData.UserData, "limited to 16 KB").
USER_DATA_MAX = 16 * 1024


def user_data_problems(resource_type: str, props: Props) -> list[str]:
    """An instance's `userData` is sent as is; its `userDataBase64`, and a launch template's `userData`
    (the API takes base64 text), are measured decoded."""
    plain = props.get("userData") if resource_type == "aws:ec2/instance:Instance" else None
    encoded = props.get("userDataBase64" if resource_type == "aws:ec2/instance:Instance" else "userData")
    if isinstance(plain, str):
        raw = plain.encode()
    elif isinstance(encoded, str):
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            return ["user data is not valid base64 text; EC2 refuses it"]
    else:
        return []
    if len(raw) > USER_DATA_MAX:
        return [
            f"user data is {len(raw)} bytes; EC2 allows {USER_DATA_MAX} before base64 "
            "(compress it: cloud-init reads gzip)"
        ]
    return []


SECURITY_GROUP_TYPES = frozenset(
    {
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    }
)
TAGGED_TYPES = frozenset(
    {
        "aws:ec2/instance:Instance",
        "aws:ebs/volume:Volume",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:lb/targetGroup:TargetGroup",
        "aws:iam/role:Role",
        "aws:kms/key:Key",
        "aws:secretsmanager/secret:Secret",
        "aws:ecr/repository:Repository",
    }
)


# --- the policies ------------------------------------------------------------------------------------

Check = Callable[[str, Props], list[str]]

CHECKS: dict[str, tuple[str, frozenset[str], Check]] = {
    "ecr-immutable-and-scanned": (
        "ECR repositories: immutable tags, scan on push",
        frozenset({"aws:ecr/repository:Repository"}),
        lambda _type, props: ecr_problems(props),
    ),
    "kms-key-rotation": (
        "KMS keys rotate automatically",
        frozenset({"aws:kms/key:Key"}),
        lambda _type, props: kms_problems(props),
    ),
    "eks-cluster-hardened": (
        "EKS: access entries, control-plane logs, KMS secrets, private endpoint, restricted public endpoint",
        frozenset({"aws:eks/cluster:Cluster", "eks:index:Cluster"}),
        eks_problems,
    ),
    "imdsv2-required": (
        "EC2 instances and node groups require IMDSv2; instances keep IMDS one hop away (no containers)",
        frozenset(
            {
                "aws:ec2/instance:Instance",
                "aws:ec2/launchTemplate:LaunchTemplate",
                "eks:index:ManagedNodeGroup",
            }
        ),
        imds_problems,
    ),
    "volumes-encrypted": (
        "EBS volumes (root and data) are encrypted",
        frozenset({"aws:ec2/instance:Instance", "aws:ebs/volume:Volume"}),
        volume_problems,
    ),
    "no-world-or-ssh-ingress": (
        "No security group ingress from 0.0.0.0/0 or ::/0, and no SSH port",
        frozenset(
            {
                "aws:ec2/securityGroup:SecurityGroup",
                "aws:ec2/securityGroupRule:SecurityGroupRule",
                "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            }
        ),
        ingress_problems,
    ),
    "load-balancer-services-restricted": (
        "Kubernetes LoadBalancer Services admit only listed source ranges",
        frozenset({"kubernetes:core/v1:Service"}),
        lambda _type, props: service_problems(props),
    ),
    "iam-least-privilege": (
        "IAM policies: no wildcard actions, no ECR push or secret reads on Resource *",
        frozenset(
            {
                "aws:iam/policy:Policy",
                "aws:iam/rolePolicy:RolePolicy",
                "aws:iam/userPolicy:UserPolicy",
                "aws:iam/groupPolicy:GroupPolicy",
            }
        ),
        lambda _type, props: iam_problems(props),
    ),
    "aws-security-group-text": (
        "Security group names, descriptions and rule descriptions use EC2's character set, 255 at most",
        SECURITY_GROUP_TYPES,
        security_group_text_problems,
    ),
    "aws-security-group-rule-quota": (
        "At most 60 inbound and 60 outbound rules per security group and IP version (the default VPC quota)",
        frozenset({"aws:ec2/securityGroup:SecurityGroup"}),
        lambda _type, props: security_group_quota_problems(props),
    ),
    "aws-listener-rule-shape": (
        "Listener rules: one field per condition block, ELB's per-condition and per-rule value limits",
        frozenset({LISTENER_RULE}),
        lambda _type, props: listener_rule_problems(props),
    ),
    "aws-name-limits": (
        "Resource names and name prefixes within AWS's length limits",
        frozenset(NAME_LIMITS),
        name_problems,
    ),
    "aws-description-limits": (
        "Descriptions within AWS's length limits and character sets",
        frozenset(DESCRIPTION_LIMITS),
        description_problems,
    ),
    "aws-iam-documents": (
        "IAM policy documents within IAM's size quotas and character set; IAM names in theirs",
        IAM_NAMED_TYPES,
        iam_document_problems,
    ),
    "aws-user-data-size": (
        "EC2 user data at most 16 KB raw (instances and launch templates)",
        frozenset({"aws:ec2/instance:Instance", "aws:ec2/launchTemplate:LaunchTemplate"}),
        user_data_problems,
    ),
    "aws-tag-limits": (
        "At most 50 tags, keys up to 128 and values up to 256 characters, none starting with aws:",
        TAGGED_TYPES,
        lambda _type, props: tag_problems(props),
    ),
}


def problems_for(resource_type: str, props: Props) -> dict[str, list[str]]:
    """Every policy's problems with one resource (policy name -> messages); empty when compliant."""
    found = {}
    for name, (_description, types, check) in CHECKS.items():
        if resource_type in types:
            problems = check(resource_type, props)
            if problems:
                found[name] = problems
    return found


def _validation(
    types: frozenset[str], check: Check
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type in types:
            for problem in check(args.resource_type, args.props):
                report_violation(f"{args.name}: {problem}", None)

    return validate


def deploy_keys_separate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Flux and Jenkins never share a deploy key, and only one key may write."""
    keys = [
        r for r in args.resources if r.resource_type == "github:index/repositoryDeployKey:RepositoryDeployKey"
    ]
    public_keys = [str(r.props.get("key", "")).strip() for r in keys if r.props.get("key")]
    if len(set(public_keys)) != len(public_keys):
        report_violation("two deploy keys share one key pair; each consumer needs its own", None)
    writers = [
        r.name for r in keys if r.props.get("readOnly", True) is False
    ]  # the provider defaults to read-only
    if len(writers) > 1:
        report_violation(f"only one deploy key may write to the repository, found {writers}", None)


LOAD_BALANCER_TYPES = frozenset({"aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer"})


def _linked(
    resource: PolicyResource, prop: str, candidates: Iterable[PolicyResource]
) -> list[PolicyResource]:
    """The candidates `resource.props[prop]` points at: by property dependency (known in a preview,
    before the ARNs are), else by ARN (a plain ARN string, as for an imported load balancer)."""
    candidates = list(candidates)
    urns = {r.urn for r in resource.property_dependencies.get(prop, [])}
    if urns:
        return [c for c in candidates if c.urn in urns]
    value = resource.props.get(prop)
    return [c for c in candidates if value is not None and c.props.get("arn") == value]


def _forwards(actions: Any) -> bool:
    return any(isinstance(a, Mapping) and a.get("type") == "forward" for a in _as_list(actions))


def http_listener_problems(resources: Sequence[PolicyResource]) -> list[tuple[PolicyResource, str]]:
    """Internet-facing load balancer listeners on plain HTTP that forward requests (not only redirect
    them to HTTPS): logins and tokens sent there cross the internet in clear."""
    balancers = [r for r in resources if r.resource_type in LOAD_BALANCER_TYPES]
    rules = [r for r in resources if r.resource_type == LISTENER_RULE]
    problems = []
    for listener in (r for r in resources if r.resource_type == LISTENER):
        if listener.props.get("protocol", "HTTP") != "HTTP":
            continue
        if not any(
            not b.props.get("internal", False) for b in _linked(listener, "loadBalancerArn", balancers)
        ):
            continue
        mine = [r for r in rules if listener in _linked(r, "listenerArn", [listener])]
        if _forwards(listener.props.get("defaultActions")) or any(
            _forwards(r.props.get("actions")) for r in mine
        ):
            problems.append(
                (
                    listener,
                    f"{listener.name}: internet-facing listener serves plain HTTP; "
                    "add an HTTPS listener (jenkins.certificateArn) and make this one redirect to it",
                )
            )
    return problems


def no_plain_http_from_the_internet(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for listener, problem in http_listener_problems(args.resources):
        report_violation(problem, listener.urn)


def resource_policies() -> list[ResourceValidationPolicy]:
    return [
        ResourceValidationPolicy(
            name=name,
            description=description,
            validate=_validation(types, check),
            enforcement_level=EnforcementLevel.MANDATORY,
        )
        for name, (description, types, check) in CHECKS.items()
    ]


def all_policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    """What the policy pack enforces: every resource check, the stack-wide deploy-key rule, and the
    advisory plain-HTTP listener rule."""
    stack_policy = StackValidationPolicy(
        name="deploy-keys-separate",
        description="Flux and Jenkins deploy keys are distinct; at most one can write",
        validate=deploy_keys_separate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )
    http_policy = StackValidationPolicy(
        name="alb-http-forwards",
        description="Internet-facing load balancer listeners on HTTP only redirect to HTTPS",
        validate=no_plain_http_from_the_internet,
        # Advisory: a dev stack may run without a certificate; prod sets jenkins.certificateArn.
        enforcement_level=EnforcementLevel.ADVISORY,
    )
    return [*resource_policies(), stack_policy, http_policy]
