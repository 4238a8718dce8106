"""Session Manager access to the Jenkins controller, with its least privilege and its sessions logged.

The instance role gets only what AWS documents for Session Manager (instead of the broader
AmazonSSMManagedInstanceCore: no Run Command, no Parameter Store, no patching), plus writing session
transcripts to one CloudWatch Logs group. Sources and dates: docs/jenkins-agents.md, "Verified facts".

Operators open sessions with this stack's Session document, which carries the logging preferences:
`aws ssm start-session --target <instance-id> --document-name <sessionDocument output>`.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

# Session Manager's own channel and registration calls (AWS Systems Manager User Guide,
# "Create a custom IAM role for Session Manager", minimal permissions).
SESSION_ACTIONS = (
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
)
# Streaming a session transcript to CloudWatch Logs (same page, "permissions for Session Manager and
# Amazon S3 and CloudWatch Logs"). The Describe calls have no resource-level permissions.
LOG_WRITE_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")
LOG_DESCRIBE_ACTIONS = ("logs:DescribeLogGroups", "logs:DescribeLogStreams")
SESSION_LOG_RETENTION_DAYS = 365
IDLE_SESSION_TIMEOUT_MINUTES = 20


def session_manager_policy(log_group_arn: str) -> dict[str, Any]:
    """The instance role's statements for Session Manager with transcripts in one log group."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "SessionManager", "Effect": "Allow", "Action": list(SESSION_ACTIONS), "Resource": "*"},
            {
                "Sid": "SessionLogsWrite",
                "Effect": "Allow",
                "Action": list(LOG_WRITE_ACTIONS),
                # Log streams are addressed below their group's ARN.
                "Resource": [log_group_arn, f"{log_group_arn}:*"],
            },
            {
                "Sid": "SessionLogsDescribe",
                "Effect": "Allow",
                "Action": list(LOG_DESCRIBE_ACTIONS),
                "Resource": "*",
            },
        ],
    }


def session_document(log_group_name: str) -> dict[str, Any]:
    """A Standard_Stream Session document (the Session document schema) that streams to the log group."""
    return {
        "schemaVersion": "1.0",
        "description": "Jenkins controller shell; every session is streamed to CloudWatch Logs",
        "sessionType": "Standard_Stream",
        "inputs": {
            "s3BucketName": "",
            "s3KeyPrefix": "",
            "s3EncryptionEnabled": False,
            "cloudWatchLogGroupName": log_group_name,
            # CloudWatch Logs encrypts at rest with its own key; `true` would demand a customer key.
            "cloudWatchEncryptionEnabled": False,
            "cloudWatchStreamingEnabled": True,
            "idleSessionTimeout": str(IDLE_SESSION_TIMEOUT_MINUTES),
            "kmsKeyId": "",
            "runAsEnabled": False,
            "runAsDefaultUser": "",
            "shellProfile": {"windows": "", "linux": ""},
        },
    }


class SessionAccess(pulumi.ComponentResource):
    """The session log group, the Session document that uses it, and the role's policy for both."""

    def __init__(
        self, name: str, role_name: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("gitops:infra:SessionAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-sessions",
            name_prefix=f"/gitops/{name}/sessions-",
            retention_in_days=SESSION_LOG_RETENTION_DAYS,
            opts=child,
        )
        self.document = aws.ssm.Document(
            f"{name}-session",
            document_type="Session",
            document_format="JSON",
            content=self.log_group.name.apply(lambda group: json.dumps(session_document(group))),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-ssm",
            role=role_name,
            policy=self.log_group.arn.apply(lambda arn: json.dumps(session_manager_policy(arn))),
            opts=child,
        )
        self.document_name: pulumi.Output[str] = self.document.name
        self.register_outputs({"document_name": self.document_name, "log_group": self.log_group.name})
