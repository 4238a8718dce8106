"""Jenkins server: IMDSv2, encrypted volumes, no SSH, ALB rules, least-privilege role, secrets, webhook."""

from __future__ import annotations

import base64
import ipaddress
import json
from typing import Any

import pytest
import yaml

from infra.jenkins.agents import architecture as _architecture
from infra.jenkins.clouds import AGENT_CREDENTIALS_ID
from infra.jenkins.credentials import TYPE_TAG, USERNAME_TAG
from tests.infra.conftest import (
    AL2023_AMI,
    GITHUB_HOOK_RANGES_V4,
    GITHUB_HOOK_RANGES_V6,
    OPERATOR_CONFIG,
    Program,
    Resource,
    controller_user_data,
    dev_config,
    run_program,
)
from tests.infra.envfile import bash_reads

ALLOWED_CIDRS = dev_config()["gitops-eks:jenkins"]["allowedCidrs"]
HOOKS = GITHUB_HOOK_RANGES_V4 + GITHUB_HOOK_RANGES_V6
ECR_PUSH = {"ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"}


@pytest.fixture(scope="module")
def program() -> Program:
    """The dev stack; the mocks also give the auto-named instance profile its name, as AWS would."""
    return run_program(
        extra_outputs={"aws:iam/instanceProfile:InstanceProfile": lambda name, _: {"name": name}}
    )


def _mine(program: Program, type_: str) -> list[Resource]:
    component = program.one("gitops:infra:JenkinsServer")
    return [r for r in program.children(component) if r.type == type_]


def _statements(program: Program) -> list[dict[str, Any]]:
    """Every statement of the controller role's own policies (secrets, and its agents' group)."""
    policies = _mine(program, "aws:iam/rolePolicy:RolePolicy")
    return [s for p in policies for s in json.loads(p.inputs["policy"])["Statement"]]


def _controller_ami_lookup(program: Program) -> Any:
    """The AMI lookup for the controller's instance type; the two agent pools' launch templates, declared
    first, look up their own."""
    lookups = program.invokes_of("aws:ec2/getAmi:getAmi")
    assert len(lookups) == 3, "one for each pool's launch template (build, release), one for the controller"
    return lookups[2]


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def test_instance_requires_imdsv2_one_hop_away_from_containers(program: Program) -> None:
    """A hop limit of 2 let every container on the host (docker builds) read the instance role's
    credentials; with 1 the IMDSv2 token response cannot cross the container network hop (EC2 user guide,
    "Instance metadata access considerations": hop limit 1 blocks containers)."""
    (instance,) = _mine(program, "aws:ec2/instance:Instance")
    options = instance.inputs["metadataOptions"]
    assert options["httpTokens"] == "required"
    assert options["httpPutResponseHopLimit"] == 1
    assert instance.inputs["associatePublicIpAddress"] is False
    assert instance.inputs["subnetId"] == "subnet-private-a"


def test_root_and_home_volumes_are_encrypted_and_home_survives_the_instance(program: Program) -> None:
    (instance,) = _mine(program, "aws:ec2/instance:Instance")
    assert instance.inputs["rootBlockDevice"]["encrypted"] is True
    (volume,) = _mine(program, "aws:ebs/volume:Volume")
    assert volume.inputs["encrypted"] is True
    assert volume.inputs["size"] == dev_config()["gitops-eks:jenkins"]["volumeSize"]
    (attachment,) = _mine(program, "aws:ec2/volumeAttachment:VolumeAttachment")
    assert attachment.inputs["deviceName"] == "/dev/sdf"
    assert attachment.inputs["volumeId"] == f"{volume.name}-id"
    assert attachment.inputs["instanceId"] == f"{instance.name}-id"


def test_ami_is_looked_up_not_hard_coded(program: Program) -> None:
    lookup = _controller_ami_lookup(program)
    assert lookup.args["owners"] == ["amazon"]
    names = [f["values"] for f in lookup.args["filters"] if f["name"] == "name"]
    assert names == [["al2023-ami-2023.*-x86_64"]]
    (instance,) = _mine(program, "aws:ec2/instance:Instance")
    assert instance.inputs["ami"] == AL2023_AMI
    assert "ami" in instance.options["ignoreChanges"], "a new AMI must not replace the server silently"


def test_graviton_instance_types_get_the_arm64_ami() -> None:
    program = run_program({"jenkins.instanceType": "t4g.medium"})
    lookup = _controller_ami_lookup(program)
    assert [f["values"] for f in lookup.args["filters"] if f["name"] == "name"] == [
        ["al2023-ami-2023.*-arm64"]
    ]


@pytest.mark.parametrize(
    ("instance_type", "architecture"),
    [
        ("t3.medium", "x86_64"),
        ("m7i-flex.large", "x86_64"),
        ("g5.xlarge", "x86_64"),
        ("t4g.medium", "arm64"),
        ("m7gd.large", "arm64"),
        ("c6gn.xlarge", "arm64"),
        ("im4gn.large", "arm64"),
        # A1 is the first Graviton generation: arm64 without the `g` (ManageIQ's AWS instance type
        # fixture, architecture arm64; OpenShift docs PR 43354: "A1 ... first generation of AWS Graviton").
        ("a1.large", "arm64"),
        ("a1.metal", "arm64"),
    ],
)
def test_architecture_from_instance_type(instance_type: str, architecture: str) -> None:
    assert _architecture(instance_type) == architecture


def _ingress_rules(program: Program) -> list[dict[str, Any]]:
    rules = []
    for group in program.of_type("aws:ec2/securityGroup:SecurityGroup"):
        rules += [{**rule, "group": group.name} for rule in group.inputs.get("ingress", [])]
    for type_ in (
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    ):
        for rule in program.of_type(type_):
            if rule.inputs.get("type", "ingress") == "ingress":
                rules.append({**rule.inputs, "group": rule.name})
    return rules


def test_no_ssh_and_no_world_open_ingress_anywhere(program: Program) -> None:
    """The SSH rules: each agent pool admits the controller's security group (the SSH launcher)."""
    rules = _ingress_rules(program)
    assert rules, "the stack declares security groups"
    (controller,) = _mine(program, "aws:ec2/securityGroup:SecurityGroup")[1:]
    for rule in rules:
        low, high = rule.get("fromPort", 0), rule.get("toPort", 65535)
        if rule["group"] in ("jenkins-agents-agents", "jenkins-release-agents-agents"):
            assert rule["securityGroups"] == [controller.outputs.get("id", f"{controller.name}-id")]
            assert not rule.get("cidrBlocks") and not rule.get("ipv6CidrBlocks")
            continue
        assert not (rule.get("protocol") in ("-1", "all") or low <= 22 <= high), f"SSH reachable: {rule}"
        sources = _as_list(rule.get("cidrBlocks", [])) + _as_list(rule.get("ipv6CidrBlocks", []))
        sources += _as_list(rule.get("cidrIpv4", [])) + _as_list(rule.get("cidrIpv6", []))
        for cidr in sources:
            assert ipaddress.ip_network(cidr).prefixlen > 0, f"world-open ingress: {rule}"


def test_alb_admits_admin_cidrs_and_github_hooks_only(program: Program) -> None:
    (alb_group,) = [
        g for g in _mine(program, "aws:ec2/securityGroup:SecurityGroup") if g.name.endswith("-alb")
    ]
    ingress = alb_group.inputs["ingress"]
    assert {(r["fromPort"], r["toPort"], r["protocol"]) for r in ingress} == {(80, 80, "tcp")}
    assert sorted(c for r in ingress for c in r.get("cidrBlocks", [])) == sorted(
        ALLOWED_CIDRS + GITHUB_HOOK_RANGES_V4
    )
    assert sorted(c for r in ingress for c in r.get("ipv6CidrBlocks", [])) == sorted(GITHUB_HOOK_RANGES_V6)


def test_instance_admits_only_its_alb(program: Program) -> None:
    groups = {g.name: g for g in _mine(program, "aws:ec2/securityGroup:SecurityGroup")}
    (ingress,) = groups["jenkins-instance"].inputs["ingress"]
    assert (ingress["fromPort"], ingress["toPort"]) == (8080, 8080)
    assert ingress["securityGroups"] == ["jenkins-alb-id"]
    assert not ingress.get("cidrBlocks") and not ingress.get("ipv6CidrBlocks")


def assert_rules_route_hooks_to_the_webhook_path_only(program: Program, listener: Resource) -> None:
    """Every rule sits on `listener`; GitHub's ranges reach the webhook path, the admins everything."""
    (default,) = listener.inputs["defaultActions"]
    assert default["type"] == "fixed-response" and default["fixedResponse"]["statusCode"] == "403"
    hook_sources: list[str] = []
    admin_sources: list[str] = []
    for rule in _mine(program, "aws:lb/listenerRule:ListenerRule"):
        assert rule.property_dependencies["listenerArn"] == (listener.urn,)
        # The AWS provider takes exactly one field per condition block: path and source are two blocks.
        conditions = {field: c[field]["values"] for c in rule.inputs["conditions"] for field in c}
        assert len(conditions) == len(rule.inputs["conditions"]), rule.inputs["conditions"]
        sources = conditions["sourceIp"]
        # ELB: three values per condition, five per rule.
        assert len(sources) <= 3 and sum(len(v) for v in conditions.values()) <= 5
        if "pathPattern" in conditions:
            assert conditions["pathPattern"] == ["/github-webhook/*"]
            hook_sources += sources
        else:
            admin_sources += sources
    assert sorted(hook_sources) == sorted(HOOKS)
    assert sorted(admin_sources) == sorted(ALLOWED_CIDRS)


def test_listener_rules_route_hooks_to_the_webhook_path_only(program: Program) -> None:
    (listener,) = _mine(program, "aws:lb/listener:Listener")
    assert (listener.inputs["port"], listener.inputs["protocol"]) == (80, "HTTP")
    assert_rules_route_hooks_to_the_webhook_path_only(program, listener)


def test_many_admin_cidrs_are_split_across_rules() -> None:
    cidrs = [f"100.20.0.{i * 16}/28" for i in range(7)]
    program = run_program({"jenkins.allowedCidrs": cidrs})
    rules = _mine(program, "aws:lb/listenerRule:ListenerRule")
    admin = [r for r in rules if len(r.inputs["conditions"]) == 1]
    assert len(admin) == 3
    assert sorted(c for r in admin for c in r.inputs["conditions"][0]["sourceIp"]["values"]) == sorted(cidrs)
    assert len({r.inputs["priority"] for r in rules}) == len(rules)


def test_listener_rules_are_named_by_priority_so_changes_update_them_in_place() -> None:
    """A rule created under a new name at a priority an old rule still holds fails (PriorityInUse): Pulumi
    creates before it deletes. Named by priority, a changed CIDR list updates rules in place."""
    before = {r.name: r.inputs["priority"] for r in _mine(run_program(), "aws:lb/listenerRule:ListenerRule")}
    cidrs = [f"100.20.0.{i * 16}/28" for i in range(5)]
    after = {
        r.name: r.inputs["priority"]
        for r in _mine(run_program({"jenkins.allowedCidrs": cidrs}), "aws:lb/listenerRule:ListenerRule")
    }
    for rules in (before, after):
        assert all(name == f"jenkins-rule-{priority}" for name, priority in rules.items())
    assert set(before) < set(after)


def test_replacing_the_instance_detaches_the_home_volume_before_attaching_it_again(program: Program) -> None:
    """TLS or boot-file changes replace the instance (user_data_replace_on_change). The attachment then
    points at a new instance id; created before the old one is deleted, AWS refuses it (VolumeInUse)."""
    (instance,) = _mine(program, "aws:ec2/instance:Instance")
    assert instance.inputs["userDataReplaceOnChange"] is True
    (attachment,) = _mine(program, "aws:ec2/volumeAttachment:VolumeAttachment")
    assert attachment.options["deleteBeforeReplace"] is True
    assert attachment.inputs["stopInstanceBeforeDetaching"] is True


def test_role_policy_has_no_wildcard_actions(program: Program) -> None:
    for statement in _statements(program):
        for action in _as_list(statement["Action"]):
            assert "*" not in action, statement
        if statement["Resource"] == "*":
            # Describe and list calls have no resource-level permissions; nothing that changes anything or
            # returns a secret's value is on "*". ListSecrets is what the credentials provider finds its
            # secrets with (its README, "IAM": required, in an example statement with no resource).
            assert set(_as_list(statement["Action"])) <= {
                "autoscaling:DescribeAutoScalingGroups",
                "ec2:DescribeInstances",
                "secretsmanager:ListSecrets",
            }, statement


def test_controller_pushes_nothing_its_agents_push_to_this_repository(program: Program) -> None:
    """Builds moved to the agents (issue 10): the controller role has no ECR access at all."""
    assert not [s for s in _statements(program) if any(a.startswith("ecr:") for a in _as_list(s["Action"]))]
    repository = program.one("aws:ecr/repository:Repository")
    agents = program.one("gitops:infra:JenkinsAgents", "jenkins-agents")
    (policy,) = [r for r in program.children(agents) if r.type == "aws:iam/rolePolicy:RolePolicy"]
    pushing = [s for s in json.loads(policy.inputs["policy"])["Statement"] if ECR_PUSH & set(s["Action"])]
    assert [s["Resource"] for s in pushing] == [repository.outputs["arn"]]


def test_controller_manages_only_its_own_agents_groups(program: Program) -> None:
    groups = program.of_type("aws:autoscaling/group:Group")
    assert len(groups) == 2  # build and release pools
    scaling = [s for s in _statements(program) if "autoscaling:UpdateAutoScalingGroup" in s["Action"]]
    assert sorted(s["Resource"] for s in scaling) == sorted(g.outputs["arn"] for g in groups)
    actions = {a for s in _statements(program) for a in _as_list(s["Action"])}
    assert not {"iam:PassRole", "ec2:RunInstances", "ec2:TerminateInstances"} & actions


def test_role_reads_only_its_own_secrets(program: Program) -> None:
    secrets = _mine(program, "aws:secretsmanager/secret:Secret")
    assert {s.name for s in secrets} == {
        "jenkins-deploy-key",
        "jenkins-admin-password",
        "jenkins-webhook-secret",
        "jenkins-agent-ssh-key",
        "jenkins-checkout-key",
        "jenkins-signing-key",
        "jenkins-signing-public-key",
        "jenkins-pulls-token",
    }
    (reading,) = [s for s in _statements(program) if "secretsmanager:GetSecretValue" in s["Action"]]
    assert sorted(reading["Resource"]) == sorted(s.outputs["arn"] for s in secrets)
    (kms_key,) = _mine(program, "aws:kms/key:Key")
    (decrypt,) = [s for s in _statements(program) if "kms:Decrypt" in s["Action"]]
    assert decrypt["Resource"] == kms_key.outputs["arn"]
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == "secretsmanager.us-east-1.amazonaws.com"
    for secret in secrets:
        assert secret.inputs["kmsKeyId"] == kms_key.outputs["arn"]


# What the pipeline and JCasC bind, and how: the plugin's `jenkins:credentials:type` values (README,
# "Usage"), with the SSH user in `jenkins:credentials:username`.
EXPECTED_CREDENTIALS = {
    "gitops-deploy-key": {TYPE_TAG: "sshUserPrivateKey", USERNAME_TAG: "git"},
    "gitops-checkout-key": {TYPE_TAG: "sshUserPrivateKey", USERNAME_TAG: "git"},
    AGENT_CREDENTIALS_ID: {TYPE_TAG: "sshUserPrivateKey", USERNAME_TAG: "jenkins"},
    "github-webhook-secret": {TYPE_TAG: "string"},
    "gitops-signing-key": {TYPE_TAG: "file"},
    "gitops-signing-public-key": {TYPE_TAG: "file"},
    "gitops-pulls-token": {TYPE_TAG: "string"},
}


def test_each_credential_is_a_tagged_secret_named_by_its_id_under_the_stack_prefix(program: Program) -> None:
    credentials = {
        s.inputs["name"].removeprefix("gitops-eks-dev/jenkins/"): s
        for s in _mine(program, "aws:secretsmanager/secret:Secret")
        if "name" in s.inputs
    }
    assert {cid: s.inputs["tags"] for cid, s in credentials.items()} == EXPECTED_CREDENTIALS
    assert all(s.inputs["name"].startswith("gitops-eks-dev/jenkins/") for s in credentials.values())
    # Fixed names: a replacement deletes the old secret first, at once (no recovery window to wait out).
    assert {
        (s.inputs["recoveryWindowInDays"], s.options.get("deleteBeforeReplace")) for s in credentials.values()
    } == {(0, True)}
    (admin,) = [
        s for s in _mine(program, "aws:secretsmanager/secret:Secret") if s.name == "jenkins-admin-password"
    ]
    assert "tags" not in admin.inputs and not admin.inputs["namePrefix"].startswith("gitops-eks-dev/jenkins/")


def test_the_signing_keys_are_file_credentials_stored_as_binary(program: Program) -> None:
    """The plugin's `file` type reads SecretBinary only (CredentialsFactory.SecretBytesSupplier returns
    null for a SecretString), and the AWS provider takes `secret_binary` base64-encoded. The values are
    the stack's OpenPGP key (infra/openpgp.py): its private half and its public half."""
    signed = program
    (key,) = signed.of_type("pulumi-python:dynamic/openpgp:Key")
    armored, public = key.outputs["private_key"], key.outputs["public_key"]
    (reading,) = [s for s in _statements(signed) if "secretsmanager:GetSecretValue" in s["Action"]]
    # The public key decides which commits' code the release agent runs: stored like the private key.
    for role, credential, value in (
        ("signing-key", "gitops-signing-key", armored),
        ("signing-public-key", "gitops-signing-public-key", public),
    ):
        (secret,) = [
            s for s in _mine(signed, "aws:secretsmanager/secret:Secret") if s.name == f"jenkins-{role}"
        ]
        assert secret.inputs["name"] == f"gitops-eks-dev/jenkins/{credential}"
        assert secret.inputs["tags"] == {TYPE_TAG: "file"}
        (version,) = [
            v
            for v in _mine(signed, "aws:secretsmanager/secretVersion:SecretVersion")
            if v.name == f"jenkins-{role}"
        ]
        assert "secretString" not in version.inputs and "secretBinary" in version.secret_inputs
        assert base64.b64decode(version.inputs["secretBinary"]).decode() == value
        assert secret.outputs["arn"] in reading["Resource"]


def test_the_pulls_token_is_a_string_credential_the_controller_may_read(program: Program) -> None:
    """`pullsToken` (a secret, required) becomes the `gitops-pulls-token` credential the release binds
    with `string(...)`: the plugin's `string` type reads SecretString."""
    secrets = _mine(program, "aws:secretsmanager/secret:Secret")
    (secret,) = [s for s in secrets if s.name == "jenkins-pulls-token"]
    assert secret.inputs["name"] == "gitops-eks-dev/jenkins/gitops-pulls-token"
    assert secret.inputs["tags"] == {TYPE_TAG: "string"}
    (version,) = [
        v
        for v in _mine(program, "aws:secretsmanager/secretVersion:SecretVersion")
        if v.name == "jenkins-pulls-token"
    ]
    assert version.inputs["secretString"] == OPERATOR_CONFIG["pullsToken"]
    assert "secretString" in version.secret_inputs
    (reading,) = [s for s in _statements(program) if "secretsmanager:GetSecretValue" in s["Action"]]
    assert secret.outputs["arn"] in reading["Resource"]


def test_role_is_for_ec2_with_session_manager_minimum_not_ssm_core(program: Program) -> None:
    (role,) = _mine(program, "aws:iam/role:Role")
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Service": "ec2.amazonaws.com"}
    # No managed policy at all (AmazonSSMManagedInstanceCore brought Run Command, Parameter Store...).
    assert not _mine(program, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    sessions = program.one("gitops:infra:SessionAccess")
    (ssm,) = [r for r in program.children(sessions) if r.type == "aws:iam/rolePolicy:RolePolicy"]
    assert ssm.inputs["role"] == role.outputs["name"]
    (profile,) = _mine(program, "aws:iam/instanceProfile:InstanceProfile")
    (instance,) = _mine(program, "aws:ec2/instance:Instance")
    assert instance.inputs["iamInstanceProfile"] == profile.outputs["name"]


def test_every_generated_secret_is_stored_as_a_string(program: Program) -> None:
    """All but the signing key, a file credential (above)."""
    passwords = {
        p.name: p.outputs["result"] for p in _mine(program, "random:index/randomPassword:RandomPassword")
    }
    versions = {
        v.name: v
        for v in _mine(program, "aws:secretsmanager/secretVersion:SecretVersion")
        if v.name not in ("jenkins-signing-key", "jenkins-signing-public-key")
    }
    assert set(versions) == {
        "jenkins-deploy-key",
        "jenkins-admin-password",
        "jenkins-webhook-secret",
        "jenkins-agent-ssh-key",
        "jenkins-checkout-key",
        "jenkins-pulls-token",
    }
    assert versions["jenkins-admin-password"].inputs["secretString"] == passwords["jenkins-admin"]
    assert versions["jenkins-webhook-secret"].inputs["secretString"] == passwords["jenkins-webhook"]
    # The `file` credentials are SecretBinary (test_the_signing_keys_are_file_credentials_stored_as_binary).
    assert all("secretString" in v.secret_inputs for v in versions.values())


def test_github_webhook_to_jenkins_is_signed(program: Program) -> None:
    (webhook,) = _mine(program, "github:index/repositoryWebhook:RepositoryWebhook")
    (alb,) = _mine(program, "aws:lb/loadBalancer:LoadBalancer")
    (token,) = [
        p for p in _mine(program, "random:index/randomPassword:RandomPassword") if p.name == "jenkins-webhook"
    ]
    assert webhook.inputs["repository"] == "hello-gitops"
    assert webhook.inputs["events"] == ["push"]
    configuration = webhook.inputs["configuration"]
    assert configuration["url"] == f"http://{alb.outputs['dnsName']}/github-webhook/"
    assert configuration["contentType"] == "json"
    assert configuration["secret"] == token.outputs["result"]
    assert configuration["insecureSsl"] is False
    assert "configuration" in webhook.secret_inputs


def test_outputs_name_the_secrets_and_the_url(program: Program) -> None:
    (alb,) = _mine(program, "aws:lb/loadBalancer:LoadBalancer")
    outputs = program.outputs
    assert outputs["jenkinsUrl"] == f"http://{alb.outputs['dnsName']}/"
    assert outputs["jenkinsAdminPasswordSecret"] == "jenkins-admin-password"
    assert outputs["jenkinsDeployKeySecret"] == "gitops-eks-dev/jenkins/gitops-deploy-key"


# --- TLS: jenkins.certificateArn and jenkins.hostname -------------------------------------------------

CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
HOSTNAME = "jenkins.example.com"


@pytest.fixture(scope="module")
def tls_program() -> Program:
    return run_program({"jenkins.certificateArn": CERTIFICATE, "jenkins.hostname": HOSTNAME})


def _listener(program: Program, port: int) -> Resource:
    (listener,) = [r for r in _mine(program, "aws:lb/listener:Listener") if r.inputs["port"] == port]
    return listener


def test_tls_serves_jenkins_on_https_with_a_modern_policy_and_the_same_rules(tls_program: Program) -> None:
    https = _listener(tls_program, 443)
    assert https.inputs["protocol"] == "HTTPS"
    assert https.inputs["sslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert https.inputs["certificateArn"] == CERTIFICATE
    assert_rules_route_hooks_to_the_webhook_path_only(tls_program, https)


def test_tls_port_80_only_redirects_to_https(tls_program: Program) -> None:
    http = _listener(tls_program, 80)
    assert http.inputs["protocol"] == "HTTP"
    assert http.inputs["defaultActions"] == [
        {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}
    ]
    assert len(_mine(tls_program, "aws:lb/listener:Listener")) == 2


def test_tls_security_group_admits_admins_on_80_and_443_and_github_on_443_only(tls_program: Program) -> None:
    (alb_group,) = [
        g for g in _mine(tls_program, "aws:ec2/securityGroup:SecurityGroup") if g.name.endswith("-alb")
    ]
    by_port: dict[int, list[str]] = {}
    for rule in alb_group.inputs["ingress"]:
        assert rule["fromPort"] == rule["toPort"] and rule["protocol"] == "tcp"
        by_port.setdefault(rule["fromPort"], []).extend(
            rule.get("cidrBlocks", []) + rule.get("ipv6CidrBlocks", [])
        )
    assert sorted(by_port) == [80, 443]
    assert sorted(by_port[80]) == sorted(ALLOWED_CIDRS)
    assert sorted(by_port[443]) == sorted(ALLOWED_CIDRS + HOOKS)


def test_tls_urls_and_the_github_webhook_use_https_and_the_hostname(tls_program: Program) -> None:
    (webhook,) = _mine(tls_program, "github:index/repositoryWebhook:RepositoryWebhook")
    (alb,) = _mine(tls_program, "aws:lb/loadBalancer:LoadBalancer")
    assert webhook.inputs["configuration"]["url"] == f"https://{HOSTNAME}/github-webhook/"
    assert webhook.inputs["configuration"]["insecureSsl"] is False
    assert tls_program.outputs["jenkinsUrl"] == f"https://{HOSTNAME}/"
    # The operator's DNS record for the hostname points at the load balancer's own name.
    assert tls_program.outputs["jenkinsLoadBalancer"] == alb.outputs["dnsName"]
    user_data = yaml.safe_load(controller_user_data(tls_program))
    (env_file,) = [f["content"] for f in user_data["write_files"] if f["path"] == "/etc/jenkins/gitops.env"]
    assert bash_reads(env_file)["GITOPS_JENKINS_URL"] == f"https://{HOSTNAME}/"


def test_hostname_without_certificate_stays_on_http() -> None:
    program = run_program({"jenkins.hostname": HOSTNAME})
    assert program.outputs["jenkinsUrl"] == f"http://{HOSTNAME}/"
    (listener,) = _mine(program, "aws:lb/listener:Listener")
    assert (listener.inputs["port"], listener.inputs["protocol"]) == (80, "HTTP")
    assert "jenkinsLoadBalancer" in program.outputs


@pytest.mark.parametrize("architecture", ["x86_64", "arm64"])
def test_ami_name_pattern_selects_the_standard_al2023_images_amazon_publishes(architecture: str) -> None:
    """Checked against real AMI names: moto ships the latest public AMIs of each region as AWS lists them
    (moto/ec2/resources/latest_amis, owner 137112412989 = amazon). The pattern must take the standard
    AL2023 images (any kernel) and never the minimal ones, which lack packages the boot relies on."""
    import fnmatch
    import gzip
    from pathlib import Path

    import moto

    path = Path(moto.__file__).parent / "ec2" / "resources" / "latest_amis" / "us-east-1.json.gz"
    with gzip.open(path, "rt") as handle:
        names = {image["name"] for image in json.load(handle) if image["owner_id"] == "137112412989"}
    pattern = f"al2023-ami-2023.*-{architecture}"
    chosen = {n for n in names if fnmatch.fnmatchcase(n, pattern)}
    assert chosen, f"no AL2023 {architecture} image matches {pattern}"
    assert all(n.startswith("al2023-ami-2023.") and "minimal" not in n for n in chosen)
    assert {n for n in names if n.startswith("al2023-ami-minimal")} and not chosen & {
        n for n in names if "minimal" in n
    }


def test_home_volume_is_snapshotted_daily_and_once_more_before_it_is_deleted(program: Program) -> None:
    (volume,) = _mine(program, "aws:ebs/volume:Volume")
    # aws.ebs.Volume final_snapshot: "snapshot will be created before volume deletion" (pulumi-aws 7.51).
    assert volume.inputs["finalSnapshot"] is True
    policy = program.one("aws:dlm/lifecyclePolicy:LifecyclePolicy")
    target = policy.inputs["policyDetails"]["targetTags"]
    assert target == {"gitops-eks:jenkins-home-backup": "gitops-eks-dev"}
    assert target.items() <= volume.inputs["tags"].items()


def test_the_agents_cloud_in_the_user_data_names_the_stacks_group() -> None:
    import yaml

    from tests.infra.test_jenkins_clouds import _type_problems

    # The group is auto-named; the provider reports the name AWS got, as here.
    program = run_program(
        extra_outputs={"aws:autoscaling/group:Group": lambda name, _: {"name": f"{name}-0a1b2c3"}}
    )
    files = {f["path"]: f["content"] for f in yaml.safe_load(controller_user_data(program))["write_files"]}
    clouds = yaml.safe_load(files["/etc/jenkins/casc-agents.yaml"])["jenkins"]["clouds"]
    expected = {"build-agent": "jenkins-agents-agents", "release-agent": "jenkins-release-agents-agents"}
    assert [c["eC2Fleet"]["labelString"] for c in clouds] == list(expected)
    for cloud in clouds:
        group = program.one("aws:autoscaling/group:Group", expected[cloud["eC2Fleet"]["labelString"]])
        assert cloud["eC2Fleet"]["fleet"] == group.outputs["name"] == f"{group.name}-0a1b2c3"
        assert cloud["eC2Fleet"]["maxSize"] == group.inputs["maxSize"] == 2
        assert _type_problems("eC2Fleet", cloud["eC2Fleet"]) == []
