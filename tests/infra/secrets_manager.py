"""The stack's Secrets Manager secrets, made real in moto: created as the program declares them (name or
name prefix, description, tags) and filled with what its SecretVersions store."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import boto3

from tests.infra.conftest import Program

SECRET = "aws:secretsmanager/secret:Secret"
VERSION = "aws:secretsmanager/secretVersion:SecretVersion"


def _client() -> Any:
    return boto3.client("secretsmanager", region_name="us-east-1")


def create_secret(inputs: dict[str, Any], run: str) -> str:
    """Create the declared secret in moto and return its ARN. A fixed name is prefixed with `run` (moto is
    shared by the session); a name prefix gets a random suffix, as AWS gives it."""
    name = f"{run}/{inputs['name']}" if "name" in inputs else f"{inputs['namePrefix']}{secrets.token_hex(4)}"
    tags = [{"Key": k, "Value": v} for k, v in inputs.get("tags", {}).items()]
    return _client().create_secret(Name=name, Description=inputs.get("description", ""), Tags=tags)["ARN"]


def store_versions(program: Program) -> dict[str, str]:
    """Put each SecretVersion's value into its secret; return logical name -> value (binary decoded)."""
    client = _client()
    arns = {secret.name: secret.outputs["arn"] for secret in program.of_type(SECRET)}
    stored = {}
    for version in program.of_type(VERSION):
        arn = arns[version.name]  # each version is declared under its secret's logical name
        if "secretBinary" in version.inputs:
            raw = base64.b64decode(version.inputs["secretBinary"])
            client.put_secret_value(SecretId=arn, SecretBinary=raw)
            stored[version.name] = raw.decode()
        else:
            client.put_secret_value(SecretId=arn, SecretString=version.inputs["secretString"])
            stored[version.name] = version.inputs["secretString"]
    return stored
