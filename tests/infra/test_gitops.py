"""Flux: the operator's Helm release and the FluxInstance, the sync custom resources, the webhook Receiver
and its GitHub webhook, and the upgrade of a stack declared before the split into components."""

from __future__ import annotations

import hashlib

import pytest
import yaml

from infra.gitops import FLUX_VERSION, webhook_path
from tests.infra.conftest import DELETE, GITHUB_HOOK_RANGES_V4, Program, Resource, dev_config, run_program

FLUX = dev_config()["gitops-eks:flux"]
RELEASE = "kubernetes:helm.sh/v3:Release"
GIT_REPOSITORY = "kubernetes:source.toolkit.fluxcd.io/v1:GitRepository"
KUSTOMIZATION = "kubernetes:kustomize.toolkit.fluxcd.io/v1:Kustomization"
RECEIVER = "kubernetes:notification.toolkit.fluxcd.io/v1:Receiver"
FLUX_INSTANCE = "kubernetes:fluxcd.controlplane.io/v1:FluxInstance"


def _descendants(program: Program, parent: Resource) -> list[Resource]:
    children = program.children(parent)
    return children + [d for c in children for d in _descendants(program, c)]


def _mine(program: Program, type_: str) -> list[Resource]:
    return [r for r in _descendants(program, program.one("gitops:infra:GitOps")) if r.type == type_]


def _only(program: Program, type_: str) -> Resource:
    (resource,) = _mine(program, type_)
    return resource


def test_a_helm_release_installs_the_flux_operator_into_flux_system(dev_program: Program) -> None:
    """controlplaneio-fluxcd/flux-operator README: `helm install flux-operator
    oci://ghcr.io/controlplaneio-fluxcd/charts/flux-operator --namespace flux-system`."""
    release = _only(dev_program, RELEASE)
    assert release.inputs["chart"] == "oci://ghcr.io/controlplaneio-fluxcd/charts/flux-operator"
    assert release.inputs["name"] == "flux-operator"
    assert release.inputs["version"] == FLUX["chartVersion"]
    assert "repositoryOpts" not in release.inputs
    assert release.inputs["namespace"] == "flux-system"
    assert release.inputs["values"]["web"] == {"enabled": False}
    namespace = dev_program.one("kubernetes:core/v1:Namespace", "gitops-install-namespace")
    assert namespace.inputs["metadata"]["name"] == "flux-system"
    assert namespace.urn in release.property_dependencies["namespace"]


def test_the_operator_applies_a_resource_set_with_its_tenants_rights_not_its_own(
    dev_program: Program,
) -> None:
    """The operator runs as cluster-admin (chart `templates/admin-clusterrole.yaml`), and the chart grants
    every namespace `edit`/`admin` holder `create resourcesets` (`templates/aggregate-clusterrole.yaml`).
    With `multitenancy.enabled` (default false) the chart passes `--default-service-account=<value>`
    (`templates/deployment.yaml`), which the ResourceSet reconcilers impersonate when a ResourceSet names
    no account (flux-operator v0.58.1 `cmd/operator/main.go`); without it, a ResourceSet is applied as
    cluster-admin, around the lockdown. `default` holds no permissions, as for Flux's Kustomizations."""
    values = _only(dev_program, RELEASE).inputs["values"]
    assert values["multitenancy"] == {"enabled": True, "defaultServiceAccount": "default"}


# The chart's schema for the values the stack sets, copied from controlplaneio-fluxcd/charts
# `charts/flux-operator/values.schema.json` (commit fc87d3b, chart 0.49.0: the newest in the stored
# snapshot; `multitenancy` since commit 1f7a8fa, `web.enabled` since b96c397). Its top level and `web`
# admit any key, so Helm would ignore a misspelt one without a word; only these paths are read by
# `templates/deployment.yaml` (`--default-service-account`, `WEB_SERVER_PORT` 9080 or 0).
CHART_SCHEMA = {
    "web": {"enabled": "boolean"},
    "multitenancy": {"enabled": "boolean", "defaultServiceAccount": "string"},
}
JSON_TYPES = {"boolean": bool, "string": str}


def not_in_chart(values: dict, schema: dict = CHART_SCHEMA, path: str = "") -> list[str]:
    """The paths of `values` that are not among the chart keys copied above, or have another type."""
    wrong = []
    for key, value in values.items():
        where = f"{path}{key}"
        if key not in schema:
            wrong.append(where)
        elif isinstance(schema[key], dict):
            wrong += not_in_chart(value, schema[key], f"{where}.") if isinstance(value, dict) else [where]
        elif not isinstance(value, JSON_TYPES[schema[key]]):
            wrong.append(where)
    return wrong


def test_every_chart_value_the_stack_sets_is_one_the_chart_reads(dev_program: Program) -> None:
    values = _only(dev_program, RELEASE).inputs["values"]
    assert not_in_chart(values) == []
    # The check can fail: a misspelt key, an unknown one and a string for a boolean are each named.
    assert not_in_chart({"multiTenancy": {"enabled": True}, "web": {"enable": False}}) == [
        "multiTenancy",
        "web.enable",
    ]
    assert not_in_chart({"multitenancy": {"enabled": "true"}}) == ["multitenancy.enabled"]


def test_the_flux_instance_pins_the_version_the_test_plane_builds_multitenant(dev_program: Program) -> None:
    """FluxInstance (fluxcd.controlplane.io/v1, flux-operator api/v1/fluxinstance_types.go): named `flux`
    (its CRD's only accepted name), `distribution.version` and `.registry` required, `components` from
    its enum, `cluster.multitenant`; the image automation controllers and helm-controller are left out."""
    instance = _only(dev_program, FLUX_INSTANCE)
    assert {k: v for k, v in instance.inputs["metadata"].items() if k != "annotations"} == {
        "name": "flux",
        "namespace": "flux-system",
    }
    spec = instance.inputs["spec"]
    assert spec["distribution"] == {"version": FLUX_VERSION, "registry": "ghcr.io/fluxcd"}
    assert spec["components"] == ["source-controller", "kustomize-controller", "notification-controller"]
    assert spec["cluster"] == {
        "multitenant": True,
        "tenantDefaultServiceAccount": "default",
        "networkPolicy": True,
    }
    assert _only(dev_program, RELEASE).urn in instance.dependencies


def test_the_flux_objects_wait_for_the_crds_the_operator_installs(dev_program: Program) -> None:
    """The operator, not the Helm release, installs Flux's CRDs, after the FluxInstance exists. Pulumi
    retries a create whose kind is unknown only 5 times from 1 s, doubling (pulumi-kubernetes
    provider/pkg/await/await.go `Creation`, provider/pkg/retry/retry.go), and waits for a custom resource
    only with `pulumi.com/waitFor` (provider/pkg/metadata/overrides.go `ReadyCondition`); the operator
    sets `Ready` once Flux is installed and healthy (fluxinstance_controller.go, `meta.ReadyCondition`)."""
    instance = _only(dev_program, FLUX_INSTANCE)
    assert instance.inputs["metadata"]["annotations"] == {"pulumi.com/waitFor": "condition=Ready"}
    for type_ in (GIT_REPOSITORY, KUSTOMIZATION, RECEIVER):
        assert instance.urn in _only(dev_program, type_).dependencies, type_


def test_kustomize_controller_is_bound_to_impersonation_instead_of_cluster_admin(
    dev_program: Program,
) -> None:
    (patch,) = _only(dev_program, FLUX_INSTANCE).inputs["spec"]["kustomize"]["patches"]
    assert patch["target"] == {"kind": "ClusterRoleBinding", "name": "cluster-reconciler"}
    assert yaml.safe_load(patch["patch"]) == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "cluster-reconciler"},
        "$patch": "delete",
    }
    role = _only(dev_program, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    binding = _only(dev_program, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
    assert role.inputs["rules"] == [
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]}
    ]
    assert binding.inputs["roleRef"]["name"] == role.inputs["metadata"]["name"]
    assert binding.inputs["subjects"] == [
        {"kind": "ServiceAccount", "name": "kustomize-controller", "namespace": "flux-system"}
    ]


def test_everything_in_cluster_uses_the_stack_provider(dev_program: Program) -> None:
    provider = dev_program.one("pulumi:providers:kubernetes")
    in_cluster = [r for r in dev_program.resources if r.type.startswith("kubernetes:") and r.custom]
    assert len(in_cluster) == 17
    assert {r.provider_urn for r in in_cluster} == {provider.urn}


def test_git_repository_follows_the_branch_over_ssh_with_the_deploy_key(dev_program: Program) -> None:
    source = _only(dev_program, GIT_REPOSITORY)
    assert source.inputs["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    assert source.inputs["kind"] == "GitRepository"
    assert source.inputs["metadata"] == {"name": "app", "namespace": "hello"}
    assert source.inputs["spec"] == {
        "interval": FLUX["interval"],
        "url": "ssh://git@github.com/example-org/hello-gitops.git",
        "ref": {"branch": "main"},
        "secretRef": {"name": "git-auth"},
        "verify": {"mode": "HEAD", "secretRef": {"name": "commit-signers"}},
    }
    secret = dev_program.one("kubernetes:core/v1:Secret", "gitops-sync-git-auth")
    assert secret.inputs["metadata"] == {"name": "git-auth", "namespace": "hello"}


def test_flux_verifies_the_tip_against_the_bots_public_key_alone(dev_program: Program) -> None:
    """source-controller v1.9.3 (api/v1/gitrepository_types.go, GitRepositoryVerification): `verify.mode`
    HEAD verifies the commit HEAD points to, `verify.secretRef` names a Secret in the GitRepository's
    namespace whose keys ending in `.asc` hold OpenPGP public keys (internal/controller/
    gitrepository_controller.go: publicKeyPGPSuffix = ".asc"; any other key but `.sshpub` is read as
    OpenPGP too). There is no `provider` field in v1.9.x's verify: an unknown field is refused."""
    source = _only(dev_program, GIT_REPOSITORY)
    verify = source.inputs["spec"]["verify"]
    assert set(verify) == {"mode", "secretRef"}
    signers = dev_program.one("kubernetes:core/v1:Secret", "gitops-sync-commit-signers")
    assert signers.inputs["metadata"] == {"name": verify["secretRef"]["name"], "namespace": "hello"}
    bot_key = dev_program.one("pulumi-python:dynamic/openpgp:Key")
    assert signers.inputs["stringData"] == {"gitops-bot.asc": bot_key.outputs["public_key"]}
    assert "BEGIN PGP PUBLIC KEY BLOCK" in signers.inputs["stringData"]["gitops-bot.asc"]


def test_branch_comes_from_config() -> None:
    program = run_program({"branch": "release"})
    assert _only(program, GIT_REPOSITORY).inputs["spec"]["ref"] == {"branch": "release"}


def test_kustomization_applies_its_environments_overlay_with_prune_and_health_checks(
    dev_program: Program,
) -> None:
    kustomization = _only(dev_program, KUSTOMIZATION)
    assert kustomization.inputs["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert kustomization.inputs["kind"] == "Kustomization"
    assert kustomization.inputs["spec"] == {
        "interval": FLUX["interval"],
        "path": "./k8s/overlays/dev",
        "prune": True,
        "wait": True,
        "timeout": "5m",
        "sourceRef": {"kind": "GitRepository", "name": "app"},
        "serviceAccountName": "flux-applier",
        "targetNamespace": "hello",
    }
    assert kustomization.inputs["metadata"] == {"name": "app", "namespace": "hello"}


def test_receiver_wakes_the_git_repository_on_github_pushes(dev_program: Program) -> None:
    receiver = _only(dev_program, RECEIVER)
    assert receiver.inputs["apiVersion"] == "notification.toolkit.fluxcd.io/v1"
    assert receiver.inputs["metadata"] == {"name": "github", "namespace": "hello"}
    spec = receiver.inputs["spec"]
    assert spec["type"] == "github"
    assert spec["events"] == ["ping", "push"]
    assert spec["resources"] == [{"kind": "GitRepository", "name": "app"}]
    token_secret = dev_program.one("kubernetes:core/v1:Secret", "gitops-sync-receiver-token")
    assert spec["secretRef"] == {"name": token_secret.inputs["metadata"]["name"]}
    token = _only(dev_program, "random:index/randomPassword:RandomPassword")
    assert token_secret.inputs["stringData"] == {"token": token.outputs["result"]}
    assert "stringData" in token_secret.secret_inputs


def test_receiver_service_admits_github_hook_ranges_only(dev_program: Program) -> None:
    service = _only(dev_program, "kubernetes:core/v1:Service")
    spec = service.inputs["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["selector"] == {"app": "notification-controller"}
    assert spec["ports"] == [{"name": "http", "port": 80, "targetPort": 9292, "protocol": "TCP"}]
    assert spec["loadBalancerSourceRanges"] == GITHUB_HOOK_RANGES_V4


NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def test_receiver_admits_its_load_balancer_from_the_vpc_under_enforced_network_policies() -> None:
    """EKS enforces NetworkPolicy, and the flux2 chart's `allow-webhooks` policy admits pods only: the
    load balancer's traffic (from VPC addresses) needs its own rule, on the receiver's port only."""
    program = run_program({"network.cidrBlock": "10.20.0.0/16"})
    policy = _only(program, NETWORK_POLICY)
    service = _only(program, "kubernetes:core/v1:Service")
    assert policy.inputs["metadata"]["namespace"] == "flux-system"
    assert policy.inputs["spec"] == {
        "podSelector": {"matchLabels": service.inputs["spec"]["selector"]},
        "policyTypes": ["Ingress"],
        "ingress": [
            {"from": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 9292, "protocol": "TCP"}]}
        ],
    }
    assert service.inputs["spec"]["ports"][0]["targetPort"] == 9292
    assert _only(program, RELEASE).urn in policy.dependencies


def test_byo_cluster_gets_no_receiver_network_policy() -> None:
    """The stack does not know a bring-your-own cluster's network (docs/infra.md says what to add)."""
    program = run_program(
        {"cluster": DELETE, "kubeconfig": '{"clusters": [1], "contexts": [1], "users": [1]}'},
        secrets=["kubeconfig"],
    )
    assert _mine(program, NETWORK_POLICY) == []
    assert _mine(program, "kubernetes:core/v1:Service")


def test_custom_resources_and_service_go_before_the_release_on_destroy(dev_program: Program) -> None:
    release = _only(dev_program, RELEASE)
    instance = _only(dev_program, FLUX_INSTANCE)
    for type_ in (GIT_REPOSITORY, KUSTOMIZATION, RECEIVER, "kubernetes:core/v1:Service"):
        assert dev_program.deleted_before(_only(dev_program, type_), release), type_
        assert dev_program.deleted_before(_only(dev_program, type_), instance), type_


def test_webhook_path_is_fluxs_formula() -> None:
    # notification-controller: sha256(token + name + namespace), hex, under /hook/.
    assert webhook_path("s3cret") == "/hook/" + hashlib.sha256(b"s3cretgithubhello").hexdigest()
    assert webhook_path("s3cret", "other", "ns") != webhook_path("s3cret")


def test_github_webhook_calls_the_receiver_with_the_token(dev_program: Program) -> None:
    webhook = _only(dev_program, "github:index/repositoryWebhook:RepositoryWebhook")
    service = _only(dev_program, "kubernetes:core/v1:Service")
    token = _only(dev_program, "random:index/randomPassword:RandomPassword").outputs["result"]
    host = service.outputs["status"]["loadBalancer"]["ingress"][0]["hostname"]
    digest = hashlib.sha256(f"{token}githubhello".encode()).hexdigest()
    url = f"http://{host}/hook/{digest}"
    assert webhook.inputs["repository"] == "hello-gitops"
    assert webhook.inputs["events"] == ["push"]
    assert webhook.inputs["configuration"] == {
        "url": url,
        "contentType": "json",
        "secret": token,
        "insecureSsl": False,
    }
    assert "configuration" in webhook.secret_inputs
    assert dev_program.outputs["fluxWebhookUrl"] == url
    assert "fluxWebhookUrl" in dev_program.secret_outputs


# --- deploy reports ----------------------------------------------------------------------------------

PROVIDER = "kubernetes:notification.toolkit.fluxcd.io/v1beta3:Provider"
ALERT = "kubernetes:notification.toolkit.fluxcd.io/v1beta3:Alert"
STATUS_TOKEN = "github_pat_11AAAAAAA0s3cr3tStatusOnly"


def test_every_deploy_reports_a_commit_status_with_a_status_only_token() -> None:
    """notification-controller docs (docs/spec/v1beta3/providers.md, "Git Commit Status Updates" and
    "GitHub"): a `github` Provider with `address` = the repository URL and a Secret whose key `token`
    holds a token allowed to set commit statuses; an Alert whose eventSources name the Kustomization."""
    program = run_program({"commitStatusToken": STATUS_TOKEN}, secrets=["commitStatusToken"])
    provider, alert = _only(program, PROVIDER), _only(program, ALERT)
    secret = program.one("kubernetes:core/v1:Secret", "gitops-reports-status-token")
    assert secret.inputs["metadata"] == {"name": "github-status-token", "namespace": "hello"}
    assert secret.inputs["stringData"] == {"token": STATUS_TOKEN}
    assert "stringData" in secret.secret_inputs
    assert provider.inputs["metadata"] == {"name": "github-status", "namespace": "hello"}
    assert provider.inputs["spec"] == {
        "type": "github",
        "address": "https://github.com/example-org/hello-gitops",
        "secretRef": {"name": "github-status-token"},
        # notification-controller v1.9.2 internal/server/event_handlers.go createCommitStatus: a Provider's
        # commitStatusExpr (CEL, a string) replaces the default context `<kind>/<name>/<UID prefix>`
        # (provider_commit_status.go generateDefaultCommitStatus). The plane checks the posted context.
        "commitStatusExpr": "'gitops-eks/dev'",
    }
    assert alert.inputs["metadata"] == {"name": "github-status", "namespace": "hello"}
    assert alert.inputs["spec"] == {
        "providerRef": {"name": "github-status"},
        "eventSeverity": "info",
        "eventSources": [{"kind": "Kustomization", "name": "app"}],
    }
    release = _only(program, RELEASE)
    for resource in (provider, alert, secret):
        assert program.deleted_before(resource, release)


def test_without_a_status_token_nothing_reports_and_the_stack_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    program = run_program()
    assert _mine(program, PROVIDER) == [] and _mine(program, ALERT) == []
    assert "gitops-eks:commitStatusToken is unset" in caplog.text


# --- upgrade of a stack declared before the split ------------------------------------------------------

# Every resource GitOps declared directly under itself before it became three components (read from the
# stack's previous infra/gitops.py), by type and name; a stack created then holds exactly these URNs.
BEFORE_SPLIT = {
    ("kubernetes:core/v1:Namespace", "gitops-namespace"),
    (RELEASE, "gitops-flux"),
    ("kubernetes:core/v1:Namespace", "gitops-app-namespace"),
    ("kubernetes:core/v1:ServiceAccount", "gitops-applier"),
    ("kubernetes:rbac.authorization.k8s.io/v1:Role", "gitops-applier"),
    ("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "gitops-applier"),
    ("kubernetes:core/v1:Secret", "gitops-git-auth"),
    (GIT_REPOSITORY, "gitops-source"),
    (KUSTOMIZATION, "gitops-kustomization"),
    ("random:index/randomPassword:RandomPassword", "gitops-receiver-token"),
    ("kubernetes:core/v1:Secret", "gitops-receiver-token"),
    (RECEIVER, "gitops-receiver"),
    ("kubernetes:core/v1:Service", "gitops-receiver"),
    (NETWORK_POLICY, "gitops-receiver"),
    ("github:index/repositoryWebhook:RepositoryWebhook", "gitops-webhook"),
    ("kubernetes:core/v1:Secret", "gitops-status-token"),
    ("kubernetes:notification.toolkit.fluxcd.io/v1beta3:Provider", "gitops-status-provider"),
    ("kubernetes:notification.toolkit.fluxcd.io/v1beta3:Alert", "gitops-status-alert"),
}


def test_every_resource_of_a_stack_from_before_the_split_is_found_under_its_old_urn() -> None:
    """Pulumi's aliases (pulumi.com/docs/iac/concepts/options/aliases): a resource whose URN changed is
    matched to the state entry under an alias URN and updated, not replaced. Each old URN is
    `<stack>::<project>::gitops:infra:GitOps$<type>::<name>`; the app's Kustomization, whose deletion
    would prune the app, must be among them."""
    program = run_program({"commitStatusToken": STATUS_TOKEN}, secrets=["commitStatusToken"])
    gitops = program.one("gitops:infra:GitOps")
    prefix = gitops.urn.rsplit("::", 2)[0]
    for type_, name in BEFORE_SPLIT:
        old = f"{prefix}::gitops:infra:GitOps${type_}::{name}"
        (resource,) = [r for r in program.of_type(type_) if old in r.alias_urns]
        assert resource.urn != old, f"{name} did not move (the alias test would prove nothing)"
        assert not [r for r in program.resources if r.urn == old]
    components = {r.type for r in program.children(gitops)}
    assert components == {"gitops:infra:FluxInstall", "gitops:infra:AppSync", "gitops:infra:DeployReports"}


def test_the_old_flux2_release_is_uninstalled_before_the_operator_installs_flux() -> None:
    """The release keeps its URN but changes chart and name, so Pulumi replaces it; delete-before-replace
    uninstalls the community chart first (its CRDs stay: `helm.sh/resource-policy: keep`), and nothing
    that depends on it only through `depends_on` is deleted with it (pulumi/pulumi#838)."""
    program = run_program()
    release = _only(program, RELEASE)
    assert release.options["deleteBeforeReplace"] is True
    kustomization = _only(program, KUSTOMIZATION)
    assert release.urn in kustomization.dependencies
    assert all(release.urn not in urns for urns in kustomization.property_dependencies.values())
    # The community chart's uninstall deletes its ClusterRole and binding `cluster-reconciler-impersonator`:
    # the stack's objects of that name are created only after it.
    for type_ in ("ClusterRole", "ClusterRoleBinding"):
        impersonator = _only(program, f"kubernetes:rbac.authorization.k8s.io/v1:{type_}")
        assert release.urn in impersonator.dependencies, type_


def test_a_stack_that_followed_k8s_moves_to_its_overlay_under_the_same_kustomization() -> None:
    """A stack created when Flux applied `./k8s` upgrades in place: the Kustomization keeps its Pulumi
    name and its object name `app` (deleting it would let its finalizer prune the whole inventory, the
    app included: kustomize-controller v1.9.4 internal/controller/kustomization_controller.go `finalize`),
    and only spec.path changes, an update in place; the controller then applies the overlay and prunes
    only what left the inventory (`inventory.Diff(old, new)`), so the Deployment keeps its identity
    (tests/cluster/test_flux.py shows the UID kept on the real controllers)."""
    from tests.infra.test_config_prod import run_prod

    dev = run_program()
    for stack, program in (("dev", dev), ("prod", run_prod(dev))):
        (kustomization,) = [
            r for r in program.of_type(KUSTOMIZATION) if r.name == "gitops-sync-kustomization"
        ]
        assert kustomization.inputs["metadata"] == {"name": "app", "namespace": "hello"}
        assert kustomization.inputs["spec"]["path"] == f"./k8s/overlays/{stack}"
