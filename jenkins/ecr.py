"""ECR through the AWS API: docker login with `get_authorization_token`, tags with `describe_images`.

A module of its own because importing boto3 costs about 0.16 s, a third of a whole promote: jenkins/
registry.py imports this module only for ECR repository URLs, so a promote to any other registry, and
every command that never asks a registry, does not pay for it. boto3 honours AWS_ENDPOINT_URL, which is
how tests point it at moto's server.
"""

from __future__ import annotations

import base64

import boto3
import botocore.exceptions

from jenkins.registry import RegistryError, docker_login


def login(account: str, region: str) -> None:
    """Log docker in to the account's registry; the password goes to docker's stdin, never argv."""
    try:
        data = client(region).get_authorization_token(registryIds=[account])["authorizationData"][0]
    except botocore.exceptions.BotoCoreError as exc:
        raise RegistryError(
            f"ECR login to account {account} in {region} failed: {type(exc).__name__}; "
            "check the AWS credentials (instance role or AWS_* variables) and network access to ECR"
        ) from None
    except botocore.exceptions.ClientError as exc:
        raise RegistryError(
            f"ECR login to account {account} in {region} failed: {aws_error(exc)}; the caller needs "
            "ecr:GetAuthorizationToken"
        ) from None
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    registry = data["proxyEndpoint"].removeprefix("https://").removeprefix("http://")
    docker_login(registry, username, password)


def client(region: str):  # boto3 clients have no importable type
    # A fresh session reads the credentials and AWS_ENDPOINT_URL (how tests reach moto) at call time.
    return boto3.session.Session().client("ecr", region_name=region)


def image_digest(account: str, region: str, name: str, tag: str) -> str | None:
    """The digest of NAME:TAG in the account's registry, or None when the tag is absent."""
    where = f"ECR repository {name} (account {account}, {region})"
    try:
        images = client(region).describe_images(
            registryId=account, repositoryName=name, imageIds=[{"imageTag": tag}]
        )
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ImageNotFoundException":
            return None
        if code == "RepositoryNotFoundException":
            raise RegistryError(
                f"{where} does not exist; create it (`pulumi up` does) or fix --image-repository"
            ) from None
        raise RegistryError(
            f"looking up tag {tag} in {where} failed: {aws_error(exc)}; the caller needs ecr:DescribeImages"
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise RegistryError(
            f"looking up tag {tag} in {where} failed: {type(exc).__name__}; "
            "check the AWS credentials and network access to ECR"
        ) from None
    details = images.get("imageDetails", [])
    return details[0]["imageDigest"] if details else None


def aws_error(exc: botocore.exceptions.ClientError) -> str:
    """AWS's error code and message, e.g. `AccessDeniedException: ...`."""
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
