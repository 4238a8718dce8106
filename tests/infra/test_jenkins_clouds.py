"""The agents' JCasC cloud entry, checked against the plugins' own configuration model.

tests/infra/data/jcasc_model.json records the @DataBoundConstructor parameters and @DataBoundSetter
properties of EC2FleetCloud (ec2-fleet 4.2.3.540.va_6eedb_7b_c112) and SSHConnector (ssh-slaves
3.1097.v868116049892), copied from their source with the paths and commits. JCasC refuses a key that is
not one of them and fails to bind a value of the wrong type.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import AgentsConfig
from infra.jenkins.agent_boot import WAIT_COMMAND
from infra.jenkins.clouds import (
    AGENT_CREDENTIALS_ID,
    AGENT_LABEL,
    RELEASE_AGENT_LABEL,
    CloudSettings,
    ec2_fleet_cloud,
)
from infra.jenkins.pools import RELEASE

MODEL = json.loads((Path(__file__).parent / "data" / "jcasc_model.json").read_text())
SETTINGS = CloudSettings(
    agents=AgentsConfig(max_agents=4, idle_minutes=7),
    auto_scaling_group="jenkins-agents-1a2b",
    region="us-east-1",
)


def _type_problems(symbol: str, values: dict[str, Any]) -> list[str]:
    """Every key of `values` that the class behind `symbol` does not bind, or binds to another type."""
    model = MODEL["classes"][symbol]
    fields = {**model["constructor"], **model["setters"]}
    problems = []
    for key, value in values.items():
        java = fields.get(key)
        if java is None:
            problems.append(f"{symbol}.{key}: not a field of {model['class']}")
        elif java in ("String",):
            if not isinstance(value, str):
                problems.append(f"{symbol}.{key}: {java} expected, got {value!r}")
        elif java in ("boolean", "Boolean"):
            if not isinstance(value, bool):
                problems.append(f"{symbol}.{key}: {java} expected, got {value!r}")
        elif java in ("int", "Integer"):
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{symbol}.{key}: {java} expected, got {value!r}")
        elif java in MODEL["describables"]:
            problems += _describable_problems(symbol, key, java, value)
        else:
            problems.append(f"{symbol}.{key}: {java} is not checked by this test; extend it")
    return problems


def _describable_problems(symbol: str, key: str, java: str, value: Any) -> list[str]:
    known = MODEL["describables"][java]
    if isinstance(value, str):  # a describable with a no-argument constructor, named alone
        return [] if value in known else [f"{symbol}.{key}: {value!r} is not one of {known}"]
    if not isinstance(value, dict) or len(value) != 1:
        return [f"{symbol}.{key}: one of {known} expected, got {value!r}"]
    ((name, inner),) = value.items()
    if name not in known:
        return [f"{symbol}.{key}: {name!r} is not one of {known}"]
    return _type_problems(name, inner)


def _cloud(document: dict[str, Any]) -> dict[str, Any]:
    (entry,) = document["jenkins"]["clouds"]
    return entry


def test_every_field_is_one_the_plugins_bind_with_its_type() -> None:
    # Through YAML, as JCasC reads it: "1" must stay a string (maxTotalUses is a String parameter).
    document = yaml.safe_load(yaml.safe_dump(ec2_fleet_cloud(SETTINGS)))
    ((symbol, cloud),) = _cloud(document).items()
    assert symbol == "eC2Fleet"
    assert _type_problems(symbol, cloud) == []


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (("maxAgents",), 3, "not a field"),
        (("maxTotalUses",), 1, "String expected"),
        (("noDelayProvision",), "true", "boolean expected"),
        (("computerConnector", "sshConnector", "hostKeyVerification"), "x", "not a field"),
        (("computerConnector", "sshConnector", "sshHostKeyVerificationStrategy"), "Trust", "is not one of"),
        (("computerConnector",), {"jnlpConnector": {}}, "is not one of"),
    ],
)
def test_the_model_check_refuses_what_jcasc_would(path: tuple[str, ...], value: Any, problem: str) -> None:
    cloud = copy.deepcopy(_cloud(ec2_fleet_cloud(SETTINGS))["eC2Fleet"])
    target = cloud
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    problems = _type_problems("eC2Fleet", cloud)
    assert len(problems) == 1 and problem in problems[0], problems


def test_one_fresh_agent_per_build_scaling_between_zero_and_max_agents() -> None:
    cloud = _cloud(ec2_fleet_cloud(SETTINGS))["eC2Fleet"]
    assert cloud["fleet"] == "jenkins-agents-1a2b"
    assert cloud["region"] == "us-east-1"
    # maxTotalUses: after that many builds the plugin terminates the instance (help-maxTotalUses.html).
    assert (cloud["numExecutors"], cloud["maxTotalUses"]) == (1, "1")
    assert (cloud["minSize"], cloud["minSpareSize"], cloud["maxSize"]) == (0, 0, 4)
    # 0 would mean "never scale down" (help-idleMinutes.html).
    assert cloud["idleMinutes"] == 7
    assert cloud["labelString"] == AGENT_LABEL and cloud["restrictUsage"] is True
    assert cloud["privateIpUsed"] is True
    assert "awsCredentialsId" not in cloud  # the controller's instance role


def test_the_launcher_waits_for_the_agents_boot_and_logs_in_with_the_agent_key() -> None:
    connector = _cloud(ec2_fleet_cloud(SETTINGS))["eC2Fleet"]["computerConnector"]["sshConnector"]
    assert connector["credentialsId"] == AGENT_CREDENTIALS_ID
    assert connector["port"] == 22
    # SSHLauncher.startAgent runs prefix + `cd "<fsRoot>" && java ... -jar remoting.jar` (ssh-slaves source).
    assert connector["prefixStartSlaveCmd"] == f"{WAIT_COMMAND} && "


def test_each_pool_is_its_own_cloud_with_its_own_label_and_group() -> None:
    """Two EC2 Fleet clouds: a stage asking for `release-agent` can only get an instance of the release
    group, never one that ran a build (labels are exclusive: restrictUsage)."""
    document = ec2_fleet_cloud(
        SETTINGS,
        CloudSettings(
            agents=SETTINGS.agents, auto_scaling_group="release-1a2b", region="us-east-1", pool=RELEASE
        ),
    )
    clouds = [entry["eC2Fleet"] for entry in yaml.safe_load(yaml.safe_dump(document))["jenkins"]["clouds"]]
    assert [(c["name"], c["labelString"], c["fleet"]) for c in clouds] == [
        ("build-agents", AGENT_LABEL, "jenkins-agents-1a2b"),
        ("release-agents", RELEASE_AGENT_LABEL, "release-1a2b"),
    ]
    for cloud in clouds:
        assert _type_problems("eC2Fleet", cloud) == []
        assert (cloud["restrictUsage"], cloud["numExecutors"], cloud["maxTotalUses"]) == (True, 1, "1")
