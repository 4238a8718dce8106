"""`jenkins.agents`: how many build agents may run at once, on what instance type, and how long an
unused one waits before it is terminated. Parsed and validated before any resource is declared.

Each agent runs exactly one build (see infra/jenkins/clouds.py), so `maxAgents` is the number of builds
that run concurrently; more builds wait in Jenkins' queue.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.errors import ConfigError

KEY = "gitops-eks:jenkins.agents"
FIELDS = ("instanceType", "maxAgents", "idleMinutes")
# An instance type is a family and a size (`t3.large`, `m7g.xlarge`, `c6in.2xlarge`).
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
# `docker build` of the app plus `make test` fit comfortably in 2 vCPU / 8 GiB.
DEFAULT_INSTANCE_TYPE = "t3.large"
DEFAULT_MAX_AGENTS = 2
# The plugin reads 0 as "never scale down"; an agent that got no build must still go away.
DEFAULT_IDLE_MINUTES = 5
MAX_AGENTS_LIMIT = 20
MAX_IDLE_MINUTES = 60


@dataclass(frozen=True)
class AgentsConfig:
    instance_type: str = DEFAULT_INSTANCE_TYPE
    max_agents: int = DEFAULT_MAX_AGENTS
    """Concurrent builds: the Auto Scaling group's maximum size."""
    idle_minutes: int = DEFAULT_IDLE_MINUTES
    """Minutes an agent that ran no build waits before the plugin terminates it."""


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _integer(raw: Mapping[str, Any], name: str, default: int, low: int, high: int, why: str) -> int:
    value = raw.get(name, default)
    # bool is an int in Python; `maxAgents: true` is a typo, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{KEY}.{name}: must be an integer, got {_describe(value)}; {why}")
    if not low <= value <= high:
        raise ConfigError(f"{KEY}.{name}: {value} is out of range; use {low} to {high} ({why})")
    return value


def parse_agents(raw: Any) -> AgentsConfig:
    """The validated `jenkins.agents` object; absent (None) means every default."""
    if raw is None:
        return AgentsConfig()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{KEY}: must be an object with keys {', '.join(FIELDS)}, got {_describe(raw)}")
    # YAML keys may be numbers or booleans: compare and sort them as text.
    unknown = sorted(str(key) for key in raw if key not in FIELDS)
    if unknown:
        raise ConfigError(
            f"{KEY}.{unknown[0]}: unknown key (check the spelling); known keys are {', '.join(FIELDS)}"
        )
    instance_type = raw.get("instanceType", DEFAULT_INSTANCE_TYPE)
    # fullmatch: `$` alone also matches before a trailing newline, which EC2 would refuse.
    if not isinstance(instance_type, str) or not _INSTANCE_TYPE.fullmatch(instance_type):
        raise ConfigError(
            f"{KEY}.instanceType: {instance_type!r} is not an EC2 instance type; "
            f"use one like {DEFAULT_INSTANCE_TYPE}"
        )
    return AgentsConfig(
        instance_type=instance_type,
        max_agents=_integer(
            raw, "maxAgents", DEFAULT_MAX_AGENTS, 1, MAX_AGENTS_LIMIT, "the number of builds that run at once"
        ),
        idle_minutes=_integer(
            raw,
            "idleMinutes",
            DEFAULT_IDLE_MINUTES,
            1,
            MAX_IDLE_MINUTES,
            "minutes an agent without a build waits before it is terminated",
        ),
    )
