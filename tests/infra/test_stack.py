"""The real program under mocks with the real Pulumi.dev.yaml: network, cluster, registry, outputs,
bring-your-own-cluster mode and the order `pulumi destroy` will delete things in."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from infra.registry import DEPLOYED_PATTERN
from jenkins import environments
from jenkins import registry as jenkins_registry
from tests.infra.conftest import DELETE, OPERATOR_CIDRS, ROOT, Program, Resource, config_error, run_program
from tests.infra.leaks import leaks

VPC = "awsx:ec2:Vpc"
EKS = "eks:index:Cluster"
NODE_GROUP = "eks:index:ManagedNodeGroup"
K8S_PROVIDER = "pulumi:providers:kubernetes"
ECR = "aws:ecr/repository:Repository"
LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
KMS = "aws:kms/key:Key"
KUSTOMIZATION = "kubernetes:kustomize.toolkit.fluxcd.io/v1:Kustomization"
SERVICE = "kubernetes:core/v1:Service"
HELM = "kubernetes:helm.sh/v3:Release"
DOCKER_IMAGE = "docker:index/image:Image"
BYO_KUBECONFIG = json.dumps(
    {
        "apiVersion": "v1",
        "clusters": [{"name": "k3s", "cluster": {"server": "https://k3s.example.internal:6443"}}],
        "contexts": [{"name": "k3s", "context": {"cluster": "k3s", "user": "admin"}}],
        "current-context": "k3s",
        "users": [{"name": "admin", "user": {"token": "byo-t0ken-value"}}],
    }
)


def vpc_outputs(program: Program) -> dict:
    return program.one(VPC).outputs


# --- network ---------------------------------------------------------------------------------------


def test_vpc_has_public_and_private_subnets_across_zones_with_load_balancer_tags(
    dev_program: Program,
) -> None:
    vpc = dev_program.one(VPC).inputs
    assert vpc["cidrBlock"] == "10.0.0.0/16"
    assert vpc["numberOfAvailabilityZones"] == 2
    assert vpc["enableDnsHostnames"] is True and vpc["enableDnsSupport"] is True
    specs = {spec["type"]: spec for spec in vpc["subnetSpecs"]}
    assert set(specs) == {"Public", "Private"}
    assert specs["Public"]["tags"] == {"kubernetes.io/role/elb": "1"}
    assert specs["Private"]["tags"] == {"kubernetes.io/role/internal-elb": "1"}


def test_dev_has_one_nat_gateway(dev_program: Program) -> None:
    assert dev_program.one(VPC).inputs["natGateways"] == {"strategy": "Single"}


def test_nat_gateway_per_zone_when_configured() -> None:
    program = run_program({"network": {"availabilityZones": 3, "natGateways": 3}})
    vpc = program.one(VPC).inputs
    assert vpc["natGateways"] == {"strategy": "OnePerAz"}
    assert vpc["numberOfAvailabilityZones"] == 3


# --- cluster ---------------------------------------------------------------------------------------


def test_eks_cluster_is_hardened(dev_program: Program) -> None:
    eks = dev_program.one(EKS).inputs
    assert eks["version"] == "1.35"
    assert eks["authenticationMode"] == "API"
    assert eks["createOidcProvider"] is True
    assert eks["enabledClusterLogTypes"] == ["api", "audit", "authenticator"]
    assert eks["endpointPrivateAccess"] is True
    assert eks["endpointPublicAccess"] is True
    assert eks["publicAccessCidrs"] == OPERATOR_CIDRS
    assert eks["skipDefaultNodeGroup"] is True


def test_eks_enforces_network_policies_through_the_vpc_cni_addon(dev_program: Program) -> None:
    """k8s/base ships a NetworkPolicy; the VPC CNI ignores it unless its network policy agent is on, which
    pulumi-eks only configures on the vpc-cni addon it manages (not with the default CNI)."""
    eks = dev_program.one(EKS).inputs
    assert eks["useDefaultVpcCni"] is False
    assert eks["vpcCniOptions"]["enableNetworkPolicy"] is True
    assert (ROOT / "k8s" / "base" / "networkpolicy.yaml").is_file()


def test_eks_secrets_are_encrypted_with_a_rotating_kms_key(dev_program: Program) -> None:
    eks = dev_program.one(EKS)
    key = dev_program.one(KMS, "cluster-secrets")
    assert key.inputs["enableKeyRotation"] is True
    assert eks.inputs["encryptionConfigKeyArn"] == key.outputs["arn"]


def test_eks_lives_in_the_stack_vpc(dev_program: Program) -> None:
    eks = dev_program.one(EKS).inputs
    vpc = vpc_outputs(dev_program)
    assert eks["vpcId"] == vpc["vpcId"]
    assert eks["privateSubnetIds"] == vpc["privateSubnetIds"]
    assert eks["publicSubnetIds"] == vpc["publicSubnetIds"]


def test_public_endpoint_is_off_when_no_cidr_may_reach_it() -> None:
    eks = run_program({"cluster.publicAccessCidrs": []}).one(EKS).inputs
    assert eks["endpointPublicAccess"] is False
    assert eks["endpointPrivateAccess"] is True
    assert "publicAccessCidrs" not in eks


def test_managed_node_group_runs_in_private_subnets_with_imdsv2(dev_program: Program) -> None:
    group = dev_program.one(NODE_GROUP).inputs
    vpc = vpc_outputs(dev_program)
    assert group["cluster"] == dev_program.one(EKS).urn
    assert group["subnetIds"] == vpc["privateSubnetIds"]
    assert not set(group["subnetIds"]) & set(vpc["publicSubnetIds"])
    assert group["scalingConfig"] == {"desiredSize": 2, "minSize": 1, "maxSize": 3}
    assert group["instanceTypes"] == ["t3.medium"]


def test_pods_cannot_reach_the_node_role_through_imds(dev_program: Program) -> None:
    """IMDSv2 with a PUT response hop limit of 1 (AWS EC2 user guide, "Configure the instance metadata
    options": a limit of 1 keeps the token from leaving the instance, so a container in its own network
    namespace gets no token). pulumi-eks' own `enableIMDSv2` template uses 2, so the stack owns the
    launch template and must not also set `enableIMDSv2` (pulumi-eks refuses both together)."""
    group = dev_program.one(NODE_GROUP).inputs
    template = dev_program.one("aws:ec2/launchTemplate:LaunchTemplate", "cluster-nodes")
    assert template.inputs["metadataOptions"] == {
        "httpEndpoint": "enabled",
        "httpTokens": "required",
        "httpPutResponseHopLimit": 1,
    }
    assert group["launchTemplate"] == {"id": f"{template.name}-id", "version": "1"}
    assert "enableIMDSv2" not in group


def test_node_group_sizes_follow_config() -> None:
    sizes = {"cluster.desiredSize": 3, "cluster.minSize": 2, "cluster.maxSize": 5}
    program = run_program({**sizes, "cluster.instanceType": "m6i.large"})
    group = program.one(NODE_GROUP).inputs
    assert group["scalingConfig"] == {"desiredSize": 3, "minSize": 2, "maxSize": 5}
    assert group["instanceTypes"] == ["m6i.large"]


def test_node_role_is_for_ec2_with_only_the_node_policies(dev_program: Program) -> None:
    group = dev_program.one(NODE_GROUP)
    role = dev_program.by_urn[group.inputs["nodeRole"]]
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "ec2.amazonaws.com"}]
    attached = {
        a.inputs["policyArn"]
        for a in dev_program.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.inputs["role"] == role.outputs["name"]
    }
    assert attached == {
        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    }


def test_kubernetes_provider_uses_the_cluster_kubeconfig_as_a_secret(dev_program: Program) -> None:
    provider = dev_program.one(K8S_PROVIDER)
    eks = dev_program.one(EKS)
    assert provider.inputs["kubeconfig"] == eks.outputs["kubeconfigJson"]
    assert "kubeconfig" in provider.secret_inputs
    assert provider.property_dependencies["kubeconfig"] == (eks.urn,)


def test_every_kubernetes_resource_goes_through_the_stack_provider(dev_program: Program) -> None:
    provider = dev_program.one(K8S_PROVIDER)
    in_cluster = [r for r in dev_program.resources if r.type.startswith("kubernetes:")]
    assert in_cluster, "the program declares nothing in the cluster"
    assert {r.provider_urn for r in in_cluster} == {provider.urn}


# --- registry --------------------------------------------------------------------------------------


def test_ecr_repository_is_immutable_scanned_and_encrypted(dev_program: Program) -> None:
    repo = dev_program.one(ECR).inputs
    assert repo["name"] == "dev/hello-gitops"
    # Immutable but for the environments' marks the release moves (issue 8 point 11).
    assert repo["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert repo["imageTagMutabilityExclusionFilters"] == [{"filter": "deployed*", "filterType": "WILDCARD"}]
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["encryptionConfigurations"] == [{"encryptionType": "KMS"}]
    assert not repo.get("forceDelete", False)


def lifecycle_rules(program: Program) -> list[dict]:
    policy = program.one(LIFECYCLE)
    assert policy.inputs["repository"] == program.one(ECR).outputs["name"]
    return json.loads(policy.inputs["policy"])["rules"]


def test_lifecycle_expires_untagged_after_a_day_and_keeps_the_last_commit_images(
    dev_program: Program,
) -> None:
    _, untagged, tagged = sorted(lifecycle_rules(dev_program), key=lambda rule: rule["rulePriority"])
    assert untagged["selection"] == {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": 1,
    }
    assert tagged["selection"]["tagStatus"] == "tagged"
    assert tagged["selection"]["countType"] == "imageCountMoreThan"
    assert tagged["selection"]["countNumber"] == 30
    assert {untagged["action"]["type"], tagged["action"]["type"]} == {"expire"}


def test_lifecycle_keeps_as_many_images_as_configured() -> None:
    rules = lifecycle_rules(run_program({"registry.keepImages": 5}))
    keep = [r["selection"]["countNumber"] for r in rules if r["selection"].get("tagPatternList") == ["*"]]
    assert keep == [5]


def test_lifecycle_never_expires_the_deployed_image(dev_program: Program) -> None:
    """Issue 8 point 11. Amazon ECR User Guide, "Lifecycle policies" (2026-12-01): "An image that matches
    the tagging requirements of a rule cannot be expired by a rule with a lower priority"; priorities are
    unique, applied lowest first; a `tagStatus: any` rule must have the highest priority; `tagged` needs
    tagPatternList or tagPrefixList; at most four wildcards per pattern; a tagPatternList selects images
    that carry all of its patterns."""
    rules = sorted(lifecycle_rules(dev_program), key=lambda rule: rule["rulePriority"])
    priorities = [rule["rulePriority"] for rule in rules]
    assert len(set(priorities)) == len(priorities)
    assert all(rule["selection"]["tagStatus"] != "any" for rule in rules[:-1])
    for rule in rules:
        selection = rule["selection"]
        if selection["tagStatus"] == "tagged":
            patterns = selection.get("tagPatternList") or selection.get("tagPrefixList")
            assert patterns and all(p.count("*") <= 4 for p in patterns)
    first = rules[0]
    # Every environment's mark is matched first; fewer images carry one than the count, so none expires.
    assert first["selection"] == {
        "tagStatus": "tagged",
        "tagPatternList": ["deployed*"],
        "countType": "imageCountMoreThan",
        "countNumber": 100,
    }
    # One image per environment's mark, the legacy `deployed`, and room for marks of removed environments.
    assert first["selection"]["countNumber"] > len(environments.read(ROOT)) + 1


def aws_wildcard(pattern: str) -> re.Pattern[str]:
    """An ECR tag pattern as AWS defines it: `*` stands for any run of characters, none included. Amazon
    ECR User Guide, "Lifecycle policy properties", tagPatternList: "if your images are tagged as prod,
    prod1, prod2, and so on, you would use the tag pattern list prod* to specify all of them"; the
    tag-mutability exclusion filter is of filterType WILDCARD, its value matching ^[0-9a-zA-Z._*-]{1,128}$
    (ECR API reference, ImageTagMutabilityExclusionFilter)."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def test_the_marks_pattern_matches_every_environments_mark_and_the_legacy_one_but_no_commit_tag() -> None:
    """The pattern of the exclusion filter and the lifecycle rule covers every tag the release moves
    (jenkins/registry.py deployed_tag) and `deployed`, which repositories from before still carry on
    the image they deploy; commit tags (40 hex digits) stay immutable and are not kept forever."""
    assert all(
        aws_wildcard("prod*").fullmatch(tag) for tag in ("prod", "prod1", "prod2")
    )  # the docs' example
    matches = aws_wildcard(DEPLOYED_PATTERN).fullmatch
    for name in environments.read(ROOT):
        assert matches(jenkins_registry.deployed_tag(name))
    assert matches("deployed")
    assert not matches("3f2c1a9" + "0" * 33) and not matches("d" * 40)
    assert re.fullmatch(r"[0-9a-zA-Z._*-]{1,128}", DEPLOYED_PATTERN) and DEPLOYED_PATTERN.count("*") <= 4


def test_no_day0_image_unless_asked(dev_program: Program) -> None:
    assert dev_program.of_type(DOCKER_IMAGE) == []
    assert "day0Image" not in dev_program.outputs


def test_day0_image_is_built_from_app_and_tagged_with_the_checkout_commit() -> None:
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    commit = head.stdout.strip()
    program = run_program({"registry.day0Image": True})
    image = program.one(DOCKER_IMAGE)
    repo_url = program.one(ECR).outputs["repositoryUrl"]
    assert image.inputs["imageName"] == f"{repo_url}:{commit}"
    assert image.inputs["build"]["context"] == str(ROOT / "app")
    assert image.inputs["build"]["args"] == {"GIT_COMMIT": commit}
    assert image.inputs["registry"]["server"] == repo_url
    assert "registry" in image.secret_inputs
    assert image.parent == program.one("gitops:infra:Registry").urn
    # Day 0 only: later HEADs must not rebuild it; Jenkins owns the image from then on.
    assert {"build", "imageName"} <= set(image.options["ignoreChanges"])
    assert program.outputs["day0Image"].startswith(f"{repo_url}@sha256:")


# --- outputs ---------------------------------------------------------------------------------------


def test_outputs_are_exported_and_the_kubeconfig_is_secret(dev_program: Program) -> None:
    outputs = dev_program.outputs
    assert set(outputs) == {
        "kubeconfig",
        "ecrRepositoryUrl",
        "jenkinsUrl",
        "fluxWebhookUrl",
        "appUrlCommand",
        "jenkinsAdminPasswordSecret",
        "jenkinsDeployKeySecret",
        "botSigningKeyFingerprint",
        "jenkinsSessionDocument",
        "jenkinsAgentsGroup",
        "jenkinsReleaseAgentsGroup",
        "previewRoleArn",
        "trustAnchor",
        "trustAnchorUrn",
        "signingSwitch",
        "signingSwitchCommit",
        "environment",
        "botSigningPublicKey",
        "repository",
        "branch",
    }
    assert "kubeconfig" in dev_program.secret_outputs
    # What a later environment's stack reads through its StackReference (infra/stack.py), in the clear:
    # a public key and a name.
    assert outputs["environment"] == "dev"
    assert outputs["botSigningPublicKey"].startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert (outputs["repository"], outputs["branch"]) == ("example-org/hello-gitops", "main")
    assert not {"environment", "botSigningPublicKey", "repository", "branch"} & dev_program.secret_outputs
    assert json.loads(outputs["kubeconfig"])["clusters"][0]["name"] == "cluster-eks"
    assert outputs["ecrRepositoryUrl"] == dev_program.one(ECR).outputs["repositoryUrl"]
    assert outputs["jenkinsUrl"].startswith("http")
    assert "/hook/" in outputs["fluxWebhookUrl"]


def test_secret_name_outputs_name_declared_secrets(dev_program: Program) -> None:
    names = {s.outputs["name"] for s in dev_program.of_type("aws:secretsmanager/secret:Secret")}
    assert dev_program.outputs["jenkinsAdminPasswordSecret"] in names
    assert dev_program.outputs["jenkinsDeployKeySecret"] in names
    assert dev_program.outputs["jenkinsAdminPasswordSecret"] != dev_program.outputs["jenkinsDeployKeySecret"]


def test_no_secret_value_appears_in_a_plain_output(dev_program: Program) -> None:
    secrets = [
        r.outputs["result"] for r in dev_program.of_type("random:index/randomPassword:RandomPassword")
    ] + [r.outputs["privateKeyOpenssh"] for r in dev_program.of_type("tls:index/privateKey:PrivateKey")]
    assert secrets
    plain = {k: v for k, v in dev_program.outputs.items() if k not in dev_program.secret_outputs}
    # Decoded search (tests/infra/leaks.py): a multi-line key is escaped in JSON and never `in` it.
    assert [s for s in secrets if leaks(s, plain)] == []


# --- bring your own cluster ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def byo_program() -> Program:
    return run_program({"cluster": DELETE, "kubeconfig": BYO_KUBECONFIG}, secrets=["kubeconfig"])


def test_byo_cluster_skips_eks(byo_program: Program) -> None:
    assert byo_program.of_type(EKS) == []
    assert byo_program.of_type(NODE_GROUP) == []
    assert byo_program.of_type(KMS + "") == [
        r for r in byo_program.of_type(KMS) if r.name != "cluster-secrets"
    ]
    assert byo_program.of_type("gitops:infra:Cluster") == []


def test_byo_cluster_installs_gitops_through_the_given_kubeconfig(byo_program: Program) -> None:
    provider = byo_program.one(K8S_PROVIDER)
    assert provider.inputs["kubeconfig"] == BYO_KUBECONFIG
    assert "kubeconfig" in provider.secret_inputs
    in_cluster = [r for r in byo_program.resources if r.type.startswith("kubernetes:")]
    assert byo_program.one(KUSTOMIZATION) in in_cluster
    assert {r.provider_urn for r in in_cluster} == {provider.urn}


def test_byo_cluster_keeps_a_vpc_for_jenkins_and_the_registry(byo_program: Program) -> None:
    assert byo_program.one(VPC).inputs["natGateways"] == {"strategy": "Single"}
    assert byo_program.one(ECR).inputs["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert byo_program.of_type("aws:ec2/instance:Instance")


def test_byo_kubeconfig_set_in_plain_text_is_refused() -> None:
    """It would sit in clear text in the stack file; the program stops before declaring anything."""
    message = config_error({"cluster": DELETE, "kubeconfig": BYO_KUBECONFIG})
    assert message.startswith("gitops-eks:kubeconfig: is set in plain text")
    assert "byo-t0ken-value" not in message


# --- safe destroy ----------------------------------------------------------------------------------


def in_cluster_load_balancers(program: Program) -> list[Resource]:
    """What makes AWS load balancers and ENIs from inside the cluster: the Kustomization (it prunes the
    app's LoadBalancer Service on deletion) and the Receiver's LoadBalancer Service."""
    services = [s for s in program.of_type(SERVICE) if s.inputs["spec"].get("type") == "LoadBalancer"]
    assert services, "expected the Flux Receiver's LoadBalancer Service"
    return [program.one(KUSTOMIZATION), *services]


@pytest.mark.parametrize("infrastructure", [EKS, NODE_GROUP, VPC, K8S_PROVIDER])
def test_flux_load_balancers_are_deleted_before_the_cluster_nodes_and_vpc(
    dev_program: Program, infrastructure: str
) -> None:
    underneath = dev_program.one(infrastructure)
    for resource in in_cluster_load_balancers(dev_program):
        assert dev_program.deleted_before(resource, underneath), f"{resource.name} outlives {underneath.name}"
        assert not dev_program.deleted_before(underneath, resource)


@pytest.mark.parametrize("infrastructure", [EKS, NODE_GROUP, VPC])
def test_flux_resources_depend_directly_on_the_cluster_nodes_and_vpc(
    dev_program: Program, infrastructure: str
) -> None:
    """The edge is on each resource, not only on the GitOps component: the Python SDK does not pass a
    component's depends_on to its children, and the ordering must not rest on the parent edge."""
    underneath = dev_program.one(infrastructure)
    for resource in [*in_cluster_load_balancers(dev_program), dev_program.one(HELM)]:
        assert underneath.urn in resource.dependencies, (
            f"{resource.name} lacks a direct edge to {underneath.name}"
        )
    assert underneath.urn not in dev_program.one("gitops:infra:GitOps").dependencies


def test_byo_cluster_flux_resources_depend_on_no_stack_infrastructure(byo_program: Program) -> None:
    """The VPC of a BYO stack only holds Jenkins: destroying it has nothing to wait for in the cluster."""
    vpc = byo_program.one(VPC)
    for resource in [*in_cluster_load_balancers(byo_program), byo_program.one(HELM)]:
        assert not byo_program.deleted_before(resource, vpc), resource.name


def test_flux_controllers_outlive_the_kustomization_they_must_prune(dev_program: Program) -> None:
    release = dev_program.one(HELM)
    assert dev_program.deleted_before(dev_program.one(KUSTOMIZATION), release)
    assert dev_program.deleted_before(release, dev_program.one(NODE_GROUP))


def test_deleted_before_follows_only_declared_dependencies(dev_program: Program) -> None:
    """The ordering helper is not trivially true: unrelated resources have no order."""
    assert not dev_program.deleted_before(dev_program.one(ECR), dev_program.one(VPC))
    assert not dev_program.deleted_before(dev_program.one(VPC), dev_program.one(ECR))


def test_pulumi_entry_point_declares_the_same_stack(dev_program: Program) -> None:
    """`pulumi up` runs __main__.py: it must build exactly what `infra.stack.build()` builds."""
    program = run_program(entry_point=True)
    assert sorted((r.type, r.name) for r in program.resources) == sorted(
        (r.type, r.name) for r in dev_program.resources
    )
    assert program.outputs.keys() == dev_program.outputs.keys()


def test_program_survives_a_first_preview_where_cloud_values_are_unknown(dev_program: Program) -> None:
    """The PR workflow runs `pulumi preview`: the program must declare the same stack while URLs, ARNs
    and the kubeconfig are still unknown (apply callbacks do not run on unknowns)."""
    program = run_program(preview=True)
    assert program.outputs["ecrRepositoryUrl"] is None  # unknown: the mocks computed nothing
    assert sorted((r.type, r.name) for r in program.resources) == sorted(
        (r.type, r.name) for r in dev_program.resources
    )


def test_every_resource_sits_in_the_component_for_its_concern(dev_program: Program) -> None:
    """One ComponentResource per concern; children named `<component>-<role>`."""
    stack_children = {
        r.name for r in dev_program.resources if r.parent.endswith("::pulumi:pulumi:Stack::gitops-eks-dev")
    }
    assert stack_children == {
        "network",
        "cluster",
        "registry",
        "deploy-keys",
        "jenkins",
        "gitops",
        "preview",
        "branch-protection",
        "trust-anchor",
    }
    for resource in dev_program.resources:
        if resource.name not in stack_children:
            parent = dev_program.by_urn[resource.parent]
            assert resource.name.startswith(f"{parent.name}-"), (resource.name, parent.name)


def test_ecr_name_is_namespaced_by_stack_and_valid_for_any_github_name() -> None:
    program = run_program({"repository": "example-org/.My_Repo..v2"})
    assert program.one(ECR).inputs["name"] == "dev/my-repo-v2"


IMPORT_UNDER_MOCKS = """
import pulumi
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await
from tests.infra.conftest import RecordingMocks, RecordingMonitor

mocks = RecordingMocks()
monitor = RecordingMonitor(mocks)
pulumi.runtime.set_mocks(mocks, project="gitops-eks", stack="dev", preview=False, monitor=monitor)
import infra.stack, infra.policies  # noqa: E401 - importing is the test
_sync_await(wait_for_rpcs())
print(len(monitor.registrations), len(mocks.invokes))
"""


def test_importing_the_stack_declares_nothing() -> None:
    """Nothing is created or looked up at import time, only when build() runs (fresh interpreter)."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_UNDER_MOCKS], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "0"]
