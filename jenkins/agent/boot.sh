#!/bin/bash
# The last step of cloud-init on a fresh agent (runcmd): check the pool's toolchain (the arguments,
# rendered from infra/jenkins/pools.py), start Docker for the jenkins user where the pool has it (build
# agents; release agents have no Docker at all), then mark the agent ready. The controller's SSH launcher
# runs jenkins-agent-wait before the agent process, so no build starts on an agent whose boot failed.
set -euo pipefail
tools=("$@")

READY=/var/lib/jenkins-agent/ready
AGENT_USER=jenkins
# The plugin's fsRoot (infra/jenkins/clouds.py). Jenkins puts each workspace under workspace/ and, beside
# it, the <workspace>@tmp directory where a step that binds a credential (sshagent, withCredentials)
# writes the key file: in memory, it never reaches a disk.
AGENT_ROOT=/home/jenkins/agent

log() { echo "jenkins-agent-boot: $*"; }

if ((${#tools[@]} == 0)); then
    log "usage: $0 TOOL... (the commands this pool's agents need)" >&2
    exit 2
fi
# The hardened sshd drop-in arrived with write_files; sshd may have started before it.
systemctl reload sshd.service

missing=()
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    log "missing after the package step: ${missing[*]}" >&2
    exit 1
fi
if [[ " ${tools[*]} " == *" docker "* ]]; then
    # The package installs the group; the user exists since cloud-init's users step (before packages).
    usermod --append --groups docker "$AGENT_USER"
    systemctl enable --now docker.service
    docker info >/dev/null
fi

# GitHub's host keys, pinned at deploy time: git over SSH (checkout, release push) checks against them.
install -d -o "$AGENT_USER" -g "$AGENT_USER" -m 0700 "/home/$AGENT_USER/.ssh"
install -o "$AGENT_USER" -g "$AGENT_USER" -m 0644 /etc/jenkins-agent/known_hosts "/home/$AGENT_USER/.ssh/known_hosts"

install -d -o "$AGENT_USER" -g "$AGENT_USER" -m 0700 "$AGENT_ROOT" "$AGENT_ROOT/workspace"
mount -t tmpfs -o "mode=0700,uid=$AGENT_USER,gid=$AGENT_USER,nosuid,nodev" tmpfs "$AGENT_ROOT/workspace"

install -d -m 0755 "$(dirname "$READY")"
date -u +%Y-%m-%dT%H:%M:%SZ >"$READY"
log "ready"
