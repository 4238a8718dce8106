#!/bin/bash
# Run by the controller's SSH launcher before the agent process (prefixStartSlaveCmd): wait for this
# agent's first boot to finish, and refuse the launch unless the boot script marked the agent ready.
set -u

READY=/var/lib/jenkins-agent/ready

# A degraded status (exit 2) is judged by the marker below, not by cloud-init's summary.
cloud-init status --wait >/dev/null 2>&1 || true
if [[ ! -e $READY ]]; then
    echo "jenkins-agent: the boot did not complete; see /var/log/cloud-init-output.log on the agent" >&2
    exit 1
fi
