"""JENKINS_HOME snapshots (DLM) and Session Manager access with logged sessions, under mocks."""

from __future__ import annotations

import json

import pytest

from infra.jenkins.backup import BACKUP_TAG_KEY, HomeBackup, HomeBackupArgs
from infra.jenkins.ssm import SessionAccess, session_manager_policy
from tests.infra.conftest import Program
from tests.infra.jenkins_harness import run_components


@pytest.fixture(scope="module")
def backup() -> Program:
    return run_components(lambda: HomeBackup("jenkins", HomeBackupArgs(tag_value="gitops-eks-dev")))


@pytest.fixture(scope="module")
def sessions() -> Program:
    # AWS names a group from its prefix, as the provider's name_prefix asks.
    named = {"aws:cloudwatch/logGroup:LogGroup": lambda name, inputs: {"name": inputs["namePrefix"] + "0001"}}
    return run_components(lambda: SessionAccess("jenkins", role_name="jenkins-role"), named)


def test_dlm_snapshots_the_tagged_volume_daily_and_keeps_two_weeks(backup: Program) -> None:
    policy = backup.one("aws:dlm/lifecyclePolicy:LifecyclePolicy")
    details = policy.inputs["policyDetails"]
    assert policy.inputs["state"] == "ENABLED"
    assert details["policyType"] == "EBS_SNAPSHOT_MANAGEMENT"
    assert details["resourceTypes"] == ["VOLUME"]
    assert details["targetTags"] == {BACKUP_TAG_KEY: "gitops-eks-dev"}
    (schedule,) = details["schedules"]
    # DLM CreateRule: Interval is one of 1, 2, 3, 4, 6, 8, 12, 24 with IntervalUnit HOURS; Times one HH:MM.
    assert schedule["createRule"] == {"interval": 24, "intervalUnit": "HOURS", "times": "03:00"}
    assert schedule["retainRule"] == {"count": 14}
    assert schedule["copyTags"] is True


def test_dlm_role_trusts_only_dlm_and_carries_the_aws_managed_snapshot_policy(backup: Program) -> None:
    role = backup.one("aws:iam/role:Role")
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Service": "dlm.amazonaws.com"}
    attachment = backup.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert attachment.inputs["policyArn"] == (
        "arn:aws:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"
    )
    policy = backup.one("aws:dlm/lifecyclePolicy:LifecyclePolicy")
    assert policy.inputs["executionRoleArn"] == role.outputs["arn"]
    assert attachment.urn in policy.dependencies


def test_session_manager_policy_is_the_documented_minimum_plus_one_log_group() -> None:
    arn = "arn:aws:logs:us-east-1:123456789012:log-group:/gitops/jenkins/sessions-1"
    statements = {s["Sid"]: s for s in session_manager_policy(arn)["Statement"]}
    # AWS Systems Manager User Guide, "Create a custom IAM role for Session Manager".
    assert sorted(statements["SessionManager"]["Action"]) == [
        "ssm:UpdateInstanceInformation",
        "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
    ]
    assert statements["SessionLogsWrite"]["Resource"] == [arn, f"{arn}:*"]
    actions = {a for s in statements.values() for a in s["Action"]}
    # No Run Command, Parameter Store, patching or S3: what AmazonSSMManagedInstanceCore would add.
    assert not {a for a in actions if a.startswith(("ec2messages:", "s3:")) or a == "ssm:GetParameter"}


def test_sessions_stream_to_the_stacks_log_group(sessions: Program) -> None:
    group = sessions.one("aws:cloudwatch/logGroup:LogGroup")
    document = sessions.one("aws:ssm/document:Document")
    content = json.loads(document.inputs["content"])
    assert document.inputs["documentType"] == "Session"
    # Session document schema: Standard_Stream sessions take their logging preferences from `inputs`.
    assert content["sessionType"] == "Standard_Stream"
    assert content["inputs"]["cloudWatchLogGroupName"] == "/gitops/jenkins/sessions-0001"
    assert content["inputs"]["cloudWatchStreamingEnabled"] is True
    assert group.inputs["retentionInDays"] == 365
    policy = json.loads(sessions.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    write = next(s for s in policy["Statement"] if s["Sid"] == "SessionLogsWrite")
    assert write["Resource"][0] == group.outputs["arn"]
