"""Ephemeral agents: one EC2 Auto Scaling group per pool (build, release; infra/jenkins/pools.py) that
the controller's EC2 Fleet plugin scales from zero, one build per instance, and the identities that keep
agents and controller apart.

- A build agent's role pushes to this stack's ECR repository and nothing else; a release agent's role
  reads it and moves its `deployed` tag. Neither reads a secret, uses SSM or calls EC2.
- The controller's extra permissions (`controller_agents_policy`) let it resize this one group (never
  past `maxAgents`) and terminate its instances, and tag only instances that carry this group's tag. It
  needs no `iam:PassRole`: the group launches instances with its own service-linked role and the launch
  template's profile.
- Nothing reaches an agent from outside the VPC: the only inbound rule is SSH from the controller's
  security group (the plugin's SSH launcher); agents have no public address.

Why this engine and not pods on EKS: docs/jenkins-agents.md.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.config import AgentsConfig
from infra.deploy_keys import HookRanges
from infra.iam import EC2_ASSUME_ROLE_POLICY
from infra.jenkins.agent_boot import AgentBootSettings, render_agent_user_data
from infra.jenkins.clouds import SSH_PORT
from infra.jenkins.pools import BUILD, AgentPool

# The plugin tags every instance it adopts with this key (EC2FleetCloud.EC2_INSTANCE_CLOUD_NAME_TAG).
PLUGIN_TAG_KEY = "ec2-fleet-plugin:cloud-name"
# Our tag on every agent instance (launch template), which scopes what the controller may tag.
AGENT_TAG_KEY = "gitops-eks:jenkins-agents"
ROOT_DEVICE = "/dev/xvda"  # AL2023 AMIs' root device name
ROOT_VOLUME_GIB = 30  # the toolchain, a Docker build cache and one workspace
# Containers (docker build steps) sit one hop further from IMDS than the host: they get no credentials.
IMDS_HOP_LIMIT = 1
# Graviton instance families carry a `g` after the generation digit (t4g, m7gd, c6gn, im4gn), except the
# first Graviton's A1.
_ARM_FAMILY = re.compile(r"^(a1|[a-z]+\d+[a-z-]*g[a-z-]*)\.")


@dataclass(frozen=True)
class JenkinsAgentsArgs:
    config: AgentsConfig
    vpc_id: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[Sequence[str]]
    controller_security_group_id: pulumi.Input[str]
    """The only source allowed to reach an agent (SSH, from the plugin's launcher)."""
    ecr_repository_arn: pulumi.Input[str]
    controller_public_key: pulumi.Input[str]
    """OpenSSH public key the controller logs in to agents with."""
    known_hosts: str
    """GitHub's host keys, pinned for the release step's git push."""
    git_ranges: HookRanges
    """GitHub's git ranges (meta API): the only places an agent may reach over SSH."""
    tag_value: str
    """Value of AGENT_TAG_KEY on this stack's agents (unique per stack in the account)."""
    pool: AgentPool = BUILD
    """Which pool: what it installs, and what its role may do with ECR."""


def architecture(instance_type: str) -> str:
    """The AMI architecture an instance type runs."""
    return "arm64" if _ARM_FAMILY.match(instance_type) else "x86_64"


def agent_role_policy(ecr_repository_arn: str, pool: AgentPool = BUILD) -> dict[str, Any]:
    """What a pool's agents may do with AWS: its ECR actions on this one repository, and (build agents
    only, for `docker push`) an ECR login."""
    login = {
        "Sid": "EcrLogin",
        "Effect": "Allow",
        # GetAuthorizationToken has no resource-level permissions: "*" is the only form.
        "Action": ["ecr:GetAuthorizationToken"],
        "Resource": "*",
    }
    repository = {
        "Sid": f"Ecr{pool.kind.capitalize()}ThisRepository",
        "Effect": "Allow",
        "Action": list(pool.ecr_actions),
        "Resource": ecr_repository_arn,
    }
    return {"Version": "2012-10-17", "Statement": [*([login] if pool.ecr_login else []), repository]}


def controller_agents_policy(auto_scaling_group_arn: str, tag_value: str, max_agents: int) -> dict[str, Any]:
    """What the EC2 Fleet plugin calls for an Auto Scaling group fleet, scoped to this group.

    From the plugin's source (AutoScalingGroupFleet, EC2Api, EC2FleetCloud at 4.2.3.540): describe the
    group and its instances, UpdateAutoScalingGroup (capacity, scale-in protection),
    TerminateInstanceInAutoScalingGroup (idle or used-up agents) and CreateTags (its cloud-name tag).
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DescribeFleet",
                "Effect": "Allow",
                # Describe calls have no resource-level permissions: "*" is the only form.
                "Action": ["autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances"],
                "Resource": "*",
            },
            {
                "Sid": "ScaleOnlyTheAgentsGroupWithinMaxAgents",
                "Effect": "Allow",
                "Action": ["autoscaling:UpdateAutoScalingGroup"],
                "Resource": auto_scaling_group_arn,
                # The plugin always sends MinSize 0 and MaxSize maxAgents (AutoScalingGroupFleet.modify);
                # no IfExists, so a request without the sizes (changing anything else) is refused too.
                "Condition": {
                    "NumericLessThanEquals": {"autoscaling:MaxSize": str(max_agents)},
                    "NumericEquals": {"autoscaling:MinSize": "0"},
                },
            },
            {
                "Sid": "TerminateOnlyTheAgentsGroupsInstances",
                "Effect": "Allow",
                "Action": ["autoscaling:TerminateInstanceInAutoScalingGroup"],
                "Resource": auto_scaling_group_arn,
            },
            {
                "Sid": "TagOnlyAgentsWithThePluginTag",
                "Effect": "Allow",
                "Action": ["ec2:CreateTags"],
                "Resource": "arn:aws:ec2:*:*:instance/*",
                "Condition": {
                    "StringEquals": {f"aws:ResourceTag/{AGENT_TAG_KEY}": tag_value},
                    "ForAllValues:StringEquals": {"aws:TagKeys": [PLUGIN_TAG_KEY]},
                },
            },
        ],
    }


class JenkinsAgents(pulumi.ComponentResource):
    """One pool's role, security group, launch template and Auto Scaling group (0 to maxAgents)."""

    def __init__(
        self, name: str, args: JenkinsAgentsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("gitops:infra:JenkinsAgents", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        pool = args.pool
        tags = {"Name": f"{name}-jenkins-agent", AGENT_TAG_KEY: args.tag_value}

        self.role = aws.iam.Role(
            f"{name}-role",
            description=pool.description,
            assume_role_policy=EC2_ASSUME_ROLE_POLICY,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-access",
            role=self.role.id,
            policy=pulumi.Output.from_input(args.ecr_repository_arn).apply(
                lambda arn: json.dumps(agent_role_policy(arn, pool))
            ),
            opts=child,
        )
        self.instance_profile = aws.iam.InstanceProfile(f"{name}-profile", role=self.role.name, opts=child)

        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-agents",
            description=f"Jenkins {pool.kind} agents: SSH from the Jenkins controller only",
            vpc_id=args.vpc_id,
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": SSH_PORT,
                    "to_port": SSH_PORT,
                    "security_groups": [args.controller_security_group_id],
                    "description": "agent launch from the Jenkins controller",
                }
            ],
            egress=[
                {
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": ["0.0.0.0/0"],
                    "description": "HTTPS: ECR, GitHub, packages",
                },
                {
                    "protocol": "tcp",
                    "from_port": SSH_PORT,
                    "to_port": SSH_PORT,
                    "cidr_blocks": list(args.git_ranges.ipv4),
                    "description": "git over SSH to GitHub only",
                },
                *(
                    [
                        {
                            "protocol": "tcp",
                            "from_port": SSH_PORT,
                            "to_port": SSH_PORT,
                            "ipv6_cidr_blocks": list(args.git_ranges.ipv6),
                            "description": "git over SSH to GitHub only",
                        }
                    ]
                    if args.git_ranges.ipv6
                    else []
                ),
            ],
            opts=child,
        )

        ami = aws.ec2.get_ami(
            most_recent=True,
            owners=["amazon"],
            filters=[
                {"name": "name", "values": [f"al2023-ami-2023.*-{architecture(args.config.instance_type)}"]},
                {"name": "state", "values": ["available"]},
            ],
        )
        user_data = pulumi.Output.from_input(args.controller_public_key).apply(
            lambda key: base64.b64encode(
                render_agent_user_data(
                    AgentBootSettings(controller_public_key=key, known_hosts=args.known_hosts, pool=pool)
                ).encode()
            ).decode()
        )
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-agent",
            description=f"Jenkins {pool.kind} agent: AL2023, IMDSv2 only, encrypted root, private address",
            image_id=ami.id,
            instance_type=args.config.instance_type,
            iam_instance_profile={"arn": self.instance_profile.arn},
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": IMDS_HOP_LIMIT,
                "instance_metadata_tags": "disabled",
            },
            block_device_mappings=[
                {
                    "device_name": ROOT_DEVICE,
                    "ebs": {
                        "volume_size": ROOT_VOLUME_GIB,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "delete_on_termination": "true",
                    },
                }
            ],
            network_interfaces=[
                {
                    "associate_public_ip_address": "false",
                    "delete_on_termination": "true",
                    "security_groups": [self.security_group.id],
                }
            ],
            user_data=user_data,
            tag_specifications=[
                {"resource_type": "instance", "tags": tags},
                {"resource_type": "volume", "tags": tags},
            ],
            update_default_version=True,
            opts=child,
        )
        self.group = aws.autoscaling.Group(
            f"{name}-agents",
            min_size=0,
            max_size=args.config.max_agents,
            desired_capacity=0,
            vpc_zone_identifiers=args.private_subnet_ids,
            launch_template={
                "id": self.launch_template.id,
                "version": self.launch_template.latest_version.apply(str),
            },
            health_check_type="EC2",
            # The plugin terminates the instances it chose (idle or used up); the group must never pick
            # a busy one when the plugin lowers the capacity. The plugin sets this too (FAQ.md). It also
            # rules out a maximum instance lifetime (AWS never ends a protected instance for its age);
            # a forgotten agent is adopted by the plugin and ends after idleMinutes instead.
            protect_from_scale_in=True,
            tags=[{"key": "Name", "value": tags["Name"], "propagate_at_launch": False}],
            # The plugin owns the capacity; `pulumi up` must not reset running builds' agents to 0.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["desiredCapacity"]),
        )
        self.group_name: pulumi.Output[str] = self.group.name
        self.group_arn: pulumi.Output[str] = self.group.arn
        self.register_outputs(
            {
                "group_name": self.group_name,
                "group_arn": self.group_arn,
                "role_arn": self.role.arn,
                "security_group_id": self.security_group.id,
            }
        )
