"""The stack's config, as `pulumi up` would see it: from `pulumi config --json --show-secrets` when the CLI
is installed, else from Pulumi.<stack>.yaml (where encrypted values stay unreadable), then validated by the
stack's own loader (infra.config.load), so preflight and `pulumi up` refuse the same config the same way.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml

from infra import config as stack_config
from infra.config import Secret, StackConfig
from infra.errors import ConfigError

ENCRYPTED = "(encrypted in the stack file)"


class InputError(Exception):
    """The stack cannot be read (missing stack, malformed file, invalid config): exit 2, nothing checked."""


@dataclass(frozen=True)
class Stack:
    name: str
    config: StackConfig
    source: str
    """Where the values came from: `pulumi config` or the stack file's path."""
    github_token: Secret | None = field(default=None, repr=False)
    encrypted: frozenset[str] = frozenset()
    """Secret keys set in the stack file that could not be decrypted (no Pulumi CLI)."""


def _from_cli(root: Path, stack: str) -> dict[str, dict[str, Any]]:
    # pulumi/pulumi pkg/cmd/pulumi/config/config.go, configValueJSON: {"value", "objectValue", "secret"};
    # with --show-secrets, `value` holds the decrypted text (objects as their JSON text).
    try:
        run = subprocess.run(
            ["pulumi", "config", "--json", "--show-secrets", "--stack", stack],
            cwd=root, capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise InputError(f"`pulumi config --stack {stack}` did not answer in 120s") from None
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(
            f"`pulumi config --stack {stack}` failed: {last}; list the stacks with `pulumi stack ls`, "
            f"or create this one with `pulumi stack init {stack}`"
        )
    try:
        document = json.loads(run.stdout)
    except json.JSONDecodeError:
        raise InputError(f"`pulumi config --json --stack {stack}` printed no JSON") from None
    return document


def _scalar(value: Any) -> str:
    # Pulumi keeps every top-level config value as text; YAML booleans read back as "true"/"false".
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _from_file(path: Path, stack: str) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        stacks = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in path.parent.glob("Pulumi.*.yaml"))
        raise InputError(
            f"stack {stack!r}: no stack file {path.name} in {path.parent} (stacks here: "
            f"{', '.join(stacks) or 'none'}); pass --stack NAME (make preflight STACK=NAME), "
            f"or create it with `pulumi stack init {stack}`"
        )
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(
            f"{path.name}: is not valid YAML{where}; fix the file (or `pulumi config`)"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path.name}: cannot be read ({error})") from None
    if document is None:
        document = {}
    raw = document.get("config", {}) if isinstance(document, dict) else None
    if not isinstance(raw, dict):
        raise InputError(f"{path.name}: `config:` must be a mapping of keys to values")
    values: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[str(key)] = {"secret": True}  # ciphertext: only the Pulumi CLI can decrypt it
        elif isinstance(value, (dict, list)):
            values[str(key)] = {"value": json.dumps(value), "secret": False}
        elif value is None:
            continue
        else:
            values[str(key)] = {"value": _scalar(value), "secret": False}
    return values


def read(root: Path, stack: str) -> Stack:
    """Read and validate the stack's config; raise InputError with one line saying what to do."""
    path = root / f"Pulumi.{stack}.yaml"
    if shutil.which("pulumi") is None:
        values, source = _from_file(path, stack), str(path)
    else:
        try:
            values, source = _from_cli(root, stack), "pulumi config"
        except InputError as error:
            # Not logged in, say: the backend row reports that; the stack file still has the config.
            if not path.is_file():
                raise
            values, source = _from_file(path, stack), f"{path}, as {error}"
    if not isinstance(values, dict):
        raise InputError(f"{source}: the config is not a mapping of keys to values")
    readable = {k: v["value"] for k, v in values.items() if isinstance(v, dict) and "value" in v}
    secret = {k for k, v in values.items() if isinstance(v, dict) and v.get("secret")}
    encrypted = frozenset(secret - set(readable))
    if f"{stack_config.PROJECT}:kubeconfig" in encrypted:
        raise InputError(
            f"{stack_config.PROJECT}:kubeconfig is encrypted in the stack file and only the Pulumi CLI can "
            "read it: install the Pulumi CLI and log in, then run `make preflight` again"
        )
    token = readable.get("github:token")
    # A credential set with `--secret` is there, only unreadable here: the loader sees a stand-in (never
    # used: each row that would use one says it is encrypted), so a required one is not reported missing.
    loaded = {**readable, **{key: ENCRYPTED for key in encrypted if key in stack_config.CREDENTIAL_KEYS}}
    # The stack's own loader, on this config alone: the same checks and messages as `pulumi up`.
    saved_config, saved_secrets = pulumi.runtime.config.CONFIG.get(), pulumi.runtime.config._SECRET_KEYS.get()
    try:
        pulumi.runtime.set_all_config(loaded, sorted(secret & set(loaded)))
        config = stack_config.load(stack)
    except ConfigError as error:
        raise InputError(str(error)) from None
    finally:
        pulumi.runtime.config.CONFIG.set(saved_config)
        pulumi.runtime.config._SECRET_KEYS.set(saved_secrets)
    return Stack(
        name=stack,
        config=config,
        source=source,
        github_token=None if token is None else Secret(token),
        encrypted=encrypted,
    )
