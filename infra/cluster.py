"""The EKS cluster: private API endpoint, access entries, audit logs, KMS-encrypted secrets, NetworkPolicy
enforcement, and a managed node group in private subnets with IMDSv2 and an IMDS hop limit of 1. Plus the
Kubernetes provider built from it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from infra.config import ClusterConfig
from infra.iam import EC2_ASSUME_ROLE_POLICY

LOG_TYPES = ("api", "audit", "authenticator")
# EKS's managed access policy granting cluster-admin, scoped to the whole cluster.
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
# What a worker node needs to join the cluster, run the VPC CNI and pull images; nothing more.
NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
)

NODE_IMDS_HOP_LIMIT = 1

NODE_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


@dataclass(frozen=True)
class ClusterArgs:
    config: ClusterConfig
    vpc_id: pulumi.Input[str]
    public_subnet_ids: pulumi.Input[list[str]]
    private_subnet_ids: pulumi.Input[list[str]]


def admin_access_entries(principals: tuple[str, ...]) -> dict[str, eks.AccessEntryArgs]:
    """One access entry per principal, each bound to cluster-admin for the whole cluster.

    Keyed by a digest of the ARN, not by list position: reordering the list must not move a principal to
    another entry (EKS refuses a second entry for a principal while the first still exists). The cluster's
    creator must not be listed: EKS already gave it an entry at creation and refuses another one."""
    return {
        f"admin-{hashlib.sha256(arn.encode()).hexdigest()[:12]}": eks.AccessEntryArgs(
            principal_arn=arn,
            access_policies={
                "cluster-admin": eks.AccessPolicyAssociationArgs(
                    policy_arn=CLUSTER_ADMIN_POLICY,
                    access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                )
            },
        )
        for arn in principals
    }


class Cluster(pulumi.ComponentResource):
    """An EKS cluster, its node group, and `provider`, a Kubernetes provider for it."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gitops:infra:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        self.secrets_key = aws.kms.Key(
            f"{name}-secrets",
            description=f"EKS secrets envelope encryption for {pulumi.get_project()}-{pulumi.get_stack()}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            opts=child,
        )
        self.eks = eks.Cluster(
            f"{name}-eks",
            version=config.kubernetes_version,
            vpc_id=args.vpc_id,
            public_subnet_ids=args.public_subnet_ids,
            private_subnet_ids=args.private_subnet_ids,
            authentication_mode=eks.AuthenticationMode.API,
            create_oidc_provider=True,
            enabled_cluster_log_types=list(LOG_TYPES),
            encryption_config_key_arn=self.secrets_key.arn,
            endpoint_private_access=True,
            # An empty list means nobody on the internet: the API is then reachable only from the VPC.
            endpoint_public_access=bool(config.public_access_cidrs),
            public_access_cidrs=list(config.public_access_cidrs) or None,
            skip_default_node_group=True,
            # The creator gets admin from EKS itself (bootstrapClusterCreatorAdminPermissions); everyone else
            # who runs `pulumi up` (teammates, CI roles) needs an access entry of their own.
            access_entries=admin_access_entries(config.admin_principals) or None,
            # The VPC CNI only enforces NetworkPolicy (k8s/base/networkpolicy.yaml, Flux's own policies)
            # with its network policy agent on; without it those objects install and guard nothing. pulumi-eks
            # manages the CNI as the vpc-cni addon, so the option lands in its configuration.
            use_default_vpc_cni=False,
            vpc_cni_options=eks.VpcCniOptionsArgs(enable_network_policy=True),
            opts=child,
        )
        self.node_role = aws.iam.Role(
            f"{name}-node",
            assume_role_policy=EC2_ASSUME_ROLE_POLICY,
            opts=child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{arn.rsplit('/', 1)[1]}", role=self.node_role.name, policy_arn=arn, opts=child
            )
            for arn in NODE_POLICIES
        ]
        # pulumi-eks' own template for `enable_imd_sv2` sets a hop limit of 2 (nodegroup.ts,
        # createMNGCustomLaunchTemplate), which lets every pod reach IMDS and take the node role's
        # credentials. With 1, a response from IMDS dies one hop out of the node: host-network pods
        # (VPC CNI, kube-proxy) still reach it, pods in their own network namespace do not.
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-nodes",
            description="EKS nodes: IMDSv2 only, hop limit 1 (pods cannot reach the node role)",
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=NODE_IMDS_HOP_LIMIT,
            ),
            opts=child,
        )
        # EKS creates the node role's access entry itself for managed node groups (API mode).
        self.node_group = eks.ManagedNodeGroup(
            f"{name}-nodes",
            cluster=self.eks,
            node_role=self.node_role,
            subnet_ids=args.private_subnet_ids,
            instance_types=[config.instance_type],
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                desired_size=config.desired_size, min_size=config.min_size, max_size=config.max_size
            ),
            # A custom launch template excludes pulumi-eks' enable_imd_sv2 (it would build its own).
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=self.launch_template.id, version=self.launch_template.latest_version.apply(str)
            ),
            # The autoscaler (or a human) may move desired size; Pulumi should not fight it.
            ignore_scaling_changes=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.eks, *attachments]),
        )
        self.kubeconfig: pulumi.Output[str] = pulumi.Output.secret(self.eks.kubeconfig_json)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=child,
        )
        self.register_outputs(
            {"kubeconfig": self.kubeconfig, "oidc_provider_arn": self.eks.oidc_provider_arn}
        )
