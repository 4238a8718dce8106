"""Daily snapshots of JENKINS_HOME by Amazon Data Lifecycle Manager (DLM), kept for two weeks.

DLM snapshots every EBS volume carrying BACKUP_TAG_KEY=<tag value>; the controller tags its home volume
with `volume_tags`. Snapshots inherit the volume's tags (copy_tags) and DLM deletes the oldest beyond
`retain`. Restoring is documented in docs/jenkins-agents.md ("Restore JENKINS_HOME").
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

BACKUP_TAG_KEY = "gitops-eks:jenkins-home-backup"
# AWS managed policy for DLM's snapshot policies (EBS User Guide, "IAM service roles for Amazon Data
# Lifecycle Manager"): create, tag, copy and delete snapshots; nothing else.
DLM_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"
DLM_ASSUME_ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "dlm.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
# DLM's CreateRule takes an interval of 1, 2, 3, 4, 6, 8, 12 or 24 hours and a start time in UTC.
SNAPSHOT_EVERY_HOURS = 24
SNAPSHOT_AT_UTC = "03:00"
RETAIN_SNAPSHOTS = 14


@dataclass(frozen=True)
class HomeBackupArgs:
    tag_value: str
    """Value of BACKUP_TAG_KEY on the volumes to snapshot (unique per stack in the account)."""


class HomeBackup(pulumi.ComponentResource):
    """The DLM role and the snapshot policy for volumes tagged `volume_tags`."""

    def __init__(self, name: str, args: HomeBackupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gitops:infra:HomeBackup", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.volume_tags = {BACKUP_TAG_KEY: args.tag_value}
        self.role = aws.iam.Role(
            f"{name}-dlm",
            description="Data Lifecycle Manager: snapshots of the Jenkins home volume",
            assume_role_policy=DLM_ASSUME_ROLE_POLICY,
            opts=child,
        )
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-dlm", role=self.role.name, policy_arn=DLM_POLICY_ARN, opts=child
        )
        self.policy = aws.dlm.LifecyclePolicy(
            f"{name}-snapshots",
            description="Daily snapshots of the Jenkins home volume",
            execution_role_arn=self.role.arn,
            state="ENABLED",
            policy_details={
                "policy_type": "EBS_SNAPSHOT_MANAGEMENT",
                "resource_types": ["VOLUME"],
                "target_tags": self.volume_tags,
                "schedules": [
                    {
                        "name": "daily",
                        "create_rule": {
                            "interval": SNAPSHOT_EVERY_HOURS,
                            "interval_unit": "HOURS",
                            "times": SNAPSHOT_AT_UTC,
                        },
                        "retain_rule": {"count": RETAIN_SNAPSHOTS},
                        "copy_tags": True,
                    }
                ],
            },
            # The role must carry its policy before DLM first assumes it.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[attachment]),
        )
        self.register_outputs({"policy_id": self.policy.id})
