"""Stack config: the real Pulumi.dev.yaml loads; every bad value is refused, naming the key, before the
program declares anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from infra import config
from infra.config import (
    ClusterConfig,
    FluxConfig,
    JenkinsConfig,
    NetworkConfig,
    PreviewConfig,
    RegistryConfig,
)
from tests.infra.conftest import (
    DELETE,
    OPERATOR_CIDRS,
    apply_overrides,
    config_error,
    dev_config,
    flatten,
)

CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
KUBECONFIG = json.dumps(
    {
        "apiVersion": "v1",
        "clusters": [{"name": "k", "cluster": {"server": "https://k8s.example.internal"}}],
        "contexts": [{"name": "k", "context": {"cluster": "k", "user": "k"}}],
        "users": [{"name": "k", "user": {"token": "s3cr3t-token-value"}}],
    }
)


def load(
    overrides: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
    secrets: tuple[str, ...] = ("kubeconfig", "commitStatusToken", "pullsToken"),
    stack: str = "dev",
) -> config.StackConfig:
    """Load config as `stack` (the environment's default); `secrets` are marked as set with `--secret`
    (full or project-relative keys)."""
    values = apply_overrides(dev_config() if base is None else base, overrides or {})
    keys = [k if ":" in k else f"gitops-eks:{k}" for k in secrets]
    pulumi.runtime.set_all_config(flatten(values), keys)
    return config.load(stack)


def test_dev_stack_file_loads_into_typed_config() -> None:
    loaded = load()
    assert loaded.repository == "example-org/hello-gitops"
    assert (loaded.owner, loaded.repository_name) == ("example-org", "hello-gitops")
    assert loaded.branch == "main"
    assert loaded.region == "us-east-1"
    assert loaded.cluster == ClusterConfig("1.35", "t3.medium", 2, 1, 3, tuple(OPERATOR_CIDRS))
    assert loaded.jenkins == JenkinsConfig("t3.medium", 30, tuple(OPERATOR_CIDRS))
    assert loaded.flux == FluxConfig("0.58.1", "1m")
    assert loaded.network == NetworkConfig("10.0.0.0/16", 2, 1)
    assert loaded.registry == RegistryConfig(30, False)
    assert loaded.preview == PreviewConfig(("example-maintainer",), "preview", None)
    assert loaded.kubeconfig is None and not loaded.byo_cluster
    assert loaded.commit_status_token is None


def test_minimal_config_takes_the_documented_defaults() -> None:
    loaded = load(
        base={
            "aws:region": "eu-west-1",
            "github:owner": "acme",
            "gitops-eks:repository": "acme/app",
            "gitops-eks:cluster": {"publicAccessCidrs": []},
            "gitops-eks:jenkins": {"allowedCidrs": ["100.20.0.0/24"]},
            "gitops-eks:preview": {"reviewers": ["octocat"]},
            "gitops-eks:pullsToken": "github_pat_pulls",
        }
    )
    assert loaded.branch == "main"
    assert loaded.preview == PreviewConfig(("octocat",))
    assert loaded.cluster == ClusterConfig("1.35", "t3.medium", 2, 1, 3, ())
    assert loaded.jenkins == JenkinsConfig("t3.medium", 30, ("100.20.0.0/24",))
    assert loaded.flux == FluxConfig("0.58.1", "1m")
    assert loaded.network == NetworkConfig()
    assert loaded.registry == RegistryConfig()


def test_jenkins_tls_settings_load() -> None:
    loaded = load({"jenkins.certificateArn": CERTIFICATE, "jenkins.hostname": "ci.example.org"})
    assert (loaded.jenkins.certificate_arn, loaded.jenkins.hostname) == (CERTIFICATE, "ci.example.org")
    assert (load().jenkins.certificate_arn, load().jenkins.hostname) == (None, None)


def test_cidrs_are_kept_in_canonical_form_and_ipv6_is_accepted() -> None:
    loaded = load({"jenkins.allowedCidrs": ["2600:1F18::/36", "100.20.0.7/32"]})
    assert loaded.jenkins.allowed_cidrs == ("2600:1f18::/36", "100.20.0.7/32")


def test_one_nat_per_zone_is_accepted() -> None:
    loaded = load({"network": {"availabilityZones": 3, "natGateways": 3}})
    assert loaded.network == NetworkConfig("10.0.0.0/16", 3, 3)


def test_byo_kubeconfig_replaces_the_cluster_object_and_stays_secret() -> None:
    loaded = load({"cluster": DELETE, "kubeconfig": KUBECONFIG})
    assert loaded.cluster is None and loaded.byo_cluster
    assert loaded.kubeconfig is not None and loaded.kubeconfig.reveal() == KUBECONFIG
    assert "s3cr3t" not in repr(loaded)
    assert "s3cr3t" not in repr(loaded.kubeconfig)


WORLD = "is open to the world"

BAD_CONFIG = {
    # repository
    "repository missing": (
        {"repository": DELETE},
        "gitops-eks:repository: missing; set the GitHub repository",
    ),
    "repository without owner": (
        {"repository": "hello-gitops"},
        "gitops-eks:repository: 'hello-gitops' is not valid",
    ),
    "repository as URL": (
        {"repository": "https://github.com/a/b"},
        "gitops-eks:repository: 'https://github.com/a/b'",
    ),
    "repository with three parts": ({"repository": "a/b/c"}, "gitops-eks:repository: 'a/b/c' is not valid"),
    "repository dot-dot": ({"repository": "a/.."}, "gitops-eks:repository: 'a/..' is not valid"),
    "github owner differs": (
        {"github:owner": "someone-else"},
        "github:owner: 'someone-else' differs from the owner",
    ),
    "github owner missing": (
        {"github:owner": DELETE},
        "github:owner: missing; set it to the owner in gitops-eks:repository: "
        "`pulumi config set github:owner example-org`",
    ),
    # pulumi-github v6.15.0 `base_url`: GitHub Enterprise Server or GHE.com (data residency) hosts. Their
    # Actions tokens come from another issuer and their SSH host keys are not github.com's.
    "GitHub Enterprise Server": (
        {"github:baseUrl": "https://ghes.example.com/api/v3/"},
        "github:baseUrl: 'https://ghes.example.com/api/v3/' is not github.com; ",
    ),
    "GHE.com with data residency": (
        {"github:baseUrl": "https://api.octocorp.ghe.com/"},
        "github:baseUrl: 'https://api.octocorp.ghe.com/' is not github.com; ",
    ),
    "branch option-like": ({"branch": "-f"}, "gitops-eks:branch: '-f' is not valid"),
    "branch with dot-dot": ({"branch": "a..b"}, "gitops-eks:branch: 'a..b' is not valid"),
    "region missing": ({"aws:region": DELETE}, "aws:region: missing"),
    "region malformed": ({"aws:region": "virginia"}, "aws:region: 'virginia' is not an AWS region"),
    # jenkins.allowedCidrs
    "jenkins missing": ({"jenkins": DELETE}, "gitops-eks:jenkins: missing"),
    "jenkins as string": ({"jenkins": "t3.medium"}, "gitops-eks:jenkins: must be an object (YAML mapping)"),
    "jenkins as list": ({"jenkins": ["t3.medium"]}, "gitops-eks:jenkins: must be an object with keys"),
    "allowedCidrs missing": (
        {"jenkins.allowedCidrs": DELETE},
        "gitops-eks:jenkins.allowedCidrs: missing; list the CIDRs that may reach Jenkins",
    ),
    "allowedCidrs empty": ({"jenkins.allowedCidrs": []}, "gitops-eks:jenkins.allowedCidrs: is empty"),
    "allowedCidrs a string": (
        {"jenkins.allowedCidrs": "203.0.113.0/24"},
        "gitops-eks:jenkins.allowedCidrs: must be a list of CIDRs, got str",
    ),
    "allowedCidrs world v4": (
        {"jenkins.allowedCidrs": ["100.20.0.0/24", "0.0.0.0/0"]},
        "gitops-eks:jenkins.allowedCidrs[1]: '0.0.0.0/0' is open to the world; "
        "list the CIDRs that may reach Jenkins",
    ),
    "allowedCidrs world v6": (
        {"jenkins.allowedCidrs": ["::/0"]},
        f"gitops-eks:jenkins.allowedCidrs[0]: '::/0' {WORLD}",
    ),
    "allowedCidrs not a CIDR": (
        {"jenkins.allowedCidrs": ["office/24"]},
        "gitops-eks:jenkins.allowedCidrs[0]: 'office/24' is not a CIDR",
    ),
    "allowedCidrs bare address": (
        {"jenkins.allowedCidrs": ["203.0.113.7"]},
        "gitops-eks:jenkins.allowedCidrs[0]: '203.0.113.7' is not a CIDR (like 203.0.113.0/24)",
    ),
    "allowedCidrs prefix too long": (
        {"jenkins.allowedCidrs": ["10.0.0.0/33"]},
        "gitops-eks:jenkins.allowedCidrs[0]: '10.0.0.0/33' is not a CIDR",
    ),
    "allowedCidrs host bits": (
        {"jenkins.allowedCidrs": ["203.0.113.7/24"]},
        "gitops-eks:jenkins.allowedCidrs[0]: '203.0.113.7/24' has host bits set; "
        "did you mean 203.0.113.0/24?",
    ),
    "allowedCidrs number": (
        {"jenkins.allowedCidrs": [42]},
        "gitops-eks:jenkins.allowedCidrs[0]: 42 is not a CIDR",
    ),
    "jenkins typo": ({"jenkins.allowedCidr": ["10.0.0.0/8"]}, "gitops-eks:jenkins.allowedCidr: unknown key"),
    "jenkins volume too small": (
        {"jenkins.volumeSize": 8},
        "gitops-eks:jenkins.volumeSize: 8 is out of range",
    ),
    "jenkins instance type": (
        {"jenkins.instanceType": "big"},
        "gitops-eks:jenkins.instanceType: 'big' is not valid",
    ),
    # cluster
    "cluster missing": ({"cluster": DELETE}, "gitops-eks:cluster: missing"),
    "publicAccessCidrs missing": (
        {"cluster.publicAccessCidrs": DELETE},
        "gitops-eks:cluster.publicAccessCidrs: missing; "
        "list the CIDRs that may reach the Kubernetes API, or [] to allow none",
    ),
    "publicAccessCidrs world": (
        {"cluster.publicAccessCidrs": ["0.0.0.0/0"]},
        f"gitops-eks:cluster.publicAccessCidrs[0]: '0.0.0.0/0' {WORLD}; "
        "list the CIDRs that may reach the Kubernetes API",
    ),
    "min above desired": (
        {"cluster.minSize": 3, "cluster.desiredSize": 2},
        "gitops-eks:cluster.desiredSize: sizes must satisfy minSize <= desiredSize <= maxSize, "
        "got 3 <= 2 <= 3",
    ),
    "desired above max": (
        {"cluster.desiredSize": 4},
        "minSize <= desiredSize <= maxSize, got 1 <= 4 <= 3",
    ),
    "min zero": ({"cluster.minSize": 0}, "gitops-eks:cluster.minSize: 0 is out of range; use 1 to 100"),
    "max too large": (
        {"cluster.maxSize": 500},
        "gitops-eks:cluster.maxSize: 500 is out of range; use 1 to 100",
    ),
    "size as string": (
        {"cluster.desiredSize": "2"},
        "gitops-eks:cluster.desiredSize: must be an integer, got str '2'",
    ),
    "size as bool": (
        {"cluster.desiredSize": True},
        "gitops-eks:cluster.desiredSize: must be an integer, got bool",
    ),
    "size as float": (
        {"cluster.maxSize": 2.5},
        "gitops-eks:cluster.maxSize: must be an integer, got float 2.5",
    ),
    "version as number": (
        {"cluster.kubernetesVersion": 1.33},
        "gitops-eks:cluster.kubernetesVersion: must be a string",
    ),
    "version malformed": (
        {"cluster.kubernetesVersion": "v1.33"},
        "gitops-eks:cluster.kubernetesVersion: 'v1.33'",
    ),
    "cluster typo": (
        {"cluster.desiredsize": 2},
        "gitops-eks:cluster.desiredsize: unknown key (check the spelling)",
    ),
    "kubeconfig and cluster": ({"kubeconfig": KUBECONFIG}, "set either gitops-eks:kubeconfig"),
    "certificate not an ARN": (
        {"jenkins.certificateArn": "jenkins.example.com", "jenkins.hostname": "jenkins.example.com"},
        "gitops-eks:jenkins.certificateArn: 'jenkins.example.com' is not valid; use an ACM certificate ARN",
    ),
    "certificate from IAM": (
        {"jenkins.certificateArn": "arn:aws:iam::123456789012:server-certificate/jenkins"},
        "gitops-eks:jenkins.certificateArn: 'arn:aws:iam::123456789012:server-certificate/jenkins' is not",
    ),
    "certificate in another region": (
        {
            "jenkins.certificateArn": CERTIFICATE.replace("us-east-1", "eu-west-1"),
            "jenkins.hostname": "j.example.com",
        },
        "gitops-eks:jenkins.certificateArn: the certificate is in eu-west-1, the stack in us-east-1",
    ),
    "certificate without hostname": (
        {"jenkins.certificateArn": CERTIFICATE},
        "gitops-eks:jenkins.hostname: missing; with gitops-eks:jenkins.certificateArn set",
    ),
    "hostname a URL": (
        {"jenkins.hostname": "https://jenkins.example.com/"},
        "gitops-eks:jenkins.hostname: 'https://jenkins.example.com/' is not valid; use a DNS name",
    ),
    "hostname not qualified": (
        {"jenkins.hostname": "jenkins"},
        "gitops-eks:jenkins.hostname: 'jenkins' is not",
    ),
    "certificate as list": (
        {"jenkins.certificateArn": [CERTIFICATE]},
        "gitops-eks:jenkins.certificateArn: must be a string",
    ),
    # preview
    # Previews are on unless turned off, so the whole object missing still asks for the reviewers.
    "preview missing": ({"preview": DELETE}, "gitops-eks:preview.reviewers: missing"),
    "no reviewers": ({"preview.reviewers": DELETE}, "gitops-eks:preview.reviewers: missing"),
    "enabled not a boolean": ({"preview.enabled": "no"}, "gitops-eks:preview.enabled: must be true or false"),
    "enterprise not a boolean": (
        {"preview.githubEnterprise": "yes"},
        "gitops-eks:preview.githubEnterprise: must be true or false",
    ),
    "too many reviewers with previews off": (
        {"preview.enabled": False, "preview.reviewers": [f"user{i}" for i in range(7)]},
        "gitops-eks:preview.reviewers: must be a list of 1 to 6",
    ),
    "empty reviewers": ({"preview.reviewers": []}, "gitops-eks:preview.reviewers: must be a list of 1 to 6"),
    # GitHub takes at most 6 users per environment (REST API, "Create or update an environment").
    "seven reviewers": (
        {"preview.reviewers": [f"user{i}" for i in range(7)]},
        "gitops-eks:preview.reviewers: must be a list of 1 to 6",
    ),
    "reviewer not a login": (
        {"preview.reviewers": ["ok", "-bad-"]},
        "gitops-eks:preview.reviewers[1]: '-bad-' is not a GitHub login",
    ),
    # GitHub logins are case-insensitive: `Octocat` and `octocat` are one account, counted twice
    # against the limit of 6 and sent twice to GitHub.
    "reviewer listed twice": (
        {"preview.reviewers": ["octocat", "hubot", "Octocat"]},
        "gitops-eks:preview.reviewers[2]: 'Octocat' is listed twice",
    ),
    "environment name": (
        {"preview.environment": "pre view"},
        "gitops-eks:preview.environment: 'pre view' is not valid",
    ),
    "oidc provider arn for another issuer": (
        {"preview.oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/gitlab.com"},
        "gitops-eks:preview.oidcProviderArn: 'arn:aws:iam::123456789012:oidc-provider/gitlab.com' is not",
    ),
    "preview typo": ({"preview.reviewer": ["x"]}, "gitops-eks:preview.reviewer: unknown key"),
    # flux, network, registry
    "flux chart unpinned": (
        {"flux.chartVersion": "latest"},
        "gitops-eks:flux.chartVersion: 'latest' is not valid",
    ),
    "flux interval": ({"flux.interval": "1 minute"}, "gitops-eks:flux.interval: '1 minute' is not valid"),
    "flux typo": ({"flux.intervall": "1m"}, "gitops-eks:flux.intervall: unknown key"),
    "no NAT": ({"network.natGateways": 0}, "gitops-eks:network.natGateways: 0 is out of range; use 1 to 2"),
    "NAT count between": (
        {"network": {"availabilityZones": 3, "natGateways": 2}},
        "gitops-eks:network.natGateways: 2 is not 1 (one shared NAT) or 3 (one per zone)",
    ),
    "one zone": ({"network.availabilityZones": 1}, "gitops-eks:network.availabilityZones: 1 is out of range"),
    "public VPC range": (
        {"network.cidrBlock": "8.8.0.0/16"},
        "gitops-eks:network.cidrBlock: '8.8.0.0/16' must be",
    ),
    "VPC range too big": (
        {"network.cidrBlock": "10.0.0.0/8"},
        "gitops-eks:network.cidrBlock: '10.0.0.0/8' must be",
    ),
    "network typo": ({"network.natGateway": 1}, "gitops-eks:network.natGateway: unknown key"),
    "keep no images": ({"registry.keepImages": 0}, "gitops-eks:registry.keepImages: 0 is out of range"),
    "day0 not bool": ({"registry.day0Image": "yes"}, "gitops-eks:registry.day0Image: must be true or false"),
    # GitHub takes 0 to 10 (OpenAPI schema repository-rule-pull-request, `required_approving_review_count`
    # minimum 0, maximum 10; terraform-provider-github's ruleset resource: `validation.IntBetween(0, 10)`).
    **{
        f"approvals {text!r}": (
            {"requiredApprovals": text},
            f"gitops-eks:requiredApprovals: {text!r} is not valid; use a whole number from 0 to 10",
        )
        # Pulumi hands every scalar to the program as text.
        for text in ("11", "-1", "1.5", "true", "one", "", " 1", "٣")
    },
}


@pytest.mark.parametrize(("overrides", "message"), BAD_CONFIG.values(), ids=BAD_CONFIG.keys())
def test_bad_config_is_refused_before_anything_is_declared(overrides: dict[str, Any], message: str) -> None:
    assert message in config_error(overrides, secrets=["kubeconfig"])


def test_a_github_base_url_from_the_environment_is_refused_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """pulumi-github v6.15.0 sdk/python/pulumi_github/config/vars.py: `baseUrl` falls back to the
    GITHUB_BASE_URL environment variable (provider/resources.go: EnvVars GITHUB_BASE_URL)."""
    monkeypatch.setenv("GITHUB_BASE_URL", "https://ghes.example.com/")
    message = config_error({})
    assert message.startswith("github:baseUrl: 'https://ghes.example.com/' is not github.com; ")
    assert message.endswith("`pulumi config rm github:baseUrl`, and unset GITHUB_BASE_URL")


@pytest.mark.parametrize(
    "kubeconfig",
    [
        "{not yaml: [",
        "clusters: []\ncontexts: []\nusers: []\ntoken: s3cr3t-token-value",
        "s3cr3t-token-value",
    ],
    ids=["unparsable", "empty lists", "scalar"],
)
def test_bad_byo_kubeconfig_is_refused_without_echoing_it(kubeconfig: str) -> None:
    message = config_error({"cluster": DELETE, "kubeconfig": kubeconfig}, secrets=["kubeconfig"])
    assert message.startswith("gitops-eks:kubeconfig: is not")
    assert "s3cr3t" not in message and "not yaml" not in message


PLAIN_CREDENTIALS = {
    "github:token": ({"github:token": "ghp_s3cr3t"}, []),
    "gitops-eks:kubeconfig": ({"cluster": DELETE, "kubeconfig": KUBECONFIG}, ["github:token"]),
    "gitops-eks:commitStatusToken": ({"commitStatusToken": "github_pat_s3cr3t"}, []),
}


@pytest.mark.parametrize(("key", "case"), PLAIN_CREDENTIALS.items(), ids=PLAIN_CREDENTIALS.keys())
def test_a_credential_set_without_secret_is_refused_naming_the_key(
    key: str, case: tuple[dict[str, Any], list[str]]
) -> None:
    """`pulumi config set` without `--secret` writes the value in clear into Pulumi.<stack>.yaml; the
    engine hands the program the list of secret keys (PULUMI_CONFIG_SECRET_KEYS, read by
    pulumi-language-python-exec into `pulumi.runtime.is_config_secret`)."""
    overrides, other_secrets = case
    message = config_error(overrides, secrets=other_secrets)
    assert message.startswith(f"{key}: is set in plain text")
    assert f"pulumi config set --secret {key}" in message
    assert "s3cr3t" not in message


def test_credentials_set_with_secret_load() -> None:
    loaded = load(
        {"cluster": DELETE, "kubeconfig": KUBECONFIG, "github:token": "ghp_x", "commitStatusToken": " t0k "},
        secrets=("kubeconfig", "commitStatusToken", "github:token", "pullsToken"),
    )
    assert loaded.kubeconfig is not None and loaded.kubeconfig.reveal() == KUBECONFIG
    assert loaded.commit_status_token is not None and loaded.commit_status_token.reveal() == "t0k"
    assert "t0k" not in repr(loaded)


def test_day0_image_outside_a_git_checkout_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from infra import stack

    monkeypatch.setattr(stack, "PROJECT_DIR", tmp_path)  # a directory git knows nothing about
    message = config_error({"registry.day0Image": True})
    assert message.startswith("gitops-eks:registry.day0Image: needs a git checkout with a commit")


def test_the_environment_defaults_to_the_stack_name_and_can_be_set() -> None:
    later = {"releaseFrom": "example-pulumi-org/gitops-eks/dev", **dict.fromkeys(config.RELEASE_KEYS, DELETE)}
    assert load().environment == "dev"
    assert load(later, stack="prod").environment == "prod"
    assert load({**later, "environment": "prod"}, stack="prod-eu").environment == "prod"
    assert load({"environment": "dev"}, stack="dev-eu").environment == "dev"


@pytest.mark.parametrize("value", ["staging", "Prod", "prod'", "", "dev/eu"])
def test_an_environment_without_an_overlay_is_refused_naming_the_key(value: str) -> None:
    message = config_error({"environment": value})
    assert message == (
        f"gitops-eks:environment: {value!r} is not an environment of k8s/environments.yaml (dev, prod); "
        "set one: `pulumi config set gitops-eks:environment <one of them>`, or add its overlay "
        f"k8s/overlays/{value} and list it"
    )


def test_a_stack_named_other_than_an_environment_is_told_to_set_one() -> None:
    with pytest.raises(config.ConfigError, match=r"'prod-eu' \(the stack's name, the default\) is not"):
        load(stack="prod-eu")
