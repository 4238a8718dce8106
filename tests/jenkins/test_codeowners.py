"""How the release's history check reads CODEOWNERS (jenkins/codeowners.py). Expected owners follow
GitHub's "About code owners" (its example file and rules: gitignore patterns, the last matching line wins,
a line without owners leaves a path unowned, `docs/*` does not reach nested files, case-sensitive paths)
and gitignore(5) for anchoring: a leading `/` anchors at the root, a pattern without a `/` matches at any
depth, a trailing `/` matches only a directory, and a directory's match covers everything beneath it."""

from __future__ import annotations

import pytest

from infra.codeowners import render
from jenkins.codeowners import CodeownersError, owners_of, parse
from tests.conftest import ROOT

EXAMPLE = """\
# the later lines win
*       @global-owner1 @Global-Owner2
*.js    @js-owner  # a comment after the owners
/build/logs/ @doctocat
apps/ @octocat
/docs/ @doctocat
/scripts/ @doctocat @octocat
/apps/ @octocat
/apps/github
/docs/*.md @writer
"""


@pytest.mark.parametrize(
    ("path", "owners"),
    [
        ("README.md", ("@global-owner1", "@global-owner2")),  # logins compare case-insensitively
        ("src/index.js", ("@js-owner",)),  # no `/` in the pattern: any depth
        ("build/logs/today.log", ("@doctocat",)),
        ("build/logs/deep/today.log", ("@doctocat",)),  # a directory covers everything beneath
        ("x/build/logs/today.log", ("@global-owner1", "@global-owner2")),  # anchored at the root only
        ("lib/apps/main.py", ("@octocat",)),
        ("apps/github/main.py", ()),  # a later line without owners: unowned
        ("apps/githubber/main.py", ("@octocat",)),
        ("docs/intro.md", ("@writer",)),
        ("docs/deep/intro.md", ("@doctocat",)),  # `*` stays within one path segment
        ("Docs/intro.md", ("@global-owner1", "@global-owner2")),  # paths are case-sensitive
        ("scripts", ("@global-owner1", "@global-owner2")),  # `/scripts/` matches a directory only
    ],
)
def test_owners_follow_githubs_rules(path: str, owners: tuple[str, ...]) -> None:
    assert owners_of(parse(EXAMPLE, "CODEOWNERS"), path) == owners


def test_the_stacks_codeowners_owns_what_runs_with_credentials() -> None:
    """The file `python -m infra.codeowners` writes (the quickstart commits it): its paths and nothing
    else. The shipped copy, with no owner, owns nothing."""
    rules = parse(render(("example-maintainer",)), ".github/CODEOWNERS")
    owned = ["jenkins/pulls.py", "infra/stack.py", ".github/workflows/x.yaml", "Pulumi.dev.yaml", "Makefile"]
    owned += ["requirements-release.txt", "__main__.py", "policy/__main__.py"]
    for path in owned:
        assert owners_of(rules, path) == ("@example-maintainer",), path
    for path in ["app/app.py", "k8s/kustomization.yaml", "docs/release.md", "Pulumi.yaml.bak/x"]:
        assert owners_of(rules, path) == (), path
    shipped = parse((ROOT / ".github" / "CODEOWNERS").read_text(), ".github/CODEOWNERS")
    assert all(owners_of(shipped, path) == () for path in owned)


@pytest.mark.parametrize(
    "line",
    [
        "**/logs @octocat",  # `**`: gitignore's, not read here
        "docs/* docs@example.com",  # relative with an inner `/`: anchored or not, a guess either way
        "/src/?.py @octocat",
        "/src/[ab].py @octocat",  # ranges GitHub does not support
        "!/src/ @octocat",  # negation GitHub does not support
        "\\#file @octocat",  # escapes GitHub does not support
    ],
)
def test_a_pattern_it_cannot_read_for_certain_is_refused(line: str) -> None:
    with pytest.raises(CodeownersError, match=r"CODEOWNERS line 2: the pattern .* rewrite it"):
        parse(f"* @owner\n{line}\n", "CODEOWNERS")
