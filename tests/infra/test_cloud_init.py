"""The Jenkins server's boot: cloud-init user data (validated by cloud-init itself), JCasC and plugins."""

from __future__ import annotations

import base64
import configparser
import getpass
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import boto3
import pytest
import yaml

from infra.jenkins.boot import (
    JENKINS_REPO_FILE,
    JENKINS_RPM_KEY,
    JENKINS_RPM_REPOSITORY,
    JENKINS_VERSION,
    JENKINSFILE,
    OPERATE_JENKINSFILE,
    SERVER_DIR,
    plugins_txt,
)
from tests.conftest import require
from tests.infra.conftest import GITHUB_HOST_KEYS, Program, controller_user_data
from tests.infra.envfile import bash_reads, systemd_reads

SECRET_TYPES = {
    "tls:index/privateKey:PrivateKey": ("privateKeyOpenssh", "privateKeyPem"),
    "random:index/randomPassword:RandomPassword": ("result",),
    "pulumi-python:dynamic/openpgp:Key": ("private_key",),
}
JENKINSFILE_ENV = {
    "IMAGE_REPOSITORY",
    "AWS_REGION",
    "GITOPS_BRANCH",
    "GITOPS_REPOSITORY_URL",
    "GITOPS_TRUST_ANCHOR",
}
# Read by `python -m jenkins` itself (jenkins/signing.py: the history check starts at the anchor;
# jenkins/cli.py: the environment is --environment's default).
RELEASE_ENV = {"GITOPS_TRUST_ANCHOR", "GITOPS_ENVIRONMENT"}
USER_DATA_LIMIT = 16 * 1024  # EC2 refuses larger user data


@pytest.fixture(scope="module")
def user_data(dev_program: Program) -> str:
    return controller_user_data(dev_program)


@pytest.fixture(scope="module")
def written(user_data: str) -> dict[str, str]:
    """path -> content of every file the user data writes."""
    document = yaml.safe_load(user_data)
    return {f["path"]: f["content"] for f in document["write_files"]}


def _environment(written: dict[str, str]) -> dict[str, str]:
    """gitops.env as the boot scripts read it: bash, `set -a; . file` (the way boot.sh does)."""
    return bash_reads(written["/etc/jenkins/gitops.env"])


def _schema_check(document: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    require(
        shutil.which("cloud-init") is not None, "cloud-init is not installed (apt-get install cloud-init)"
    )
    path = tmp_path / "user-data.yaml"
    path.write_text(document)
    return subprocess.run(
        ["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True, check=False
    )


def test_user_data_passes_cloud_init_schema(user_data: str, tmp_path: Path) -> None:
    assert user_data.startswith("#cloud-config\n")
    result = _schema_check(user_data, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


def test_user_data_fits_ec2s_limit(dev_program: Program) -> None:
    """EC2 measures user data raw, before base64 (EC2 User Guide, "Work with instance user data"): what
    the instance is sent is the gzip, inside 16 KB with a quarter to spare (about 10 KB with the job's
    Jenkinsfile), and the policy pack agrees."""
    from infra.policies import user_data_problems

    instance = dev_program.one("aws:ec2/instance:Instance")
    assert "userData" not in instance.inputs
    assert len(base64.b64decode(instance.inputs["userDataBase64"])) < USER_DATA_LIMIT * 3 // 4
    assert user_data_problems("aws:ec2/instance:Instance", instance.inputs) == []


def test_cloud_init_itself_decompresses_the_user_data(dev_program: Program, user_data: str) -> None:
    """cloud-init's own gzip handling (cloudinit.util.decomp_gzip, as its user-data processor calls it),
    run with the machine's cloud-init, gives back the #cloud-config document byte for byte."""
    require(
        shutil.which("cloud-init") is not None, "cloud-init is not installed (apt-get install cloud-init)"
    )
    encoded = dev_program.one("aws:ec2/instance:Instance").inputs["userDataBase64"]
    script = (
        "import base64, sys; from cloudinit import util; "
        "sys.stdout.write(util.decomp_gzip(base64.b64decode(sys.stdin.read())))"
    )
    python = Path(shutil.which("cloud-init") or "").read_text().splitlines()[0].removeprefix("#!").split()[0]
    result = subprocess.run([python, "-c", script], input=encoded, capture_output=True, text=True, check=True)
    assert result.stdout == user_data
    assert result.stdout.startswith("#cloud-config\n")


def test_schema_check_rejects_an_invalid_document(user_data: str, tmp_path: Path) -> None:
    # Proves the check above can fail: a write_files entry without its required `path`.
    broken = yaml.safe_load(user_data)
    del broken["write_files"][0]["path"]
    result = _schema_check("#cloud-config\n" + yaml.safe_dump(broken), tmp_path)
    assert result.returncode != 0


def test_no_secret_value_in_user_data(dev_program: Program, user_data: str) -> None:
    values = [
        r.outputs[key]
        for type_, keys in SECRET_TYPES.items()
        for r in dev_program.of_type(type_)
        for key in keys
    ]
    assert len(values) >= 6, "the mocks must produce the private keys and passwords to look for"
    rendered = [user_data, json.dumps(user_data)]
    leaked = [v for v in values for text in rendered if v.strip() in text]
    assert not leaked
    # What the boot does get: where to fetch the admin password, and the prefix of the credentials.
    (admin,) = [
        s
        for s in dev_program.of_type("aws:secretsmanager/secret:Secret")
        if s.name == "jenkins-admin-password"
    ]
    assert admin.outputs["arn"] in user_data


def test_boot_environment_names_the_stack_and_the_secrets(
    dev_program: Program, written: dict[str, str]
) -> None:
    environment = _environment(written)
    repository = dev_program.one("aws:ecr/repository:Repository")
    assert environment["IMAGE_REPOSITORY"] == repository.outputs["repositoryUrl"]
    assert environment["AWS_REGION"] == "us-east-1"
    assert environment["GITOPS_BRANCH"] == "main"
    assert environment["GITOPS_ENVIRONMENT"] == "dev"  # the stack's environment: the overlay it releases to
    assert environment["PULUMI_STACK"] == "dev"
    assert environment["GITOPS_REPOSITORY_URL"] == "git@github.com:example-org/hello-gitops.git"
    assert environment["GITOPS_JENKINS_URL"] == dev_program.outputs["jenkinsUrl"]
    # Two JCasC files, merged by JCasC: the static one and the agents' cloud (a comma-separated list).
    assert environment["CASC_JENKINS_CONFIG"] == "/etc/jenkins/casc.yaml,/etc/jenkins/casc-agents.yaml"
    (admin,) = [
        s
        for s in dev_program.of_type("aws:secretsmanager/secret:Secret")
        if s.name == "jenkins-admin-password"
    ]
    assert {k: v for k, v in environment.items() if k.startswith("SECRET_")} == {
        "SECRET_ADMIN_PASSWORD_ID": admin.outputs["arn"]
    }
    credentials = [s for s in dev_program.of_type("aws:secretsmanager/secret:Secret") if "name" in s.inputs]
    assert environment["JENKINS_CREDENTIALS_PREFIX"] == "gitops-eks-dev/jenkins/"
    assert credentials and all(s.inputs["name"].startswith("gitops-eks-dev/jenkins/") for s in credentials)


def test_boot_is_told_the_home_volume_id_which_exists_before_the_instance(
    dev_program: Program, written: dict[str, str]
) -> None:
    """Nitro instances rename EBS devices (nvme1n1), so the boot script looks the volume up by its id; the
    volume must therefore not depend on the instance (it takes the zone of the instance's subnet)."""
    volume = dev_program.one("aws:ebs/volume:Volume")
    instance = dev_program.one("aws:ec2/instance:Instance")
    assert _environment(written)["JENKINS_HOME_VOLUME_ID"] == f"{volume.name}-id"
    assert volume.inputs["availabilityZone"] == "us-east-1a"
    (lookup,) = dev_program.invokes_of("aws:ec2/getSubnet:getSubnet")
    assert lookup.args["id"] == instance.inputs["subnetId"] == "subnet-private-a"
    assert not dev_program.deleted_before(volume, instance)


def test_boot_writes_the_repository_files_and_pinned_host_keys(written: dict[str, str]) -> None:
    assert written["/etc/jenkins/casc.yaml"] == (SERVER_DIR / "casc.yaml").read_text()
    assert written["/etc/jenkins/plugins.txt"] == plugins_txt()
    assert written["/usr/local/sbin/jenkins-boot"] == (SERVER_DIR / "boot.sh").read_text()
    assert written["/etc/jenkins/known_hosts"].splitlines() == [f"github.com {k}" for k in GITHUB_HOST_KEYS]
    drop_in = written["/etc/systemd/system/jenkins.service.d/gitops.conf"]
    assert "ExecStartPre=+/usr/local/sbin/jenkins-fetch-secrets" in drop_in
    assert "EnvironmentFile=/etc/jenkins/gitops.env" in drop_in


def test_boot_installs_jenkins_lts_java_and_git_and_no_build_toolchain(
    user_data: str, written: dict[str, str]
) -> None:
    document = yaml.safe_load(user_data)
    # Only modules every cloud-init on AL2023 runs; the boot test's stand-in refuses any other, and any
    # write_files field beyond the four it applies (tests/infra/boot/cloud_init.py).
    assert set(document) <= {"write_files", "packages", "runcmd"}
    assert all(set(entry) <= {"path", "content", "owner", "permissions"} for entry in document["write_files"])
    # dnf reads /etc/yum.repos.d/*.repo as INI files (libdnf's ConfigParser; configparser reads the same).
    repo_file = configparser.ConfigParser(interpolation=None)
    repo_file.read_string(written[JENKINS_REPO_FILE])
    assert repo_file.sections() == ["jenkins"]
    repo = repo_file["jenkins"]
    # jenkinsci/packaging rpm/publish/publish.sh (commit 4903267) writes the repository's own jenkins.repo:
    # name, enabled=1, type=rpm-md, baseurl=${RPM_URL}, gpgkey, gpgcheck=1, repo_gpgcheck=1 (the zypper-only
    # autorefresh/keeppackages aside). jenkins-infra/release env/package.mk (commit e661986):
    # RPM_URL=${WEBSERVER}/rpm${RELEASELINE} with WEBSERVER=https://pkg.jenkins.io and, profile.d/stable,
    # RELEASELINE=-stable; GPG_PUBLIC_KEY_FILENAME=jenkins.io-2026.key, which publish.sh copies beside the
    # repository (the same key as repodata/repomd.xml.key; the rotation from the 2023 key:
    # jenkins-infra/helpdesk#4922).
    assert set(repo) == {"name", "enabled", "type", "baseurl", "gpgkey", "gpgcheck", "repo_gpgcheck"}
    assert repo["baseurl"] == JENKINS_RPM_REPOSITORY == "https://pkg.jenkins.io/rpm-stable"
    assert repo["gpgkey"] == JENKINS_RPM_KEY == "https://pkg.jenkins.io/rpm-stable/jenkins.io-2026.key"
    assert (repo["type"], repo["gpgcheck"], repo["repo_gpgcheck"]) == ("rpm-md", "1", "1")
    # The Jenkins repository cannot take Java and git down with it: cloud-init's one package
    # transaction never reads it; the boot installs the pinned Jenkins from it on its own.
    assert repo["enabled"] == "0"
    assert "jenkins" not in document["packages"]
    # The controller builds nothing (issue 10): no Docker daemon (root to its group), no toolchain.
    assert document["packages"] == ["java-21-amazon-corretto-headless", "fontconfig", "git"]
    assert "docker" not in written["/usr/local/sbin/jenkins-boot"]
    assert "docker" not in written["/etc/systemd/system/jenkins.service.d/gitops.conf"]
    assert _environment(written)["JENKINS_VERSION"] == JENKINS_VERSION
    assert (
        'dnf install -y --enablerepo=jenkins "jenkins-${JENKINS_VERSION}"'
        in written["/usr/local/sbin/jenkins-boot"]
    )
    assert document["runcmd"] == [["/usr/local/sbin/jenkins-boot"]]


def _casc() -> dict:
    return yaml.safe_load((SERVER_DIR / "casc.yaml").read_text())


def test_casc_defines_the_contract_the_jenkinsfile_relies_on() -> None:
    casc = _casc()
    (properties,) = casc["jenkins"]["globalNodeProperties"]
    env = {e["key"]: e["value"] for e in properties["envVars"]["env"]}
    assert set(env) == {*JENKINSFILE_ENV, *RELEASE_ENV, "PYTHON"}
    # Each value is the variable of the same name in gitops.env (JCasC resolves ${NAME} from the env).
    assert all(value == f"${{{key}}}" for key, value in env.items() if key != "PYTHON")
    assert env["PYTHON"] == "python3.11"
    strategy = casc["security"]["gitHostKeyVerificationConfiguration"]["sshHostKeyVerificationStrategy"]
    assert strategy == "knownHostsFileVerificationStrategy"
    assert (
        casc["jenkins"]["authorizationStrategy"]["loggedInUsersCanDoAnything"]["allowAnonymousRead"] is False
    )
    assert casc["jenkins"]["securityRealm"]["local"]["allowsSignup"] is False


def test_casc_job_runs_the_stacks_jenkinsfile_not_the_branchs(written: dict[str, str]) -> None:
    """The job's pipeline is an inline script read from the stack's copy of the Jenkinsfile, which the
    boot writes: nothing the job runs as its pipeline comes from the branch it builds.

    job-dsl-plugin aac2bedf: `cps { script(String); sandbox(boolean) }` renders a CpsFlowDefinition
    (job-dsl-core .../helpers/workflow/WorkflowDefinitionContext.groovy lines 23-33; CpsContext's
    `sandbox` is false unless called, CpsContext.groovy line 6); JCasC's `jobs:` scripts run through
    JenkinsDslScriptLoader, a plain GroovyShell (casc/SeedJobConfigurator.java lines 119-123,
    AbstractDslScriptLoader.groovy lines 51-55), so `new File(...)` is allowed there. workflow-cps
    e007b7ff: CpsFlowDefinition.readResolve asks ScriptApproval only when `sandbox` is false
    (CpsFlowDefinition.java lines 103-106), so a sandboxed script needs no approval."""
    (script,) = [job["script"] for job in _casc()["jobs"] if "pipelineJob('gitops-release')" in job["script"]]
    assert "cpsScm" not in script and "scriptPath" not in script
    definition = re.search(r"\n( *)cps \{\n(.*?)\n\1\}", script, flags=re.DOTALL)
    assert definition
    body = [line.strip() for line in definition.group(2).splitlines() if not line.strip().startswith("//")]
    assert body == [f"script(new File('{JENKINSFILE}').getText('UTF-8'))", "sandbox(true)"]
    assert written[JENKINSFILE] == _jenkinsfile()
    assert "githubPush()" in script
    # No credential in the job: the Jenkinsfile's checkouts name the read-only key themselves.
    assert "gitops-deploy-key" not in script and "gitops-checkout-key" not in script
    # The first release needs no click: a build is queued at every start (catching up pushes made while
    # Jenkins was down or booting); its checkouts are what later pushes match the job by.
    assert script.rstrip().endswith("queue('gitops-release')")


def test_casc_operator_jobs_run_the_stacks_pipeline_not_the_branchs(written: dict[str, str]) -> None:
    """The operator jobs, which bind the write and signing keys, get the same definition (sources above):
    an inline, sandboxed script read from the stack's copy of jenkins/operate.Jenkinsfile."""
    (script,) = [job["script"] for job in _casc()["jobs"] if "pipelineJob(name)" in job["script"]]
    assert "cpsScm" not in script and "scriptPath" not in script
    definition = re.search(r"\n( *)cps \{\n(.*?)\n\1\}", script, flags=re.DOTALL)
    assert definition
    body = [line.strip() for line in definition.group(2).splitlines() if not line.strip().startswith("//")]
    assert body == [f"script(new File('{OPERATE_JENKINSFILE}').getText('UTF-8'))", "sandbox(true)"]
    assert written[OPERATE_JENKINSFILE] == (SERVER_DIR.parent / "operate.Jenkinsfile").read_text()
    # Its checkout names the read-only key, repository and branch itself, as the release job's does.
    operate = written[OPERATE_JENKINSFILE]
    assert "checkout(scm)" not in operate
    assert "url: env.GITOPS_REPOSITORY_URL, credentialsId: 'gitops-checkout-key'" in operate


def _jenkinsfile() -> str:
    return (SERVER_DIR.parent / "Jenkinsfile").read_text()


def test_the_jenkinsfiles_checkouts_name_the_repository_and_branch_casc_provides() -> None:
    """Without `scm` (no cpsScm), the checkouts name the repository and branch from the node properties."""
    jenkinsfile = _jenkinsfile()
    assert "url: env.GITOPS_REPOSITORY_URL, credentialsId: 'gitops-checkout-key'" in jenkinsfile
    assert "branches: [[name: '*/' + env.GITOPS_BRANCH]]" in jenkinsfile
    assert {"GITOPS_REPOSITORY_URL", "GITOPS_BRANCH"} <= set(_casc_env())
    # The release module's bot name (GITOPS_BOT_NAME) is its default here: no node property sets it.
    assert "GITOPS_BOT_NAME" not in _casc_env()


def _casc_env() -> dict[str, str]:
    (properties,) = _casc()["jenkins"]["globalNodeProperties"]
    return {e["key"]: e["value"] for e in properties["envVars"]["env"]}


def test_casc_job_triggers_agree_with_the_jenkinsfile() -> None:
    """The Jenkinsfile's `triggers` replace the job's triggers at its first build; until then the
    casc.yaml ones run, so both must be the same: githubPush() and the slow pollSCM fallback.

    job-dsl: pipelineTriggers { triggers { ... } } is the dynamic DSL (docs/Migration.md, 1.77);
    core hudson.triggers.SCMTrigger: @Symbol("pollSCM"), @DataBoundConstructor(String scmpoll_spec)
    (job-dsl-plugin src/test/resources/expected-dsl.json lists scmpoll_spec as its required method).
    """
    script = _casc()["jobs"][0]["script"]
    triggers = re.search(r"triggers \{(.*?)\n    \}", _jenkinsfile(), flags=re.DOTALL)
    assert triggers
    spec = re.search(r"pollSCM\('([^']*)'\)", triggers.group(1))
    assert spec and "githubPush()" in triggers.group(1)
    casc_triggers = re.search(r"\n( *)triggers \{\n(.*?)\n\1\}", script, flags=re.DOTALL)
    assert casc_triggers
    assert "githubPush()" in casc_triggers.group(2)
    assert re.search(
        r"pollSCM \{\s*scmpoll_spec\('" + re.escape(spec.group(1)) + r"'\)\s*\}", casc_triggers.group(2)
    )


def test_every_casc_variable_is_provided_at_boot(written: dict[str, str]) -> None:
    used = set(re.findall(r"\$\{([A-Z_]+)\}", (SERVER_DIR / "casc.yaml").read_text()))
    fetched = set(re.findall(r"^fetch ([A-Z_]+) ", (SERVER_DIR / "fetch-secrets.sh").read_text(), re.M))
    assert fetched == {"ADMIN_PASSWORD"}
    assert used - fetched - set(_environment(written)) == set()
    # The password only from the fetched file, never from the (readable) environment file.
    assert not fetched & set(_environment(written))


def test_jcasc_defines_no_credential_and_serves_them_from_secrets_manager() -> None:
    """configuration-as-code-plugin#1316: credentials defined under `credentials:` are written to
    credentials.xml on JENKINS_HOME. The AWS Secrets Manager Credentials Provider is configured instead
    (its docs/README.md "Configuration As Code" schema: `unclassified.awsCredentialsProvider` with
    `client.region`, `listSecrets.filters` of `key`/`values`, `transformations.name.removePrefix.prefix`)."""
    casc = _casc()
    assert "credentials" not in casc
    provider = casc["unclassified"]["awsCredentialsProvider"]
    assert provider == {
        "client": {"region": "${AWS_REGION}"},
        "listSecrets": {
            "filters": [
                {"key": "name", "values": ["${JENKINS_CREDENTIALS_PREFIX}"]},
                {"key": "tag-key", "values": ["jenkins:credentials:type"]},
            ]
        },
        "transformations": {"name": {"removePrefix": {"prefix": "${JENKINS_CREDENTIALS_PREFIX}"}}},
    }


@pytest.mark.parametrize("script", ["boot.sh", "fetch-secrets.sh"])
def test_boot_scripts_pass_shellcheck(script: str) -> None:
    require(
        shutil.which("shellcheck") is not None, "shellcheck is not installed (apt-get install shellcheck)"
    )
    result = subprocess.run(
        ["shellcheck", str(SERVER_DIR / script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


@pytest.fixture
def secrets_manager(aws_env: str, tmp_path: Path) -> dict[str, str]:
    """The admin password in moto's Secrets Manager, and the boot env file naming it; returns the env."""
    client = boto3.client("secretsmanager", region_name="us-east-1")
    arn = client.create_secret(Name=f"{tmp_path.name}/admin-password", SecretString="pa55word")["ARN"]
    env_file = tmp_path / "gitops.env"
    env_file.write_text(
        f"AWS_REGION=us-east-1\nSECRETS={tmp_path / 'run-secrets'}\nSECRET_ADMIN_PASSWORD_ID={arn}\n"
    )
    return {"env_file": str(env_file), "admin-password": arn}


def _fetch(secrets_manager: dict[str, str]) -> subprocess.CompletedProcess[str]:
    require(shutil.which("aws") is not None, "the AWS CLI is not installed (apt-get install awscli)")
    return subprocess.run(
        ["bash", str(SERVER_DIR / "fetch-secrets.sh")],
        env={**os.environ, "GITOPS_ENV_FILE": secrets_manager["env_file"], "JENKINS_USER": getpass.getuser()},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _written_secrets(tmp_path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in (tmp_path / "run-secrets").iterdir()}


def test_fetch_secrets_writes_the_admin_password_and_refreshes_it_on_restart(
    secrets_manager: dict[str, str], tmp_path: Path
) -> None:
    result = _fetch(secrets_manager)
    assert result.returncode == 0, result.stderr
    directory = tmp_path / "run-secrets"
    assert directory.stat().st_mode & 0o777 == 0o700
    # Exactly what JCasC will read, verbatim; no temp files left.
    assert _written_secrets(tmp_path) == {"ADMIN_PASSWORD": "pa55word"}
    assert {p.stat().st_mode & 0o777 for p in directory.iterdir()} == {0o400}
    assert "pa55word" not in result.stdout + result.stderr

    # A rotated value is what the next Jenkins start (ExecStartPre) reads.
    client = boto3.client("secretsmanager", region_name="us-east-1")
    client.put_secret_value(SecretId=secrets_manager["admin-password"], SecretString="n3w-pa55word")
    assert _fetch(secrets_manager).returncode == 0
    assert _written_secrets(tmp_path) == {"ADMIN_PASSWORD": "n3w-pa55word"}


def test_fetch_secrets_fails_clearly_without_the_admin_password(
    secrets_manager: dict[str, str], tmp_path: Path
) -> None:
    boto3.client("secretsmanager", region_name="us-east-1").delete_secret(
        SecretId=secrets_manager["admin-password"], ForceDeleteWithoutRecovery=True
    )
    result = _fetch(secrets_manager)
    assert result.returncode != 0
    assert f"cannot read ADMIN_PASSWORD ({secrets_manager['admin-password']})" in result.stderr
    assert "ADMIN_PASSWORD" not in _written_secrets(tmp_path)


VOLUME_ID = "vol-0123456789abcdef0"


def _fake_dev(tmp_path: Path, devices: list[str], links: dict[str, str]) -> Path:
    """A /dev stand-in: block device nodes (never opened) and udev-style symlinks to them."""
    require(os.geteuid() == 0, "creating block device nodes needs root")
    dev = tmp_path / "dev"
    (dev / "disk" / "by-id").mkdir(parents=True)
    for minor, name in enumerate(devices):
        os.mknod(dev / name, stat.S_IFBLK | 0o600, os.makedev(259, 100 + minor))
    for link, target in links.items():
        (dev / link).symlink_to(dev / target)
    return dev


def _home_device(dev: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / "gitops.env"
    env_file.write_text(f"JENKINS_HOME_VOLUME_ID={VOLUME_ID}\n")
    return subprocess.run(
        ["bash", "-c", f'. "{SERVER_DIR / "boot.sh"}" && home_device'],
        env={**os.environ, "GITOPS_ENV_FILE": str(env_file), "JENKINS_DEV_DIR": str(dev)},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_boot_finds_the_home_volume_by_id_on_nitro(tmp_path: Path) -> None:
    """On Nitro the root disk is nvme0n1 and the home volume nvme1n1; /dev/sdf may not exist at all."""
    dev = _fake_dev(
        tmp_path,
        ["nvme0n1", "nvme1n1"],
        {
            "disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0aaaaaaaaaaaaaaaa": "nvme0n1",
            "disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0": "nvme1n1",
        },
    )
    result = _home_device(dev, tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, str(dev / "nvme1n1")), result.stderr


def test_boot_falls_back_to_the_attachment_name_on_xen(tmp_path: Path) -> None:
    dev = _fake_dev(tmp_path, ["xvda", "xvdf"], {})
    result = _home_device(dev, tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, str(dev / "xvdf")), result.stderr


def test_boot_never_takes_another_volume_for_jenkins_home(tmp_path: Path) -> None:
    """Only the root disk is attached so far: nothing qualifies, so mount_home keeps waiting."""
    dev = _fake_dev(
        tmp_path, ["nvme0n1"], {"disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0aaaaaaaaaaaaaaaa": "nvme0n1"}
    )
    result = _home_device(dev, tmp_path)
    assert (result.returncode, result.stdout) == (1, "")


def test_env_file_reads_the_same_in_bash_and_in_systemd(written: dict[str, str]) -> None:
    """boot.sh and fetch-secrets.sh source gitops.env under `set -euo pipefail`; the Jenkins unit reads it
    with EnvironmentFile=. An unquoted `JAVA_OPTS=-Da -Db` is fine for systemd, but bash runs `-Db` as a
    command (exit 127) and the boot stops before anything is mounted or installed."""
    text = written["/etc/jenkins/gitops.env"]
    from_bash = bash_reads(text)
    assert from_bash == systemd_reads(text)
    assert from_bash["JAVA_OPTS"] == "-Djava.awt.headless=true -Djenkins.install.runSetupWizard=false"
    assert len(from_bash) == len(text.splitlines())


@pytest.mark.parametrize("value", ["it's", 'say "hi"', "$HOME", "a\\b", "`id`", "two\nlines"])
def test_env_file_refuses_values_its_readers_would_read_differently(value: str) -> None:
    from infra.jenkins.boot import BootSettings, boot_environment

    settings = BootSettings(
        region="us-east-1", repository="o/r", branch=value, environment="dev", stack_name="dev",
        image_repository="i",
        jenkins_url="http://j/", known_hosts="", trust_anchor="0" * 40, admin_password_secret="b",
        credentials_prefix="p/j/",
        home_volume_id="vol-1", agents_casc="",
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"GITOPS_BRANCH: .* cannot be written to gitops\.env"):
        boot_environment(settings)


def test_the_job_url_is_one_the_github_plugin_matches_to_the_pushed_repository(
    written: dict[str, str],
) -> None:
    """The github plugin matches a push to a job by parsing its SCM URLs with these patterns (github-plugin
    v1.47.0, GitHubRepositoryName.java, the first `.git` pattern); an URL it cannot parse never triggers."""
    url = _environment(written)["GITOPS_REPOSITORY_URL"]
    match = re.fullmatch(r".+@(.+):([^/]+)/([^/]+)\.git(?:/)?", url)
    assert match is not None and match.groups() == ("github.com", "example-org", "hello-gitops")
