#!/bin/bash
# First boot of the Jenkins server (cloud-init runcmd, once per instance): install the pinned Jenkins LTS,
# mount JENKINS_HOME from its own EBS volume (and drop any stored credentials from it), pin GitHub's host
# keys, install the locked plugins, start Jenkins. No Docker: builds run on the agents.
# Safe to re-run: it formats the volume only when it has no filesystem, and every step converges.
set -euo pipefail
# Overridable for tests; the server uses the defaults.
readonly ENV_FILE=${GITOPS_ENV_FILE:-/etc/jenkins/gitops.env} DEV_DIR=${JENKINS_DEV_DIR:-/dev}
set -a
# shellcheck source=/dev/null
. "$ENV_FILE"
set +a

readonly HOME_DIR=/var/lib/jenkins
readonly PLUGIN_MANAGER_VERSION=2.15.0
readonly PLUGIN_MANAGER=/opt/jenkins-plugin-manager-${PLUGIN_MANAGER_VERSION}.jar
readonly PLUGIN_MANAGER_URL=https://github.com/jenkinsci/plugin-installation-manager-tool/releases/download/${PLUGIN_MANAGER_VERSION}/jenkins-plugin-manager-${PLUGIN_MANAGER_VERSION}.jar

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

install_jenkins() {
  # Jenkins' repository is disabled in /etc/yum.repos.d/jenkins.repo (written by the user data's write_files,
  # infra/jenkins/boot.py): only this install reads it, so its GPG check cannot fail the transaction that
  # installed Java and git.
  dnf install -y --enablerepo=jenkins "jenkins-${JENKINS_VERSION}"
  log "Jenkins ${JENKINS_VERSION} installed"
}

mount_home() {
  # The volume is attached after the instance starts; when the instance replaces another one, only after the
  # old instance is stopped and the volume detached from it. Wait for it (up to 20 minutes).
  local tries=0 DEVICE
  until DEVICE=$(home_device); do
    tries=$((tries + 1))
    if [ "$tries" -gt 240 ]; then
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

forget_stored_credentials() {
  # Jenkins reads every credential from Secrets Manager when it binds it (casc.yaml, awsCredentialsProvider);
  # a credentials.xml on the volume can only be an older controller's copy of them (JCasC used to write
  # one) or a credential added in the UI, which would shadow the managed one of the same id.
  if [ -e "$HOME_DIR/credentials.xml" ]; then
    rm -f "$HOME_DIR/credentials.xml"
    log "removed credentials.xml from JENKINS_HOME: credentials come from Secrets Manager only"
  fi
}

pin_github_host_keys() {
  # Host keys came from GitHub's API at deploy time; git-client's known-hosts strategy checks against them.
  install -d -m 0700 -o jenkins -g jenkins "$HOME_DIR/.ssh"
  install -m 0644 -o jenkins -g jenkins /etc/jenkins/known_hosts "$HOME_DIR/.ssh/known_hosts"
}

install_plugins() {
  if [ ! -f "$PLUGIN_MANAGER" ]; then
    # The release publishes the jar's SHA-256 beside it (`<jar>.sha256`, the digest alone): a download that
    # does not match it is never run.
    local digest
    curl -fsSL --retry 5 -o "$PLUGIN_MANAGER.tmp" "$PLUGIN_MANAGER_URL"
    digest=$(curl -fsSL --retry 5 "$PLUGIN_MANAGER_URL.sha256")
    if ! printf '%s  %s\n' "${digest%% *}" "$PLUGIN_MANAGER.tmp" | sha256sum --check --strict --quiet; then
      rm -f "$PLUGIN_MANAGER.tmp"
      log "jenkins-plugin-manager ${PLUGIN_MANAGER_VERSION}: checksum mismatch, refusing to run it"
      return 1
    fi
    mv "$PLUGIN_MANAGER.tmp" "$PLUGIN_MANAGER"
  fi
  install -d -o jenkins -g jenkins "$HOME_DIR/plugins"
  # --latest false: dependencies not pinned in plugins.txt resolve to the versions the pinned plugins
  # require (their manifests), never to whatever is newest on the update center that day.
  runuser -u jenkins -- java -jar "$PLUGIN_MANAGER" --war /usr/share/java/jenkins.war \
    --jenkins-version "$JENKINS_VERSION" --latest false \
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
  install_jenkins
  mount_home
  forget_stored_credentials
  pin_github_host_keys
  install_plugins
  start_jenkins
}

# Sourced (tests), it only defines the functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main
fi
