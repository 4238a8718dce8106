"""`.github/CODEOWNERS` gives the paths that decide what runs with credentials to the configured
reviewers, and the stack refuses to run when the file and `preview.reviewers` disagree."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from infra.codeowners import CODEOWNERS, check, render
from infra.config import ConfigError
from tests.infra.conftest import DELETE, ROOT, config_error, run_program


def owners_of(text: str) -> dict[str, list[str]]:
    """GitHub's reading of a CODEOWNERS file ("About code owners"): one pattern per line followed by
    owners, `#` starts a comment."""
    lines = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {pattern: owners for pattern, *owners in lines}


def test_the_committed_file_is_where_github_reads_it_and_matches_the_dev_stack() -> None:
    """GitHub docs ("About code owners"): a CODEOWNERS file in the root, `docs/` or `.github/` of the
    pull request's base branch; one file, so no second copy can shadow it."""
    assert CODEOWNERS == ROOT / ".github" / "CODEOWNERS"
    assert not (ROOT / "CODEOWNERS").exists() and not (ROOT / "docs" / "CODEOWNERS").exists()
    check(("example-maintainer",))


def test_infra_policy_jenkins_and_github_are_owned_by_every_reviewer() -> None:
    owners = owners_of(render(("alice", "bob")))
    for path in ("/infra/", "/policy/", "/jenkins/", "/.github/"):
        assert owners[path] == ["@alice", "@bob"]
    assert all(o == ["@alice", "@bob"] for o in owners.values())


def test_a_file_that_differs_stops_the_stack_and_says_what_to_commit(tmp_path: Path) -> None:
    stale = tmp_path / "CODEOWNERS"
    stale.write_text(render(("alice",)))
    with pytest.raises(ConfigError) as error:
        check(("alice", "bob"), stale)
    assert "gitops-eks:preview.reviewers" in str(error.value)
    assert "/infra/ @alice @bob" in str(error.value)
    with pytest.raises(ConfigError, match="is missing"):
        check(("alice",), tmp_path / "absent")


def test_the_program_checks_it_before_declaring_anything() -> None:
    """After GitHub has confirmed the reviewers exist (the gate's reads), before any resource."""
    message = config_error({"preview.reviewers": ["someone-else"]}, reads=True)
    assert "does not match" in message and "/jenkins/ @someone-else" in message


def test_with_previews_off_and_no_reviewers_the_operator_is_told_the_file_is_theirs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        run_program({"preview.enabled": False, "preview.reviewers": DELETE})
    (warning,) = [r for r in caplog.records if "CODEOWNERS" in r.getMessage()]
    assert "gitops-eks:preview.reviewers is empty" in warning.getMessage()
