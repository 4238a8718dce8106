"""ECR through the AWS API: registry credentials, tag lookups and the deployed tag.

A module of its own because importing boto3 costs about 0.16 s, a third of a whole promote: jenkins/
registry.py imports this module only for ECR repository URLs, so a promote to any other registry, and
every command that never asks a registry, does not pay for it. It imports nothing of ours: registry.py
depends on it, never the other way round. boto3 honours AWS_ENDPOINT_URL, which is how tests reach moto.
"""

from __future__ import annotations

import base64

import boto3
import botocore.exceptions


class EcrError(Exception):
    """An ECR call failed; the message says which call, on what, and what to check."""


def authorization(account: str, region: str) -> tuple[str, str, str]:
    """(registry host, user, password) for `docker login` to the account's registry."""
    try:
        data = client(region).get_authorization_token(registryIds=[account])["authorizationData"][0]
    except botocore.exceptions.BotoCoreError as exc:
        raise EcrError(
            f"ECR login to account {account} in {region} failed: {type(exc).__name__}; "
            "check the AWS credentials (instance role or AWS_* variables) and network access to ECR"
        ) from None
    except botocore.exceptions.ClientError as exc:
        raise EcrError(
            f"ECR login to account {account} in {region} failed: {aws_error(exc)}; the caller needs "
            "ecr:GetAuthorizationToken"
        ) from None
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    registry = data["proxyEndpoint"].removeprefix("https://").removeprefix("http://")
    return registry, username, password


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
            raise EcrError(
                f"{where} does not exist; create it (`pulumi up` does) or fix --image-repository"
            ) from None
        raise EcrError(
            f"looking up tag {tag} in {where} failed: {aws_error(exc)}; the caller needs ecr:DescribeImages"
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise EcrError(
            f"looking up tag {tag} in {where} failed: {type(exc).__name__}; "
            "check the AWS credentials and network access to ECR"
        ) from None
    details = images.get("imageDetails", [])
    return details[0]["imageDigest"] if details else None


def tag_image(account: str, region: str, name: str, digest: str, tag: str) -> None:
    """Point TAG at the image DIGEST (the same manifest bytes under one more tag)."""
    where = f"ECR repository {name} (account {account}, {region})"
    ecr = client(region)
    try:
        found = ecr.batch_get_image(
            registryId=account, repositoryName=name, imageIds=[{"imageDigest": digest}]
        )["images"]
        if not found:
            raise EcrError(f"{where} has no image {digest}; it cannot be tagged {tag}")
        media_type = found[0].get("imageManifestMediaType")
        ecr.put_image(
            registryId=account,
            repositoryName=name,
            imageManifest=found[0]["imageManifest"],
            imageTag=tag,
            imageDigest=digest,
            **({"imageManifestMediaType": media_type} if media_type else {}),
        )
    except botocore.exceptions.ClientError as exc:
        # AWS: ImageAlreadyExistsException means this tag is already on this very image (nothing to do);
        # a tag that may not move is ImageTagAlreadyExistsException. moto names both the first way, so
        # the registry's answer decides.
        code = exc.response.get("Error", {}).get("Code")
        if code == "ImageAlreadyExistsException" and image_digest(account, region, name, tag) == digest:
            return
        raise EcrError(
            f"tagging {digest} as {tag} in {where} failed: {aws_error(exc)}; the caller needs "
            "ecr:BatchGetImage and ecr:PutImage, and the repository must let the tag move "
            f"(an image tag mutability exclusion matching {tag!r}; the stack declares `deployed*`)"
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise EcrError(
            f"tagging {digest} as {tag} in {where} failed: {type(exc).__name__}; "
            "check the AWS credentials and network access to ECR"
        ) from None


def aws_error(exc: botocore.exceptions.ClientError) -> str:
    """AWS's error code and message, e.g. `AccessDeniedException: ...`."""
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
