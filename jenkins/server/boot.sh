#!/bin/bash
# First boot of the Jenkins server (cloud-init runcmd, once per instance): mount JENKINS_HOME from its own
# EBS volume, set up Docker, pin GitHub's host keys, install the pinned plugins, start Jenkins.
# Safe to re-run: it formats the volume only when it has no filesystem, and every step converges.
set -euo pipefail
# Overridable for tests; the server uses the defaults.
readonly ENV_FILE=${GITOPS_ENV_FILE:-/etc/jenkins/gitops.env} DEV_DIR=${JENKINS_DEV_DIR:-/dev}
set -a
# shellcheck source=/dev/null
. "$ENV_FILE"
set +a

readonly HOME_DIR=/var/lib/jenkins
readonly PLUGIN_MANAGER_VERSION=2.13.2
readonly PLUGIN_MANAGER=/opt/jenkins-plugin-manager-${PLUGIN_MANAGER_VERSION}.jar

log() { printf '%s jenkins-boot: %s\n' "$(date -u +%FT%TZ)" "$*"; }

# Print the JENKINS_HOME volume's block device, or fail if it is not attached (yet). Nitro instances show
# EBS volumes as /dev/nvmeXn1 in attachment order, whatever name the attachment asked for; udev's by-id link
# carries the volume id (without its dash), so that is the reliable name. /dev/sdf and /dev/xvdf cover Xen
# instance types and AL2023's own links to the requested name.
home_device() {
  local candidate
  for candidate in "$DEV_DIR/disk/by-id/nvme-Amazon_Elastic_Block_Store_${JENKINS_HOME_VOLUME_ID//-/}" \
    "$DEV_DIR/sdf" "$DEV_DIR/xvdf"; do
    if [ -b "$candidate" ]; then
      readlink -f "$candidate"
      return 0
    fi
  done
  return 1
}

mount_home() {
  # The volume is attached after the instance starts: wait for it (up to 10 minutes).
  local tries=0 DEVICE
  until DEVICE=$(home_device); do
    tries=$((tries + 1))
    if [ "$tries" -gt 120 ]; then
      log "JENKINS_HOME volume $JENKINS_HOME_VOLUME_ID is not attached"
      return 1
    fi
    sleep 5
  done
  if ! blkid -o value -s TYPE "$DEVICE" >/dev/null; then
    log "formatting the new JENKINS_HOME volume"
    mkfs.xfs -L jenkins-home "$DEVICE"
  fi
  local uuid
  uuid=$(blkid -o value -s UUID "$DEVICE")
  grep -q "^UUID=$uuid " /etc/fstab || echo "UUID=$uuid $HOME_DIR xfs defaults,nofail 0 2" >>/etc/fstab
  mkdir -p "$HOME_DIR"
  mountpoint -q "$HOME_DIR" || mount "$HOME_DIR"
  chown jenkins:jenkins "$HOME_DIR"
  log "JENKINS_HOME mounted from $DEVICE ($JENKINS_HOME_VOLUME_ID)"
}

setup_docker() {
  usermod -aG docker jenkins
  systemctl enable --now docker
}

pin_github_host_keys() {
  # Host keys came from GitHub's API at deploy time; git-client's known-hosts strategy checks against them.
  install -d -m 0700 -o jenkins -g jenkins "$HOME_DIR/.ssh"
  install -m 0644 -o jenkins -g jenkins /etc/jenkins/known_hosts "$HOME_DIR/.ssh/known_hosts"
}

install_plugins() {
  if [ ! -f "$PLUGIN_MANAGER" ]; then
    curl -fsSL --retry 5 -o "$PLUGIN_MANAGER.tmp" \
      "https://github.com/jenkinsci/plugin-installation-manager-tool/releases/download/${PLUGIN_MANAGER_VERSION}/jenkins-plugin-manager-${PLUGIN_MANAGER_VERSION}.jar"
    mv "$PLUGIN_MANAGER.tmp" "$PLUGIN_MANAGER"
  fi
  install -d -o jenkins -g jenkins "$HOME_DIR/plugins"
  runuser -u jenkins -- java -jar "$PLUGIN_MANAGER" --war /usr/share/java/jenkins.war \
    --plugin-download-directory "$HOME_DIR/plugins" --plugin-file /etc/jenkins/plugins.txt
  log "plugins installed from /etc/jenkins/plugins.txt"
}

start_jenkins() {
  systemctl daemon-reload
  systemctl enable jenkins
  systemctl restart jenkins
  log "Jenkins started; configuration from $CASC_JENKINS_CONFIG"
}

main() {
  mount_home
  setup_docker
  pin_github_host_keys
  install_plugins
  start_jenkins
}

# Sourced (tests), it only defines the functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main
fi
