"""`jenkins.agents`: defaults, bounds and the messages that name the key."""

from __future__ import annotations

import pytest

from infra.config import AgentsConfig, ConfigError, parse_agents


def test_absent_means_the_documented_defaults() -> None:
    assert parse_agents(None) == AgentsConfig(instance_type="t3.large", max_agents=2, idle_minutes=5)
    assert parse_agents({}) == parse_agents(None)


def test_every_field_can_be_set() -> None:
    parsed = parse_agents({"instanceType": "m7g.xlarge", "maxAgents": 8, "idleMinutes": 15})
    assert parsed == AgentsConfig(instance_type="m7g.xlarge", max_agents=8, idle_minutes=15)


@pytest.mark.parametrize(
    ("raw", "key", "hint"),
    [
        ("t3.large", "gitops-eks:jenkins.agents:", "must be an object"),
        ({"maxagents": 3}, "gitops-eks:jenkins.agents.maxagents:", "known keys are instanceType"),
        ({"instanceType": "large"}, "gitops-eks:jenkins.agents.instanceType:", "use one like t3.large"),
        ({"instanceType": 3}, "gitops-eks:jenkins.agents.instanceType:", "not an EC2 instance type"),
        ({"maxAgents": 0}, "gitops-eks:jenkins.agents.maxAgents:", "use 1 to 20"),
        ({"maxAgents": 21}, "gitops-eks:jenkins.agents.maxAgents:", "use 1 to 20"),
        ({"maxAgents": True}, "gitops-eks:jenkins.agents.maxAgents:", "must be an integer"),
        ({"maxAgents": "4"}, "gitops-eks:jenkins.agents.maxAgents:", "must be an integer"),
        # The plugin reads 0 idle minutes as "never scale down" (help-idleMinutes.html).
        ({"idleMinutes": 0}, "gitops-eks:jenkins.agents.idleMinutes:", "use 1 to 60"),
        ({"idleMinutes": 61}, "gitops-eks:jenkins.agents.idleMinutes:", "use 1 to 60"),
        # `$` also matches before a final newline (a YAML block scalar keeps one); EC2 would refuse it.
        ({"instanceType": "t3.large\n"}, "gitops-eks:jenkins.agents.instanceType:", "use one like t3.large"),
        # YAML keys need not be strings; the message must still name the bad key, not crash sorting.
        ({1: 2, "maxAgent": 3}, "gitops-eks:jenkins.agents.1:", "known keys are instanceType"),
    ],
)
def test_bad_values_name_the_key_and_what_to_do(raw: object, key: str, hint: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_agents(raw)
    message = str(raised.value)
    assert message.startswith(key)
    assert hint in message
