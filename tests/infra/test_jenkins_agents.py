"""Build agents under mocks: the launch template's security settings, the group the plugin scales, the
security group (only the controller reaches an agent) and the two identities kept apart."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from infra.config import AgentsConfig
from infra.jenkins.agents import (
    AGENT_TAG_KEY,
    PLUGIN_TAG_KEY,
    JenkinsAgents,
    JenkinsAgentsArgs,
    architecture,
    controller_agents_policy,
)
from infra.jenkins.clouds import CloudSettings, ec2_fleet_cloud
from tests.infra.conftest import AL2023_AMI, Program
from tests.infra.jenkins_harness import GIT_RANGES, KNOWN_HOSTS, run_components

CONTROLLER_SG = "sg-jenkins-instance"
REPOSITORY_ARN = "arn:aws:ecr:us-east-1:123456789012:repository/dev-hello-gitops"
PUBLIC_KEY = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBExample"
TAG = "gitops-eks-dev"
GROUP_ARN = "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:uuid:autoScalingGroupName/agents"


def _declare(config: AgentsConfig) -> None:
    JenkinsAgents(
        "jenkins",
        JenkinsAgentsArgs(
            config=config,
            vpc_id="vpc-network-vpc",
            private_subnet_ids=["subnet-private-a", "subnet-private-b"],
            controller_security_group_id=CONTROLLER_SG,
            ecr_repository_arn=REPOSITORY_ARN,
            controller_public_key=PUBLIC_KEY,
            known_hosts=KNOWN_HOSTS,
            git_ranges=GIT_RANGES,
            tag_value=TAG,
        ),
    )


@pytest.fixture(scope="module")
def program() -> Program:
    return run_components(lambda: _declare(AgentsConfig()))


def _statements(document: str | dict[str, Any]) -> list[dict[str, Any]]:
    parsed = json.loads(document) if isinstance(document, str) else document
    return parsed["Statement"]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


def test_launch_template_requires_imdsv2_with_no_hop_for_containers(program: Program) -> None:
    template = program.one("aws:ec2/launchTemplate:LaunchTemplate")
    options = template.inputs["metadataOptions"]
    assert options["httpTokens"] == "required"
    # Hop limit 1: a container's request to IMDS dies one hop short, so a build step in Docker cannot take
    # the agent's role (EC2 User Guide, "Configure the instance metadata options").
    assert options["httpPutResponseHopLimit"] == 1
    assert options["httpEndpoint"] == "enabled"


def test_launch_template_root_disk_is_encrypted_gp3_and_goes_with_the_agent(program: Program) -> None:
    (device,) = program.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["blockDeviceMappings"]
    assert device["deviceName"] == "/dev/xvda"
    assert device["ebs"] == {
        "volumeSize": 30,
        "volumeType": "gp3",
        "encrypted": "true",
        "deleteOnTermination": "true",
    }


def test_launch_template_has_no_public_address_no_key_pair_and_only_the_agent_group(program: Program) -> None:
    template = program.one("aws:ec2/launchTemplate:LaunchTemplate")
    (interface,) = template.inputs["networkInterfaces"]
    group = program.one("aws:ec2/securityGroup:SecurityGroup")
    assert interface["associatePublicIpAddress"] == "false"
    assert interface["securityGroups"] == [f"{group.name}-id"]
    assert "keyName" not in template.inputs
    assert "vpcSecurityGroupIds" not in template.inputs


def test_launch_template_runs_al2023_for_the_instance_types_architecture(program: Program) -> None:
    template = program.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert template.inputs["imageId"] == AL2023_AMI
    (lookup,) = program.invokes_of("aws:ec2/getAmi:getAmi")
    names = {f["name"]: f["values"] for f in lookup.args["filters"]}
    # AL2023 AMI names: al2023-ami-2023.<minor>.<date>.<n>-kernel-<version>-<arch> (AL2023 User Guide,
    # "Naming and versioning"); the minimal and ECS variants carry another word after "ami-".
    assert names["name"] == ["al2023-ami-2023.*-x86_64"]
    assert lookup.args["owners"] == ["amazon"]
    assert architecture("m7g.large") == "arm64"
    assert architecture("t3.large") == "x86_64"


def test_launch_template_tags_agents_so_the_controller_can_be_scoped_to_them(program: Program) -> None:
    specs = program.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["tagSpecifications"]
    assert {s["resourceType"] for s in specs} == {"instance", "volume"}
    assert all(s["tags"][AGENT_TAG_KEY] == TAG for s in specs)


def test_group_scales_from_zero_to_max_agents_in_private_subnets(program: Program) -> None:
    group = program.one("aws:autoscaling/group:Group")
    template = program.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert group.inputs["minSize"] == 0
    assert group.inputs["maxSize"] == 2
    assert group.inputs["desiredCapacity"] == 0
    assert group.inputs["vpcZoneIdentifiers"] == ["subnet-private-a", "subnet-private-b"]
    assert group.inputs["launchTemplate"]["id"] == f"{template.name}-id"
    # The plugin owns the capacity, and keeps busy agents from being picked for scale-in.
    assert group.options["ignoreChanges"] == ["desiredCapacity"]
    assert group.inputs["protectFromScaleIn"] is True
    # No maximum instance lifetime: it would never fire. Scale-in protection keeps an instance from
    # being terminated for its lifetime (EC2 Auto Scaling User Guide, "Replace Auto Scaling instances
    # based on maximum instance lifetime", Considerations), and where it fires it replaces the instance,
    # it does not remove it. The plugin is the net for a forgotten agent: it adopts every running group
    # instance that is not a Jenkins node, which then goes away after idleMinutes (EC2FleetCloud.update,
    # "New instance(s) not yet registered as nodes", tag 4.2.3.540.va_6eedb_7b_c112).
    assert "maxInstanceLifetime" not in group.inputs


def test_max_agents_is_the_groups_maximum() -> None:
    program = run_components(lambda: _declare(AgentsConfig(instance_type="m7g.large", max_agents=7)))
    assert program.one("aws:autoscaling/group:Group").inputs["maxSize"] == 7
    assert program.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["instanceType"] == "m7g.large"
    (lookup,) = program.invokes_of("aws:ec2/getAmi:getAmi")
    assert lookup.args["filters"][0]["values"] == ["al2023-ami-2023.*-arm64"]


def test_only_the_controller_reaches_an_agent(program: Program) -> None:
    group = program.one("aws:ec2/securityGroup:SecurityGroup")
    (rule,) = group.inputs["ingress"]
    assert rule["securityGroups"] == [CONTROLLER_SG]
    assert (rule["protocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 22, 22)
    assert not rule.get("cidrBlocks") and not rule.get("ipv6CidrBlocks") and not rule.get("self")


def test_agents_reach_https_and_ssh_to_githubs_git_ranges_only(program: Program) -> None:
    egress = program.one("aws:ec2/securityGroup:SecurityGroup").inputs["egress"]
    assert sorted((r["protocol"], r["fromPort"], r["toPort"]) for r in egress) == [
        ("tcp", 22, 22),
        ("tcp", 22, 22),
        ("tcp", 443, 443),
    ]
    ssh = [r for r in egress if r["fromPort"] == 22]
    # GitHub's meta API `git` ranges, split by family (the stack reads them at deploy time).
    assert [r.get("cidrBlocks") or r.get("ipv6CidrBlocks") for r in ssh] == [
        list(GIT_RANGES.ipv4),
        list(GIT_RANGES.ipv6),
    ]


def test_agent_role_pushes_to_one_repository_and_reads_no_secret(program: Program) -> None:
    role = program.one("aws:iam/role:Role")
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "ec2.amazonaws.com"
    }
    statements = _statements(program.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    actions = {a for s in statements for a in _actions(s)}
    assert all(a.startswith("ecr:") for a in actions)
    push = [s for s in statements if "ecr:PutImage" in _actions(s)]
    assert [s["Resource"] for s in push] == [REPOSITORY_ARN]
    assert [s["Resource"] for s in statements if s["Resource"] == "*"] == ["*"]  # the login token only
    assert not program.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert program.one("aws:iam/instanceProfile:InstanceProfile").inputs["role"] == role.outputs["name"]


def test_user_data_carries_the_controller_key_and_no_private_key(program: Program) -> None:
    encoded = program.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["userData"]
    document = yaml.safe_load(base64.b64decode(encoded))
    (user,) = document["users"]
    assert user["name"] == "jenkins"
    assert user["ssh_authorized_keys"] == [PUBLIC_KEY]
    assert "PRIVATE KEY" not in base64.b64decode(encoded).decode()


def test_controller_can_manage_only_this_group_and_pass_no_role() -> None:
    statements = _statements(controller_agents_policy(GROUP_ARN, TAG, 3))
    by_action = {a: s for s in statements for a in _actions(s)}
    # What the EC2 Fleet plugin calls for an Auto Scaling group (AutoScalingGroupFleet.java, EC2Api.java,
    # EC2FleetCloud.java at tag 4.2.3.540.va_6eedb_7b_c112).
    assert set(by_action) == {
        "autoscaling:DescribeAutoScalingGroups",
        "ec2:DescribeInstances",
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
        "ec2:CreateTags",
    }
    assert by_action["autoscaling:UpdateAutoScalingGroup"]["Resource"] == GROUP_ARN
    assert by_action["autoscaling:TerminateInstanceInAutoScalingGroup"]["Resource"] == GROUP_ARN
    tagging = by_action["ec2:CreateTags"]
    assert tagging["Condition"] == {
        "StringEquals": {f"aws:ResourceTag/{AGENT_TAG_KEY}": TAG},
        "ForAllValues:StringEquals": {"aws:TagKeys": [PLUGIN_TAG_KEY]},
    }
    # Nothing that launches, terminates outside the group, passes a role or reads a secret.
    forbidden = {
        "iam:PassRole",
        "ec2:RunInstances",
        "ec2:TerminateInstances",
        "secretsmanager:GetSecretValue",
    }
    assert not forbidden & set(by_action)
    assert all(s["Effect"] == "Allow" for s in statements)
    assert not any(a.endswith("*") for a in by_action)


def test_controller_cannot_grow_the_group_past_max_agents() -> None:
    """A compromised controller may resize its group, but never past `maxAgents` (a bill, not a build).

    The plugin's UpdateAutoScalingGroup always carries MinSize, MaxSize and DesiredCapacity
    (AutoScalingGroupFleet.modify at tag 4.2.3.540.va_6eedb_7b_c112), and IAM offers the request's
    sizes as `autoscaling:MinSize` / `autoscaling:MaxSize` on that action (Service Authorization
    Reference, "Actions, resources, and condition keys for Amazon EC2 Auto Scaling"; the EC2 Auto
    Scaling User Guide's identity-based policy example limits MaxSize the same way). Without `IfExists`
    a request that omits the sizes (to change anything else about the group) is refused too.
    """
    statements = _statements(controller_agents_policy(GROUP_ARN, TAG, 3))
    (update,) = [s for s in statements if "autoscaling:UpdateAutoScalingGroup" in _actions(s)]
    assert _actions(update) == ["autoscaling:UpdateAutoScalingGroup"]
    assert update["Condition"] == {
        "NumericLessThanEquals": {"autoscaling:MaxSize": "3"},
        "NumericEquals": {"autoscaling:MinSize": "0"},
    }
    # The cloud's JCasC sends exactly these sizes (minSize 0, maxSize = maxAgents).
    (cloud,) = ec2_fleet_cloud(CloudSettings(AgentsConfig(max_agents=3), "agents", "us-east-1"))["jenkins"][
        "clouds"
    ]
    assert (cloud["eC2Fleet"]["minSize"], cloud["eC2Fleet"]["maxSize"]) == (0, 3)
