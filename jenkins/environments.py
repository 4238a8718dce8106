"""The environments and their promotion order, from k8s/environments.yaml, and each one's overlay.

The file is the one place that names them: the release deploys to the first, `promote --to` copies
from the one before its target, and each stack's Flux applies `k8s/overlays/<environment>`.
"""

from __future__ import annotations

import re
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

FILE = "k8s/environments.yaml"
OVERLAYS = "k8s/overlays"
# A lower-case DNS label of at most 30 characters: it is a directory name, a stack config value and part
# of a commit status context (infra/config.py refuses the same names).
NAME = re.compile(r"[a-z](?:[a-z0-9-]{0,28}[a-z0-9])?")


class EnvironmentsError(Exception):
    """The environments file is missing or malformed, or names no such environment."""


def parse(text: str) -> tuple[str, ...]:
    """The environment names in promotion order; EnvironmentsError names what is wrong."""
    try:
        doc = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise EnvironmentsError(f"{FILE} is not valid YAML: {exc}") from None
    names = doc.get("environments") if isinstance(doc, dict) else None
    if not isinstance(names, list) or not names:
        raise EnvironmentsError(f"{FILE} needs `environments:`, a list of names in promotion order")
    for name in names:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise EnvironmentsError(
                f"{FILE}: {name!r} is not an environment name (lower-case letters, digits and inner "
                "hyphens, at most 30 characters)"
            )
    if len(set(names)) != len(names):
        raise EnvironmentsError(f"{FILE} lists an environment twice: {', '.join(names)}")
    return tuple(names)


def read(root: Path) -> tuple[str, ...]:
    """The environments of the checkout at root."""
    path = root / FILE
    if not path.is_file():
        raise EnvironmentsError(f"no {FILE} in {root}: it lists the environments in promotion order")
    return parse(path.read_text(encoding="utf-8"))


def overlay(environment: str) -> str:
    """The directory, relative to the repository root, that the environment's Flux applies."""
    return f"{OVERLAYS}/{environment}"


def check(names: tuple[str, ...], environment: str, what: str) -> str:
    """environment if names lists it; EnvironmentsError naming `what` (the flag or key) otherwise."""
    if environment not in names:
        raise EnvironmentsError(f"{what} {environment!r}: not an environment of {FILE} ({', '.join(names)})")
    return environment
