"""The Jenkins boot, executed: the user data rendered by the real program (mocks, the real Pulumi.dev.yaml)
is applied the way cloud-init would (write_files, packages, then runcmd; any other module is refused)
inside a container from the local base image, with real bash, coreutils, runuser and the real AWS CLI
against moto's Secrets Manager holding the secrets the program declares, with the values it stores.
Stand-ins only for what cannot run here, each recording what it was asked (tests/infra/boot/standins):
dnf, systemctl, blkid/mkfs/mount of the EBS volume, usermod, curl (GitHub release downloads) and java
(the plugin download).

After the boot, every file of the container (JENKINS_HOME included) is searched for every stored secret
value: only the admin password may exist, and only in the tmpfs directory JCasC reads it from. Jenkins
itself cannot run here; that it writes no credential to JENKINS_HOME follows from JCasC defining none
(tests/infra/test_cloud_init.py) and from the provider reading values only at binding time
(tests/infra/test_jenkins_credentials.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.jenkins.boot import JENKINS_REPO_FILE, JENKINS_VERSION
from plane.localservices import serve_directory
from tests.conftest import ROOT, require
from tests.infra.conftest import Program, controller_user_data, run_program
from tests.infra.envfile import bash_reads
from tests.infra.secrets_manager import create_secret, store_versions

BOOT_DIR = Path(__file__).resolve().parent / "boot"
IMAGE = "local/jenkins-boot-test"
SECRET = "aws:secretsmanager/secret:Secret"
VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
HOME = "/var/lib/jenkins"
# The one secret the boot fetches (logical name -> the tmpfs file JCasC reads); the others are credentials
# Jenkins reads from Secrets Manager when a build binds them.
FILES = {"jenkins-admin-password": "ADMIN_PASSWORD"}
# cloud-init's package step (package_update_upgrade_install: one install of the `packages` list).
PACKAGE_STEP = "dnf install -y java-21-amazon-corretto-headless fontconfig git"
MANAGER = "https://github.com/jenkinsci/plugin-installation-manager-tool/releases/download/2.15.0/"


@pytest.fixture(scope="module")
def boot_image(base_image: str) -> str:
    """The base image plus the AWS CLI (from wheels downloaded on the host) and the stand-ins; tagged with
    a digest of its inputs, so it is built once per change, not once per session."""
    base_id = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", base_image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    digest = hashlib.sha256(base_id.encode())
    for path in sorted(p for p in BOOT_DIR.rglob("*") if p.is_file()):
        digest.update(path.relative_to(BOOT_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    image = f"{IMAGE}:{digest.hexdigest()[:16]}"
    if (
        subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode
        == 0
    ):
        return image
    wheels = ROOT / ".cache" / "boot-wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    download = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "pip", "download", "--quiet", "--only-binary=:all:",
         "--require-hashes", "-d", str(wheels), "-r", str(BOOT_DIR / "requirements.txt")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    require(download.returncode == 0, f"cannot download the AWS CLI wheels: {download.stderr[-500:]}")
    with serve_directory(wheels) as url:
        build = subprocess.run(
            ["docker", "build", "--network", "host", "--quiet", "-t", image,
             "--build-arg", f"BASE_IMAGE={base_image}", "--build-arg", f"PIP_FIND_LINKS={url}",
             str(BOOT_DIR)],
            capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    return image


def _program_with_real_secrets(tmp_path: Path) -> tuple[Program, dict[str, str]]:
    """Run the program with each secret it declares created in moto (its name, or its name prefix plus a
    suffix as AWS adds, and its tags), and store in moto what its SecretVersions store. Returns the program
    and logical name -> stored value."""
    program = run_program(
        extra_outputs={SECRET: lambda name, inputs: {"arn": create_secret(inputs, tmp_path.name)}}
    )
    stored = store_versions(program)
    assert set(FILES) < set(stored)
    return program, stored


def _probe_values(values: list[str]) -> list[str]:
    """Each secret as it could leak: verbatim, JSON-escaped (a key's newlines), and each line of a
    multi-line key (YAML folds and re-indents them) except its BEGIN/END armour."""
    forms = set()
    for value in values:
        forms |= {value.strip(), json.dumps(value)[1:-1]}
        forms |= {line for line in value.splitlines() if line.strip() and not line.startswith("-----")}
    return sorted(forms)


def boot(
    boot_image: str,
    moto_server: str,
    tmp_path: Path,
    *,
    env: dict[str, str] | None = None,
    edit: Any = None,
    home: Any = None,
) -> tuple[int, dict[str, Any], dict[str, str], str]:
    """Run the rendered boot in a fresh container; returns (exit code, report, stored secrets, output).
    `home(stored)` returns files (name -> text) that JENKINS_HOME holds before the boot."""
    program, stored = _program_with_real_secrets(tmp_path)
    document = yaml.safe_load(controller_user_data(program))
    volume = bash_reads(_written(document, "/etc/jenkins/gitops.env"))["JENKINS_HOME_VOLUME_ID"]
    if edit is not None:
        edit(document)
    work, probe = tmp_path / "work", tmp_path / "probe"
    work.mkdir()
    probe.mkdir()
    # The whole document: the stand-in refuses any module it does not run (tests/infra/boot/cloud_init.py).
    (work / "user-data.json").write_text(json.dumps(document))
    (probe / "values").write_text(
        "\n".join(base64.b64encode(v.encode()).decode() for v in _probe_values(list(stored.values())))
    )
    # A Nitro instance's view of the attached volume: an NVMe block device and udev's by-id link to it.
    link = f"/tmp/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{volume.replace('-', '')}"
    prepare = (
        f"mkdir -p /tmp/dev/disk/by-id && mknod /tmp/dev/nvme1n1 b 259 101 && ln -s /tmp/dev/nvme1n1 {link}"
    )
    volume_files = probe / "home"
    volume_files.mkdir()
    for name, text in (home(stored) if home else {}).items():
        (volume_files / name).write_text(text)
    prepare += f" && mkdir -p {HOME} && cp -a /probe/home/. {HOME}/"
    variables = {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",  # on the instance: the instance role, through IMDS
        "AWS_SECRET_ACCESS_KEY": "testing",
        "JENKINS_DEV_DIR": "/tmp/dev",
        **(env or {}),
    }
    result = subprocess.run(
        ["docker", "run", "--rm", "--network", "host", "--tmpfs", "/run:mode=0755",
         "-v", f"{work}:/work:ro", "-v", f"{probe}:/probe:ro",
         *(arg for k, v in variables.items() for arg in ("-e", f"{k}={v}")),
         boot_image, "bash", "-c",
         f"{prepare} && python3 /usr/local/boot-test/cloud_init.py; rc=$?;"
         " printf 'REPORT:'; /usr/local/boot-test/inspect.sh; exit $rc"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    output, _, report = result.stdout.rpartition("REPORT:")
    assert report, result.stdout[-3000:] + result.stderr[-3000:]
    return result.returncode, json.loads(report), stored, output + result.stderr


def _written(document: dict[str, Any], path: str) -> str:
    (content,) = [f["content"] for f in document["write_files"] if f["path"] == path]
    return content


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _index(log: list[str], prefix: str) -> int:
    matches = [i for i, line in enumerate(log) if line.startswith(prefix)]
    assert matches, f"nothing in the stand-ins' log starts with {prefix!r}: {log}"
    return matches[0]


def test_the_rendered_boot_reaches_start_jenkins_with_casc_and_every_secret_on_tmpfs(
    boot_image: str, aws_env: str, tmp_path: Path
) -> None:
    code, report, stored, output = boot(boot_image, aws_env, tmp_path)
    assert code == 0, output[-4000:]
    log = report["log"]
    # cloud-init's package step, then Jenkins, pinned, from its own repository (the file write_files put
    # there), before the volume is mounted (the RPM makes the user).
    assert log[0] == PACKAGE_STEP
    jenkins = _index(log, "dnf install -y --enablerepo")
    assert log[jenkins] == f"dnf install -y --enablerepo=jenkins jenkins-{JENKINS_VERSION}"
    assert jenkins < _index(log, "mkfs.xfs ") < _index(log, "mount ")
    assert log[_index(log, "mkfs.xfs ")] == "mkfs.xfs -L jenkins-home /tmp/dev/nvme1n1"
    assert (
        "UUID=0b5e7c1a-3f6d-4c8e-9a2b-1d4f6e8a0c35 /var/lib/jenkins xfs defaults,nofail 0 2"
        in report["fstab"]
    )
    # The plugin manager: downloaded with its published checksum, run as jenkins, without "latest".
    assert f"curl -fsSL --retry 5 {MANAGER}jenkins-plugin-manager-2.15.0.jar.sha256" in log
    java = log[_index(log, "java ")].split()
    assert java[1] == "jenkins"
    assert " ".join(java[2:]) == (
        "-jar /opt/jenkins-plugin-manager-2.15.0.jar --war /usr/share/java/jenkins.war "
        f"--jenkins-version {JENKINS_VERSION} --latest false "
        "--plugin-download-directory /var/lib/jenkins/plugins --plugin-file /etc/jenkins/plugins.txt"
    )
    # Start Jenkins: ExecStartPre fetched the secrets, then the unit started with the JCasC file.
    assert _index(log, "java ") < _index(log, "systemctl restart jenkins") < _index(log, "started ")
    assert log[_index(log, "started ")] == (
        "started CASC_JENKINS_CONFIG=/etc/jenkins/casc.yaml,/etc/jenkins/casc-agents.yaml"
    )
    assert report["casc"] is True
    started = "jenkins-boot: Jenkins started; configuration from /etc/jenkins/casc.yaml,"
    assert f"{started}/etc/jenkins/casc-agents.yaml" in output
    # The admin password, exactly as JCasC reads it, only on tmpfs, readable by jenkins alone.
    assert report["secrets_dir"] == "/run/jenkins-secrets" and report["secrets_fstype"] == "tmpfs"
    assert {n: f["sha256"] for n, f in report["files"].items()} == {
        FILES[name]: _sha256(stored[name]) for name in FILES
    }
    assert {(f["mode"], f["owner"]) for f in report["files"].values()} == {("0o400", report["jenkins_uid"])}
    # No stored value anywhere else: not on JENKINS_HOME (which the boot did fill), not in /etc, not in
    # a log. The credentials' values (deploy, checkout and agent keys, webhook secret) reach no file at all.
    assert report["home_files"], "JENKINS_HOME was not searched: it holds nothing"
    assert report["leaks"] == [], "a secret value exists outside the tmpfs directory"
    for value in _probe_values(list(stored.values())):
        assert value not in output


def test_a_plugin_manager_that_does_not_match_its_checksum_is_never_run(
    boot_image: str, aws_env: str, tmp_path: Path
) -> None:
    code, report, _, output = boot(boot_image, aws_env, tmp_path, env={"STANDIN_WRONG_DIGEST": "1"})
    assert code != 0
    assert "checksum mismatch, refusing to run it" in output
    assert not any(line.startswith(("java ", "systemctl restart")) for line in report["log"])


def test_an_unquoted_env_file_stops_the_boot_before_anything_happens(
    boot_image: str, aws_env: str, tmp_path: Path
) -> None:
    """The env file as it was rendered before issue 7 (values unquoted): bash runs the second word of
    JAVA_OPTS as a command under `set -e`; nothing is installed, mounted or started."""

    def unquote(document: dict[str, Any]) -> None:
        for entry in document["write_files"]:
            if entry["path"] == "/etc/jenkins/gitops.env":
                entry["content"] = entry["content"].replace("'", "")

    code, report, _, output = boot(boot_image, aws_env, tmp_path, edit=unquote)
    assert code == 127, output[-2000:]
    assert "-Djenkins.install.runSetupWizard=false: command not found" in output
    assert report["log"] == [PACKAGE_STEP]  # cloud-init's step ran; of the boot script, nothing


def test_a_boot_that_needs_a_module_the_stand_in_does_not_run_fails(
    boot_image: str, aws_env: str, tmp_path: Path
) -> None:
    """The Jenkins repository used to come from cloud-init's `yum_repos`, which upstream cloud-init runs on
    Amazon Linux only since canonical/cloud-init#6767 (merged 2026-04-30, first in 26.2); AL2023 ships its
    own patched 22.2. Any module outside write_files, packages and runcmd now fails the boot test before
    anything runs."""

    def add_yum_repos(document: dict[str, Any]) -> None:
        document["yum_repos"] = {"jenkins": {"baseurl": "https://pkg.jenkins.io/rpm-stable"}}

    code, report, _, output = boot(boot_image, aws_env, tmp_path, edit=add_yum_repos)
    assert code == 3, output[-2000:]
    assert "modules it does not emulate: yum_repos" in output
    assert report["log"] == []


def test_a_write_files_field_the_stand_in_does_not_apply_fails(
    boot_image: str, aws_env: str, tmp_path: Path
) -> None:
    """`defer` (written in the final stage, after the packages), `append` or `encoding` would change what
    the instance has on disk, or when, without the stand-in doing the same: refused before anything runs."""

    def defer_the_repo_file(document: dict[str, Any]) -> None:
        (entry,) = [f for f in document["write_files"] if f["path"] == JENKINS_REPO_FILE]
        entry["defer"] = True

    code, report, _, output = boot(boot_image, aws_env, tmp_path, edit=defer_the_repo_file)
    assert code == 3, output[-2000:]
    assert "write_files fields it does not emulate: defer" in output
    assert report["log"] == []


def test_without_its_repository_file_the_jenkins_install_fails(
    boot_image: str, aws_env: str, tmp_path: Path
) -> None:
    """What a skipped `yum_repos` did on the instance: `dnf --enablerepo=jenkins` finds no such repository
    and Jenkins is never installed."""

    def drop_repo_file(document: dict[str, Any]) -> None:
        document["write_files"] = [f for f in document["write_files"] if f["path"] != JENKINS_REPO_FILE]

    code, report, _, output = boot(boot_image, aws_env, tmp_path, edit=drop_repo_file)
    assert code != 0
    assert "Error: Unknown repo: 'jenkins'" in output
    assert not any(line.startswith(("mkfs.xfs", "java ", "systemctl restart")) for line in report["log"])


def test_the_boot_harness_passes_hadolint_and_shellcheck() -> None:
    import shutil

    require(
        shutil.which("shellcheck") is not None, "shellcheck is not installed (apt-get install shellcheck)"
    )
    scripts = [str(p) for p in (BOOT_DIR / "standins").iterdir()] + [str(BOOT_DIR / "inspect.sh")]
    shellcheck = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True, check=False)
    assert shellcheck.returncode == 0, shellcheck.stdout
    hadolint = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "hadolint"), str(BOOT_DIR / "Dockerfile")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert hadolint.returncode == 0, hadolint.stdout


def test_an_older_controllers_stored_credentials_are_removed_from_jenkins_home(
    boot_image: str, aws_env: str, tmp_path: Path
) -> None:
    """The volume outlives the instance: one that JCasC filled with credentials.xml keeps it, and a
    stored credential of the same id would shadow the one Secrets Manager serves."""

    def old_home(stored: dict[str, str]) -> dict[str, str]:
        key = stored["jenkins-deploy-key"]
        return {"credentials.xml": f"<privateKey>{key}</privateKey>", "config.xml": "<hudson/>"}

    code, report, _, output = boot(boot_image, aws_env, tmp_path, home=old_home)
    assert code == 0, output[-4000:]
    assert "credentials.xml" not in report["home_files"] and "config.xml" in report["home_files"]
    assert "removed credentials.xml from JENKINS_HOME" in output
    assert report["leaks"] == []
