"""Jenkins on EC2, behind an Application Load Balancer, configured entirely by cloud-init and JCasC.

Why an ALB and not port 8080 on a public instance: a security group cannot tell a GitHub webhook from a
browser. The ALB's listener rules can: GitHub's hook ranges reach only `/github-webhook/*`, the admin
CIDRs reach everything, anyone else gets a 403 from the ALB without touching Jenkins. With
`jenkins.certificateArn` those rules sit on an HTTPS listener (TLS 1.2+ policy) and port 80 only
redirects to it; without it they sit on plain HTTP, where the admin login crosses the network in clear
(acceptable for a throwaway dev stack only; the `alb-http-forwards` policy flags it). The instance
itself sits in a private subnet with no inbound rule except 8080 from the ALB, and no SSH at all
(Session Manager instead).

Secrets never enter the user data, and no credential is ever written to JENKINS_HOME: Jenkins reads each
credential from Secrets Manager when a build binds it (infra/jenkins/credentials.py). The one value JCasC
itself needs, the admin password, is fetched by a systemd `ExecStartPre` through the instance role into a
tmpfs directory each time Jenkins starts (jenkins/server/fetch-secrets.sh). JENKINS_HOME lives on its own
encrypted EBS volume, so replacing the instance (new AMI, new user data) keeps the builds' state.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random
import pulumi_tls as tls
import yaml

from infra.config import JenkinsConfig
from infra.deploy_keys import HookRanges, signed_push_webhook
from infra.iam import EC2_ASSUME_ROLE_POLICY
from infra.jenkins.agents import JenkinsAgents, JenkinsAgentsArgs, architecture, controller_agents_policy
from infra.jenkins.backup import HomeBackup, HomeBackupArgs
from infra.jenkins.boot import BootSettings, compressed, render_user_data
from infra.jenkins.clouds import CloudSettings, ec2_fleet_cloud
from infra.jenkins.credentials import (
    AGENT_KEY,
    CHECKOUT_KEY,
    DEPLOY_KEY,
    PULLS_TOKEN,
    SIGNING_KEY,
    SIGNING_PUBLIC_KEY,
    WEBHOOK_SECRET,
    Credential,
    secret_prefix,
)
from infra.jenkins.pools import BUILD, RELEASE
from infra.jenkins.ssm import SessionAccess

JENKINS_PORT = 8080
WEBHOOK_PATH = "/github-webhook/"
HTTP_PORT = 80
HTTPS_PORT = 443
# TLS 1.3 and 1.2 with forward-secret AEAD ciphers only: what AWS recommends for new listeners.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# EBS attachment name. Nitro instances ignore it (the volume shows up as /dev/nvmeXn1 in attachment order),
# so the boot script finds the volume by its id (JENKINS_HOME_VOLUME_ID) and uses this name only as a
# fallback (Xen instance types, or AL2023's udev link).
HOME_DEVICE = "/dev/sdf"
# Nothing on the controller runs in a container, and nothing in a container may reach IMDS: 1 hop.
IMDS_HOP_LIMIT = 1
# ELB allows three values per condition and five per rule: three sources plus one path stays within both.
_SOURCES_PER_RULE = 3


@dataclass(frozen=True)
class JenkinsServerArgs:
    config: JenkinsConfig
    repository: str
    """GitHub `owner/name` the pipeline job builds."""
    branch: str
    environment: str
    """The environment whose overlay the release edits (`GITOPS_ENVIRONMENT`)."""
    stack_name: str
    """Pulumi stack the pipeline previews (`PULUMI_STACK`)."""
    region: str
    vpc_id: pulumi.Input[str]
    public_subnet_ids: pulumi.Input[Sequence[str]]
    """Where the load balancer lives (two or more AZs)."""
    private_subnet_ids: pulumi.Input[Sequence[str]]
    """Where the instance lives (the first one)."""
    ecr_repository_arn: pulumi.Input[str]
    ecr_repository_url: pulumi.Input[str]
    deploy_private_key: pulumi.Input[str]
    """The write deploy key (a Pulumi secret); stored in Secrets Manager, never in user data. Builds get
    it only in the release step."""
    checkout_private_key: pulumi.Input[str]
    """The read-only deploy key every build checks out with (a Pulumi secret)."""
    known_hosts: str
    hook_ranges: HookRanges
    git_ranges: HookRanges
    """Where GitHub serves git over SSH: the only SSH destinations of the build agents."""
    trust_anchor: pulumi.Input[str]
    """The branch's head when the stack was created (infra/trust_anchor.py): GITOPS_TRUST_ANCHOR."""
    pulls_token: pulumi.Input[str]
    """The fine-grained token with "Pull requests: read" only (a Pulumi secret), stored as the
    `gitops-pulls-token` credential the release binds as GITOPS_PULLS_TOKEN."""
    signing_private_key: pulumi.Input[str] | None = None
    """The ASCII-armored OpenPGP key the bot signs its commits with (a Pulumi secret), stored as the
    `gitops-signing-key` credential; None declares no such credential."""
    signing_public_key: pulumi.Input[str] | None = None
    """Its ASCII-armored public key, stored as the `gitops-signing-public-key` credential: the release
    agent runs only code from a commit it signed (jenkins/Jenkinsfile). Given with the private key."""


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


class JenkinsServer(pulumi.ComponentResource):
    """Jenkins LTS on an IMDSv2-only EC2 instance, its secrets, IAM role, ALB and GitHub webhook."""

    def __init__(
        self, name: str, args: JenkinsServerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("gitops:infra:JenkinsServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        repository_name = args.repository.split("/", 1)[1]

        # Secrets: one KMS key for all of them; only the instance role is granted decrypt.
        self.kms_key = aws.kms.Key(
            f"{name}-secrets",
            description=f"Jenkins secrets for {args.repository}",
            enable_key_rotation=True,
            deletion_window_in_days=7,
            opts=child,
        )
        # Unique per stack in the account: scopes what the controller may tag, what DLM snapshots, and
        # which secrets Jenkins lists as its credentials.
        tag_value = f"{pulumi.get_project()}-{pulumi.get_stack()}"
        self.credentials_prefix = secret_prefix(tag_value, name)
        self.admin_password = random.RandomPassword(f"{name}-admin", length=32, special=False, opts=child)
        self.webhook_token = random.RandomPassword(f"{name}-webhook", length=40, special=False, opts=child)
        # JCasC's own login for the admin (not a Jenkins credential, so outside the listed prefix).
        self.admin_password_secret = self._secret(name, "admin-password", self.admin_password.result, child)
        self.deploy_key_secret = self._secret(name, "deploy-key", args.deploy_private_key, child, DEPLOY_KEY)
        self.webhook_secret = self._secret(
            name, "webhook-secret", self.webhook_token.result, child, WEBHOOK_SECRET
        )
        # The controller logs in to its build agents with this key (ECDSA P-256: AL2023's sshd and the SSH
        # launcher's trilead-ssh2 both accept it); agents get only the public half.
        self.agent_key = tls.PrivateKey(
            f"{name}-agent-login", algorithm="ECDSA", ecdsa_curve="P256", opts=child
        )
        self.agent_key_secret = self._secret(
            name, "agent-ssh-key", self.agent_key.private_key_openssh, child, AGENT_KEY
        )
        self.checkout_key_secret = self._secret(
            name, "checkout-key", args.checkout_private_key, child, CHECKOUT_KEY
        )
        secrets = [
            self.admin_password_secret,
            self.deploy_key_secret,
            self.webhook_secret,
            self.agent_key_secret,
            self.checkout_key_secret,
        ]
        if (args.signing_private_key is None) != (args.signing_public_key is None):
            raise ValueError(
                "JenkinsServerArgs: give signing_private_key and signing_public_key together (the release "
                "agent verifies the code it runs with the public key of the key that signs), or neither"
            )
        if args.signing_private_key is not None and args.signing_public_key is not None:
            secrets.append(self._secret(name, "signing-key", args.signing_private_key, child, SIGNING_KEY))
            secrets.append(
                self._secret(name, "signing-public-key", args.signing_public_key, child, SIGNING_PUBLIC_KEY)
            )
        secrets.append(self._secret(name, "pulls-token", args.pulls_token, child, PULLS_TOKEN))

        self.role = aws.iam.Role(
            f"{name}-role",
            description="Jenkins controller: read its own secrets, scale its build agents, Session Manager",
            assume_role_policy=EC2_ASSUME_ROLE_POLICY,
            opts=child,
        )
        # Session Manager with the documented minimum, every session logged (instead of SSM's broad
        # managed policy): infra/jenkins/ssm.py.
        self.sessions = SessionAccess(f"{name}-shell", role_name=self.role.name, opts=child)
        self.policy = aws.iam.RolePolicy(
            f"{name}-access",
            role=self.role.id,
            policy=pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    # No ECR: the controller builds and pushes nothing; its agents do.
                    "Statement": [
                        {
                            "Sid": "ReadOwnSecrets",
                            "Effect": "Allow",
                            "Action": ["secretsmanager:GetSecretValue"],
                            "Resource": [secret.arn for secret in secrets],
                        },
                        # The credentials provider finds its secrets with ListSecrets, which IAM cannot
                        # scope to resources: it returns the names, descriptions and tags (never values)
                        # of every secret in the region; the plugin keeps only this stack's prefix.
                        {
                            "Sid": "ListSecretsMetadata",
                            "Effect": "Allow",
                            "Action": ["secretsmanager:ListSecrets"],
                            "Resource": "*",
                        },
                        {
                            "Sid": "DecryptOwnSecrets",
                            "Effect": "Allow",
                            "Action": ["kms:Decrypt"],
                            "Resource": self.kms_key.arn,
                            "Condition": {
                                "StringEquals": {
                                    "kms:ViaService": f"secretsmanager.{args.region}.amazonaws.com"
                                }
                            },
                        },
                    ],
                }
            ),
            opts=child,
        )
        self.instance_profile = aws.iam.InstanceProfile(f"{name}-profile", role=self.role.name, opts=child)

        self.alb_security_group, self.instance_security_group = self._security_groups(name, args, child)
        # Two pools split by trust (infra/jenkins/pools.py): the build never runs where the write key is.
        pools = {}
        for suffix, pool in (("agents", BUILD), ("release-agents", RELEASE)):
            pools[pool] = JenkinsAgents(
                f"{name}-{suffix}",
                JenkinsAgentsArgs(
                    config=args.config.agents,
                    vpc_id=args.vpc_id,
                    private_subnet_ids=args.private_subnet_ids,
                    controller_security_group_id=self.instance_security_group.id,
                    ecr_repository_arn=args.ecr_repository_arn,
                    controller_public_key=self.agent_key.public_key_openssh,
                    known_hosts=args.known_hosts,
                    git_ranges=args.git_ranges,
                    tag_value=tag_value,
                    pool=pool,
                ),
                opts=child,
            )
            aws.iam.RolePolicy(
                f"{name}-{suffix}",
                role=self.role.id,
                policy=pools[pool].group_arn.apply(
                    lambda arn: json.dumps(
                        controller_agents_policy(arn, tag_value, args.config.agents.max_agents)
                    )
                ),
                opts=child,
            )
        self.agents, self.release_agents = pools[BUILD], pools[RELEASE]
        self.backup = HomeBackup(f"{name}-home", HomeBackupArgs(tag_value=tag_value), opts=child)
        self.load_balancer = aws.lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=False,
            security_groups=[self.alb_security_group.id],
            subnets=args.public_subnet_ids,
            drop_invalid_header_fields=True,
            opts=child,
        )
        # The operator points `jenkins.hostname` at this name (DNS is theirs to manage).
        self.load_balancer_dns_name: pulumi.Output[str] = self.load_balancer.dns_name
        scheme = "https" if args.config.certificate_arn else "http"
        host = (
            pulumi.Output.from_input(args.config.hostname)
            if args.config.hostname
            else self.load_balancer.dns_name
        )
        self.url: pulumi.Output[str] = host.apply(lambda name: f"{scheme}://{name}/")
        self.webhook_url: pulumi.Output[str] = host.apply(lambda name: f"{scheme}://{name}{WEBHOOK_PATH}")

        ami = aws.ec2.get_ami(
            most_recent=True,
            owners=["amazon"],
            filters=[
                {"name": "name", "values": [f"al2023-ami-2023.*-{architecture(args.config.instance_type)}"]},
                {"name": "state", "values": ["available"]},
            ],
        )
        subnet_id = pulumi.Output.from_input(args.private_subnet_ids).apply(lambda ids: ids[0])
        # Created before the instance (in its subnet's zone) so the boot script can be told the volume's id.
        self.home_volume = aws.ebs.Volume(
            f"{name}-home",
            availability_zone=aws.ec2.get_subnet_output(id=subnet_id).availability_zone,
            size=args.config.volume_size,
            type="gp3",
            encrypted=True,
            # The tag puts it under the daily snapshots; final_snapshot keeps one more when it is deleted
            # (`pulumi destroy`, a replacement): JENKINS_HOME is never gone without a snapshot.
            tags={"Name": f"{name}-jenkins-home", **self.backup.volume_tags},
            final_snapshot=True,
            opts=child,
        )
        user_data = pulumi.Output.all(
            args.ecr_repository_url,
            self.url,
            self.home_volume.id,
            self.agents.group_name,
            self.release_agents.group_name,
            self.admin_password_secret.arn,
            args.trust_anchor,
        ).apply(
            lambda values: render_user_data(
                BootSettings(
                    region=args.region,
                    repository=args.repository,
                    branch=args.branch,
                    environment=args.environment,
                    stack_name=args.stack_name,
                    image_repository=values[0],
                    jenkins_url=values[1],
                    home_volume_id=values[2],
                    agents_casc=yaml.safe_dump(
                        ec2_fleet_cloud(
                            CloudSettings(args.config.agents, values[3], args.region, BUILD),
                            CloudSettings(args.config.agents, values[4], args.region, RELEASE),
                        ),
                        sort_keys=False,
                    ),
                    known_hosts=args.known_hosts,
                    admin_password_secret=values[5],
                    credentials_prefix=self.credentials_prefix,
                    trust_anchor=values[6],
                )
            )
        )
        self.instance = aws.ec2.Instance(
            f"{name}-instance",
            ami=ami.id,
            instance_type=args.config.instance_type,
            subnet_id=subnet_id,
            vpc_security_group_ids=[self.instance_security_group.id],
            iam_instance_profile=self.instance_profile.name,
            associate_public_ip_address=False,
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": IMDS_HOP_LIMIT,
                "instance_metadata_tags": "disabled",
            },
            root_block_device={"encrypted": True, "volume_type": "gp3", "volume_size": 20},
            ebs_optimized=True,
            monitoring=True,
            user_data_base64=user_data.apply(compressed),
            # JENKINS_HOME is on its own volume, so a new instance for new boot config loses nothing.
            user_data_replace_on_change=True,
            tags={"Name": f"{name}-jenkins"},
            # A newer AMI must not replace the server on an unrelated `pulumi up`; take it with --replace.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["ami"]),
        )
        aws.ec2.VolumeAttachment(
            f"{name}-home",
            device_name=HOME_DEVICE,
            volume_id=self.home_volume.id,
            instance_id=self.instance.id,
            stop_instance_before_detaching=True,
            # A replaced instance gets a new attachment; AWS refuses it while the volume is still attached to
            # the old instance (VolumeInUse), so the old attachment goes first.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        self._listener(name, args, child)

        self.webhook = signed_push_webhook(
            f"{name}-webhook", repository_name, self.webhook_url, self.webhook_token.result, child
        )
        self.admin_password_secret_name: pulumi.Output[str] = self.admin_password_secret.name
        self.deploy_key_secret_name: pulumi.Output[str] = self.deploy_key_secret.name
        self.session_document_name: pulumi.Output[str] = self.sessions.document_name
        self.register_outputs(
            {
                "url": self.url,
                "webhook_url": self.webhook_url,
                "admin_password_secret_name": self.admin_password_secret_name,
                "deploy_key_secret_name": self.deploy_key_secret_name,
                "session_document_name": self.session_document_name,
                "agents_group_name": self.agents.group_name,
                "release_agents_group_name": self.release_agents.group_name,
            }
        )

    def _secret(
        self,
        name: str,
        role: str,
        value: pulumi.Input[str],
        opts: pulumi.ResourceOptions,
        credential: Credential | None = None,
    ) -> aws.secretsmanager.Secret:
        """A secret holding `value`; with `credential`, named and tagged so that Jenkins' credentials
        provider serves it under the credential's id."""
        if credential is None:
            secret = aws.secretsmanager.Secret(
                f"{name}-{role}",
                name_prefix=f"{name}/{role}-",
                description=f"Jenkins {role} (read at each start by the Jenkins instance role)",
                kms_key_id=self.kms_key.arn,
                recovery_window_in_days=7,
                opts=opts,
            )
        else:
            # A fixed name (the credential's id) cannot wait out a recovery window when it is replaced:
            # deleted at once, before its successor is created. Nothing is lost: the value is a copy of
            # one the stack's state holds.
            secret = aws.secretsmanager.Secret(
                f"{name}-{role}",
                name=f"{self.credentials_prefix}{credential.id}",
                description=credential.description,
                kms_key_id=self.kms_key.arn,
                recovery_window_in_days=0,
                tags=credential.tags(),
                opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=True)),
            )
        stored = pulumi.Output.secret(value)
        aws.secretsmanager.SecretVersion(
            f"{name}-{role}",
            secret_id=secret.id,
            **(
                {"secret_binary": stored.apply(lambda text: base64.b64encode(text.encode()).decode())}
                if credential is not None and credential.binary
                else {"secret_string": stored}
            ),
            opts=opts,
        )
        return secret

    def _security_groups(
        self, name: str, args: JenkinsServerArgs, opts: pulumi.ResourceOptions
    ) -> tuple[aws.ec2.SecurityGroup, aws.ec2.SecurityGroup]:
        # GitHub calls the serving port only; admins may also hit :80 and get redirected to HTTPS.
        serving = HTTPS_PORT if args.config.certificate_arn else HTTP_PORT
        admin_ports = sorted({serving, HTTP_PORT})

        def port(number: int) -> dict[str, str | int]:
            return {"protocol": "tcp", "from_port": number, "to_port": number}

        alb = aws.ec2.SecurityGroup(
            f"{name}-alb",
            # Unchanged by TLS on purpose: a new description would replace the group (ForceNew).
            description="Jenkins ALB: HTTP(S) from the admin CIDRs and the GitHub webhook ranges only",
            vpc_id=args.vpc_id,
            ingress=[
                *(
                    {
                        **port(p),
                        "cidr_blocks": list(args.config.allowed_cidrs),
                        "description": "Jenkins admins",
                    }
                    for p in admin_ports
                ),
                {
                    **port(serving),
                    "cidr_blocks": list(args.hook_ranges.ipv4),
                    "description": "GitHub webhooks",
                },
                {
                    **port(serving),
                    "ipv6_cidr_blocks": list(args.hook_ranges.ipv6),
                    "description": "GitHub webhooks",
                },
            ],
            egress=[
                {
                    "protocol": "tcp",
                    "from_port": JENKINS_PORT,
                    "to_port": JENKINS_PORT,
                    "cidr_blocks": ["0.0.0.0/0"],
                    "description": "to the Jenkins target",
                }
            ],
            opts=opts,
        )
        instance = aws.ec2.SecurityGroup(
            f"{name}-instance",
            description="Jenkins server: the UI port from its ALB only; no SSH (use Session Manager)",
            vpc_id=args.vpc_id,
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": JENKINS_PORT,
                    "to_port": JENKINS_PORT,
                    "security_groups": [alb.id],
                    "description": "from the Jenkins ALB",
                }
            ],
            # Packages, GitHub, ECR, Secrets Manager and SSM endpoints.
            egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
            opts=opts,
        )
        return alb, instance

    def _listener(self, name: str, args: JenkinsServerArgs, opts: pulumi.ResourceOptions) -> None:
        target_group = aws.lb.TargetGroup(
            f"{name}-jenkins",
            port=JENKINS_PORT,
            protocol="HTTP",
            target_type="instance",
            vpc_id=args.vpc_id,
            health_check={"path": "/login", "matcher": "200", "interval": 30},
            opts=opts,
        )
        aws.lb.TargetGroupAttachment(
            f"{name}-jenkins",
            target_group_arn=target_group.arn,
            target_id=self.instance.id,
            port=JENKINS_PORT,
            opts=opts,
        )
        forbidden = [
            {"type": "fixed-response", "fixed_response": {"content_type": "text/plain", "status_code": "403"}}
        ]
        if args.config.certificate_arn:
            self.listener = aws.lb.Listener(
                f"{name}-https",
                load_balancer_arn=self.load_balancer.arn,
                port=HTTPS_PORT,
                protocol="HTTPS",
                ssl_policy=TLS_POLICY,
                certificate_arn=args.config.certificate_arn,
                default_actions=forbidden,
                opts=opts,
            )
            # Port 80 serves nothing: every request, from anyone, is sent to HTTPS before it carries data.
            aws.lb.Listener(
                f"{name}-http",
                load_balancer_arn=self.load_balancer.arn,
                port=HTTP_PORT,
                protocol="HTTP",
                default_actions=[
                    {
                        "type": "redirect",
                        "redirect": {"protocol": "HTTPS", "port": str(HTTPS_PORT), "status_code": "HTTP_301"},
                    }
                ],
                opts=opts,
            )
        else:
            self.listener = aws.lb.Listener(
                f"{name}-http",
                load_balancer_arn=self.load_balancer.arn,
                port=HTTP_PORT,
                protocol="HTTP",
                default_actions=forbidden,
                opts=opts,
            )
        forward = [{"type": "forward", "target_group_arn": target_group.arn}]
        hooks = [*args.hook_ranges.ipv4, *args.hook_ranges.ipv6]
        # One field per condition block (the AWS provider refuses two in one block).
        rules: list[list[dict]] = [
            [{"path_pattern": {"values": [f"{WEBHOOK_PATH}*"]}}, {"source_ip": {"values": chunk}}]
            for chunk in _chunks(hooks, _SOURCES_PER_RULE)
        ]
        rules += [
            [{"source_ip": {"values": chunk}}]
            for chunk in _chunks(args.config.allowed_cidrs, _SOURCES_PER_RULE)
        ]
        # Named by priority: when the CIDR lists change, a rule is updated in place rather than a new rule
        # being created at a priority the old one still holds (ELB refuses that: PriorityInUse).
        for priority, conditions in enumerate(rules, start=10):
            aws.lb.ListenerRule(
                f"{name}-rule-{priority}",
                listener_arn=self.listener.arn,
                priority=priority,
                conditions=conditions,
                actions=forward,
                opts=opts,
            )
