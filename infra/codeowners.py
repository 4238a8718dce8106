"""The repository's `.github/CODEOWNERS`: the people in `preview.reviewers` own every path that decides
what runs with credentials, and `main`'s ruleset requires their review (infra/branch_protection.py).

The file lives in git (GitHub reads it from the pull request's base branch); the stack only checks that
it names exactly the configured reviewers, so the two cannot drift apart unnoticed. The committed file
names the reviewer of the example configuration: replace it with yours.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pulumi

from infra.config import ConfigError

PROJECT_DIR = Path(__file__).resolve().parent.parent
RELATIVE_PATH = ".github/CODEOWNERS"
CODEOWNERS = PROJECT_DIR / RELATIVE_PATH
# What the build agents, the release agent, the preview and Flux run or trust: the stack and its policy
# pack, the pipeline and release module, the workflows, and what the preview and `make` execute from the
# root. A leading `/` anchors a pattern at the repository root (gitignore rules, which CODEOWNERS follows).
OWNED_PATHS = (
    "/infra/",
    "/policy/",
    "/jenkins/",
    "/.github/",
    "/__main__.py",
    "/Pulumi.yaml",
    "/Pulumi.*.yaml",
    "/requirements*.txt",
    "/Makefile",
)
HEADER = (
    "# Generated from the stack's `preview.reviewers` (infra/codeowners.py): change both together.\n"
    "# main's ruleset requires one of these owners to approve a pull request that touches these paths.\n"
)


def render(owners: Iterable[str]) -> str:
    """The CODEOWNERS text that gives every owned path to `owners` (GitHub logins)."""
    handles = " ".join(f"@{login}" for login in owners)
    return HEADER + "".join(f"{path} {handles}\n" for path in OWNED_PATHS)


def check(owners: Iterable[str], path: Path = CODEOWNERS) -> None:
    """Raise ConfigError unless `path` is exactly `render(owners)`; with no owners configured (previews
    off), warn that the file is the operator's to keep."""
    owners = tuple(owners)
    if not owners:
        pulumi.log.warn(
            "gitops-eks:preview.reviewers is empty, so .github/CODEOWNERS is not checked: make sure it "
            "names your maintainers, whose review main's ruleset requires for infra/, policy/, jenkins/ "
            "and .github/"
        )
        return
    expected = render(owners)
    try:
        actual = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        actual = None
    if actual != expected:
        problem = "is missing" if actual is None else "does not match"
        raise ConfigError(
            f"gitops-eks:preview.reviewers: .github/CODEOWNERS {problem} the reviewers; "
            f"commit it with exactly these lines:\n{expected}"
        )
