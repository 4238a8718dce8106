#!/bin/bash
# The last step of cloud-init on a fresh build agent (runcmd): start Docker for the jenkins user, check the
# toolchain a build needs, then mark the agent ready. The controller's SSH launcher runs
# jenkins-agent-wait before the agent process, so no build starts on an agent whose boot failed.
set -euo pipefail

READY=/var/lib/jenkins-agent/ready
AGENT_USER=jenkins

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

install -d -m 0755 "$(dirname "$READY")"
date -u +%Y-%m-%dT%H:%M:%SZ >"$READY"
log "ready"
