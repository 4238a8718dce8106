"""The AWS side, with the caller's credentials (boto3's usual chain; AWS_ENDPOINT_URL and the per-service
AWS_ENDPOINT_URL_<SERVICE> variables point it elsewhere, as the tests do): identity and region, the EKS
version's support, the quotas the stack consumes, and GitHub's OIDC provider.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from infra.ci_preview import GITHUB_OIDC_HOST, STS_AUDIENCE
from infra.config import StackConfig
from infra.jenkins.pools import POOLS
from infra.preflight.report import Row, fail, guarded, ok, skip

# Offline or unreachable: fail in seconds, not after botocore's default retries.
BOTO = BotoConfig(connect_timeout=5, read_timeout=15, retries={"max_attempts": 2, "mode": "standard"})
# Instance families counted by the "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances" quota.
STANDARD_FAMILIES = frozenset("acdhimrtz")
CREDENTIALS_FIX = (
    "give boto3 credentials for the target account (`aws configure`, `aws sso login` with AWS_PROFILE, "
    "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), then run `make preflight` again"
)


@dataclass(frozen=True)
class Quota:
    """A Service Quotas quota the stack consumes (codes and names: docs/verified-identifiers.md)."""

    service: str
    code: str
    label: str
    """Short, for the table; `code` finds the full name in the Service Quotas console."""


VPCS = Quota("vpc", "L-F678F1CE", "VPCs per region")
NAT_PER_AZ = Quota("vpc", "L-FE5A380F", "NAT gateways per zone")
ELASTIC_IPS = Quota("ec2", "L-0263D0A3", "Elastic IPs")
STANDARD_VCPUS = Quota("ec2", "L-1216C47A", "On-Demand standard vCPUs")


def _client(service: str, region: str):
    return boto3.client(service, region_name=region, config=BOTO)


def _reason(error: Exception) -> str:
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return f"{info.get('Code', 'error')}: {info.get('Message', '')}".rstrip(": ")
    return str(error) or type(error).__name__


def identity(config: StackConfig) -> Iterator[Row]:
    try:
        caller = _client("sts", config.region).get_caller_identity()
    except (NoCredentialsError, NoRegionError) as error:
        yield fail("AWS identity", _reason(error), CREDENTIALS_FIX)
        return
    except (EndpointConnectionError, ConnectTimeoutError) as error:
        yield fail(
            "AWS identity",
            f"cannot reach AWS: {_reason(error)}",
            "check the network path to AWS (proxy, AWS_ENDPOINT_URL)",
        )
        return
    except (ClientError, BotoCoreError) as error:
        yield fail("AWS identity", f"AWS refused the credentials ({_reason(error)})", CREDENTIALS_FIX)
        return
    yield ok("AWS identity", f"account {caller['Account']} as {caller['Arn']}")
    zones = _client("ec2", config.region).describe_availability_zones(
        Filters=[
            {"Name": "zone-type", "Values": ["availability-zone"]},
            {"Name": "state", "Values": ["available"]},
        ]
    )["AvailabilityZones"]
    wanted = config.network.availability_zones
    if len(zones) < wanted:
        yield fail(
            "AWS region",
            f"{config.region} offers {len(zones)} available zone(s), the stack spreads over {wanted}",
            "lower gitops-eks:network.availabilityZones, or choose another aws:region",
        )
    else:
        yield ok("AWS region", f"{config.region}: {len(zones)} zones available, the stack uses {wanted}")


def eks_version(config: StackConfig) -> Iterator[Row]:
    if config.cluster is None:
        yield skip("EKS version", "bring-your-own cluster (gitops-eks:kubeconfig): no EKS cluster is created")
        return
    version = config.cluster.kubernetes_version
    check = f"EKS {version}"
    # DescribeClusterVersions (botocore eks 2017-11-01): versionStatus STANDARD_SUPPORT | EXTENDED_SUPPORT |
    # UNSUPPORTED, endOfStandardSupportDate.
    answer = _client("eks", config.region).describe_cluster_versions(
        clusterVersions=[version], includeAll=True
    )
    found = [v for v in answer.get("clusterVersions", []) if v.get("clusterVersion") == version]
    fix = "set gitops-eks:cluster.kubernetesVersion to a version in standard support (docs/infra.md)"
    if not found:
        yield fail(check, f"EKS in {config.region} does not offer Kubernetes {version}", fix)
        return
    status, end = found[0].get("versionStatus"), found[0].get("endOfStandardSupportDate")
    until = f" until {end:%Y-%m-%d}" if end is not None else ""
    if status == "STANDARD_SUPPORT":
        yield ok(check, f"in standard support in {config.region}{until}")
    else:
        yield fail(check, f"{status} in {config.region} (extended support is billed at a higher rate)", fix)


def _quota_value(region: str, quota: Quota) -> float:
    client = _client("service-quotas", region)
    try:
        return float(
            client.get_service_quota(ServiceCode=quota.service, QuotaCode=quota.code)["Quota"]["Value"]
        )
    except ClientError as error:
        # An account that never changed a quota may have no applied value: the default is the quota then.
        if error.response.get("Error", {}).get("Code") != "NoSuchResourceException":
            raise
    answer = client.get_aws_default_service_quota(ServiceCode=quota.service, QuotaCode=quota.code)
    return float(answer["Quota"]["Value"])


def _quota_row(region: str, quota: Quota, used: int, needed: int, what: str) -> Row:
    limit = _quota_value(region, quota)
    check = f"quota {quota.label}"
    detail = f"{used} used + {needed} for {what} of {limit:g} ({quota.service}/{quota.code})"
    if used + needed > limit:
        return fail(
            check,
            detail,
            f"free {used + needed - int(limit)} or request more: `aws service-quotas "
            f"request-service-quota-increase --service-code {quota.service} --quota-code {quota.code} "
            f"--desired-value {used + needed} --region {region}`",
        )
    return ok(check, detail)


def _vcpus(ec2, instance_types: set[str]) -> dict[str, int]:
    if not instance_types:
        return {}
    answer = ec2.describe_instance_types(InstanceTypes=sorted(instance_types))["InstanceTypes"]
    return {t["InstanceType"]: int(t["VCpuInfo"]["DefaultVCpus"]) for t in answer}


def _all(client, operation: str, key: str, **kwargs: object) -> list:
    """Every item of a paginated EC2 list call."""
    return [item for page in client.get_paginator(operation).paginate(**kwargs) for item in page[key]]


def _standard(instance_type: str) -> bool:
    return instance_type[:1] in STANDARD_FAMILIES


def quotas(config: StackConfig) -> Iterator[Row]:
    region, ec2 = config.region, _client("ec2", config.region)
    yield _quota_row(region, VPCS, len(_all(ec2, "describe_vpcs", "Vpcs")), 1, "the stack's VPC")
    nat = config.network.nat_gateways
    addresses = len(ec2.describe_addresses()["Addresses"])
    yield _quota_row(region, ELASTIC_IPS, addresses, nat, f"{nat} NAT gateway(s)")
    subnets = {s["SubnetId"]: s["AvailabilityZone"] for s in _all(ec2, "describe_subnets", "Subnets")}
    live = _all(
        ec2,
        "describe_nat_gateways",
        "NatGateways",
        Filter=[{"Name": "state", "Values": ["pending", "available"]}],
    )
    per_zone = Counter(subnets.get(g["SubnetId"], "?") for g in live)
    yield _quota_row(region, NAT_PER_AZ, max(per_zone.values(), default=0), 1, "one NAT gateway in a zone")
    # What the stack may run at once, all On-Demand: nodes at maxSize, and in the release side's stack the
    # Jenkins controller and each agent pool (build and release, infra/jenkins/pools.py) at maxAgents.
    wanted: Counter[str] = Counter()
    if config.jenkins is not None:
        wanted[config.jenkins.instance_type] += 1
        wanted[config.jenkins.agents.instance_type] += len(POOLS) * config.jenkins.agents.max_agents
    if config.cluster is not None:
        wanted[config.cluster.instance_type] += config.cluster.max_size
    states = [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    running = [
        i["InstanceType"]
        for r in _all(ec2, "describe_instances", "Reservations", Filters=states)
        for i in r["Instances"]
        # Spot instances count against the Spot quota, not this one (InstanceLifecycle "spot").
        if _standard(i["InstanceType"]) and i.get("InstanceLifecycle") != "spot"
    ]
    sizes = _vcpus(ec2, {t for t in wanted if _standard(t)} | set(running))
    used = sum(sizes[t] for t in running)
    needed = sum(sizes[t] * n for t, n in wanted.items() if _standard(t))
    parts = ", ".join(f"{n} x {t}" for t, n in sorted(wanted.items()))
    yield _quota_row(region, STANDARD_VCPUS, used, needed, f"vCPUs of {parts}")


def oidc_provider(config: StackConfig) -> Iterator[Row]:
    check = "GitHub OIDC provider"
    if not config.preview.enabled:
        yield skip(check, "previews are off: the stack neither reads nor creates it")
        return
    iam = _client("iam", config.region)
    arns = [
        p["Arn"]
        for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
        if p["Arn"].endswith(f":oidc-provider/{GITHUB_OIDC_HOST}")
    ]
    configured = config.preview.oidc_provider_arn
    if configured is not None and configured not in arns:
        yield fail(
            check,
            f"gitops-eks:preview.oidcProviderArn names {configured}, which this account does not have",
            "remove gitops-eks:preview.oidcProviderArn (the stack finds the account's provider itself)",
        )
        return
    if not arns:
        yield ok(check, f"none for {GITHUB_OIDC_HOST} in the account: the stack creates it")
        return
    arn = configured or arns[0]
    # STS accepts GitHub's token only for an audience the provider lists (infra/ci_preview.py refuses a
    # provider without it); GetOpenIDConnectProvider's ClientIDList holds them.
    audiences = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn).get("ClientIDList", [])
    if STS_AUDIENCE not in audiences:
        yield fail(
            check,
            f"exists ({arn}) without the audience {STS_AUDIENCE} (it lists "
            f"{', '.join(audiences) or 'none'}): STS refuses GitHub's tokens, and `pulumi up` refuses it",
            f"`aws iam add-client-id-to-open-id-connect-provider --client-id {STS_AUDIENCE} "
            f"--open-id-connect-provider-arn {arn}`",
        )
    else:
        yield ok(check, f"exists ({arn}) with the audience {STS_AUDIENCE}: the stack reuses it")


def checks(config: StackConfig) -> list[Row]:
    rows = guarded("AWS identity", lambda: identity(config), CREDENTIALS_FIX)
    if any(r.blocks for r in rows if r.check == "AWS identity"):
        return rows  # without credentials every other AWS call fails the same way
    fix = "check the credentials' permissions and the network (the message says which call failed)"
    rows += guarded("EKS version", lambda: eks_version(config), fix)
    rows += guarded("quotas", lambda: quotas(config), fix)
    rows += guarded("GitHub OIDC provider", lambda: oidc_provider(config), fix)
    return rows
