"""The controller's JCasC `jenkins.clouds` entries: the EC2 Fleet plugin drives each agent pool's Auto
Scaling group (build, release: infra/jenkins/pools.py), one build per agent.

Field names and types are those of the plugin's `EC2FleetCloud` @DataBoundConstructor and of the
ssh-slaves plugin's `SSHConnector`, recorded with their source in tests/infra/data/jcasc_model.json and
checked there by tests/infra/test_jenkins_clouds.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.config import AgentsConfig
from infra.jenkins.agent_boot import AGENT_HOME, WAIT_COMMAND
from infra.jenkins.credentials import AGENT_KEY
from infra.jenkins.pools import BUILD, RELEASE, AgentPool

AGENT_LABEL = BUILD.label
"""The Build stage runs on this label; nothing else carries it (the controller has 0 executors)."""
RELEASE_AGENT_LABEL = RELEASE.label
"""The Release stage runs on this label, on an agent of its own pool."""
AGENT_CREDENTIALS_ID = AGENT_KEY.id
"""The controller's SSH key for agents (an SSH credential read from Secrets Manager when it connects)."""
SSH_PORT = 22
# A fresh AL2023 agent installs its packages before it is ready: minutes, not seconds.
ONLINE_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class CloudSettings:
    agents: AgentsConfig
    auto_scaling_group: str
    """The Auto Scaling group's name (the plugin's `fleet`)."""
    region: str
    pool: AgentPool = BUILD


def ec2_fleet_cloud(*pools: CloudSettings) -> dict[str, Any]:
    """The JCasC document fragment `{"jenkins": {"clouds": [...]}}`: one cloud per pool."""
    return {"jenkins": {"clouds": [{"eC2Fleet": _cloud(settings)} for settings in pools]}}


def _cloud(settings: CloudSettings) -> dict[str, Any]:
    return {
        "name": settings.pool.cloud_name,
        # No awsCredentialsId: the plugin uses the controller's instance role.
        "region": settings.region,
        "fleet": settings.auto_scaling_group,
        "labelString": settings.pool.label,
        # Only stages that ask for the label run on the pool's agents (every stage of ours asks for one).
        "restrictUsage": True,
        "fsRoot": f"{AGENT_HOME}/agent",
        "computerConnector": {
            "sshConnector": {
                "credentialsId": AGENT_CREDENTIALS_ID,
                "port": SSH_PORT,
                "prefixStartSlaveCmd": f"{WAIT_COMMAND} && ",
                "launchTimeoutSeconds": 60,
                "maxNumRetries": 30,
                "retryWaitTime": 15,
                # Each agent is new, so there is no host key to know in advance; see docs/jenkins-agents.md
                # for why the VPC, not the host key, authenticates the agent here.
                "sshHostKeyVerificationStrategy": "NonVerifyingKeyVerificationStrategy",
            }
        },
        # Agents have no public address; the controller reaches them inside the VPC.
        "privateIpUsed": True,
        "alwaysReconnect": False,
        "addNodeOnlyIfRunning": True,
        "minSize": 0,
        "minSpareSize": 0,
        "maxSize": settings.agents.max_agents,
        "idleMinutes": settings.agents.idle_minutes,
        # One executor, one build, then the instance is terminated: each build gets a fresh agent.
        "numExecutors": 1,
        "maxTotalUses": "1",
        "noDelayProvision": True,
        "initOnlineTimeoutSec": ONLINE_TIMEOUT_SECONDS,
        "initOnlineCheckIntervalSec": 15,
        "cloudStatusIntervalSec": 10,
        "disableTaskResubmit": False,
    }
