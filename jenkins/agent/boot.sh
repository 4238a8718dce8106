#!/bin/bash
# The last step of cloud-init on a fresh build agent (runcmd): start Docker for the jenkins user, check the
# toolchain a build needs, then mark the agent ready. The controller's SSH launcher runs
# jenkins-agent-wait before the agent process, so no build starts on an agent whose boot failed.
set -euo pipefail

READY=/var/lib/jenkins-agent/ready
AGENT_USER=jenkins
# The plugin's fsRoot (infra/jenkins/clouds.py). Jenkins puts each workspace under workspace/ and, beside
# it, the <workspace>@tmp directory where a step that binds a credential (sshagent, withCredentials)
# writes the key file: in memory, it never reaches a disk.
AGENT_ROOT=/home/jenkins/agent

log() { echo "jenkins-agent-boot: $*"; }

# The package installs the group; the user exists since cloud-init's users step (before packages).
usermod --append --groups docker "$AGENT_USER"
systemctl enable --now docker.service
# The hardened sshd drop-in arrived with write_files; sshd may have started before it.
systemctl reload sshd.service

missing=()
for tool in java git docker make python3.11 ssh; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    log "missing after the package step: ${missing[*]}" >&2
    exit 1
fi
docker info >/dev/null

# GitHub's host keys, pinned at deploy time: git over SSH (checkout, release push) checks against them.
install -d -o "$AGENT_USER" -g "$AGENT_USER" -m 0700 "/home/$AGENT_USER/.ssh"
install -o "$AGENT_USER" -g "$AGENT_USER" -m 0644 /etc/jenkins-agent/known_hosts "/home/$AGENT_USER/.ssh/known_hosts"

install -d -o "$AGENT_USER" -g "$AGENT_USER" -m 0700 "$AGENT_ROOT" "$AGENT_ROOT/workspace"
mount -t tmpfs -o "mode=0700,uid=$AGENT_USER,gid=$AGENT_USER,nosuid,nodev" tmpfs "$AGENT_ROOT/workspace"

install -d -m 0755 "$(dirname "$READY")"
date -u +%Y-%m-%dT%H:%M:%SZ >"$READY"
log "ready"
