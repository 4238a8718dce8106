#!/usr/bin/env bash
# Provision the real services the test suite uses: a Docker engine (host networking only), the tools the
# tests call (docker-registry, sshd, shellcheck, wrk) and a local Python base image built offline with
# debootstrap. Registries, sshd and moto are started per test session by tests/conftest.py on random
# loopback ports. Idempotent: a second run only checks. Needs root (apt, dockerd).
set -euo pipefail

BASE_IMAGE="${BASE_IMAGE:-local/python-base:bookworm}"
# systemd: its env-file parser (the environment.d generator) reads the Jenkins boot's env file in the tests.
PACKAGES=(docker.io docker-registry debootstrap openssh-server shellcheck wrk cloud-init systemd gnupg)

log() { printf '[services] %s\n' "$*"; }

install_packages() {
  local missing=()
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "packages present"
  fi
  # The boot script's test runs the real AWS CLI against moto; Debian's awscli where none is on PATH.
  if ! command -v aws >/dev/null; then
    log "apt-get install awscli"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends awscli >/dev/null
  fi
  # sshd refuses to start without its privilege-separation directory (tests start their own sshd).
  mkdir -p /run/sshd
}

start_dockerd() {
  if docker info >/dev/null 2>&1; then
    log "docker engine already running"
    return
  fi
  log "starting dockerd (no bridge, no iptables: tests use host networking only)"
  nohup dockerd --bridge=none --iptables=false >/var/log/dockerd-tests.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return
    sleep 1
  done
  log "dockerd did not come up; see /var/log/dockerd-tests.log"
  tail -n 20 /var/log/dockerd-tests.log >&2 || true
  exit 1
}

# The Debian mirror this machine already uses, read from its own apt sources.
debian_mirror() {
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | grep -m1 debian || true)
  if [[ -z "$uri" ]]; then
    uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | grep -m1 debian || true)
  fi
  [[ -n "$uri" ]] || { log "no Debian mirror found in the apt sources"; exit 1; }
  printf '%s\n' "$uri"
}

build_base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image $BASE_IMAGE present"
    return
  fi
  local rootfs
  rootfs=$(mktemp -d /tmp/python-base.XXXXXX)
  trap 'rm -rf "$rootfs"' RETURN
  log "debootstrap bookworm -> $BASE_IMAGE"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$(debian_mirror)" >/tmp/debootstrap.log 2>&1 \
    || { tail -n 20 /tmp/debootstrap.log >&2; exit 1; }
  # Keep the image lean: package caches and docs are not needed at run time.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
  tar -C "$rootfs" -c . | docker import -c 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
  log "base image $BASE_IMAGE built"
}

install_packages
start_dockerd
build_base_image
