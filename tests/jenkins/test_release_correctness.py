"""Issue 8, "Release correctness", point by point, against real git (bare remotes, detached and shallow
workspaces), the real local registry, and the CLI as a real subprocess. Each test failed on the code
before the fix. Docker-built images (point 1) are in tests/e2e/test_exact_commit.py; hostile text
(point 5) in test_text.py; the ECR side of point 11 in test_registry_ecr.py; the Jenkinsfile (12) in
test_jenkinsfile.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jenkins import manifest, outcome
from jenkins.registry import resolve_digest
from tests.conftest import ROOT
from tests.jenkins.conftest import MANIFEST, GitopsRepo, git, run_cli

PushImage = Callable[[str, str], str]
SYSTEM_PYTHON = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"


def snapshot(gitops_repo: GitopsRepo, ws: Path) -> tuple[str, ...]:
    """The remote's refs and everything of the workspace a run may not touch."""
    shallow = ws / ".git" / "shallow"
    return (
        git(gitops_repo.remote, "for-each-ref"),
        git(ws, "for-each-ref"),
        git(ws, "rev-parse", "HEAD"),
        git(ws, "status", "--porcelain", "--untracked-files=all"),
        git(ws, "ls-files", "--stage"),
        shallow.read_text() if shallow.exists() else "",
        (ws / ".git" / "config").read_text(),
        git(ws, "count-objects", "-v"),
    )


# --- 2. only commits on <remote>/<branch> ----------------------------------------------------------


def test_an_unpushed_commit_is_refused_before_anything_is_built_or_pushed(
    gitops_repo: GitopsRepo, image_repository: str
) -> None:
    ws = gitops_repo.workspace(gitops_repo.app_commit("v1"))
    (ws / "app" / "version.txt").write_text("not in git anywhere\n")
    git(
        ws,
        "commit",
        "--quiet",
        "-am",
        "local only",
        env={
            "GIT_AUTHOR_NAME": "a",
            "GIT_AUTHOR_EMAIL": "a@x",
            "GIT_COMMITTER_NAME": "a",
            "GIT_COMMITTER_EMAIL": "a@x",
        },
    )
    local = git(ws, "rev-parse", "HEAD").strip()
    tip = gitops_repo.tip()

    result = run_cli(ws, "release", "--image-repository", image_repository, "--json")

    assert result.returncode == 2, result.output
    assert f"--commit {local}: not on origin/main" in result.stderr
    assert result.json["exit_code"] == 2
    assert gitops_repo.tip() == tip
    assert resolve_digest(image_repository, local) is None  # nothing built, nothing pushed


def test_a_commit_of_another_branch_is_refused_by_promote_and_rollback(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    base = gitops_repo.app_commit("v1")
    push_test_image(image_repository, base)
    git(gitops_repo.dev, "checkout", "--quiet", "-b", "feature")
    (gitops_repo.dev / "app" / "version.txt").write_text("feature\n")
    git(gitops_repo.dev, "commit", "--quiet", "-am", "feature work")
    git(gitops_repo.dev, "push", "--quiet", "origin", "feature")
    feature = git(gitops_repo.dev, "rev-parse", "HEAD").strip()
    push_test_image(image_repository, feature)  # even with its image in the registry
    ws = gitops_repo.workspace(base)
    git(ws, "fetch", "--quiet", "origin", "feature")
    before = snapshot(gitops_repo, ws)

    promoted = run_cli(ws, "promote", "--image-repository", image_repository, "--commit", feature)
    rolled = run_cli(ws, "rollback", "--image-repository", image_repository, "--to", feature, "--reason", "x")

    assert promoted.returncode == 2 and "not on origin/main" in promoted.stderr, promoted.output
    assert rolled.returncode == 2 and "--to" in rolled.stderr and "not on origin/main" in rolled.stderr
    assert snapshot(gitops_repo, ws) == before


# --- 3. a bot commit on top of a human one: release the human commit --------------------------------


@pytest.mark.parametrize("depth", [None, 1], ids=["full clone", "shallow clone"])
def test_a_push_is_not_lost_when_bot_commits_land_on_top_before_its_build(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage, depth: int | None
) -> None:
    old = gitops_repo.app_commit("v0")
    push_test_image(image_repository, old)
    assert (
        run_cli(gitops_repo.workspace(old), "promote", "--image-repository", image_repository).returncode == 0
    )
    human = gitops_repo.app_commit("v1")  # its build is queued ...
    digest = push_test_image(image_repository, human)
    ops = gitops_repo.workspace(human)
    # ... while an operator's rollback and unhold (two bot commits) land on top of it.
    rollback = run_cli(
        ops, "rollback", "--image-repository", image_repository, "--to", old, "--reason", "drill"
    )
    assert rollback.returncode == 0, rollback.output
    assert run_cli(ops, "unhold").returncode == 0
    bot_tip = gitops_repo.tip()
    assert bot_tip != human

    # The build checks out the branch tip: a bot commit.
    result = run_cli(
        gitops_repo.workspace(bot_tip, depth=depth),
        "release",
        "--image-repository",
        image_repository,
        "--json",
    )

    assert result.returncode == 0, result.output
    assert result.json["outcome"] == "changed" and result.json["source_commit"] == human
    assert manifest.read_image(gitops_repo.manifest_at()).new_tag == human
    assert manifest.read_image(gitops_repo.manifest_at()).digest == digest


# --- 4. stale and held are visible in Jenkins -------------------------------------------------------


def test_stale_and_held_become_an_unstable_build_with_the_reason(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    first = gitops_repo.app_commit("v1")
    second = gitops_repo.app_commit("v2")
    for sha in (first, second):
        push_test_image(image_repository, sha)
    run_cli(gitops_repo.workspace(second), "promote", "--image-repository", image_repository)
    stale = run_cli(gitops_repo.workspace(first), "promote", "--image-repository", image_repository, "--json")
    run_cli(gitops_repo.workspace(second), "rollback", "--image-repository", image_repository, "--to", first,
            "--reason", "INC-7")  # fmt: skip
    third = gitops_repo.app_commit("v3")
    push_test_image(image_repository, third)
    held = run_cli(gitops_repo.workspace(third), "promote", "--image-repository", image_repository, "--json")

    # The exit-code contract is unchanged: both exit 0 ...
    assert (stale.returncode, held.returncode) == (0, 0), stale.output + held.output
    # ... and what the Jenkinsfile shows: `python -m jenkins.outcome release.json`.
    for run, expected in ((stale, "stale"), (held, "held")):
        path = gitops_repo.tmp / f"{expected}.json"
        path.write_text(run.stdout)
        shown = subprocess.run(
            [sys.executable, "-m", "jenkins.outcome", str(path)],
            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
        ).stdout.splitlines()  # fmt: skip
        assert shown[0] == expected
        assert shown[1] == f"{expected}: {run.json['reason']}"
    assert "INC-7" in outcome.summarize(held.stdout)[1]
    assert outcome.summarize("") == ("error", "error: the release printed no JSON result (see the console)")
    assert outcome.summarize('garbage\n{"outcome": "error", "error": "boom"}')[1] == "error: boom"


# --- 8. exit codes mean what the contract says; --json always ends with JSON --------------------------


def test_unhold_never_pushes_and_then_exits_2(gitops_repo: GitopsRepo, image_repository: str,
                                              push_test_image: PushImage) -> None:  # fmt: skip
    sha = gitops_repo.app_commit("v1")
    push_test_image(image_repository, sha)
    ws = gitops_repo.workspace(sha)
    run_cli(ws, "rollback", "--image-repository", image_repository, "--to", sha, "--reason", "hold it")
    # Someone renames the images entry on the branch; the workspace still has the old manifest.
    git(gitops_repo.dev, "pull", "--quiet", "--rebase", "origin", "main")
    path = gitops_repo.dev / MANIFEST
    path.write_text(path.read_text().replace("name: hello-gitops", "name: renamed"))
    git(gitops_repo.dev, "commit", "--quiet", "-am", "rename the image")
    git(gitops_repo.dev, "push", "--quiet", "origin", "HEAD:main")
    tip = gitops_repo.tip()

    result = run_cli(ws, "unhold", "--json")

    assert result.returncode == 2, result.output
    assert "no `images:` entry named 'hello-gitops'" in result.stderr
    assert gitops_repo.tip() == tip  # nothing was pushed


def test_release_refuses_a_broken_manifest_on_the_branch_before_building(
    gitops_repo: GitopsRepo, image_repository: str
) -> None:
    sha = gitops_repo.app_commit("v1")
    git(gitops_repo.dev, "pull", "--quiet", "--rebase", "origin", "main")
    (gitops_repo.dev / MANIFEST).write_text("kind: Kustomization\nimages: [\n")
    git(gitops_repo.dev, "commit", "--quiet", "-am", "break the manifest")
    git(gitops_repo.dev, "push", "--quiet", "origin", "HEAD:main")
    tip = gitops_repo.tip()

    result = run_cli(gitops_repo.workspace(sha), "release", "--image-repository", image_repository, "--json")

    assert result.returncode == 2, result.output
    assert "not valid YAML" in result.json["error"]
    assert resolve_digest(image_repository, sha) is None  # no build, no push
    assert gitops_repo.tip() == tip


def test_json_help_ends_with_a_json_line(gitops_repo: GitopsRepo) -> None:
    ws = gitops_repo.workspace(gitops_repo.tip())
    for argv in (["--help", "--json"], ["release", "--json", "--help"], ["unhold", "-h", "--json"]):
        result = run_cli(ws, *argv)
        assert result.returncode == 0, result.output
        assert result.json["outcome"] == "help"
        assert "usage:" in result.stdout


def test_abbreviated_flags_are_refused_not_guessed(gitops_repo: GitopsRepo, image_repository: str,
                                                   push_test_image: PushImage) -> None:  # fmt: skip
    sha = gitops_repo.app_commit("v1")
    push_test_image(image_repository, sha)
    ws = gitops_repo.workspace(sha)
    tip = gitops_repo.tip()

    # `--dry` would have been taken as --dry-run, `--max-att` as --max-attempts.
    for flag in ("--dry", "--max-att=3"):
        result = run_cli(ws, "promote", "--image-repository", image_repository, flag, "--json")
        assert result.returncode == 2, result.output
        assert "unrecognized arguments" in result.json["error"]
    assert gitops_repo.tip() == tip


def test_undecodable_argument_bytes_are_bad_input_with_a_json_line(gitops_repo: GitopsRepo) -> None:
    ws = gitops_repo.workspace(gitops_repo.app_commit("v1"))
    argv = [sys.executable, "-m", "jenkins", "rollback", "--image-repository", "127.0.0.1:5000/hello",
            "--to", "HEAD", "--reason", b"caf\xe9 broke", "--json"]  # fmt: skip
    proc = subprocess.run(
        argv, cwd=ws, capture_output=True, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    stdout, stderr = proc.stdout.decode(), proc.stderr.decode(errors="replace")
    assert proc.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert '"exit_code": 2' in stdout.strip().splitlines()[-1]
    assert "--reason: is not valid UTF-8 text" in stderr


def test_a_user_without_a_passwd_entry_still_gets_json(gitops_repo: GitopsRepo) -> None:
    """Container agents often run as a uid that /etc/passwd does not know: getpass.getuser() raises."""
    if os.geteuid() != 0 or not Path(SYSTEM_PYTHON).is_file():
        pytest.skip(f"needs root and {SYSTEM_PYTHON} to run the CLI as a uid without a passwd entry")
    uid = 54321
    import pwd

    with pytest.raises(KeyError):
        pwd.getpwuid(uid)
    sha = gitops_repo.app_commit("v1")
    shared = Path(tempfile.mkdtemp(prefix="gitops-nopasswd-"))
    try:
        shutil.copytree(gitops_repo.remote, shared / "remote.git")
        git(shared, "clone", "--quiet", str(shared / "remote.git"), str(shared / "ws"))
        git(shared / "ws", "checkout", "--quiet", "--detach", sha)
        subprocess.run(["chown", "-R", f"{uid}:{uid}", str(shared)], check=True)
        shared.chmod(0o755)
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"LOGNAME", "USER", "LNAME", "USERNAME"}
        }
        # Our interpreter lives under /root (0700): the system one, with the venv's packages, runs as any uid.
        packages = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
        env.update(HOME=str(shared), PYTHONPATH=f"{ROOT}:{packages}")
        proc = subprocess.run(
            [SYSTEM_PYTHON, "-m", "jenkins", "unhold", "--json"],
            cwd=shared / "ws", capture_output=True, text=True, check=False, env=env, user=uid, group=uid,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        assert '"outcome": "noop"' in proc.stdout.strip().splitlines()[-1]
    finally:
        shutil.rmtree(shared, ignore_errors=True)


# --- 9. git is used defensively ---------------------------------------------------------------------


def test_a_hung_remote_fails_within_the_git_timeout(gitops_repo: GitopsRepo, tmp_path: Path) -> None:
    ws = gitops_repo.workspace(gitops_repo.app_commit("v1"))
    git(ws, "remote", "set-url", "origin", "ssh://git@192.0.2.1/never/answers.git")
    hang = tmp_path / "hang.sh"
    hang.write_text("#!/bin/sh\nexec sleep 60\n")
    hang.chmod(0o755)
    started = time.monotonic()

    result = run_cli(ws, "unhold", "--json", env={"GIT_SSH_COMMAND": str(hang), "GITOPS_GIT_TIMEOUT": "2"})

    assert time.monotonic() - started < 20  # the sleep (and its process group) was killed
    assert result.returncode == 1, result.output
    assert "gave no answer within 2s" in result.json["error"]


def test_the_workspaces_hooks_never_run(gitops_repo: GitopsRepo, image_repository: str,
                                        push_test_image: PushImage) -> None:  # fmt: skip
    sha = gitops_repo.app_commit("v1")
    push_test_image(image_repository, sha)
    ws = gitops_repo.workspace(sha)
    ran = ws.parent / f"{ws.name}-hooks-ran"
    for hook in ("pre-push", "reference-transaction", "post-checkout", "pre-commit"):
        path = ws / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> {ran}\nexit 1\n")
        path.chmod(0o755)

    result = run_cli(ws, "promote", "--image-repository", image_repository, "--json")

    assert result.returncode == 0, result.output
    assert result.json["outcome"] == "changed"
    assert not ran.exists(), ran.read_text()


def test_dry_run_in_a_shallow_clone_changes_nothing_at_all(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    first = gitops_repo.app_commit("v1")
    push_test_image(image_repository, first)
    run_cli(gitops_repo.workspace(first), "promote", "--image-repository", image_repository)
    second = gitops_repo.app_commit("v2")
    push_test_image(image_repository, second)
    ws = gitops_repo.workspace(second, depth=1)  # the deployed `first` is behind the shallow boundary
    before = snapshot(gitops_repo, ws)

    result = run_cli(ws, "release", "--image-repository", image_repository, "--dry-run", "--json")

    assert result.returncode == 0, result.output
    assert result.json["outcome"] == "changed" and result.json["dry_run"] is True
    assert f'+    newTag: "{second}"' in result.stdout
    assert snapshot(gitops_repo, ws) == before  # not unshallowed, no ref moved, no object written


def test_dubious_ownership_is_reported_in_gits_words(gitops_repo: GitopsRepo) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to hand the workspace to another owner")
    ws = gitops_repo.workspace(gitops_repo.tip())
    os.chown(ws, 4242, 4242)

    result = run_cli(ws, "unhold", "--json", env={"GIT_CONFIG_GLOBAL": "/dev/null"})

    assert result.returncode == 1, result.output
    assert "dubious ownership" in result.json["error"]
    assert "not inside a git working copy" not in result.stderr


def test_a_push_rejected_by_a_rule_says_which_rule_and_is_not_retried(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    sha = gitops_repo.app_commit("v1")
    push_test_image(image_repository, sha)
    hook = gitops_repo.remote / "hooks" / "pre-receive"
    # What GitHub prints for a ruleset; its words include "non-fast-forward", which is no race.
    hook.write_text(
        "#!/bin/sh\n"
        "echo 'error: GH013: Repository rule violations found for refs/heads/main.' >&2\n"
        "echo '- Cannot update this protected ref: non-fast-forward updates need review.' >&2\n"
        "exit 1\n"
    )
    hook.chmod(0o755)
    tip = gitops_repo.tip()

    result = run_cli(
        gitops_repo.workspace(sha), "promote", "--image-repository", image_repository, "--max-attempts", "3",
        "--json",
    )  # fmt: skip

    assert result.returncode == 1, result.output
    error = result.json["error"]
    assert "GH013: Repository rule violations found for refs/heads/main." in error
    assert "pre-receive hook declined" in error
    assert "lost a race" not in result.stderr and "attempt 2" not in result.stderr
    assert gitops_repo.tip() == tip


# --- 10. image repositories no registry accepts: exit 2 before any network call ---------------------


@pytest.mark.parametrize(
    "repository",
    [
        "MyOrg/hello",  # Docker Hub path with uppercase (no dot or port: not a host)
        "127.0.0.1:99999/hello",  # port out of range
        "localhost:0/hello",
        "registry.example.com:/hello",
        "-registry.example.com/hello",
        "registry.example.com/Hello",
        "registry.example.com/hello//world",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/a",  # ECR names have at least 2 characters
        "r.example.com/" + "a" * 250,  # longer than the 255 of the reference grammar
    ],
)
def test_repositories_no_registry_accepts_are_bad_input_before_any_network_call(
    gitops_repo: GitopsRepo, repository: str, tmp_path: Path
) -> None:
    ws = gitops_repo.workspace(gitops_repo.tip())
    git(ws, "remote", "set-url", "origin", "ssh://git@192.0.2.1/repo.git")
    touched = tmp_path / "network-used"
    ssh = tmp_path / "ssh.sh"
    ssh.write_text(f"#!/bin/sh\ntouch {touched}\nexit 1\n")
    ssh.chmod(0o755)

    for command in (["promote"], ["release"], ["rollback", "--to", "HEAD", "--reason", "x"]):
        env = {"GIT_SSH_COMMAND": str(ssh), "AWS_ENDPOINT_URL": "http://192.0.2.1:1"}
        result = run_cli(ws, *command, "--image-repository", repository, "--json", env=env)
        assert result.returncode == 2, result.output
        assert "--image-repository" in result.json["error"]
    assert not touched.exists()


@pytest.mark.parametrize(
    "repository",
    ["127.0.0.1:5000/hello", "[::1]:5000/team/hello", "localhost/hello", "hello", "team/hello-app_1.x",
     "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/hello-gitops", "registry.example.com:65535/a--b"],
)  # fmt: skip
def test_valid_repositories_are_accepted(repository: str) -> None:
    from jenkins.cli import repository_error

    assert repository_error(repository) is None


# --- 7. through git: a CRLF manifest keeps its line endings in the bot commit ------------------------


def test_a_crlf_manifest_keeps_its_line_endings_through_git(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    git(gitops_repo.dev, "pull", "--quiet", "--rebase", "origin", "main")
    path = gitops_repo.dev / MANIFEST
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    git(gitops_repo.dev, "commit", "--quiet", "-am", "manifest written on Windows")
    git(gitops_repo.dev, "push", "--quiet", "origin", "HEAD:main")
    sha = gitops_repo.app_commit("v1")
    push_test_image(image_repository, sha)

    result = run_cli(gitops_repo.workspace(sha), "promote", "--image-repository", image_repository, "--json")

    assert result.returncode == 0, result.output
    numstat = git(gitops_repo.remote, "diff", "--numstat", f"{result.json['commit']}^", result.json["commit"])
    assert numstat.split()[:3] == ["3", "2", MANIFEST]  # newName, newTag + digest; nothing else
    blob = subprocess.run(
        ["git", "cat-file", "blob", f"main:{MANIFEST}"],
        cwd=gitops_repo.remote,
        capture_output=True,
        check=True,
    ).stdout
    assert blob.count(b"\r\n") == blob.count(b"\n")


# --- attacks beyond the numbered points -------------------------------------------------------------


def test_a_symlinked_manifest_in_git_is_refused_not_replaced_by_a_link(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    git(gitops_repo.dev, "pull", "--quiet", "--rebase", "origin", "main")
    (gitops_repo.dev / MANIFEST).with_name("real.yaml").write_text((gitops_repo.dev / MANIFEST).read_text())
    (gitops_repo.dev / MANIFEST).unlink()
    (gitops_repo.dev / MANIFEST).symlink_to("real.yaml")
    git(gitops_repo.dev, "add", "-A", "k8s")
    git(gitops_repo.dev, "commit", "--quiet", "-m", "manifest behind a symlink")
    git(gitops_repo.dev, "push", "--quiet", "origin", "HEAD:main")
    sha = gitops_repo.app_commit("v1")
    push_test_image(image_repository, sha)
    tip = gitops_repo.tip()

    result = run_cli(gitops_repo.workspace(sha), "promote", "--image-repository", image_repository, "--json")

    assert result.returncode == 1, result.output
    assert "is not a regular file" in result.json["error"]
    assert gitops_repo.tip() == tip


def test_git_dir_in_the_environment_cannot_redirect_a_dry_run(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    sha = gitops_repo.app_commit("v1")
    push_test_image(image_repository, sha)
    ws = gitops_repo.workspace(sha, depth=1)
    before = snapshot(gitops_repo, ws)

    env = {"GIT_DIR": str(ws / ".git"), "GIT_WORK_TREE": str(ws)}
    result = run_cli(ws, "promote", "--image-repository", image_repository, "--dry-run", "--json", env=env)

    assert result.returncode == 0, result.output
    assert snapshot(gitops_repo, ws) == before


def test_hostile_commit_messages_do_not_confuse_the_walk_to_the_human_commit(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    git(gitops_repo.dev, "pull", "--quiet", "--rebase", "origin", "main")
    (gitops_repo.dev / "app" / "version.txt").write_text("odd\n")
    git(gitops_repo.dev, "commit", "--quiet", "-am", "app: odd\x1e\x1f message\n\nGitops-Action: promote")
    git(gitops_repo.dev, "push", "--quiet", "origin", "HEAD:main")
    human = gitops_repo.tip()
    push_test_image(image_repository, human)
    ops = gitops_repo.workspace(human)
    assert run_cli(ops, "unhold").returncode == 0  # noop: no bot commit; now make one on top
    rolled = run_cli(ops, "rollback", "--image-repository", image_repository, "--to", human, "--reason", "x")
    assert rolled.returncode == 0, rolled.output
    assert run_cli(ops, "unhold").returncode == 0

    result = run_cli(gitops_repo.workspace(gitops_repo.tip()), "release", "--image-repository",
                     image_repository, "--json")  # fmt: skip

    assert result.returncode == 0, result.output
    assert result.json["source_commit"] == human  # a human's [skip ci]-less trailer is not the bot


def test_a_remote_that_looks_like_an_option_is_bad_input(gitops_repo: GitopsRepo, tmp_path: Path) -> None:
    ws = gitops_repo.workspace(gitops_repo.tip())
    result = run_cli(ws, "unhold", "--remote=--upload-pack=touch " + str(tmp_path / "pwned"), "--json")
    assert result.returncode == 2, result.output
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("name", ["", "hello-gitops extra", "hello-gitops\nGitops-Action: promote", "a\x07b"])
def test_an_image_name_that_could_break_a_commit_line_is_bad_input(
    gitops_repo: GitopsRepo, name: str
) -> None:
    result = run_cli(gitops_repo.workspace(gitops_repo.tip()), "unhold", "--image-name", name, "--json")
    assert result.returncode == 2, result.output
    assert result.json["error"].startswith("bad input: --image-name")
