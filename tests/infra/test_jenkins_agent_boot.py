"""A build agent's boot, rendered from the component and run for real where it can run here.

The user data comes from `JenkinsAgents` under mocks. `cloud-init schema` validates it; then a container
from the local base image does what cloud-init would, in its order: the users step (real useradd), the
packages step (stand-in: the docker group and the tools as recording stubs, since dnf cannot run here),
write_files (the rendered files, modes and owners), runcmd (the real boot script, real bash; systemctl
is a recording stub). The SSH launcher's prefix (jenkins-agent-wait) runs the same way.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.config import AgentsConfig
from infra.jenkins.agent_boot import AGENT_DIR, BOOT_COMMAND, WAIT_COMMAND
from infra.jenkins.agents import JenkinsAgents, JenkinsAgentsArgs
from infra.jenkins.clouds import CloudSettings, ec2_fleet_cloud
from infra.jenkins.pools import BUILD, POOLS, RELEASE, AgentPool
from tests.conftest import require
from tests.infra.conftest import GITHUB_HOST_KEYS
from tests.infra.jenkins_harness import GIT_RANGES, KNOWN_HOSTS, run_components

PUBLIC_KEY = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBExample controller"
# What the packages step provides: each tool a recording stub (dnf cannot run here).
TOOLS = tuple(dict.fromkeys(tool for pool in POOLS for tool in pool.tools))
STUB = '#!/bin/bash\necho "$(basename "$0") $*" >> /var/log/stand-ins.log\n'
# The cloud-init steps the boot depends on: the users step (init stage), packages (config stage),
# write_files, runcmd (final stage). `missing` names a tool the stand-in package step leaves out.
CLOUD_INIT = r"""
set -euo pipefail
missing="${1:-}"
useradd --create-home --home-dir /home/jenkins --shell /bin/bash jenkins
install -d -m 0700 -o jenkins -g jenkins /home/jenkins/.ssh
printf '%s\n' "$(cat /stage/authorized_key)" > /home/jenkins/.ssh/authorized_keys
groupadd --system docker
install -d /opt/stand-ins
install -m 0666 /dev/null /var/log/stand-ins.log
for tool in /stage/tools/*; do
    [ "$(basename "$tool")" = "$missing" ] || install -m 0755 "$tool" /opt/stand-ins/
done
install -m 0755 /stage/tools/systemctl /stage/tools/mount /opt/stand-ins/
install -m 0755 /stage/tools/cloud-init /opt/stand-ins/cloud-init
export PATH=/opt/stand-ins:$PATH
while IFS=' ' read -r path mode owner; do
    install -D -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "/stage/files$path" "$path"
done < /stage/files.txt
status=0
mapfile -t runcmd < /stage/runcmd
"${runcmd[@]}" || status=$?
echo "boot exit $status"
echo "--- launch"
su jenkins -c "PATH=/opt/stand-ins:\$PATH $(cat /stage/prefix) cd /home/jenkins && java -jar remoting.jar" \
    && echo "launch ok" || echo "launch refused"
[ "$(stat -c %U /home/jenkins/.ssh/known_hosts)" = jenkins ] && cmp -s /etc/jenkins-agent/known_hosts \
    /home/jenkins/.ssh/known_hosts && echo "known_hosts installed for jenkins"
cat /var/log/stand-ins.log
"""


def pool_user_data(pool: AgentPool) -> str:
    def declare() -> None:
        JenkinsAgents(
            "jenkins",
            JenkinsAgentsArgs(
                config=AgentsConfig(),
                vpc_id="vpc-network-vpc",
                private_subnet_ids=["subnet-private-a"],
                controller_security_group_id="sg-controller",
                ecr_repository_arn="arn:aws:ecr:us-east-1:123456789012:repository/app",
                controller_public_key=PUBLIC_KEY,
                known_hosts=KNOWN_HOSTS,
                git_ranges=GIT_RANGES,
                tag_value="gitops-eks-dev",
                pool=pool,
            ),
        )

    program = run_components(declare)
    encoded = program.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["userData"]
    return base64.b64decode(encoded).decode()


@pytest.fixture(scope="module")
def user_data() -> str:
    return pool_user_data(BUILD)


@pytest.fixture(scope="module")
def release_user_data() -> str:
    return pool_user_data(RELEASE)


def test_user_data_passes_cloud_init_schema(user_data: str, tmp_path: Path) -> None:
    require(
        shutil.which("cloud-init") is not None, "cloud-init is not installed (apt-get install cloud-init)"
    )
    path = tmp_path / "user-data.yaml"
    path.write_text(user_data)
    result = subprocess.run(
        ["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # EC2 refuses user data over 16 KiB (before base64).
    assert len(user_data.encode()) < 16 * 1024


def test_user_data_installs_the_toolchain_and_writes_the_repository_files(user_data: str) -> None:
    document = yaml.safe_load(user_data)
    assert document["packages"] == list(BUILD.packages)
    files = {f["path"]: f for f in document["write_files"]}
    assert files[BOOT_COMMAND]["content"] == (AGENT_DIR / "boot.sh").read_text()
    assert files[WAIT_COMMAND]["content"] == (AGENT_DIR / "wait.sh").read_text()
    known_hosts = files["/etc/jenkins-agent/known_hosts"]
    assert known_hosts["content"].splitlines() == [f"github.com {k}" for k in GITHUB_HOST_KEYS]
    # write_files runs before the users step: nothing it writes may belong to the jenkins user.
    assert {f["owner"] for f in files.values()} == {"root:root"}
    assert document["runcmd"] == [[BOOT_COMMAND, *BUILD.tools]]


def test_agent_scripts_pass_shellcheck() -> None:
    require(shutil.which("shellcheck") is not None, "shellcheck is not installed")
    scripts = [str(AGENT_DIR / "boot.sh"), str(AGENT_DIR / "wait.sh")]
    result = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def _boot(user_data: str, tmp_path: Path, base_image: str, missing: str = "") -> str:
    """Run the cloud-init steps in a fresh container; return its output."""
    document = yaml.safe_load(user_data)
    # The modules the steps below emulate; a boot that needs another must be emulated here first.
    assert set(document) <= {"users", "packages", "write_files", "runcmd"}, sorted(document)
    stage = tmp_path / "stage"
    (stage / "tools").mkdir(parents=True)
    for tool in (*TOOLS, "systemctl", "mount"):
        (stage / "tools" / tool).write_text(STUB)
    # `cloud-init status --wait` returns once the boot is over; here it is over before the launch runs.
    (stage / "tools" / "cloud-init").write_text(STUB)
    listing = []
    for entry in document["write_files"]:
        target = stage / "files" / entry["path"].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(entry["content"])
        listing.append(f"{entry['path']} {entry['permissions']} {entry['owner']}")
    (stage / "files.txt").write_text("\n".join(listing) + "\n")
    (stage / "authorized_key").write_text(document["users"][0]["ssh_authorized_keys"][0])
    (stage / "runcmd").write_text("\n".join(document["runcmd"][0]) + "\n")
    (stage / "prefix").write_text(f"{WAIT_COMMAND} && ")
    (stage / "cloud-init.sh").write_text(CLOUD_INIT)
    result = subprocess.run(
        [
            *("docker", "run", "--rm", "--network", "none", "-v", f"{stage}:/stage:ro", base_image),
            *("bash", "/stage/cloud-init.sh", missing),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_boot_starts_docker_for_the_jenkins_user_and_the_launch_proceeds(
    user_data: str, tmp_path: Path, base_image: str
) -> None:
    output = _boot(user_data, tmp_path, base_image)
    assert "boot exit 0" in output
    assert "jenkins-agent-boot: ready" in output
    calls = output.split("--- launch", 1)[1]
    assert "systemctl enable --now docker.service" in calls
    assert "systemctl reload sshd.service" in calls
    assert "docker info" in calls
    # Workspaces and their @tmp siblings (bound key files) in memory, where the plugin's fsRoot puts them.
    fs_root = ec2_fleet_cloud(CloudSettings(AgentsConfig(), "group", "us-east-1"))["jenkins"]["clouds"][0]
    workspace = fs_root["eC2Fleet"]["fsRoot"] + "/workspace"
    assert f"mount -t tmpfs -o mode=0700,uid=jenkins,gid=jenkins,nosuid,nodev tmpfs {workspace}" in calls
    # The launcher's command ran, as jenkins, after the wait: the agent process would start.
    assert "cloud-init status --wait" in calls
    assert "launch ok" in calls
    assert "known_hosts installed for jenkins" in output
    assert "java -jar remoting.jar" in calls


def test_a_release_agent_boots_without_docker_or_make(
    release_user_data: str, tmp_path: Path, base_image: str
) -> None:
    document = yaml.safe_load(release_user_data)
    assert not {"docker", "make"} & set(document["packages"])
    assert document["runcmd"] == [[BOOT_COMMAND, *RELEASE.tools]]
    output = _boot(release_user_data, tmp_path, base_image)
    assert "boot exit 0" in output and "jenkins-agent-boot: ready" in output
    calls = output.split("--- launch", 1)[1]
    assert "docker" not in calls and "usermod" not in calls
    assert "launch ok" in calls


def test_a_release_agent_without_gpg_never_starts(
    release_user_data: str, tmp_path: Path, base_image: str
) -> None:
    output = _boot(release_user_data, tmp_path, base_image, missing="gpg")
    assert "missing after the package step: gpg" in output and "launch refused" in output


def test_a_failed_boot_refuses_the_launch(user_data: str, tmp_path: Path, base_image: str) -> None:
    output = _boot(user_data, tmp_path, base_image, missing="java")
    assert "missing after the package step: java" in output
    assert "boot exit 1" in output
    assert "jenkins-agent: the boot did not complete" in output
    assert "launch refused" in output
    assert "java -jar remoting.jar" not in output


def test_sshd_accepts_the_agents_drop_in_and_lets_only_jenkins_in_by_key(tmp_path: Path) -> None:
    # The real OpenSSH server reads the drop-in through an `Include`, as the distribution's sshd_config
    # includes /etc/ssh/sshd_config.d/*.conf (first value wins, so 10- beats cloud-init's 50-): `-t`
    # refuses an unknown keyword, `-T` prints the effective settings.
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    require(Path(sshd).exists(), "openssh-server is not installed (sshd)")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "host")], check=True)
    drop_in = tmp_path / "10-jenkins-agent.conf"
    drop_in.write_text((AGENT_DIR / "sshd.conf").read_text())
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {tmp_path / 'host'}\nInclude {drop_in}\n")
    checked = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    effective = subprocess.run([sshd, "-T", "-f", str(config)], capture_output=True, text=True, check=True)
    settings = dict(line.split(" ", 1) for line in effective.stdout.splitlines() if " " in line)
    assert settings["allowusers"] == "jenkins"
    assert settings["permitrootlogin"] == "no"
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["allowtcpforwarding"] == "no"
    assert settings["allowagentforwarding"] == "no"
