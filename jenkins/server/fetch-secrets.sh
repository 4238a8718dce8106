#!/bin/bash
# Fetch the admin password from AWS Secrets Manager (through the instance role) into $SECRETS, a tmpfs
# directory only the jenkins user can read; JCasC resolves ${ADMIN_PASSWORD} from the file there. Runs
# before every Jenkins start. Values go through files and shell variables only: never argv, never the log.
# Jenkins' credentials are not fetched here: the credentials provider reads them from Secrets Manager
# when a build binds one (jenkins/server/casc.yaml, awsCredentialsProvider).
set -euo pipefail
# Overridable for tests and other layouts; the server uses the defaults.
readonly ENV_FILE=${GITOPS_ENV_FILE:-/etc/jenkins/gitops.env} OWNER=${JENKINS_USER:-jenkins}
set -a
# shellcheck source=/dev/null
. "$ENV_FILE"
set +a

log() { printf 'jenkins-fetch-secrets: %s\n' "$*" >&2; }

# fetch NAME SECRET_ID: write the secret's value to $SECRETS/NAME (mode 0400, owner $OWNER). JCasC reads the
# file verbatim: the value is written without a trailing newline.
fetch() {
  local name=$1 secret_id=$2 value
  if ! value=$(aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$secret_id" \
      --query SecretString --output text 2>/dev/null); then
    log "cannot read $name ($secret_id): check the instance role and the secret"
    return 1
  fi
  local tmp
  tmp=$(mktemp "$SECRETS/.$name.XXXXXX")
  printf '%s' "$value" >"$tmp"
  chown "$OWNER:" "$tmp"
  chmod 0400 "$tmp"
  mv -f "$tmp" "$SECRETS/$name"
}

umask 077
install -d -m 0700 "$SECRETS"
chown "$OWNER:" "$SECRETS"
fetch ADMIN_PASSWORD "$SECRET_ADMIN_PASSWORD_ID"
log "admin password refreshed"
