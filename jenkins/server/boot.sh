#!/bin/bash
# First boot of the Jenkins server (cloud-init runcmd, once per instance): mount JENKINS_HOME from its own
# EBS volume, set up Docker, pin GitHub's host keys, install the pinned plugins, start Jenkins.
# Safe to re-run: it formats the volume only when it has no filesystem, and every step converges.
set -euo pipefail
set -a
# shellcheck source=/dev/null
. /etc/jenkins/gitops.env
set +a

readonly DEVICE=/dev/sdf HOME_DIR=/var/lib/jenkins
readonly PLUGIN_MANAGER_VERSION=2.13.2
readonly PLUGIN_MANAGER=/opt/jenkins-plugin-manager-${PLUGIN_MANAGER_VERSION}.jar

log() { printf '%s jenkins-boot: %s\n' "$(date -u +%FT%TZ)" "$*"; }

mount_home() {
  # The volume is attached after the instance starts: wait for it (up to 10 minutes).
  local tries=0
  until [ -b "$DEVICE" ]; do
    tries=$((tries + 1))
    if [ "$tries" -gt 120 ]; then
      log "no JENKINS_HOME volume at $DEVICE"
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
  log "JENKINS_HOME mounted from $DEVICE"
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

mount_home
setup_docker
pin_github_host_keys
install_plugins
start_jenkins
