"""Startup cost: a command imports only what its path needs (boto3 only for ECR, requests only when it
asks a registry over HTTP). Checked on real runs with Python's own import log (-X importtime)."""

from __future__ import annotations

from collections.abc import Callable

from tests.jenkins.conftest import GitopsRepo, run_cli

AWS = {"boto3", "botocore"}


def imported(stderr: str) -> set[str]:
    """Top-level packages named in `-X importtime` lines ("import time: self | cumulative | name")."""
    return {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


def profiled(gitops_repo: GitopsRepo, commit: str, *args: str) -> set[str]:
    result = run_cli(gitops_repo.workspace(commit), *args, "--json", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.output
    modules = imported(result.stderr)
    assert {"jenkins", "ruamel"} <= modules, "the import log was not captured"
    return modules


def test_promote_to_a_non_ecr_registry_does_not_import_boto3(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: Callable[[str, str], str]
) -> None:
    sha = gitops_repo.app_commit("v1")
    push_test_image(image_repository, sha)

    modules = profiled(gitops_repo, sha, "promote", "--image-repository", image_repository)

    assert "requests" in modules  # it did ask the registry
    assert not modules & AWS


def test_release_on_a_bot_commit_imports_neither_boto3_nor_requests(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: Callable[[str, str], str]
) -> None:
    sha = gitops_repo.app_commit("v1")
    push_test_image(image_repository, sha)
    bot_commit = run_cli(
        gitops_repo.workspace(sha), "promote", "--image-repository", image_repository, "--json"
    ).json["commit"]
    # The bot commit's human commit is already deployed, pinned by digest: a noop that asks no registry.
    modules = profiled(gitops_repo, bot_commit, "release", "--image-repository", image_repository)

    assert not modules & (AWS | {"requests", "urllib3"})
