"""Git over SSH against a real sshd on 127.0.0.1: a deploy key limited to one repository and a pinned
known_hosts, as the Jenkinsfile sets up with `sshagent` and GIT_SSH_COMMAND."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, require
from tests.jenkins.conftest import GitopsRepo, git, run_cli

GATE = """#!/bin/sh
# Forced command of the deploy key: git transport for one repository, nothing else.
case "$SSH_ORIGINAL_COMMAND" in
  "git-upload-pack '{repo}'"|"git-receive-pack '{repo}'") exec git-shell -c "$SSH_ORIGINAL_COMMAND" ;;
  *) echo "this deploy key only serves {repo}" >&2; exit 1 ;;
esac
"""


@dataclass
class Sshd:
    port: int
    known_hosts: Path
    key: Path

    def ssh_command(self, known_hosts: Path | None = None) -> str:
        return (
            f"ssh -F /dev/null -o UserKnownHostsFile={known_hosts or self.known_hosts} "
            f"-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o BatchMode=yes -i {self.key}"
        )

    def url(self, repo: Path) -> str:
        return f"ssh://root@127.0.0.1:{self.port}{repo}"


def keygen(path: Path) -> str:
    """A new ed25519 key pair at path; returns the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True
    )
    return path.with_suffix(".pub").read_text().strip()


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "sshd exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert time.monotonic() < deadline, "sshd did not start listening"
        time.sleep(0.05)


@pytest.fixture
def sshd(gitops_repo: GitopsRepo, tmp_path: Path) -> Iterator[Sshd]:
    require(
        shutil.which("sshd") is not None or Path("/usr/sbin/sshd").exists(), "openssh-server is not installed"
    )
    require(os.geteuid() == 0, "a real sshd on loopback needs root")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    conf = tmp_path / "sshd"
    conf.mkdir()
    host_pub = keygen(conf / "host_key")
    deploy_pub = keygen(conf / "deploy_key")
    gate = conf / "gate.sh"
    gate.write_text(GATE.format(repo=gitops_repo.remote))
    gate.chmod(0o755)
    (conf / "authorized_keys").write_text(f'restrict,command="{gate}" {deploy_pub}\n')
    port = free_port()
    (conf / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {conf / 'host_key'}\nPidFile {conf / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {conf / 'authorized_keys'}\nStrictModes no\nUsePAM no\nAllowUsers root\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "LogLevel ERROR\n"
    )
    (conf / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    proc = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(conf / "sshd_config")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, proc)
        yield Sshd(port, conf / "known_hosts", conf / "deploy_key")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def ssh_workspace(gitops_repo: GitopsRepo, sshd: Sshd, sha: str, repo: Path | None = None) -> Path:
    ws = gitops_repo.workspace(sha)
    git(ws, "remote", "set-url", "origin", sshd.url(repo or gitops_repo.remote))
    return ws


def test_promote_over_ssh_with_deploy_key_and_pinned_host_key(
    gitops_repo: GitopsRepo, sshd: Sshd, image_repository: str, push_test_image: Callable[[str, str], str]
) -> None:
    sha = gitops_repo.app_commit("over ssh")
    push_test_image(image_repository, sha)
    ws = ssh_workspace(gitops_repo, sshd, sha)

    result = run_cli(
        ws,
        "promote",
        "--image-repository",
        image_repository,
        "--json",
        env={"GIT_SSH_COMMAND": sshd.ssh_command()},
    )

    assert result.returncode == 0, result.output
    assert result.json["outcome"] == "changed"
    assert result.json["commit"] == gitops_repo.tip()
    assert "PRIVATE KEY" not in result.output


def test_wrong_host_key_fails_clearly_and_pushes_nothing(
    gitops_repo: GitopsRepo,
    sshd: Sshd,
    image_repository: str,
    push_test_image: Callable[[str, str], str],
    tmp_path: Path,
) -> None:
    sha = gitops_repo.app_commit("impostor")
    push_test_image(image_repository, sha)
    ws = ssh_workspace(gitops_repo, sshd, sha)
    impostor = tmp_path / "impostor_known_hosts"
    impostor.write_text(f"[127.0.0.1]:{sshd.port} {keygen(tmp_path / 'other_host_key')}\n")
    tip = gitops_repo.tip()

    result = run_cli(
        ws, "promote", "--image-repository", image_repository, "--json",
        env={"GIT_SSH_COMMAND": sshd.ssh_command(impostor)},
    )  # fmt: skip

    assert result.returncode == 1
    assert "Host key verification failed" in result.stderr
    assert "cannot fetch branch 'main' from remote 'origin'" in result.stderr
    assert "known_hosts" in result.stderr  # the hint says where to look
    assert gitops_repo.tip() == tip


def test_deploy_key_cannot_reach_another_repository(
    gitops_repo: GitopsRepo, sshd: Sshd, tmp_path: Path
) -> None:
    other = tmp_path / "other.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(gitops_repo.remote), str(other))
    ws = ssh_workspace(gitops_repo, sshd, gitops_repo.tip(), repo=other)

    result = run_cli(ws, "unhold", env={"GIT_SSH_COMMAND": sshd.ssh_command()})

    assert result.returncode == 1
    assert f"this deploy key only serves {gitops_repo.remote}" in result.stderr
