"""The Jenkins controller's boot: the cloud-init user data, its env file and the plugin lock it installs.

The controller builds nothing (its agents do, see infra/jenkins/agents.py), so it installs Java, git and
Jenkins only: no Docker, no build toolchain. JCasC is two files, merged by JCasC at start
(CASC_JENKINS_CONFIG is a comma-separated list, configuration-as-code `inputToCandidateSources`; mappings
merge, sequences append): the static jenkins/server/casc.yaml and the agents' cloud, rendered from the
stack by infra/jenkins/clouds.py.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

SERVER_DIR = Path(__file__).resolve().parents[2] / "jenkins" / "server"
CASC_FILES = ("/etc/jenkins/casc.yaml", "/etc/jenkins/casc-agents.yaml")
# The jobs' pipelines: the stack's copies of jenkins/Jenkinsfile (the release job) and
# jenkins/operate.Jenkinsfile (the operator jobs), which casc.yaml's job-dsl scripts inline (no job reads
# a Jenkinsfile from the branch it builds; docs/security.md).
JENKINSFILE = "/etc/jenkins/Jenkinsfile"
OPERATE_JENKINSFILE = "/etc/jenkins/operate.Jenkinsfile"

# The plugin lock and the Jenkins LTS it is checked against (the RPM the boot installs): one file, so the
# core and the plugins cannot drift apart. Sources and dates in docs/verified-identifiers.md.
PLUGIN_LOCK = json.loads((SERVER_DIR / "plugins.json").read_text(encoding="utf-8"))
JENKINS_VERSION: str = PLUGIN_LOCK["core"]["version"]
# Jenkins' RPM repository for LTS releases and the key that signs it (rotated to the 2026 key with 2.541.1).
JENKINS_RPM_REPOSITORY = "https://pkg.jenkins.io/rpm-stable"
JENKINS_RPM_KEY = f"{JENKINS_RPM_REPOSITORY}/jenkins.io-2026.key"
JENKINS_REPO_FILE = "/etc/yum.repos.d/jenkins.repo"
# What both readers of /etc/jenkins/gitops.env (bash `.` and systemd's EnvironmentFile=) take literally
# inside single quotes: no quote, backslash, dollar, backtick or line break.
_ENV_UNSAFE = re.compile(r"['\\\"$`\n\r\x00]")


@dataclass(frozen=True)
class BootSettings:
    """Everything the first boot needs, none of it secret: names and ARNs, never values."""

    region: str
    repository: str
    branch: str
    environment: str
    stack_name: str
    image_repository: str
    jenkins_url: str
    known_hosts: str
    trust_anchor: str
    """The branch's head when the stack was created: the release bot's GITOPS_TRUST_ANCHOR."""
    admin_password_secret: str
    credentials_prefix: str
    """The name prefix of the secrets Jenkins serves as credentials (infra/jenkins/credentials.py)."""
    home_volume_id: str
    agents_casc: str
    """JCasC for the agents' cloud (infra/jenkins/clouds.py), as YAML."""


def _server_file(name: str) -> str:
    return (SERVER_DIR / name).read_text(encoding="utf-8")


def plugins_txt() -> str:
    """/etc/jenkins/plugins.txt for jenkins-plugin-manager: every plugin of the lock, pinned."""
    pins = "".join(f"{name}:{plugin['version']}\n" for name, plugin in PLUGIN_LOCK["plugins"].items())
    return "# Rendered from jenkins/server/plugins.json (the lock); edit that file.\n" + pins


def boot_environment(settings: BootSettings) -> str:
    """/etc/jenkins/gitops.env: read by Jenkins (JCasC `${...}`), the secrets fetcher and the boot script."""
    values = {
        "AWS_REGION": settings.region,
        "IMAGE_REPOSITORY": settings.image_repository,
        "GITOPS_BRANCH": settings.branch,
        "GITOPS_ENVIRONMENT": settings.environment,
        "GITOPS_TRUST_ANCHOR": settings.trust_anchor,
        "GITOPS_REPOSITORY_URL": f"git@github.com:{settings.repository}.git",
        "PULUMI_STACK": settings.stack_name,
        "GITOPS_JENKINS_URL": settings.jenkins_url,
        "SECRET_ADMIN_PASSWORD_ID": settings.admin_password_secret,
        # JCasC's awsCredentialsProvider lists the secrets under this prefix, and strips it for the ids.
        "JENKINS_CREDENTIALS_PREFIX": settings.credentials_prefix,
        "JENKINS_HOME_VOLUME_ID": settings.home_volume_id,
        "CASC_JENKINS_CONFIG": ",".join(CASC_FILES),
        # JCasC resolves ${ADMIN_PASSWORD} from a file in this directory (tmpfs, filled by fetch-secrets.sh).
        "SECRETS": "/run/jenkins-secrets",
        "JAVA_OPTS": "-Djava.awt.headless=true -Djenkins.install.runSetupWizard=false",
        "JENKINS_VERSION": JENKINS_VERSION,
    }
    for key, value in values.items():
        if _ENV_UNSAFE.search(value):
            raise ValueError(
                f"{key}: {value!r} cannot be written to gitops.env (quote, $, backslash, newline)"
            )
    # Single-quoted: bash (`set -a; .`) and systemd read every value, spaces included, as one literal word.
    return "".join(f"{key}='{value}'\n" for key, value in values.items())


def jenkins_repo_file() -> str:
    """/etc/yum.repos.d/jenkins.repo, as Jenkins publishes it (jenkinsci/packaging rpm/publish/publish.sh)
    but disabled: only the boot's own `dnf --enablerepo=jenkins` reads it, so a problem with Jenkins'
    repository cannot fail the package transaction that brings Java and git. Written by write_files, not
    cloud-init's `yum_repos`, which upstream cloud-init runs on Amazon Linux only since 26.2 (#6767)."""
    return (
        "[jenkins]\n"
        "name=Jenkins LTS\n"
        f"baseurl={JENKINS_RPM_REPOSITORY}\n"
        "type=rpm-md\n"
        "enabled=0\n"
        "gpgcheck=1\n"
        "repo_gpgcheck=1\n"
        f"gpgkey={JENKINS_RPM_KEY}\n"
    )


def compressed(user_data: str) -> str:
    """User data as gzip in base64, for `user_data_base64`: EC2 takes at most 16 KB raw, and cloud-init
    reads gzip (its user-data formats: "Gzip compressed content"). mtime=0 keeps the bytes stable, so an
    unchanged document never replaces the instance."""
    return base64.b64encode(gzip.compress(user_data.encode(), mtime=0)).decode()


def render_user_data(settings: BootSettings) -> str:
    """The #cloud-config document: packages, config files (the Jenkins repo among them), one boot script."""

    def file(path: str, content: str, permissions: str = "0644") -> dict[str, str]:
        return {"path": path, "content": content, "owner": "root:root", "permissions": permissions}

    # Only modules every cloud-init runs on Amazon Linux 2023 (its own 22.2 included): write_files,
    # package_update_upgrade_install, runcmd. tests/infra/boot/cloud_init.py refuses any other.
    document = {
        # Builds run on agents: the controller needs Java for Jenkins and git for the Jenkinsfile's checkout.
        "packages": ["java-21-amazon-corretto-headless", "fontconfig", "git"],
        "write_files": [
            file(JENKINS_REPO_FILE, jenkins_repo_file()),
            file("/etc/jenkins/gitops.env", boot_environment(settings)),
            file(CASC_FILES[0], _server_file("casc.yaml")),
            file(CASC_FILES[1], settings.agents_casc),
            file(JENKINSFILE, (SERVER_DIR.parent / "Jenkinsfile").read_text(encoding="utf-8")),
            file(
                OPERATE_JENKINSFILE, (SERVER_DIR.parent / "operate.Jenkinsfile").read_text(encoding="utf-8")
            ),
            file("/etc/jenkins/plugins.txt", plugins_txt()),
            file("/etc/jenkins/known_hosts", settings.known_hosts),
            file("/etc/systemd/system/jenkins.service.d/gitops.conf", _server_file("jenkins.service.conf")),
            file("/usr/local/sbin/jenkins-fetch-secrets", _server_file("fetch-secrets.sh"), "0755"),
            file("/usr/local/sbin/jenkins-boot", _server_file("boot.sh"), "0755"),
        ],
        "runcmd": [["/usr/local/sbin/jenkins-boot"]],
    }
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False, width=1000)
