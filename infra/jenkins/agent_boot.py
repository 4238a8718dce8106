"""A build agent's user data: AL2023 with the build toolchain, a `jenkins` user the controller logs in
as, and nothing secret.

The agent holds no credential of its own besides its instance role (push to one ECR repository): the
controller's public key and GitHub's host keys are public, and the write deploy key reaches the agent
only inside the release step, bound by the pipeline (see jenkins/Jenkinsfile).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

AGENT_DIR = Path(__file__).resolve().parents[2] / "jenkins" / "agent"
AGENT_USER = "jenkins"
AGENT_HOME = f"/home/{AGENT_USER}"
# The controller's SSH launcher runs this before the agent process (EC2FleetCloud prefixStartSlaveCmd).
WAIT_COMMAND = "/usr/local/bin/jenkins-agent-wait"
BOOT_COMMAND = "/usr/local/sbin/jenkins-agent-boot"
# GitHub's pinned host keys; the boot script installs them as the jenkins user's known_hosts.
KNOWN_HOSTS = "/etc/jenkins-agent/known_hosts"
# What a build runs: `make test` (python3.11, make), the app's image build (docker), git over SSH for
# the release commit, and Java for the Jenkins agent process itself.
PACKAGES = (
    "java-21-amazon-corretto-headless",
    "docker",
    "git",
    "make",
    "python3.11",
    "python3.11-pip",
)


@dataclass(frozen=True)
class AgentBootSettings:
    controller_public_key: str
    """OpenSSH public key of the controller's agent-launch credential."""
    known_hosts: str
    """GitHub's host keys, pinned (known_hosts lines)."""


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
                "gecos": "Jenkins build agent",
                "homedir": AGENT_HOME,
                "shell": "/bin/bash",
                "lock_passwd": True,
                "ssh_authorized_keys": [public_key],
            }
        ],
        "packages": list(PACKAGES),
        "write_files": [
            file("/etc/ssh/sshd_config.d/10-jenkins-agent.conf", _agent_file("sshd.conf"), "0600"),
            file(KNOWN_HOSTS, settings.known_hosts),
            file(BOOT_COMMAND, _agent_file("boot.sh"), "0755"),
            file(WAIT_COMMAND, _agent_file("wait.sh"), "0755"),
        ],
        "runcmd": [[BOOT_COMMAND]],
    }
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False, width=1000)
