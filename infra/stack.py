"""The whole stack: read the config, declare every component, wire them together, export outputs."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra import codeowners
from infra import config as stack_config
from infra.app_url import app_url_command, load_balancer_service
from infra.branch_protection import BranchProtection, BranchProtectionArgs
from infra.ci_preview import PreviewAccess, PreviewAccessArgs, PreviewGate, check_gate
from infra.cluster import Cluster, ClusterArgs
from infra.config import ConfigError, StackConfig
from infra.deploy_keys import (
    DeployKeys,
    DeployKeysArgs,
    HookRanges,
    github_git_ranges,
    github_hook_ranges,
    github_known_hosts,
)
from infra.gitops import GitOps, GitOpsArgs
from infra.jenkins.controller import JenkinsServer, JenkinsServerArgs
from infra.network import Network, NetworkArgs
from infra.registry import Registry, RegistryArgs, ecr_repository_name
from infra.signing_switch import SigningSwitch
from infra.trust_anchor import TrustAnchor, TrustAnchorArgs, branch_head
from jenkins import environments

PROJECT_DIR = Path(__file__).resolve().parent.parent


class ReleaseSideError(Exception):
    """The stack `releaseFrom` names cannot release this stack's environment; the message says why."""


def head_commit() -> str:
    """The commit of this checkout: the day-0 image is built from it and tagged with it."""
    result = subprocess.run(
        ["git", "-C", str(PROJECT_DIR), "rev-parse", "--verify", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ConfigError(
            "gitops-eks:registry.day0Image: needs a git checkout with a commit to tag the image with; "
            "run `pulumi up` from a clone, or set it to false"
        )
    return result.stdout.strip()


def build() -> None:
    """Declare the stack. Config errors surface before any data source is read; the preview gate's
    checks (GitHub's and AWS's answers) before any resource is declared."""
    config = stack_config.load()
    day0_commit = head_commit() if config.registry is not None and config.registry.day0_image else None
    app_url = app_url_command(load_balancer_service(PROJECT_DIR / "k8s" / "base"))
    checked = _release_checks(config, day0_commit) if config.releases else None
    released_by = None if checked is not None else read_release_side(config)
    # A later environment's stack declares nothing until the release side's outputs are checked: a
    # refusal then changes nothing, with `--skip-preview` too.
    after = (
        None
        if released_by is None
        else pulumi.ResourceOptions(depends_on=[released_by.key.apply(lambda _: released_by.reference)])
    )

    network = Network(
        "network",
        NetworkArgs(
            cidr_block=config.network.cidr_block,
            availability_zones=config.network.availability_zones,
            nat_gateways=config.network.nat_gateways,
        ),
        opts=after,
    )
    provider, kubeconfig, in_cluster_after = _kubernetes(config, network, after)
    known_hosts = github_known_hosts()
    hook_ranges = github_hook_ranges()
    keys = DeployKeys(
        "deploy-keys",
        DeployKeysArgs(repository_name=config.repository_name, releases=config.releases),
        opts=after,
    )
    if checked is not None:
        signing_public_key = keys.signing_public_key
        source_after = _release_side(config, checked, network, keys, known_hosts, hook_ranges)
    else:
        assert released_by is not None and config.release_from is not None
        signing_public_key = released_by.key
        source_after = []
        pulumi.export("releaseFrom", config.release_from)
    gitops = GitOps(
        "gitops",
        GitOpsArgs(
            config=config.flux,
            repository=config.repository,
            branch=config.branch,
            environment=config.environment,
            provider=provider,
            identity=keys.flux_private_key,
            identity_pub=keys.flux_public_key,
            signing_public_key=signing_public_key,
            known_hosts=known_hosts,
            hook_ranges=hook_ranges,
            commit_status_token=(
                None if config.commit_status_token is None else config.commit_status_token.reveal()
            ),
            # Safe destroy: everything Flux created (the app's load balancer, the Receiver's) must be
            # pruned while the nodes that run Flux, the cluster and its VPC still exist.
            outlived_by=in_cluster_after,
            # Flux's first reconcile finds the bot-signed tip, not the unsigned head it would refuse.
            source_after=source_after,
            receiver_source_cidr=None if config.byo_cluster else config.network.cidr_block,
        ),
        opts=after,
    )
    pulumi.export("environment", config.environment)
    pulumi.export("kubeconfig", kubeconfig)
    pulumi.export("fluxWebhookUrl", gitops.webhook_url)
    # Run it once Flux has applied k8s/ (README, "Check that it works").
    pulumi.export("appUrlCommand", app_url)


@dataclass(frozen=True)
class ReleaseChecks:
    """What the release side's stack reads from GitHub and git before it declares anything."""

    day0_commit: str | None
    gate: PreviewGate | None
    head: str


def _release_checks(config: StackConfig, day0_commit: str | None) -> ReleaseChecks:
    # What GitHub and AWS say about the preview gate, checked before any resource is declared.
    gate = (
        check_gate(config.preview, config.owner, config.repository_name) if config.preview.enabled else None
    )
    # The reviewers are real GitHub users by now; the code owners file must name them.
    codeowners.check(config.preview.reviewers)
    return ReleaseChecks(day0_commit, gate, branch_head(config.repository_name, config.branch))


def _release_side(
    config: StackConfig,
    checked: ReleaseChecks,
    network: Network,
    keys: DeployKeys,
    known_hosts: str,
    hook_ranges: HookRanges,
) -> list[pulumi.Resource]:
    """The release side, in the first environment's stack only: the registry, the trust anchor and its
    signing switch, Jenkins, the branch ruleset and the preview gate. Returns what Flux's source waits
    for."""
    assert config.jenkins is not None and config.registry is not None and config.pulls_token is not None
    head = checked.head
    registry = Registry(
        "registry",
        RegistryArgs(
            repository_name=ecr_repository_name(pulumi.get_stack(), config.repository_name),
            keep_images=config.registry.keep_images,
            day0_commit=checked.day0_commit,
        ),
    )
    anchor = TrustAnchor(
        "trust-anchor",
        TrustAnchorArgs(
            repository=config.repository,
            branch=config.branch,
            head=config.trust_anchor or head,
            pinned=config.trust_anchor is not None,
        ),
    )
    # Flux deploys only tips the bot signed: give it one now, on the anchor, so day 0 has a deploy.
    switch = SigningSwitch(
        "trust-anchor-switch",
        url=f"git@github.com:{config.repository}.git",
        branch=config.branch,
        anchor=anchor.commit,
        head=head,
        deploy_key=keys.jenkins_private_key,
        known_hosts=known_hosts,
        signing_key=keys.signing_private_key,
        opts=pulumi.ResourceOptions(parent=anchor, depends_on=[keys.jenkins_deploy_key]),
    )
    jenkins = JenkinsServer(
        "jenkins",
        JenkinsServerArgs(
            config=config.jenkins,
            repository=config.repository,
            branch=config.branch,
            environment=config.environment,
            stack_name=pulumi.get_stack(),
            region=config.region,
            vpc_id=network.vpc_id,
            public_subnet_ids=network.public_subnet_ids,
            private_subnet_ids=network.private_subnet_ids,
            ecr_repository_arn=registry.repository_arn,
            ecr_repository_url=registry.repository_url,
            deploy_private_key=keys.jenkins_private_key,
            checkout_private_key=keys.checkout_private_key,
            known_hosts=known_hosts,
            hook_ranges=hook_ranges,
            git_ranges=github_git_ranges(),
            trust_anchor=anchor.commit,
            signing_private_key=keys.signing_private_key,
            signing_public_key=keys.signing_public_key,
            pulls_token=config.pulls_token.reveal(),
        ),
    )
    BranchProtection(
        "branch-protection",
        BranchProtectionArgs(
            repository_name=config.repository_name,
            branch=config.branch,
            required_approvals=config.required_approvals,
        ),
    )
    if checked.gate is not None:
        preview = PreviewAccess(
            "preview",
            PreviewAccessArgs(
                config=config.preview,
                gate=checked.gate,
                owner=config.owner,
                repository_name=config.repository_name,
                region=config.region,
            ),
        )
        pulumi.export("previewRoleArn", preview.role.arn)

    pulumi.export("ecrRepositoryUrl", registry.repository_url)
    pulumi.export("jenkinsUrl", jenkins.url)
    pulumi.export("trustAnchor", anchor.commit)
    pulumi.export("trustAnchorUrn", anchor.urn_to_replace)
    pulumi.export("signingSwitch", switch.outcome)
    pulumi.export("signingSwitchCommit", switch.commit)
    pulumi.export("jenkinsAdminPasswordSecret", jenkins.admin_password_secret_name)
    pulumi.export("jenkinsDeployKeySecret", jenkins.deploy_key_secret_name)
    # Public: what an operator compares with `git log --show-signature` and Flux's SourceVerified reason.
    pulumi.export("botSigningKeyFingerprint", keys.signing_key_fingerprint)
    # Public, for the later environments' stacks (releaseFrom): the key their Flux verifies commits with,
    # and the repository and branch it writes their overlays on (RELEASE_SIDE_OUTPUTS).
    pulumi.export("botSigningPublicKey", keys.signing_public_key)
    pulumi.export("repository", config.repository)
    pulumi.export("branch", config.branch)
    # `aws ssm start-session --document-name <this>`: the controller shell, logged (docs/jenkins-agents.md).
    pulumi.export("jenkinsSessionDocument", jenkins.session_document_name)
    pulumi.export("jenkinsAgentsGroup", jenkins.agents.group_name)
    pulumi.export("jenkinsReleaseAgentsGroup", jenkins.release_agents.group_name)
    if config.jenkins.hostname is not None:  # what the operator's DNS record for it points at
        pulumi.export("jenkinsLoadBalancer", jenkins.load_balancer_dns_name)
    if registry.day0_image is not None:
        pulumi.export("day0Image", registry.day0_image)
    # Flux's first reconcile finds the bot-signed tip, not the unsigned head it would refuse.
    return [switch]


@dataclass(frozen=True)
class ReleasedBy:
    """The release side's stack as a later environment's stack reads it."""

    reference: pulumi.StackReference
    key: pulumi.Output[str]
    """The bot's public key, once `check_release_side` accepted the stack's outputs."""


# What a later environment's stack reads from the release side's (exported by `build` there).
RELEASE_SIDE_OUTPUTS = ("botSigningPublicKey", "environment", "ecrRepositoryUrl", "repository", "branch")


def read_release_side(config: StackConfig) -> ReleasedBy:
    """The release side's stack (`releaseFrom`) and its bot key, checked against this stack."""
    assert config.release_from is not None
    reference = pulumi.StackReference("release-side", stack_name=config.release_from)
    account = aws.get_caller_identity_output().account_id
    outputs = [reference.get_output(name) for name in RELEASE_SIDE_OUTPUTS]
    key = pulumi.Output.all(account, *outputs).apply(
        lambda v: check_release_side(config, v[0], dict(zip(RELEASE_SIDE_OUTPUTS, v[1:], strict=True)))
    )
    return ReleasedBy(reference, key)


def check_release_side(config: StackConfig, account: str, outputs: Mapping[str, object]) -> str:
    """The release side's public key; ReleaseSideError naming the stack and what to do when its outputs
    do not make it the release side of this stack's environment, branch and account."""
    first = environments.read(PROJECT_DIR)[0]
    where = f"gitops-eks:releaseFrom {config.release_from}"
    missing = [name for name in RELEASE_SIDE_OUTPUTS if not isinstance(outputs.get(name), str)]
    if missing:
        raise ReleaseSideError(
            f"{where}: the stack exports no {', '.join(missing)}, so it is not the release side of this "
            "version: run `pulumi up` in it from this checkout first (or, if it was destroyed, create it "
            "again), then `pulumi up` here"
        )
    released, registry = str(outputs["environment"]), str(outputs["ecrRepositoryUrl"])
    if released != first:
        raise ReleaseSideError(
            f"{where}: that stack deploys {released!r}, not {first!r}, the first environment of "
            f"{environments.FILE}, whose stack releases every environment; name the {first} stack"
        )
    for key, mine in (("repository", config.repository), ("branch", config.branch)):
        if outputs[key] != mine:
            raise ReleaseSideError(
                f"gitops-eks:{key}: {mine!r}, but the release side {config.release_from} writes "
                f"{outputs[key]!r}, so no promotion would ever reach this stack's Flux; set it: "
                f"`pulumi config set gitops-eks:{key} {outputs[key]}`"
            )
    owner = registry.split(".", 1)[0]
    if owner != account:
        raise ReleaseSideError(
            f"{where}: its registry {registry} is in AWS account {owner}, this stack in {account}; the "
            f"{config.environment} nodes pull with the account's own ECR read access, which another "
            "account's repository refuses; create both stacks in one account"
        )
    return str(outputs["botSigningPublicKey"])


def _kubernetes(
    config: StackConfig, network: Network, opts: pulumi.ResourceOptions | None
) -> tuple[k8s.Provider, pulumi.Output[str], list[pulumi.Resource]]:
    """The Kubernetes provider, the kubeconfig (secret) and what in-cluster resources must outlive."""
    if config.kubeconfig is not None:
        kubeconfig = pulumi.Output.secret(config.kubeconfig.reveal())
        provider = k8s.Provider(
            "byo-cluster", kubeconfig=kubeconfig, enable_server_side_apply=True, opts=opts
        )
        return provider, kubeconfig, []
    assert config.cluster is not None  # load() guarantees exactly one of kubeconfig and cluster
    cluster = Cluster(
        "cluster",
        ClusterArgs(
            config=config.cluster,
            vpc_id=network.vpc_id,
            public_subnet_ids=network.public_subnet_ids,
            private_subnet_ids=network.private_subnet_ids,
        ),
        opts=opts,
    )
    return cluster.provider, cluster.kubeconfig, [cluster.eks, cluster.node_group, network.vpc]
