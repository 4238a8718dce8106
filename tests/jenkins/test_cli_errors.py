"""Wrong input exits 2 with a message naming the input, and touches neither the workspace nor the
remote; operational failures exit 1 with what failed and what to try, and never print a secret."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port
from tests.jenkins.conftest import MANIFEST, GitopsRepo, git, run_cli
from tests.jenkins.test_release_guards import DEV

SECRET = "s3cr3t-token-7f1e"


def snapshot(gitops_repo: GitopsRepo, ws: Path) -> tuple[str, ...]:
    """Everything a failed run must leave alone: remote refs, workspace HEAD, status, index, remote refs."""
    return (
        git(gitops_repo.remote, "for-each-ref"),
        git(ws, "rev-parse", "HEAD"),
        git(ws, "status", "--porcelain", "--untracked-files=all"),
        git(ws, "ls-files", "--stage"),
        git(ws, "for-each-ref"),
    )


@pytest.fixture
def ws(gitops_repo: GitopsRepo) -> Path:
    return gitops_repo.workspace(gitops_repo.app_commit("v1"))


REPO = "127.0.0.1:5000/hello"

BAD_INPUT = {
    "commit not a sha": (
        ["promote", "--image-repository", REPO, "--commit", "not-a-sha"],
        "--commit 'not-a-sha'",
    ),
    "commit unknown": (
        ["promote", "--image-repository", REPO, "--commit", "f" * 40],
        f"--commit '{'f' * 40}'",
    ),
    "commit option-like": (["promote", "--image-repository", REPO, "--commit=--all"], "--commit '--all'"),
    "repository missing": (["promote"], "--image-repository"),
    "repository with tag": (["promote", "--image-repository", f"{REPO}:latest"], "--image-repository"),
    "repository with scheme": (["release", "--image-repository", f"https://{REPO}"], "--image-repository"),
    "repository uppercase": (["promote", "--image-repository", "127.0.0.1:5000/Hello"], "--image-repository"),
    "manifest dir missing": (
        ["promote", "--image-repository", REPO, "--manifest-dir", "nope"],
        "--manifest-dir 'nope'",
    ),
    "manifest dir outside": (["unhold", "--manifest-dir", "../.."], "--manifest-dir '../..'"),
    "environment unknown": (
        ["unhold", "--environment", "staging"],
        "--environment 'staging': not an environment of k8s/environments.yaml (dev, prod)",
    ),
    "environment a path": (
        ["unhold", "--environment", "../../k8s"],
        "--environment '../../k8s': not an environment of k8s/environments.yaml (dev, prod)",
    ),
    "environment without its overlay": (
        ["unhold", "--environment", "prod"],
        "--environment 'prod': no kustomization.yaml at ",
    ),
    "environment and manifest dir": (
        ["unhold", "--environment", "dev", "--manifest-dir", "k8s/overlays/dev"],
        "--manifest-dir and --environment: give one",
    ),
    "no images entry": (
        ["promote", "--image-repository", REPO, "--image-name", "other"],
        "--image-name 'other'",
    ),
    "unknown remote": (
        ["promote", "--image-repository", REPO, "--remote", "upstream"],
        "--remote 'upstream'",
    ),
    "build arg without =": (
        ["release", "--image-repository", REPO, "--build-arg", "PIP_NO_INDEX"],
        "--build-arg",
    ),
    "build arg bad key": (
        ["release", "--image-repository", REPO, "--build-arg", f"1X={SECRET}"],
        "--build-arg #1",
    ),
    # Names the docker CLI reads itself: refused by the CLI (exit 2) before any registry lookup or build,
    # with the same rule build_image applies.
    "build arg PATH": (
        ["release", "--image-repository", REPO, "--build-arg", f"PATH={SECRET}"],
        "--build-arg 'PATH': reserved for the docker CLI itself",
    ),
    "build arg HOME": (
        ["release", "--image-repository", REPO, "--build-arg", "A=1", "--build-arg", f"HOME={SECRET}"],
        "--build-arg 'HOME': reserved",
    ),
    "build arg DOCKER_": (
        ["release", "--image-repository", REPO, "--build-arg", f"DOCKER_CONFIG={SECRET}"],
        "--build-arg 'DOCKER_CONFIG': reserved",
    ),
    "context without Dockerfile": (
        ["release", "--image-repository", REPO, "--context", "k8s"],
        "--context 'k8s'",
    ),
    "context outside": (["release", "--image-repository", REPO, "--context", "/etc"], "--context '/etc'"),
    "digest malformed": (
        ["promote", "--image-repository", REPO, "--digest", "sha256:xyz"],
        "--digest 'sha256:xyz'",
    ),
    "empty reason": (["rollback", "--image-repository", REPO, "--to", "HEAD", "--reason", " "], "--reason"),
    "rollback target unknown": (
        ["rollback", "--image-repository", REPO, "--to", "v9", "--reason", "x"],
        "--to 'v9'",
    ),
    "rollback to the null id": (
        ["rollback", "--image-repository", REPO, "--to", "0" * 40, "--reason", "x"],
        f"--to '{'0' * 40}'",
    ),
    "branch not a name": (["unhold", "--branch", "main:evil"], "--branch 'main:evil'"),
    "branch option-like": (["unhold", "--branch=-x"], "--branch '-x'"),
    "max attempts": (["unhold", "--max-attempts", "0"], "--max-attempts 0"),
    "unknown command": (["deploy"], "invalid choice: 'deploy'"),
    "unknown flag": (["unhold", "--force"], "unrecognized arguments: --force"),
}


@pytest.mark.parametrize(("argv", "named"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_exits_2_names_it_and_touches_nothing(
    gitops_repo: GitopsRepo, ws: Path, argv: list[str], named: str
) -> None:
    before = snapshot(gitops_repo, ws)
    result = run_cli(ws, *argv, "--json")
    assert result.returncode == 2, result.output
    assert named in result.stderr
    assert SECRET not in result.output
    assert snapshot(gitops_repo, ws) == before
    assert result.json["outcome"] == "error" and result.json["exit_code"] == 2


def test_not_a_git_checkout(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "promote", "--image-repository", REPO, "--json")
    assert result.returncode == 2
    assert f"not inside a git working copy: {tmp_path}" in result.stderr
    assert result.json == {
        "outcome": "error",
        "command": "promote",
        "error": result.json["error"],
        "exit_code": 2,
        "image": None,
        "commit": None,
    }
    assert list(tmp_path.iterdir()) == []


def test_manifest_without_the_images_entry(gitops_repo: GitopsRepo, ws: Path) -> None:
    (ws / MANIFEST).write_text("kind: Kustomization\nresources: [deployment.yaml]\n")
    before = snapshot(gitops_repo, ws)
    result = run_cli(ws, "promote", "--image-repository", REPO)
    assert result.returncode == 2
    assert f"the first environment 'dev' ({MANIFEST})" in result.stderr
    assert "no `images:` list" in result.stderr
    assert snapshot(gitops_repo, ws) == before


def test_digest_that_does_not_match_the_registry(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: Callable[[str, str], str]
) -> None:
    sha = gitops_repo.app_commit("v2")
    digest = push_test_image(image_repository, sha)
    ws = gitops_repo.workspace(sha)
    before = snapshot(gitops_repo, ws)
    wrong = "sha256:" + "9" * 64
    result = run_cli(ws, "promote", "--image-repository", image_repository, "--digest", wrong)
    assert result.returncode == 2
    assert f"--digest {wrong}" in result.stderr and digest in result.stderr
    assert snapshot(gitops_repo, ws) == before
    ok = run_cli(ws, "promote", "--image-repository", image_repository, "--digest", digest, "--json")
    assert ok.returncode == 0 and ok.json["outcome"] == "changed", ok.output


def test_image_not_in_registry_exits_1(gitops_repo: GitopsRepo, ws: Path, image_repository: str) -> None:
    before = snapshot(gitops_repo, ws)
    result = run_cli(ws, "promote", "--image-repository", image_repository, "--json")
    assert result.returncode == 1
    assert "is not in the registry" in result.stderr and "run `release`" in result.stderr
    assert snapshot(gitops_repo, ws) == before


def test_unreachable_registry_exits_1(gitops_repo: GitopsRepo, ws: Path) -> None:
    before = snapshot(gitops_repo, ws)
    result = run_cli(ws, "promote", "--image-repository", f"127.0.0.1:{free_port()}/hello")
    assert result.returncode == 1
    assert "cannot reach" in result.stderr and "hint: nothing was written to git" in result.stderr
    assert snapshot(gitops_repo, ws) == before


def test_a_branch_the_remote_does_not_have_is_bad_input_named_as_such(
    gitops_repo: GitopsRepo, ws: Path
) -> None:
    """The remote answered (the key and the URL work) and has no such branch: the message says so, and
    the hint is about the branch, not the deploy key."""
    before = snapshot(gitops_repo, ws)
    result = run_cli(ws, "unhold", "--branch", "nosuch", "--json")
    assert result.returncode == 2 and result.json["exit_code"] == 2, result.output
    assert "--branch 'nosuch': remote 'origin' has no branch 'nosuch'" in result.stderr
    assert "git ls-remote --heads origin" in result.stderr
    assert "deploy key" not in result.stderr
    assert snapshot(gitops_repo, ws) == before


def test_a_commit_not_on_the_branch_is_never_logged_ok_first(gitops_repo: GitopsRepo, ws: Path) -> None:
    """The step that checks the commit against the branch logs FAILED when it refuses it, never `... ok`
    followed by `not on origin/main`."""
    git(ws, "commit", "--quiet", "--allow-empty", "-m", "local only", env=DEV)
    result = run_cli(ws, "promote", "--image-repository", REPO)
    assert result.returncode == 2, result.output
    step = [line for line in result.stderr.splitlines() if "is on origin/main ..." in line]
    assert len(step) == 1 and " ... FAILED (" in step[0], result.stderr
    assert "not on origin/main" in result.stderr


NEAREST = {
    "--dry": (["unhold", "--dry"], "--dry: did you mean --dry-run?"),
    "--dry=1": (["unhold", "--dry=1"], "--dry: did you mean --dry-run?"),
    "--digets": (
        ["promote", "--image-repository", REPO, "--digets", "x"],
        "--digets: did you mean --digest?",
    ),
    "--reson": (
        ["rollback", "--image-repository", REPO, "--to", "HEAD", "--reson", "x"],
        "did you mean --reason?",
    ),
}


@pytest.mark.parametrize(("argv", "hint"), NEAREST.values(), ids=NEAREST.keys())
def test_an_unknown_flag_is_refused_with_the_commands_nearest_flag(
    gitops_repo: GitopsRepo, ws: Path, argv: list[str], hint: str
) -> None:
    """Flags are never abbreviated (allow_abbrev=False: `--dry` is not `--dry-run`), but the error names
    the nearest flag of that command."""
    before = snapshot(gitops_repo, ws)
    result = run_cli(ws, *argv, "--json")
    assert result.returncode == 2 and result.json["outcome"] == "error", result.output
    assert hint in result.stderr  # after `unrecognized arguments`, or after a required flag it misses
    assert snapshot(gitops_repo, ws) == before


def test_a_flag_nothing_resembles_gets_no_guess(gitops_repo: GitopsRepo, ws: Path) -> None:
    result = run_cli(ws, "unhold", "--force")
    assert result.returncode == 2 and "did you mean" not in result.stderr


def test_help_has_one_line_per_command_examples_exit_codes_and_every_variable(tmp_path: Path) -> None:
    """--help is enough to use the CLI: every command in one line, examples, the exit codes, and every
    GITOPS_* variable the module reads (found in its source, so a new variable must be documented)."""
    shown = run_cli(tmp_path, "--help")
    assert shown.returncode == 0
    commands = ("release", "promote", "rollback", "unhold", "plan", "build")
    for command in commands:
        assert re.search(rf"^    {command} +\S", shown.stdout, flags=re.MULTILINE), command
    for section in ("examples:", "exit codes:", "environment:"):
        assert section in shown.stdout
    read = set(
        re.findall(r'"(GITOPS_[A-Z_]+)"', "".join(p.read_text() for p in (ROOT / "jenkins").glob("*.py")))
    )
    assert read >= {"GITOPS_BRANCH", "GITOPS_SIGNING_KEY_FILE", "GITOPS_GIT_TIMEOUT"}
    for variable in read:
        assert re.search(rf"^  {variable} ", shown.stdout, flags=re.MULTILINE), variable
    # Each example is a command line this CLI parses (run here outside a checkout: exit 2 for the
    # checkout, never for the flags).
    examples = shown.stdout.split("examples:\n", 1)[1].split("\n\n", 1)[0].replace("\\\n", "")
    for line in examples.splitlines():
        if line.strip().startswith("python -m jenkins "):
            argv = shlex.split(line)[3:]
            ran = run_cli(tmp_path, *argv)
            assert "not inside a git working copy" in ran.stderr, (line, ran.stderr)


@pytest.mark.parametrize("command", ["release", "promote", "rollback", "unhold", "plan", "build"])
def test_each_commands_help_shows_its_defaults(tmp_path: Path, command: str) -> None:
    shown = run_cli(tmp_path, command, "--help")
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())
    assert "branch" in text and "(default: main)" in text and "(default: origin)" in text
    assert "exit codes:" in text and "GITOPS_BRANCH" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_credentials_in_a_remote_url_never_reach_the_output(gitops_repo: GitopsRepo, ws: Path) -> None:
    git(
        ws, "remote", "set-url", "origin", f"https://x-access-token:{SECRET}@127.0.0.1:{free_port()}/repo.git"
    )
    result = run_cli(ws, "unhold", "--json")
    assert result.returncode == 1
    assert "cannot fetch branch 'main' from remote 'origin'" in result.stderr
    assert SECRET not in result.output


def test_the_environment_variable_picks_the_overlay_and_is_checked_too(
    gitops_repo: GitopsRepo, ws: Path
) -> None:
    """GITOPS_ENVIRONMENT (the stack's, from casc.yaml) is --environment's default: checked the same way."""
    before = snapshot(gitops_repo, ws)
    result = run_cli(ws, "unhold", "--json", env={"GITOPS_ENVIRONMENT": "staging"})
    assert result.returncode == 2, result.output
    assert "GITOPS_ENVIRONMENT 'staging': not an environment of k8s/environments.yaml" in result.stderr
    assert snapshot(gitops_repo, ws) == before


def test_a_checkout_without_the_environments_file_is_refused_naming_it(
    gitops_repo: GitopsRepo, ws: Path
) -> None:
    (ws / "k8s" / "environments.yaml").unlink()
    result = run_cli(ws, "unhold", "--json")
    assert result.returncode == 2, result.output
    assert "no k8s/environments.yaml in" in result.stderr


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("environments: []\n", "needs `environments:`"),
        ("environments: [dev, dev]\n", "lists an environment twice"),
        ("environments: [Dev]\n", "'Dev' is not an environment name"),
        ("environments: [dev\n", "is not valid YAML"),
    ],
)
def test_a_malformed_environments_file_is_refused_naming_what_is_wrong(
    gitops_repo: GitopsRepo, ws: Path, text: str, named: str
) -> None:
    (ws / "k8s" / "environments.yaml").write_text(text)
    result = run_cli(ws, "unhold", "--json")
    assert result.returncode == 2, result.output
    assert "k8s/environments.yaml" in result.stderr and named in result.stderr


def test_an_empty_gitops_environment_is_refused_not_taken_for_the_first(ws: Path) -> None:
    """Set but empty: the stack's variable did not resolve (casc.yaml, the job's env); acting on the first
    environment instead would let a prod stack's job write dev's overlay."""
    result = run_cli(ws, "unhold", "--json", env={"GITOPS_ENVIRONMENT": ""})
    assert result.returncode == 2
    assert "GITOPS_ENVIRONMENT '': not an environment of k8s/environments.yaml (dev, prod)" in result.stderr
