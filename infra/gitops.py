"""Flux v2 in the cluster: the Flux Operator's chart and a `FluxInstance`, the app's sync objects, a GitHub
push webhook, and the deploy reports. Three components, one per concern: `FluxInstall`, `AppSync`,
`DeployReports`, under `GitOps`.

Flux follows `branch` of the repository over SSH with the read-only deploy key and applies the stack's
environment's overlay, `./k8s/overlays/<environment>` (over `k8s/base`).
Only source-, kustomize- and notification-controller run: Jenkins writes the image reference back to
git itself (no image automation), and nothing here is a HelmRelease.

Install: a Helm release installs the Flux Operator (chart `flux-operator`, whose version is the
operator's release), and a `FluxInstance` pins Flux itself to `FLUX_VERSION`, the release whose
controllers the test control plane builds (tools/). The operator renders that version's manifests from
its own image (`config/data/flux/v<version>/` of controlplaneio-fluxcd/flux-operator), so the chart
version and `FLUX_VERSION` together name exactly what runs.

Multi-tenancy lockdown (Flux's "Multi-tenancy lockdown" install docs; FluxInstance `cluster.multitenant`):
kustomize-controller is not cluster-admin, it impersonates. The app is a tenant: its namespace (with Pod
Security `restricted`) is declared here, outside `k8s/`; its GitRepository, Kustomization, Receiver,
Provider and Alert live in it (`--no-cross-namespace-refs` refuses references across namespaces), and the
Kustomization impersonates `APPLIER`, a ServiceAccount there bound to a Role that allows only the kinds
the overlays use. kustomize-controller impersonates `system:serviceaccount:<the Kustomization's
namespace>:<serviceAccountName>` (kustomize-controller, `kustomization_controller.go`,
`WithServiceAccount(..., obj.GetNamespace())`).

Deploy reports: a `github` Provider and an Alert on the Kustomization's events set a commit status on
each commit Flux applies (success, or failure with Flux's reason), with a token that can set commit
statuses only (`commit_status_token`, in a Secret under the key `token`, as notification-controller's
Provider docs require).

Signed deploys: the GitRepository verifies the OpenPGP signature of the commit it would deploy
(`spec.verify`, mode `HEAD`) against the public keys in the `COMMIT_SIGNERS` Secret, which holds the
bot's key alone. A tip nobody trusted signed is not turned into an artifact, so the Kustomization keeps
applying the last verified one (source-controller `verifySignature` in
internal/controller/gitrepository_controller.go at v1.9.3, which the FluxInstance installs and the test
control plane runs; docs/security.md has the trust model).

The webhook URL is computed, not read back from the Receiver's status: notification-controller serves
a Receiver at `/hook/` + hex(sha256(token + name + namespace)) (`Receiver.GetWebhookPath` in
fluxcd/notification-controller), so the path is known as soon as the token is, and a fresh `pulumi up`
registers the GitHub webhook in the same run.

Destroy order: every custom resource and the receiver's LoadBalancer Service depend on the Helm release
and the FluxInstance, so Pulumi deletes them while the controllers still run; the Kustomization's
finalizer prunes what Flux applied (including the app's load balancer) before the cluster goes. Every
in-cluster resource also depends directly on `GitOpsArgs.outlived_by` (cluster, node group, VPC): the
Python SDK does not hand a component's `depends_on` to its children, so the edge is declared on each of
them.

Upgrade in place: every resource keeps its name and is aliased to its URN under `GitOps` (where all of
them lived before the split), so Pulumi moves them instead of deleting the app. The Helm release keeps its
URN too: it changes chart (community `flux2` to `flux-operator`), which replaces it, and
`delete_before_replace` uninstalls the old chart first (its CRDs are kept by `helm.sh/resource-policy:
keep`, so the app's Flux objects survive) before the operator installs the new controllers over them.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from infra.config import FluxConfig
from infra.deploy_keys import HookRanges, signed_push_webhook
from jenkins import environments

NAMESPACE = "flux-system"
APP_NAMESPACE = "hello"
"""The app's namespace: k8s/base/kustomization.yaml's `namespace`, and the Kustomization's targetNamespace."""
CHART = "oci://ghcr.io/controlplaneio-fluxcd/charts/flux-operator"
"""The operator's chart (controlplaneio-fluxcd/flux-operator README, "Install the Flux Operator")."""
FLUX_VERSION = "2.9.3"
"""Flux release the FluxInstance pins; the test control plane builds the same controllers (tools/)."""
FLUX_REGISTRY = "ghcr.io/fluxcd"
FLUX_COMPONENTS = ("source-controller", "kustomize-controller", "notification-controller")
TENANT_DEFAULT_SERVICE_ACCOUNT = "default"
"""What a Kustomization without `serviceAccountName` impersonates: the tenant's `default` account, which
holds no permissions, so it applies nothing."""
ADMIN_BINDING = "cluster-reconciler"
"""Flux's ClusterRoleBinding of kustomize-controller to cluster-admin (flux2 manifests/rbac/reconciler.yaml);
the FluxInstance deletes it. The operator names it `cluster-reconciler-flux-system` (its roles'
`nameSuffix`); a kustomize patch target matches the name before the suffix too."""
IMPERSONATOR = "cluster-reconciler-impersonator"
GIT_AUTH = "git-auth"
COMMIT_SIGNERS = "commit-signers"
# source-controller v1.9 reads OpenPGP public keys from the Secret's keys that end in `.asc` (SSH keys
# from `.sshpub`), v1.8 every key as OpenPGP; `verify` has `mode` (HEAD, Tag, TagAndHEAD) and
# `secretRef` only in both (api/v1/gitrepository_types.go, GitRepositoryVerification).
SIGNER_KEY = "gitops-bot.asc"
VERIFY_MODE = "HEAD"
SOURCE_NAME = "app"
APPLIER = "flux-applier"
STATUS_PROVIDER = "github-status"
STATUS_AUTH = "github-status-token"
# The kinds the overlays apply, as Role rules (API group, resource). tests/infra/test_gitops_rbac.py checks
# that every kind `kubectl kustomize k8s/overlays/dev` renders is here, and nothing else is.
APP_KINDS = {
    "apps": ("deployments",),
    "": ("services",),
    "policy": ("poddisruptionbudgets",),
    "networking.k8s.io": ("networkpolicies",),
}
# Server-side apply is a PATCH (create on first apply); prune deletes; health checks and drift
# detection read.
APPLIER_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
# What the Kustomization's health checks (`wait: true`) read besides the app's own kinds: kstatus'
# Deployment reader lists the Deployment's ReplicaSets and their Pods, and an error there leaves the
# status Unknown until the timeout (fluxcd/cli-utils v1.2.2, the version kustomize-controller v1.9.4
# builds with: pkg/kstatus/polling/statusreaders/deployment.go and pod_controller.go). Read-only.
HEALTH_CHECK_READS = {"apps": ("replicasets",), "": ("pods",)}
HEALTH_CHECK_VERBS = ("get", "list", "watch")
# Pod Security Admission labels (kubernetes.io/docs/concepts/security/pod-security-admission):
# the API server refuses pods that break the `restricted` standard, and warns and audits the same.
POD_SECURITY_LABELS = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")
}
KUSTOMIZATION_NAME = "app"
KUSTOMIZATION_TIMEOUT = "5m"
RECEIVER_NAME = "github"
RECEIVER_AUTH = "receiver-token"
RECEIVER_PORT = 9292

# The Flux Operator itself needs no web UI: one server fewer with cluster-wide read rights. The operator is
# cluster-admin (the chart's `admin-clusterrole.yaml`) and namespace `edit` holders may create ResourceSets
# (`aggregate-clusterrole.yaml`): `multitenancy` makes it apply a ResourceSet that names no account as
# that namespace's `default` account (`--default-service-account`), which holds no permissions, instead
# of as itself.
CHART_VALUES = {
    "web": {"enabled": False},
    "multitenancy": {"enabled": True, "defaultServiceAccount": TENANT_DEFAULT_SERVICE_ACCOUNT},
}
INSTANCE_PATCHES = [
    # The lockdown: without cluster-admin, kustomize-controller may only impersonate (below), so every
    # Kustomization applies with the rights of its own service account. A strategic-merge `$patch:
    # delete`, as the operator's own shard kustomization removes objects (internal/builder/templates.go).
    {
        "target": {"kind": "ClusterRoleBinding", "name": ADMIN_BINDING},
        "patch": yaml.safe_dump(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": ADMIN_BINDING},
                "$patch": "delete",
            },
            sort_keys=False,
        ),
    },
]
FLUX_INSTANCE_SPEC = {
    "distribution": {"version": FLUX_VERSION, "registry": FLUX_REGISTRY},
    "components": list(FLUX_COMPONENTS),
    # The operator's multitenant profile (internal/builder/profiles.go `profileClusterMultitenant`):
    # --no-cross-namespace-refs=true, --no-remote-bases=true and --default-service-account.
    "cluster": {
        "multitenant": True,
        "tenantDefaultServiceAccount": TENANT_DEFAULT_SERVICE_ACCOUNT,
        "networkPolicy": True,
    },
    "kustomize": {"patches": INSTANCE_PATCHES},
}
"""The FluxInstance's spec (fluxcd.controlplane.io/v1); plane/fluxchart.py derives the test control
plane's flags and RBAC from it and from the operator's source at the chart's version."""
# What the deleted cluster-admin binding leaves kustomize-controller besides Flux's `crd-controller`.
IMPERSONATOR_RULES = [{"api_groups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]}]


def webhook_path(token: str, name: str = RECEIVER_NAME, namespace: str = APP_NAMESPACE) -> str:
    """The path notification-controller serves a Receiver on (same formula as Flux's GetWebhookPath)."""
    digest = hashlib.sha256(f"{token}{name}{namespace}".encode()).hexdigest()
    return f"/hook/{digest}"


@dataclass(frozen=True)
class GitOpsArgs:
    config: FluxConfig
    repository: str
    """GitHub `owner/name` Flux follows."""
    branch: str
    environment: str
    """The environment's name (config `environment`): its deploy reports' commit status context."""
    provider: k8s.Provider
    identity: pulumi.Input[str]
    """Flux's read-only deploy key (private, OpenSSH format; a Pulumi secret)."""
    identity_pub: pulumi.Input[str]
    signing_public_key: pulumi.Input[str]
    """The bot's OpenPGP public key (ASCII-armored): the only key whose signed commits Flux deploys."""
    known_hosts: str
    hook_ranges: HookRanges
    commit_status_token: pulumi.Input[str] | None = None
    """GitHub token that can set commit statuses only; None = no deploy reports."""
    receiver_source_cidr: str | None = None
    """Where the receiver's load balancer reaches the pod from (the VPC), admitted by a NetworkPolicy:
    Flux's chart only admits pods. None for a bring-your-own cluster, whose network we do not know."""
    source_after: Sequence[pulumi.Resource] = ()
    """What must be done before Flux first reads the branch: the commit that switches signing on
    (infra/signing_switch.py), so its first reconcile finds a tip it can verify."""
    outlived_by: Sequence[pulumi.Resource] = ()
    """What must still exist while Flux's objects are deleted (the cluster, its nodes, the VPC the load
    balancers live in); empty for a bring-your-own cluster, which Pulumi does not delete."""


@dataclass(frozen=True)
class Moved:
    """Where a component's resources lived before the split: directly under `GitOps`, named
    `<prefix>-<role>`. The alias makes Pulumi find each one under that URN and move it, not replace it."""

    gitops: pulumi.Resource
    prefix: str

    def alias(self, role: str) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            aliases=[pulumi.Alias(name=f"{self.prefix}-{role}", parent=self.gitops)]
        )


def _opts(*options: pulumi.ResourceOptions) -> pulumi.ResourceOptions:
    """The options merged left to right (lists such as depends_on and aliases add up)."""
    return functools.reduce(pulumi.ResourceOptions.merge, options)


class FluxInstall(pulumi.ComponentResource):
    """The Flux Operator (Helm release) and a FluxInstance: Flux `FLUX_VERSION`, multitenant, with
    kustomize-controller bound to impersonation only."""

    def __init__(self, name: str, args: GitOpsArgs, moved: Moved, opts: pulumi.ResourceOptions) -> None:
        super().__init__("gitops:infra:FluxInstall", name, None, opts)
        in_cluster = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=list(args.outlived_by)
        )
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": NAMESPACE},
            opts=_opts(in_cluster, moved.alias("namespace")),
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-flux",
            name="flux-operator",
            chart=CHART,
            version=args.config.chart_version,
            namespace=self.namespace.metadata.name,
            values=CHART_VALUES,
            atomic=True,
            timeout=600,
            # Replacing the community chart: uninstall it before the operator installs Flux over it.
            opts=_opts(in_cluster, moved.alias("flux"), pulumi.ResourceOptions(delete_before_replace=True)),
        )
        self.instance = k8s.apiextensions.CustomResource(
            f"{name}-flux-instance",
            api_version="fluxcd.controlplane.io/v1",
            kind="FluxInstance",
            # The operator accepts one FluxInstance, named `flux` (its CRD's validation rule). Pulumi
            # waits for a custom resource only when told (pulumi-kubernetes provider/pkg/metadata
            # overrides.go `ReadyCondition`): the Flux objects below need the CRDs the operator installs,
            # and without the wait their create retries for about 30 s only (await.go, 5 retries
            # backing off from 1 s), so they wait for the FluxInstance's `Ready`.
            metadata={
                "name": "flux",
                "namespace": self.namespace.metadata.name,
                "annotations": {"pulumi.com/waitFor": "condition=Ready"},
            },
            spec=FLUX_INSTANCE_SPEC,
            opts=_opts(in_cluster, pulumi.ResourceOptions(depends_on=[self.release])),
        )
        # After the release: on an upgrade from the community chart, whose uninstall deletes its own
        # ClusterRole and binding of the same name, these must be created once that is done.
        after_release = _opts(in_cluster, pulumi.ResourceOptions(depends_on=[self.release]))
        self.impersonator = k8s.rbac.v1.ClusterRole(
            f"{name}-impersonator",
            metadata={"name": IMPERSONATOR},
            rules=IMPERSONATOR_RULES,
            opts=after_release,
        )
        self.impersonator_binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-impersonator",
            metadata={"name": IMPERSONATOR},
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": IMPERSONATOR},
            subjects=[{"kind": "ServiceAccount", "name": "kustomize-controller", "namespace": NAMESPACE}],
            opts=_opts(after_release, pulumi.ResourceOptions(depends_on=[self.impersonator])),
        )
        self.register_outputs({"namespace": self.namespace.metadata.name})


class AppSync(pulumi.ComponentResource):
    """The app's tenant namespace and applier, its GitRepository and Kustomization, and the Receiver that
    GitHub's push webhook calls."""

    def __init__(
        self,
        name: str,
        args: GitOpsArgs,
        flux: FluxInstall,
        moved: Moved,
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__("gitops:infra:AppSync", name, None, opts)
        in_cluster = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=list(args.outlived_by)
        )
        after_flux = _opts(in_cluster, pulumi.ResourceOptions(depends_on=[flux.release, flux.instance]))
        namespace = flux.namespace.metadata.name

        self.app_namespace = k8s.core.v1.Namespace(
            f"{name}-app-namespace",
            metadata={
                "name": APP_NAMESPACE,
                "labels": POD_SECURITY_LABELS,
                # Flux's garbage collection skips objects annotated so (kustomize-controller
                # `deleteObjects` exclusions): a Kustomization that once applied this namespace
                # (k8s/namespace.yaml before it moved here) must never prune it.
                "annotations": {"kustomize.toolkit.fluxcd.io/prune": "disabled"},
            },
            opts=_opts(in_cluster, moved.alias("app-namespace")),
        )
        app_namespace = self.app_namespace.metadata.name
        self.applier = k8s.core.v1.ServiceAccount(
            f"{name}-applier",
            metadata={"name": APPLIER, "namespace": app_namespace},
            # Flux impersonates it; nothing ever needs a token for it.
            automount_service_account_token=False,
            opts=_opts(in_cluster, moved.alias("applier")),
        )
        self.applier_role = k8s.rbac.v1.Role(
            f"{name}-applier",
            metadata={"name": APPLIER, "namespace": app_namespace},
            rules=[
                {"api_groups": [group], "resources": list(resources), "verbs": list(APPLIER_VERBS)}
                for group, resources in APP_KINDS.items()
            ]
            + [
                {"api_groups": [group], "resources": list(resources), "verbs": list(HEALTH_CHECK_VERBS)}
                for group, resources in HEALTH_CHECK_READS.items()
            ],
            opts=_opts(in_cluster, moved.alias("applier")),
        )
        self.applier_binding = k8s.rbac.v1.RoleBinding(
            f"{name}-applier",
            metadata={"name": APPLIER, "namespace": app_namespace},
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "Role", "name": APPLIER},
            subjects=[{"kind": "ServiceAccount", "name": APPLIER, "namespace": APP_NAMESPACE}],
            opts=_opts(
                in_cluster,
                moved.alias("applier"),
                pulumi.ResourceOptions(depends_on=[self.applier, self.applier_role]),
            ),
        )

        self.git_secret = k8s.core.v1.Secret(
            f"{name}-git-auth",
            metadata={"name": GIT_AUTH, "namespace": app_namespace},
            type="Opaque",
            string_data={
                "identity": pulumi.Output.secret(args.identity),
                "identity.pub": args.identity_pub,
                "known_hosts": args.known_hosts,
            },
            opts=_opts(in_cluster, moved.alias("git-auth")),
        )
        self.signers_secret = k8s.core.v1.Secret(
            f"{name}-commit-signers",
            metadata={"name": COMMIT_SIGNERS, "namespace": app_namespace},
            type="Opaque",
            string_data={SIGNER_KEY: args.signing_public_key},
            opts=in_cluster,
        )
        self.git_repository = k8s.apiextensions.CustomResource(
            f"{name}-source",
            api_version="source.toolkit.fluxcd.io/v1",
            kind="GitRepository",
            metadata={"name": SOURCE_NAME, "namespace": app_namespace},
            spec={
                "interval": args.config.interval,
                "url": f"ssh://git@github.com/{args.repository}.git",
                "ref": {"branch": args.branch},
                "secretRef": {"name": self.git_secret.metadata.name},
                "verify": {"mode": VERIFY_MODE, "secretRef": {"name": self.signers_secret.metadata.name}},
            },
            opts=_opts(
                after_flux, moved.alias("source"), pulumi.ResourceOptions(depends_on=list(args.source_after))
            ),
        )
        self.kustomization = k8s.apiextensions.CustomResource(
            f"{name}-kustomization",
            api_version="kustomize.toolkit.fluxcd.io/v1",
            kind="Kustomization",
            metadata={"name": KUSTOMIZATION_NAME, "namespace": app_namespace},
            spec={
                "interval": args.config.interval,
                # Renaming the Kustomization would delete the old object, whose finalizer prunes its
                # whole inventory (the app): the name stays `app` and only the path moves. A new path
                # is applied first, then what left the inventory is pruned, so objects that the old
                # and the new path both render keep their identity (kustomize-controller v1.9.4
                # internal/controller/kustomization_controller.go: apply, then `inventory.Diff(old,
                # new)` to `prune`).
                "path": f"./{environments.overlay(args.environment)}",
                "prune": True,
                "wait": True,
                "timeout": KUSTOMIZATION_TIMEOUT,
                "sourceRef": {"kind": "GitRepository", "name": self.git_repository.metadata["name"]},
                "serviceAccountName": self.applier.metadata.name,
                "targetNamespace": APP_NAMESPACE,
            },
            # Without the binding, the first reconcile would fail on permissions; on destroy, the
            # applier must outlive the Kustomization whose finalizer prunes with its rights.
            opts=_opts(
                after_flux,
                moved.alias("kustomization"),
                pulumi.ResourceOptions(depends_on=[self.applier_binding]),
            ),
        )

        self.receiver_token = random.RandomPassword(
            f"{name}-receiver-token",
            length=40,
            special=False,
            opts=_opts(pulumi.ResourceOptions(parent=self), moved.alias("receiver-token")),
        )
        self.receiver_secret = k8s.core.v1.Secret(
            f"{name}-receiver-token",
            metadata={"name": RECEIVER_AUTH, "namespace": app_namespace},
            type="Opaque",
            string_data={"token": pulumi.Output.secret(self.receiver_token.result)},
            opts=_opts(in_cluster, moved.alias("receiver-token")),
        )
        self.receiver = k8s.apiextensions.CustomResource(
            f"{name}-receiver",
            api_version="notification.toolkit.fluxcd.io/v1",
            kind="Receiver",
            metadata={"name": RECEIVER_NAME, "namespace": app_namespace},
            spec={
                "type": "github",
                "events": ["ping", "push"],
                "secretRef": {"name": self.receiver_secret.metadata.name},
                "resources": [{"kind": "GitRepository", "name": self.git_repository.metadata["name"]}],
            },
            opts=_opts(after_flux, moved.alias("receiver")),
        )
        # The LB has only IPv4 addresses (A records), so GitHub can only come over IPv4.
        self.receiver_service = k8s.core.v1.Service(
            f"{name}-receiver",
            metadata={"name": "flux-webhook-receiver", "namespace": namespace},
            spec={
                "type": "LoadBalancer",
                "selector": {"app": "notification-controller"},
                "ports": [{"name": "http", "port": 80, "target_port": RECEIVER_PORT, "protocol": "TCP"}],
                "load_balancer_source_ranges": list(args.hook_ranges.ipv4),
            },
            opts=_opts(after_flux, moved.alias("receiver")),
        )

        if args.receiver_source_cidr is not None:
            # Flux's `allow-webhooks` policy admits other pods only; the load balancer's traffic
            # arrives from VPC addresses (the ELB's, or a node's after kube-proxy's SNAT).
            self.receiver_policy = k8s.networking.v1.NetworkPolicy(
                f"{name}-receiver",
                metadata={"name": "allow-webhook-receiver", "namespace": namespace},
                spec={
                    "pod_selector": {"match_labels": {"app": "notification-controller"}},
                    "policy_types": ["Ingress"],
                    "ingress": [
                        {
                            "from": [{"ip_block": {"cidr": args.receiver_source_cidr}}],
                            "ports": [{"port": RECEIVER_PORT, "protocol": "TCP"}],
                        }
                    ],
                },
                opts=_opts(after_flux, moved.alias("receiver")),
            )

        hostname = self.receiver_service.status.apply(_load_balancer_host)
        self.webhook_url: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(hostname, self.receiver_token.result).apply(
                lambda values: f"http://{values[0]}{webhook_path(values[1])}"
            )
        )
        self.webhook = signed_push_webhook(
            f"{name}-webhook",
            args.repository.split("/", 1)[1],
            self.webhook_url,
            self.receiver_token.result,
            _opts(pulumi.ResourceOptions(parent=self, depends_on=[self.receiver]), moved.alias("webhook")),
        )
        self.register_outputs({"webhook_url": self.webhook_url})


def status_context(environment: str) -> str:
    """The context of the commit status an environment's Flux posts for each revision it applies."""
    return f"gitops-eks/{environment}"


class DeployReports(pulumi.ComponentResource):
    """A commit status on each commit Flux applies: a `github` Provider and an Alert on the app's
    Kustomization (notification.toolkit.fluxcd.io/v1beta3, the version serving Provider and Alert)."""

    def __init__(
        self,
        name: str,
        args: GitOpsArgs,
        token: pulumi.Input[str],
        sync: AppSync,
        moved: Moved,
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__("gitops:infra:DeployReports", name, None, opts)
        in_cluster = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=[*args.outlived_by, sync.kustomization]
        )
        namespace = sync.app_namespace.metadata.name
        self.status_secret = k8s.core.v1.Secret(
            f"{name}-status-token",
            metadata={"name": STATUS_AUTH, "namespace": namespace},
            type="Opaque",
            string_data={"token": pulumi.Output.secret(token)},
            opts=_opts(in_cluster, moved.alias("status-token")),
        )
        self.status_provider = k8s.apiextensions.CustomResource(
            f"{name}-status-provider",
            api_version="notification.toolkit.fluxcd.io/v1beta3",
            kind="Provider",
            metadata={"name": STATUS_PROVIDER, "namespace": namespace},
            spec={
                "type": "github",
                "address": f"https://github.com/{args.repository}",
                "secretRef": {"name": self.status_secret.metadata.name},
                # One context per environment, known without reading the cluster (the default embeds
                # the Provider's UID): a CEL string literal (the environment's name holds no quote).
                "commitStatusExpr": f"'{status_context(args.environment)}'",
            },
            opts=_opts(in_cluster, moved.alias("status-provider")),
        )
        self.status_alert = k8s.apiextensions.CustomResource(
            f"{name}-status-alert",
            api_version="notification.toolkit.fluxcd.io/v1beta3",
            kind="Alert",
            metadata={"name": STATUS_PROVIDER, "namespace": namespace},
            spec={
                "providerRef": {"name": self.status_provider.metadata["name"]},
                # info passes every event through: a commit gets "applied" as well as failures.
                "eventSeverity": "info",
                "eventSources": [{"kind": "Kustomization", "name": sync.kustomization.metadata["name"]}],
            },
            opts=_opts(in_cluster, moved.alias("status-alert")),
        )
        self.register_outputs({})


class GitOps(pulumi.ComponentResource):
    """Flux installed by Helm (the operator) syncing the environment's overlay from one branch, woken up
    by GitHub push webhooks, reporting each deploy to its commit."""

    def __init__(self, name: str, args: GitOpsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gitops:infra:GitOps", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        moved = Moved(self, name)
        self.flux = FluxInstall(f"{name}-install", args, moved, child)
        self.sync = AppSync(f"{name}-sync", args, self.flux, moved, child)
        self.reports: DeployReports | None = None
        if args.commit_status_token is None:
            pulumi.log.warn(
                "gitops-eks:commitStatusToken is unset: deploys will not report back to their commits; "
                "set a token with only 'Commit statuses: write' (docs/security.md)",
                resource=self,
            )
        else:
            self.reports = DeployReports(
                f"{name}-reports", args, args.commit_status_token, self.sync, moved, child
            )
        self.webhook_url = self.sync.webhook_url
        self.register_outputs({"webhook_url": self.webhook_url})


def _load_balancer_host(status: k8s.core.v1.outputs.ServiceStatus | None) -> str:
    """The receiver LB's DNS name (AWS) or IP; Pulumi's await logic waits until it is assigned."""
    ingress = (status.load_balancer.ingress if status and status.load_balancer else None) or []
    if not ingress:
        raise ValueError("the Flux receiver Service has no load balancer address yet")
    return ingress[0].hostname or ingress[0].ip
