"""`.github/CODEOWNERS` gives the paths that decide what runs with credentials to the configured
reviewers, and the stack refuses to run when the file and `preview.reviewers` disagree."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from infra.codeowners import check, main, render
from infra.config import ConfigError
from tests.infra.conftest import DELETE, ROOT, config_error, run_program


def owners_of(text: str) -> dict[str, list[str]]:
    """GitHub's reading of a CODEOWNERS file ("About code owners"): one pattern per line followed by
    owners, `#` starts a comment."""
    lines = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {pattern: owners for pattern, *owners in lines}


def test_the_committed_file_is_where_github_reads_it_and_names_no_owner() -> None:
    """GitHub docs ("About code owners"): a CODEOWNERS file in the root, `docs/` or `.github/` of the
    pull request's base branch; one file, so no second copy can shadow it. A pattern without owners is
    valid and owned by nobody: the shipped file names no login that only looks like one."""
    shipped = ROOT / ".github" / "CODEOWNERS"
    assert not (ROOT / "CODEOWNERS").exists() and not (ROOT / "docs" / "CODEOWNERS").exists()
    assert shipped.read_text() == render(())
    assert all(owners == [] for owners in owners_of(shipped.read_text()).values())
    assert "@" not in shipped.read_text().replace("`", "")
    with pytest.raises(ConfigError, match="does not match"):
        check(("alice",), shipped)


def test_the_command_prints_the_file_the_stack_checks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["alice", "bob-2"]) == 0
    written = tmp_path / "CODEOWNERS"
    written.write_text(capsys.readouterr().out)
    check(("alice", "bob-2"), written)
    assert owners_of(written.read_text())["/infra/"] == ["@alice", "@bob-2"]


@pytest.mark.parametrize("argv", [[], ["alice", "-bob"], ["a" * 40], ["alice", "bob--x"]])
def test_the_command_refuses_what_is_not_a_login_and_prints_nothing(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and "usage: python -m infra.codeowners LOGIN" in err
    assert ("no login given" in err) if not argv else ("is not a GitHub login" in err)


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
    assert "`venv/bin/python -m infra.codeowners alice bob > .github/CODEOWNERS`" in str(error.value)
    assert "push it to the branch before `pulumi up`" in str(error.value)
    with pytest.raises(ConfigError, match="is missing"):
        check(("alice",), tmp_path / "absent")


def test_the_program_checks_it_before_declaring_anything() -> None:
    """After GitHub has confirmed the reviewers exist (the gate's reads), before any resource."""
    message = config_error({"preview.reviewers": ["someone-else"]}, reads=True)
    assert "does not match" in message and "infra.codeowners someone-else >" in message


def test_with_previews_off_and_no_reviewers_the_operator_is_told_the_file_is_theirs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        run_program({"preview.enabled": False, "preview.reviewers": DELETE})
    (warning,) = [r for r in caplog.records if "CODEOWNERS" in r.getMessage()]
    assert "gitops-eks:preview.reviewers is empty" in warning.getMessage()
