#!/bin/bash
# Fetch Jenkins' credentials from AWS Secrets Manager (through the instance role) into $SECRETS, a tmpfs
# directory only the jenkins user can read; JCasC resolves ${NAME} from the files there. Runs before every
# Jenkins start. Values go through files and shell variables only: never argv, never the log.
set -euo pipefail
# Overridable for tests and other layouts; the server uses the defaults.
readonly ENV_FILE=${GITOPS_ENV_FILE:-/etc/jenkins/gitops.env} OWNER=${JENKINS_USER:-jenkins}
set -a
# shellcheck source=/dev/null
. "$ENV_FILE"
set +a

log() { printf 'jenkins-fetch-secrets: %s\n' "$*" >&2; }

# fetch NAME SECRET_ID required|optional [key]: write the secret's value to $SECRETS/NAME (mode 0400, owner
# $OWNER). JCasC reads the file verbatim: values are written without a trailing newline, except an SSH key,
# which OpenSSH only loads with its final newline.
fetch() {
  local name=$1 secret_id=$2 required=$3 kind=${4:-text} value
  if ! value=$(aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$secret_id" \
      --query SecretString --output text 2>/dev/null); then
    if [ "$required" = required ]; then
      log "cannot read $name ($secret_id): check the instance role and the secret"
      return 1
    fi
    log "$name ($secret_id) has no value yet: the credential stays empty"
    value=""
  fi
  local tmp
  tmp=$(mktemp "$SECRETS/.$name.XXXXXX")
  if [ "$kind" = key ]; then
    printf '%s\n' "$value" >"$tmp"
  else
    printf '%s' "$value" >"$tmp"
  fi
  chown "$OWNER:" "$tmp"
  chmod 0400 "$tmp"
  mv -f "$tmp" "$SECRETS/$name"
}

umask 077
install -d -m 0700 "$SECRETS"
chown "$OWNER:" "$SECRETS"
fetch DEPLOY_KEY "$SECRET_DEPLOY_KEY_ID" required key
fetch ADMIN_PASSWORD "$SECRET_ADMIN_PASSWORD_ID" required
fetch GITHUB_WEBHOOK_SECRET "$SECRET_WEBHOOK_SECRET_ID" required
fetch PULUMI_ACCESS_TOKEN "$SECRET_PULUMI_TOKEN_ID" optional
fetch AGENT_SSH_KEY "$SECRET_AGENT_KEY_ID" required key
fetch CHECKOUT_KEY "$SECRET_CHECKOUT_KEY_ID" required key
log "credentials refreshed"
