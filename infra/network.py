"""The VPC: public subnets for load balancers, private subnets (behind NAT) for EKS nodes and Jenkins."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_awsx as awsx

# The tags the AWS load balancer integrations look for when they pick subnets for a Service.
PUBLIC_SUBNET_TAGS = {"kubernetes.io/role/elb": "1"}
PRIVATE_SUBNET_TAGS = {"kubernetes.io/role/internal-elb": "1"}


@dataclass(frozen=True)
class NetworkArgs:
    cidr_block: str
    availability_zones: int
    nat_gateways: int
    """1 = one NAT shared by the VPC (cheap), availability_zones = one per zone (resilient)."""


class Network(pulumi.ComponentResource):
    """An awsx VPC spread over `availability_zones` zones."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gitops:infra:Network", name, None, opts)
        self.vpc = awsx.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr_block,
            number_of_availability_zones=args.availability_zones,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            subnet_strategy=awsx.ec2.SubnetAllocationStrategy.AUTO,
            subnet_specs=[
                awsx.ec2.SubnetSpecArgs(type=awsx.ec2.SubnetType.PUBLIC, tags=PUBLIC_SUBNET_TAGS),
                awsx.ec2.SubnetSpecArgs(type=awsx.ec2.SubnetType.PRIVATE, tags=PRIVATE_SUBNET_TAGS),
            ],
            nat_gateways=awsx.ec2.NatGatewayConfigurationArgs(
                strategy=awsx.ec2.NatGatewayStrategy.SINGLE
                if args.nat_gateways == 1
                else awsx.ec2.NatGatewayStrategy.ONE_PER_AZ
            ),
            tags={"Name": f"{pulumi.get_project()}-{pulumi.get_stack()}"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.vpc_id: pulumi.Output[str] = self.vpc.vpc_id
        self.public_subnet_ids: pulumi.Output[list[str]] = self.vpc.public_subnet_ids
        self.private_subnet_ids: pulumi.Output[list[str]] = self.vpc.private_subnet_ids
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "public_subnet_ids": self.public_subnet_ids,
                "private_subnet_ids": self.private_subnet_ids,
            }
        )
