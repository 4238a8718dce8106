"""Stack configuration: read once from `pulumi.Config`, validated into frozen dataclasses.

Every problem raises `ConfigError` naming the full key (`gitops-eks:jenkins.allowedCidrs[1]`) before any
resource is declared, so a typo never reaches AWS. Defaults are the dev values; a stack loosens or
tightens them through config only.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi_github import config as github_config

from infra.errors import ConfigError
from jenkins import environments

PROJECT = "gitops-eks"
PROJECT_DIR = Path(__file__).resolve().parent.parent

_REPOSITORY = re.compile(r"^(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/(?P<name>[A-Za-z0-9._-]{1,100})$")
_BRANCH = re.compile(r"^(?!-)(?!/)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]+(?<!/)(?<!\.lock)$")
_K8S_VERSION = re.compile(r"^1\.\d{2}$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
_DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h))+$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d$")
_ACM_ARN = re.compile(
    r"^arn:aws(?:-[a-z]+)*:acm:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d):\d{12}:certificate/[0-9a-f-]{36}$"
)
# A fully qualified DNS name: labels of letters, digits and inner hyphens, at least one dot.
# GitHub logins: letters, digits and single inner hyphens, at most 39 characters.
GITHUB_LOGIN = re.compile(r"^(?=.{1,39}$)[A-Za-z0-9](?:-?[A-Za-z0-9])*$")
# GitHub environment names: at most 255 characters; we keep to a safe subset of what the UI takes. The
# preview role's trust policy relies on it: no `*`/`?` (IAM wildcards) and no `/` (infra/ci_preview.py).
_ENVIRONMENT = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
_OIDC_PROVIDER_ARN = re.compile(
    r"^arn:aws(?:-[a-z]+)*:iam::\d{12}:oidc-provider/token\.actions\.githubusercontent\.com$"
)
_HOSTNAME = re.compile(r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")

# Defaults = the dev values (Pulumi.dev.yaml spells them out too); Pulumi.prod.yaml holds the prod values.
# EKS bills a version past its end of standard support at the extended-support rate (6x the control plane):
# keep the default in standard support (EKS calendar in docs/verified-identifiers.md; bumping: docs/infra.md).
DEFAULT_KUBERNETES_VERSION = "1.35"
DEFAULT_INSTANCE_TYPE = "t3.medium"
DEFAULT_FLUX_CHART = "0.58.1"
_INSTANCE_HINT = f"use an EC2 instance type like {DEFAULT_INSTANCE_TYPE}"
# Address blocks reserved for documentation (RFC 5737, RFC 3849, RFC 9637): no packet ever comes from them,
# so a rule that admits only them admits nobody, and copied examples fail late (health checks time out).
DOCUMENTATION_RANGES = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20")
)
# How to find the value to set: the address your requests leave from (AWS's own echo service).
EGRESS_HINT = "your egress address is `curl -s https://checkip.amazonaws.com` (add /32)"
# IAM users and roles (roles may carry a path, which EKS access entries accept).
_IAM_PRINCIPAL = re.compile(
    r"^arn:aws(?:-[a-z]+)*:iam::\d{12}:(?:user|role)/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}$"
)
_ASSUMED_ROLE = re.compile(r"^arn:aws(?:-[a-z]+)*:sts::(\d{12}):assumed-role/([\w+=,.@-]+)/")

# Every key this stack reads: top-level keys in the project namespace, and the fields of each object.
SCALAR_KEYS = (
    "repository",
    "branch",
    "environment",
    "requiredApprovals",
    "kubeconfig",
    "commitStatusToken",
    "pullsToken",
    "trustAnchor",
    "releaseFrom",
)
OBJECT_KEYS = {
    "cluster": (
        "kubernetesVersion",
        "instanceType",
        "desiredSize",
        "minSize",
        "maxSize",
        "publicAccessCidrs",
        "adminPrincipals",
    ),
    "jenkins": ("instanceType", "volumeSize", "allowedCidrs", "certificateArn", "hostname", "agents"),
    "flux": ("chartVersion", "interval"),
    "network": ("cidrBlock", "availabilityZones", "natGateways"),
    "registry": ("keepImages", "day0Image"),
    "preview": ("enabled", "environment", "reviewers", "githubEnterprise", "oidcProviderArn"),
}

# What the release side configures (infra/stack.py declares it only in the stack of the first environment):
# a stack with `releaseFrom` takes its releases from that stack and sets none of these.
RELEASE_KEYS = ("jenkins", "registry", "preview", "pullsToken", "trustAnchor", "requiredApprovals")
# `pulumi.StackReference` names: <organization>/<project>/<stack> (a self-managed backend's organization
# is literally `organization`), or the bare <stack> of a legacy self-managed backend, which knows no other
# form; each part of letters, digits, `-`, `_` and `.` (Pulumi's docs, "Stacks" and
# `fullyQualifiedStackName`).
_STACK_NAME = re.compile(
    r"^(?:(?P<org>[A-Za-z0-9][A-Za-z0-9_.-]*)/(?P<project>[A-Za-z0-9_.-]+)/)?(?P<stack>[A-Za-z0-9_.-]+)$"
)

# Credentials: set without `--secret` they sit in clear text in Pulumi.<stack>.yaml (and so in git) and
# reach the program unmarked, so nothing keeps them out of plain outputs.
CREDENTIAL_KEYS = (
    "github:token",
    f"{PROJECT}:kubeconfig",
    f"{PROJECT}:commitStatusToken",
    f"{PROJECT}:pullsToken",
)


class Secret:
    """A config value that must not reach logs, reprs or exception messages."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('[secret]')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class NetworkConfig:
    cidr_block: str = "10.0.0.0/16"
    availability_zones: int = 2
    nat_gateways: int = 1


@dataclass(frozen=True)
class ClusterConfig:
    kubernetes_version: str
    instance_type: str
    desired_size: int
    min_size: int
    max_size: int
    public_access_cidrs: tuple[str, ...]
    admin_principals: tuple[str, ...] = ()
    """IAM users and roles that administer the cluster (EKS access entries), besides its creator."""


# `jenkins.agents`: each agent runs exactly one build (infra/jenkins/clouds.py), so `maxAgents` is the
# number of builds that run concurrently; more builds wait in Jenkins' queue.
AGENTS_KEY = f"{PROJECT}:jenkins.agents"
AGENTS_FIELDS = ("instanceType", "maxAgents", "idleMinutes")
# `docker build` of the app plus `make test` fit comfortably in 2 vCPU / 8 GiB.
DEFAULT_AGENT_INSTANCE_TYPE = "t3.large"
DEFAULT_MAX_AGENTS = 2
# The plugin reads 0 as "never scale down"; an agent that got no build must still go away.
DEFAULT_IDLE_MINUTES = 5
MAX_AGENTS_LIMIT = 20
MAX_IDLE_MINUTES = 60


@dataclass(frozen=True)
class AgentsConfig:
    instance_type: str = DEFAULT_AGENT_INSTANCE_TYPE
    max_agents: int = DEFAULT_MAX_AGENTS
    """Concurrent builds: the Auto Scaling group's maximum size."""
    idle_minutes: int = DEFAULT_IDLE_MINUTES
    """Minutes an agent that ran no build waits before the plugin terminates it."""


@dataclass(frozen=True)
class JenkinsConfig:
    instance_type: str
    volume_size: int
    allowed_cidrs: tuple[str, ...]
    certificate_arn: str | None = None
    """ACM certificate for the ALB's HTTPS listener; unset = plain HTTP (dev only)."""
    hostname: str | None = None
    """DNS name the operator points at the ALB (and the certificate covers); unset = the ALB's name."""
    agents: AgentsConfig = field(default_factory=AgentsConfig)
    """The build agents (`jenkins.agents`): instance type, concurrent builds, idle minutes."""


@dataclass(frozen=True)
class FluxConfig:
    chart_version: str
    interval: str


@dataclass(frozen=True)
class RegistryConfig:
    keep_images: int = 30
    day0_image: bool = False


@dataclass(frozen=True)
class PreviewConfig:
    """The pull-request preview's gate: a GitHub Environment and the AWS role pinned to it."""

    reviewers: tuple[str, ...]
    """GitHub logins of whoever may approve a preview run (1 to 6 when enabled; GitHub takes up to 6)."""
    environment: str = "preview"
    oidc_provider_arn: str | None = None
    """The account's IAM OIDC provider for GitHub Actions; unset = found by its URL, or created."""
    enabled: bool = True
    """False: no environment, role or variables; pull requests get no preview."""
    github_enterprise: bool = False
    """The owner is on GitHub Enterprise Cloud, the only plan that enforces required reviewers on a
    private repository; without it a private repository's preview is refused (infra/ci_preview.py)."""


@dataclass(frozen=True)
class StackConfig:
    """Everything the stack reads from config. Exactly one of `cluster` and `kubeconfig` is set."""

    repository: str
    branch: str
    region: str
    cluster: ClusterConfig | None
    jenkins: JenkinsConfig | None
    """None in a stack with `release_from`: the release side's Jenkins serves it."""
    flux: FluxConfig
    network: NetworkConfig
    registry: RegistryConfig | None
    """None in a stack with `release_from`: its nodes pull from the release side's registry."""
    preview: PreviewConfig
    pulls_token: Secret | None = field(default=None, repr=False)
    """Fine-grained GitHub token with "Pull requests: read" and "Commit statuses: read" only: the release
    asks GitHub with it which commits on `branch` are merged pull requests, `promote --to` what Flux
    reported for the environment before (jenkins/pulls.py). Required in the release side's stack: without
    it no release can sign, so nothing would ever deploy."""
    environment: str = "dev"
    """The environment this stack deploys (default: the stack's name); names its deploy reports."""
    trust_anchor: str | None = None
    """`trustAnchor`: the commit the release bot trusts from (a full SHA the operator checked); None: the
    branch's head when the stack was created (infra/trust_anchor.py)."""
    required_approvals: int = 1
    """Approvals a pull request into `branch` needs (0 to 10); 0 = a one-person trial, nobody reviews."""
    kubeconfig: Secret | None = field(default=None, repr=False)
    commit_status_token: Secret | None = field(default=None, repr=False)
    """Fine-grained GitHub token with "Commit statuses: write" only, for Flux's deploy reports."""
    release_from: str | None = None
    """`releaseFrom`: the stack (<organization>/<project>/<stack>) whose Jenkins, registry and bot key
    release into this stack's environment; None: this stack is the release side (the first environment)."""

    @property
    def releases(self) -> bool:
        """True in the release side's stack: it declares the Jenkins, the registry and the bot's key."""
        return self.release_from is None

    @property
    def owner(self) -> str:
        return self.repository.split("/", 1)[0]

    @property
    def repository_name(self) -> str:
        return self.repository.split("/", 1)[1]

    @property
    def byo_cluster(self) -> bool:
        """True when the GitOps part goes into an existing cluster given by `kubeconfig`."""
        return self.kubeconfig is not None


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


class _Object:
    """One config object (`gitops-eks:cluster`): typed field access, unknown keys refused."""

    def __init__(self, name: str, raw: Any) -> None:
        fields = OBJECT_KEYS[name]
        if not isinstance(raw, Mapping):
            raise ConfigError(
                f"{_key(name)}: must be an object with keys {', '.join(fields)}, got {_describe(raw)}"
            )
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise ConfigError(
                f"{_key(name)}.{unknown[0]}: unknown key (check the spelling); "
                f"known keys are {', '.join(fields)}"
            )
        self.name = name
        self.raw = raw

    def key(self, field_name: str) -> str:
        return _key(f"{self.name}.{field_name}")

    def integer(self, field_name: str, default: int, low: int, high: int) -> int:
        value = self.raw.get(field_name, default)
        # bool is an int in Python; `desiredSize: true` is a typo, not 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.key(field_name)}: must be an integer, got {_describe(value)}")
        if not low <= value <= high:
            raise ConfigError(f"{self.key(field_name)}: {value} is out of range; use {low} to {high}")
        return value

    def boolean(self, field_name: str, default: bool) -> bool:
        value = self.raw.get(field_name, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(field_name)}: must be true or false, got {_describe(value)}")
        return value

    def string(self, field_name: str, default: str | None, pattern: re.Pattern[str], hint: str) -> str:
        if field_name not in self.raw and default is None:
            raise ConfigError(f"{self.key(field_name)}: missing; {hint}")
        value = self.raw.get(field_name, default)
        if not isinstance(value, str):
            raise ConfigError(f"{self.key(field_name)}: must be a string, got {_describe(value)}; {hint}")
        if not pattern.fullmatch(value):
            raise ConfigError(f"{self.key(field_name)}: {value!r} is not valid; {hint}")
        return value

    def optional_string(self, field_name: str, pattern: re.Pattern[str], hint: str) -> str | None:
        """The value when set (checked like `string`), None when the key is absent."""
        if field_name not in self.raw:
            return None
        return self.string(field_name, None, pattern, hint)

    def cidrs(
        self, field_name: str, purpose: str, allow_empty: bool, public_only: bool = False
    ) -> tuple[str, ...]:
        """A list of CIDRs in canonical form, none of them the whole internet or a documentation range
        (and, with `public_only`, none reserved: private, shared, loopback...)."""
        hint = f"list the CIDRs that may reach {purpose}"
        if allow_empty:
            hint += ", or [] to allow none"
        if field_name not in self.raw:
            raise ConfigError(
                f"{self.key(field_name)}: missing; {hint}: "
                f"`pulumi config set --path '{self.key(field_name)}[0]' <CIDR>`; {EGRESS_HINT}"
            )
        value = self.raw[field_name]
        if not isinstance(value, list):
            raise ConfigError(
                f"{self.key(field_name)}: must be a list of CIDRs, got {_describe(value)}; {hint}"
            )
        if not value and not allow_empty:
            raise ConfigError(f"{self.key(field_name)}: is empty; {hint}")
        cidrs = tuple(_cidr(f"{self.key(field_name)}[{i}]", item, hint) for i, item in enumerate(value))
        for i, cidr in enumerate(cidrs):
            key, network = f"{self.key(field_name)}[{i}]", ipaddress.ip_network(cidr)
            if any(network.version == d.version and network.subnet_of(d) for d in DOCUMENTATION_RANGES):
                raise ConfigError(
                    f"{key}: {cidr!r} is a documentation range (RFC 5737/3849/9637) that no client ever "
                    f"has; set the CIDRs of the machines that reach {purpose}: {EGRESS_HINT}"
                )
            # EKS refuses reserved blocks in publicAccessCidrs; they never reach a public endpoint anyway.
            if public_only and not network.is_global:
                raise ConfigError(
                    f"{key}: {cidr!r} is a reserved (non-public) range, which a public endpoint never sees "
                    f"and EKS refuses; {EGRESS_HINT}"
                )
        return cidrs

    def principals(self, field_name: str) -> tuple[str, ...]:
        """IAM user and role ARNs, each at most once; an STS session ARN is refused with its role's ARN."""
        value = self.raw.get(field_name, [])
        hint = "list IAM role or user ARNs like arn:aws:iam::123456789012:role/platform-admins"
        if not isinstance(value, list):
            raise ConfigError(f"{self.key(field_name)}: must be a list, got {_describe(value)}; {hint}")
        seen: set[str] = set()
        for i, arn in enumerate(value):
            key = f"{self.key(field_name)}[{i}]"
            session = _ASSUMED_ROLE.match(arn) if isinstance(arn, str) else None
            if session is not None:
                raise ConfigError(
                    f"{key}: {arn!r} is a session, not a principal; EKS access entries take the role: "
                    f"arn:aws:iam::{session[1]}:role/{session[2]} (with its path, if it has one)"
                )
            if not isinstance(arn, str) or not _IAM_PRINCIPAL.fullmatch(arn):
                raise ConfigError(f"{key}: {arn!r} is not an IAM user or role ARN; {hint}")
            if arn in seen:
                raise ConfigError(
                    f"{key}: {arn!r} is listed twice; EKS allows one access entry per principal"
                )
            seen.add(arn)
        return tuple(value)


def _cidr(key: str, value: Any, hint: str) -> str:
    """The CIDR in canonical form; refuses bare addresses, host bits and the whole internet."""
    if not isinstance(value, str) or "/" not in value:
        raise ConfigError(f"{key}: {value!r} is not a CIDR (like 203.0.113.0/24); {hint}")
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError as error:
        raise ConfigError(f"{key}: {value!r} is not a CIDR ({error}); {hint}") from None
    if network.prefixlen == 0:
        raise ConfigError(f"{key}: {value!r} is open to the world; {hint}")
    if network.network_address != ipaddress.ip_interface(value).ip:
        raise ConfigError(f"{key}: {value!r} has host bits set; did you mean {network}?")
    return str(network)


def _network(raw: Any) -> NetworkConfig:
    obj = _Object("network", raw)
    defaults = NetworkConfig()
    network = _cidr(
        obj.key("cidrBlock"), raw.get("cidrBlock", defaults.cidr_block), "use a private /16 to /20"
    )
    parsed = ipaddress.ip_network(network)
    if parsed.version != 4 or not parsed.is_private or not 16 <= parsed.prefixlen <= 20:
        raise ConfigError(f"{obj.key('cidrBlock')}: {network!r} must be a private IPv4 range from /16 to /20")
    zones = obj.integer("availabilityZones", defaults.availability_zones, 2, 6)
    nat = obj.integer("natGateways", defaults.nat_gateways, 1, zones)
    # awsx offers one NAT for the VPC or one per zone; anything between has no meaning there.
    if nat not in (1, zones):
        raise ConfigError(
            f"{obj.key('natGateways')}: {nat} is not 1 (one shared NAT) or {zones} (one per zone)"
        )
    return NetworkConfig(cidr_block=network, availability_zones=zones, nat_gateways=nat)


def _cluster(raw: Any) -> ClusterConfig:
    obj = _Object("cluster", raw)
    min_size = obj.integer("minSize", 1, 1, 100)
    desired = obj.integer("desiredSize", 2, 1, 100)
    max_size = obj.integer("maxSize", 3, 1, 100)
    if not min_size <= desired <= max_size:
        raise ConfigError(
            f"{obj.key('desiredSize')}: sizes must satisfy minSize <= desiredSize <= maxSize, "
            f"got {min_size} <= {desired} <= {max_size}"
        )
    return ClusterConfig(
        kubernetes_version=obj.string(
            "kubernetesVersion",
            DEFAULT_KUBERNETES_VERSION,
            _K8S_VERSION,
            f"use an EKS version in standard support like '{DEFAULT_KUBERNETES_VERSION}'",
        ),
        instance_type=obj.string("instanceType", DEFAULT_INSTANCE_TYPE, _INSTANCE_TYPE, _INSTANCE_HINT),
        desired_size=desired,
        min_size=min_size,
        max_size=max_size,
        public_access_cidrs=obj.cidrs(
            "publicAccessCidrs", "the Kubernetes API", allow_empty=True, public_only=True
        ),
        admin_principals=obj.principals("adminPrincipals"),
    )


def _jenkins(raw: Any, region: str) -> JenkinsConfig:
    obj = _Object("jenkins", raw)
    certificate_arn = obj.optional_string(
        "certificateArn",
        _ACM_ARN,
        f"use an ACM certificate ARN like arn:aws:acm:{region}:123456789012:certificate/<uuid>",
    )
    hostname = obj.optional_string("hostname", _HOSTNAME, "use a DNS name like jenkins.example.com")
    arn = _ACM_ARN.fullmatch(certificate_arn or "")
    if arn is not None:
        # An ALB only takes certificates from ACM in its own region.
        if arn["region"] != region:
            raise ConfigError(
                f"{obj.key('certificateArn')}: the certificate is in {arn['region']}, the stack in {region}; "
                "request or import it in ACM in the stack's region"
            )
        # The ALB's own DNS name is never on the certificate: browsers and GitHub would refuse it.
        if hostname is None:
            raise ConfigError(
                f"{obj.key('hostname')}: missing; with {obj.key('certificateArn')} set, give the DNS name "
                "the certificate covers (you point it at the load balancer)"
            )
    return JenkinsConfig(
        instance_type=obj.string("instanceType", DEFAULT_INSTANCE_TYPE, _INSTANCE_TYPE, _INSTANCE_HINT),
        volume_size=obj.integer("volumeSize", 30, 20, 16384),
        allowed_cidrs=obj.cidrs("allowedCidrs", "Jenkins", allow_empty=False),
        certificate_arn=certificate_arn,
        hostname=hostname,
        agents=parse_agents(raw.get("agents")),
    )


def _agents_integer(raw: Mapping[str, Any], name: str, default: int, low: int, high: int, why: str) -> int:
    value = raw.get(name, default)
    # bool is an int in Python; `maxAgents: true` is a typo, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{AGENTS_KEY}.{name}: must be an integer, got {_describe(value)}; {why}")
    if not low <= value <= high:
        raise ConfigError(f"{AGENTS_KEY}.{name}: {value} is out of range; use {low} to {high} ({why})")
    return value


def parse_agents(raw: Any) -> AgentsConfig:
    """The validated `jenkins.agents` object; absent (None) means every default."""
    if raw is None:
        return AgentsConfig()
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{AGENTS_KEY}: must be an object with keys {', '.join(AGENTS_FIELDS)}, got {_describe(raw)}"
        )
    # YAML keys may be numbers or booleans: compare and sort them as text.
    unknown = sorted(str(key) for key in raw if key not in AGENTS_FIELDS)
    if unknown:
        raise ConfigError(
            f"{AGENTS_KEY}.{unknown[0]}: unknown key (check the spelling); "
            f"known keys are {', '.join(AGENTS_FIELDS)}"
        )
    instance_type = raw.get("instanceType", DEFAULT_AGENT_INSTANCE_TYPE)
    # fullmatch: `$` alone also matches before a trailing newline, which EC2 would refuse.
    if not isinstance(instance_type, str) or not _INSTANCE_TYPE.fullmatch(instance_type):
        raise ConfigError(
            f"{AGENTS_KEY}.instanceType: {instance_type!r} is not an EC2 instance type; "
            f"use one like {DEFAULT_AGENT_INSTANCE_TYPE}"
        )
    return AgentsConfig(
        instance_type=instance_type,
        max_agents=_agents_integer(
            raw, "maxAgents", DEFAULT_MAX_AGENTS, 1, MAX_AGENTS_LIMIT, "the number of builds that run at once"
        ),
        idle_minutes=_agents_integer(
            raw,
            "idleMinutes",
            DEFAULT_IDLE_MINUTES,
            1,
            MAX_IDLE_MINUTES,
            "minutes an agent without a build waits before it is terminated",
        ),
    )


def _flux(raw: Any) -> FluxConfig:
    obj = _Object("flux", raw)
    return FluxConfig(
        chart_version=obj.string(
            "chartVersion",
            DEFAULT_FLUX_CHART,
            _SEMVER,
            f"pin a flux-operator chart version like {DEFAULT_FLUX_CHART}",
        ),
        interval=obj.string("interval", "1m", _DURATION, "use a duration like 1m or 30s"),
    )


def _registry(raw: Any) -> RegistryConfig:
    obj = _Object("registry", raw)
    defaults = RegistryConfig()
    return RegistryConfig(
        keep_images=obj.integer("keepImages", defaults.keep_images, 1, 1000),
        day0_image=obj.boolean("day0Image", defaults.day0_image),
    )


REVIEWERS_HINT = (
    f"list the GitHub logins that may approve a pull request's preview (1 to 6): "
    f"`pulumi config set --path '{PROJECT}:preview.reviewers[0]' <login>`, or turn previews off: "
    f"`pulumi config set --path '{PROJECT}:preview.enabled' false`"
)


def _preview(raw: Any) -> PreviewConfig:
    obj = _Object("preview", raw)
    enabled = obj.boolean("enabled", True)
    reviewers = obj.raw.get("reviewers")
    if reviewers is None:
        if enabled:
            raise ConfigError(f"{obj.key('reviewers')}: missing; {REVIEWERS_HINT}")
        reviewers = []
    if not isinstance(reviewers, list) or len(reviewers) > 6 or (enabled and not reviewers):
        raise ConfigError(
            f"{obj.key('reviewers')}: must be a list of 1 to 6 logins, got {_describe(reviewers)}"
        )
    seen: set[str] = set()
    for i, login in enumerate(reviewers):
        if not isinstance(login, str) or not GITHUB_LOGIN.fullmatch(login):
            raise ConfigError(
                f"{obj.key('reviewers')}[{i}]: {login!r} is not a GitHub login; {REVIEWERS_HINT}"
            )
        # GitHub logins are case-insensitive: two spellings are one account, sent twice.
        if login.lower() in seen:
            raise ConfigError(f"{obj.key('reviewers')}[{i}]: {login!r} is listed twice; list each login once")
        seen.add(login.lower())
    return PreviewConfig(
        reviewers=tuple(reviewers),
        environment=obj.string(
            "environment", "preview", _ENVIRONMENT, "use letters, digits, '.', '_' or '-', like preview"
        ),
        oidc_provider_arn=obj.optional_string(
            "oidcProviderArn",
            _OIDC_PROVIDER_ARN,
            "use the ARN of the account's GitHub Actions OIDC provider, "
            "arn:aws:iam::<account>:oidc-provider/token.actions.githubusercontent.com, or leave it unset",
        ),
        enabled=enabled,
        github_enterprise=obj.boolean("githubEnterprise", False),
    )


def refuse_plain_credentials() -> None:
    """Refuse a credential key that was set without `--secret`, naming it (never echoing its value)."""
    for key in CREDENTIAL_KEYS:
        if pulumi.runtime.get_config(key) is not None and not pulumi.runtime.is_config_secret(key):
            raise ConfigError(
                f"{key}: is set in plain text, readable in the stack file; remove it "
                f"(`pulumi config rm {key}`) and set it again with `pulumi config set --secret {key}`"
            )


def _kubeconfig(value: str) -> Secret:
    """Check the shape of a bring-your-own kubeconfig without ever echoing its content."""
    key = _key("kubeconfig")
    try:
        document = yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError(
            f"{key}: is not valid YAML or JSON; set it with `pulumi config set --secret`"
        ) from None
    if not isinstance(document, Mapping) or not all(
        isinstance(document.get(part), list) and document.get(part)
        for part in ("clusters", "contexts", "users")
    ):
        raise ConfigError(f"{key}: is not a kubeconfig (needs non-empty clusters, contexts and users)")
    return Secret(value)


def _object(config: pulumi.Config, name: str, required: bool = False) -> Any:
    """The parsed JSON of an object key, {} when absent (or an error when required)."""
    text = config.get(name)
    if text is None:
        if required:
            raise ConfigError(f"{_key(name)}: missing; see docs/infra.md for its keys")
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(
            f"{_key(name)}: must be an object (YAML mapping), got the string {text!r}"
        ) from None


def _string(
    config: pulumi.Config, name: str, default: str | None, check: Callable[[str], bool], hint: str
) -> str:
    value = config.get(name, default)
    if value is None:
        raise ConfigError(f"{_key(name)}: missing; {hint}")
    if not check(value):
        raise ConfigError(f"{_key(name)}: {value!r} is not valid; {hint}")
    return value


PULLS_TOKEN_COMMAND = (
    f"`pulumi config set --secret {PROJECT}:pullsToken` (a fine-grained token for this repository with only "
    "Pull requests: Read-only; the release checks with it that what it signs was reviewed)"
)


RELEASE_FROM_COMMAND = (
    f"`pulumi config set {PROJECT}:releaseFrom <organization>/{PROJECT}/<stack of the first environment>` "
    "(`pulumi stack ls --all` names it; docs/environments.md)"
)


def _later_environment(config: pulumi.Config, stack: str) -> bool:
    """True when the stack's environment is listed after the first one (it takes its releases from the
    first's stack); False when it is the first, or unknown (its own check names that)."""
    try:
        names = environments.read(PROJECT_DIR)
    except environments.EnvironmentsError:
        return False
    return (config.get("environment") or stack) in names[1:]


def _first_run(config: pulumi.Config, stack: str) -> None:
    """On a first run, name every key the operator still has to set, with its command, in one error."""

    def parsed(name: str, absent: Any) -> Any:
        """The object key as parsed; `absent` when unset; None when malformed (its own check says so)."""
        text = config.get(name)
        if text is None:
            return absent
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, Mapping) else None

    missing: list[tuple[str, str]] = []
    if config.get("repository") is None:
        missing.append((_key("repository"), f"`pulumi config set {_key('repository')} <owner>/<name>`"))
    if pulumi.Config("github").get("owner") is None:
        missing.append(("github:owner", "`pulumi config set github:owner <owner>`"))
    promoted = config.get("releaseFrom") is not None or _later_environment(config, stack)
    if config.get("releaseFrom") is None and promoted:
        missing.append((_key("releaseFrom"), RELEASE_FROM_COMMAND))
    cidr_objects = [] if promoted else [("jenkins", "allowedCidrs")]
    if config.get("kubeconfig") is None:
        cidr_objects.insert(0, ("cluster", "publicAccessCidrs"))
    cidrs_missing = False
    for name, field_name in cidr_objects:
        raw = parsed(name, None)  # an absent object has its own error
        if raw is not None and field_name not in raw:
            key = _key(f"{name}.{field_name}")
            missing.append((key, f"`pulumi config set --path '{key}[0]' <CIDR>`"))
            cidrs_missing = True
    preview = parsed("preview", {})
    if (
        not promoted
        and preview is not None
        and preview.get("enabled", True) is not False
        and "reviewers" not in preview
    ):
        key = _key("preview.reviewers")
        missing.append((key, f"`pulumi config set --path '{key}[0]' <login>`"))
    if not promoted and config.get("pullsToken") is None:
        missing.append((_key("pullsToken"), PULLS_TOKEN_COMMAND))
    if len(missing) < 2:
        return  # one missing key is reported by its own check, with the same command
    message = f"{', '.join(key for key, _ in missing)}: missing; set each before the first run: " + "; ".join(
        command for _, command in missing
    )
    raise ConfigError(message + (f"; {EGRESS_HINT}" if cidrs_missing else ""))


def load(stack: str | None = None) -> StackConfig:
    """Read and validate the config of stack (default: the stack `pulumi up` runs); raise ConfigError
    naming the first bad key."""
    refuse_plain_credentials()
    config = pulumi.Config(PROJECT)
    stack = pulumi.get_stack() if stack is None else stack
    _first_run(config, stack)
    repository = _string(
        config,
        "repository",
        None,
        lambda v: bool(_REPOSITORY.fullmatch(v)) and v.split("/")[1] not in {".", ".."},
        f"set the GitHub repository as owner/name: `pulumi config set {_key('repository')} <owner>/<name>`",
    )
    # The GitHub provider places deploy keys and webhooks under `github:owner`; without it, under the
    # token's own user, which for an organisation's repository is silently the wrong repository.
    github_owner = pulumi.Config("github").get("owner")
    if github_owner is None:
        raise ConfigError(
            f"github:owner: missing; set it to the owner in {_key('repository')}: "
            f"`pulumi config set github:owner {repository.split('/')[0]}`"
        )
    if github_owner.lower() != repository.split("/")[0].lower():
        raise ConfigError(
            f"github:owner: {github_owner!r} differs from the owner in {_key('repository')} "
            f"({repository!r}); deploy keys and webhooks would go to the wrong account"
        )
    # pulumi-github's API URL (`github:baseUrl`, else GITHUB_BASE_URL): another host's Actions tokens come
    # from another issuer, and its SSH host keys and clone URLs are not the github.com ones Flux and Jenkins
    # pin.
    base_url = github_config.base_url
    if base_url.rstrip("/") != "https://api.github.com":
        raise ConfigError(
            f"github:baseUrl: {base_url!r} is not github.com; the stack works with github.com only (its "
            "Actions OIDC issuer, SSH host keys and clone URLs): `pulumi config rm github:baseUrl`, and "
            "unset GITHUB_BASE_URL"
        )
    branch = _string(
        config, "branch", "main", lambda v: bool(_BRANCH.fullmatch(v)), "use a branch name like main"
    )
    environment, names = _environment(config, stack)
    release_from = _release_from(config, stack, environment, names)
    region = pulumi.Config("aws").get("region")
    if region is None or not _REGION.fullmatch(region):
        problem = "missing" if region is None else f"{region!r} is not an AWS region"
        raise ConfigError(f"aws:region: {problem}; set it, e.g. `pulumi config set aws:region us-east-1`")
    kubeconfig_text = config.get("kubeconfig")
    has_cluster = config.get("cluster") is not None
    if kubeconfig_text is not None and has_cluster:
        raise ConfigError(
            f"{_key('kubeconfig')}: set either {_key('kubeconfig')} (use an existing cluster) or "
            f"{_key('cluster')} (create an EKS cluster), not both"
        )
    cluster_raw = None if kubeconfig_text is not None else _object(config, "cluster", required=True)
    common = {
        "repository": repository,
        "branch": branch,
        "region": region,
        "environment": environment,
        "cluster": None if cluster_raw is None else _cluster(cluster_raw),
        "flux": _flux(_object(config, "flux")),
        "network": _network(_object(config, "network")),
        "kubeconfig": None if kubeconfig_text is None else _kubeconfig(kubeconfig_text),
        "commit_status_token": _optional_secret(config, "commitStatusToken"),
    }
    if release_from is not None:
        # The preview gate is the repository's, declared by the release side's stack.
        return StackConfig(
            **common,
            jenkins=None,
            registry=None,
            preview=PreviewConfig(reviewers=(), enabled=False),
            release_from=release_from,
        )
    return StackConfig(
        **common,
        required_approvals=_approvals(config),
        jenkins=_jenkins(_object(config, "jenkins", required=True), region),
        registry=_registry(_object(config, "registry")),
        preview=_preview(_object(config, "preview")),
        pulls_token=_required_secret(config, "pullsToken", PULLS_TOKEN_COMMAND),
        trust_anchor=_trust_anchor(config),
    )


# GitHub's REST API takes 0 to 10 (OpenAPI schema repository-rule-pull-request,
# `required_approving_review_count`; docs/verified-identifiers.md).
MAX_APPROVALS = 10


def _environment(config: pulumi.Config, stack: str) -> tuple[str, tuple[str, ...]]:
    """`environment` (default: the stack's name): one of k8s/environments.yaml, whose overlay Flux applies;
    with the file's names in promotion order. Its name is also the commit status context's last part,
    written into a CEL string literal: the file's name rule (jenkins/environments.py) leaves no quote in
    it."""
    hint = f"`pulumi config set {_key('environment')} <one of them>`"
    try:
        names = environments.read(PROJECT_DIR)
    except environments.EnvironmentsError as exc:
        raise ConfigError(f"{_key('environment')}: {exc}") from None
    value = config.get("environment")
    default = "" if value is not None else " (the stack's name, the default)"
    value = stack if value is None else value
    if value not in names:
        raise ConfigError(
            f"{_key('environment')}: {value!r}{default} is not an environment of {environments.FILE} "
            f"({', '.join(names)}); set one: {hint}, or add its overlay k8s/overlays/{value} and list it"
        )
    return value, names


def _release_from(config: pulumi.Config, stack: str, environment: str, names: tuple[str, ...]) -> str | None:
    """`releaseFrom`: required in the stack of a later environment, refused in the first's; in a stack
    that has it, the release side's keys (RELEASE_KEYS) are refused, since nothing here would read them."""
    value = config.get("releaseFrom")
    first = names[0]
    if value is None:
        if environment != first:
            raise ConfigError(
                f"{_key('releaseFrom')}: missing; {environment} comes after {first} in {environments.FILE}, "
                f"so its releases come from the stack that releases {first} (its Jenkins promotes to "
                f"{environment}): {RELEASE_FROM_COMMAND}. A stack alone on its repository is its first "
                f"environment instead: `pulumi config set {_key('environment')} {first}` "
                '(docs/environments.md, "Creating the prod stack", says what each does to a running stack)'
            )
        return None
    if environment == first:
        raise ConfigError(
            f"{_key('releaseFrom')}: this stack deploys {first}, the first environment of "
            f"{environments.FILE}, and so releases itself; remove it: "
            f"`pulumi config rm {_key('releaseFrom')}`"
        )
    match = _STACK_NAME.fullmatch(value)
    if match is None:
        raise ConfigError(f"{_key('releaseFrom')}: {value!r} is not a stack name; {RELEASE_FROM_COMMAND}")
    if match["project"] not in (None, PROJECT):
        raise ConfigError(
            f"{_key('releaseFrom')}: {value!r} is a stack of the project {match['project']!r}; name a stack "
            f"of {PROJECT}, this project, whose program releases: {RELEASE_FROM_COMMAND}"
        )
    if match["stack"] == stack:
        raise ConfigError(
            f"{_key('releaseFrom')}: {value!r} names this stack; name the stack that releases {first}"
        )
    unread = [name for name in RELEASE_KEYS if config.get(name) is not None]
    if unread:
        keys = ", ".join(_key(name) for name in unread)
        raise ConfigError(
            f"{keys}: set, but this stack takes its releases from {value} ({_key('releaseFrom')}), whose "
            "Jenkins, registry and branch rules serve every environment; remove "
            f"{'it' if len(unread) == 1 else 'them'}: "
            + "; ".join(f"`pulumi config rm {_key(name)}`" for name in unread)
        )
    return value


def _approvals(config: pulumi.Config) -> int:
    """`requiredApprovals`: a whole number from 0 to MAX_APPROVALS (Pulumi hands scalars over as text)."""
    text = config.get("requiredApprovals", "1")
    if not re.fullmatch(r"[0-9]{1,2}", text) or int(text) > MAX_APPROVALS:
        raise ConfigError(
            f"{_key('requiredApprovals')}: {text!r} is not valid; use a whole number from 0 to "
            f"{MAX_APPROVALS} (0 only for a one-person trial): "
            f"`pulumi config set {_key('requiredApprovals')} 1`"
        )
    return int(text)


def _trust_anchor(config: pulumi.Config) -> str | None:
    """`trustAnchor`: a full commit SHA (40 lowercase hex digits), or unset."""
    value = config.get("trustAnchor")
    if value is not None and not re.fullmatch(r"[0-9a-f]{40}", value):
        raise ConfigError(
            f"{_key('trustAnchor')}: {value!r} is not a full commit SHA; give the 40-character SHA of the "
            f"commit you checked (`git rev-parse origin/<branch>`): `pulumi config set {_key('trustAnchor')} "
            "<sha>`, or remove it"
        )
    return value


def _required_secret(config: pulumi.Config, name: str, command: str) -> Secret:
    secret = _optional_secret(config, name)
    if secret is None:
        raise ConfigError(f"{_key(name)}: missing; set it: {command}")
    return secret


def _optional_secret(config: pulumi.Config, name: str) -> Secret | None:
    value = config.get(name)
    if value is not None and not value.strip():
        raise ConfigError(
            f"{_key(name)}: is empty; set the token with `pulumi config set --secret {_key(name)}`"
        )
    return None if value is None else Secret(value.strip())
