"""An agent's user data: AL2023 with its pool's toolchain (infra/jenkins/pools.py), a `jenkins` user
the controller logs in as, and nothing secret.

The agent holds no credential of its own besides its instance role: the controller's public key and
GitHub's host keys are public. The write deploy key and the signing key reach only a release agent,
bound by the pipeline around one command (see jenkins/Jenkinsfile).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from infra.jenkins.pools import BUILD, AgentPool

AGENT_DIR = Path(__file__).resolve().parents[2] / "jenkins" / "agent"
AGENT_USER = "jenkins"
AGENT_HOME = f"/home/{AGENT_USER}"
# The controller's SSH launcher runs this before the agent process (EC2FleetCloud prefixStartSlaveCmd).
WAIT_COMMAND = "/usr/local/bin/jenkins-agent-wait"
BOOT_COMMAND = "/usr/local/sbin/jenkins-agent-boot"
# GitHub's pinned host keys; the boot script installs them as the jenkins user's known_hosts.
KNOWN_HOSTS = "/etc/jenkins-agent/known_hosts"


@dataclass(frozen=True)
class AgentBootSettings:
    controller_public_key: str
    """OpenSSH public key of the controller's agent-launch credential."""
    known_hosts: str
    """GitHub's host keys, pinned (known_hosts lines)."""
    pool: AgentPool = BUILD


def _agent_file(name: str) -> str:
    return (AGENT_DIR / name).read_text(encoding="utf-8")


def render_agent_user_data(settings: AgentBootSettings) -> str:
    """The agent's #cloud-config document."""
    public_key = settings.controller_public_key.strip()
    if "\n" in public_key or not public_key.startswith(("ssh-", "ecdsa-")):
        raise ValueError("controller_public_key: expected one OpenSSH public key line")

    # All root-owned: write_files runs before the users step, so the boot script hands the jenkins user
    # its copies (no reliance on write_files' newer `defer`).
    def file(path: str, content: str, permissions: str = "0644") -> dict:
        return {"path": path, "content": content, "owner": "root:root", "permissions": permissions}

    document = {
        "users": [
            {
                "name": AGENT_USER,
                "gecos": f"Jenkins {settings.pool.kind} agent",
                "homedir": AGENT_HOME,
                "shell": "/bin/bash",
                "lock_passwd": True,
                "ssh_authorized_keys": [public_key],
            }
        ],
        "packages": list(settings.pool.packages),
        "write_files": [
            file("/etc/ssh/sshd_config.d/10-jenkins-agent.conf", _agent_file("sshd.conf"), "0600"),
            file(KNOWN_HOSTS, settings.known_hosts),
            file(BOOT_COMMAND, _agent_file("boot.sh"), "0755"),
            file(WAIT_COMMAND, _agent_file("wait.sh"), "0755"),
        ],
        # The boot checks the pool's tools (and starts Docker where the pool has it).
        "runcmd": [[BOOT_COMMAND, *settings.pool.tools]],
    }
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False, width=1000)
