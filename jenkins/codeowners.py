"""Who owns a changed path, as GitHub reads a CODEOWNERS file, for the history check's code-owner rule.

GitHub ("About code owners"): the file is `.github/CODEOWNERS`, `CODEOWNERS` or `docs/CODEOWNERS` of the
pull request's base branch, the first of those found; each line is a pattern and its owners; patterns
follow gitignore's rules, except that `\\#` escapes, `!` negation and `[ ]` ranges do not work; the last
matching line wins; a line with a pattern and no owners leaves those paths unowned; `docs/*` owns the
files directly in `docs/`, not those nested deeper; paths are case-sensitive; owners are `@user`,
`@org/team` or an email address, and count only with write access.

Only the patterns whose meaning is plain are read: `*`, a pattern anchored at the root (`/infra/`,
`/Makefile`, `/Pulumi.*.yaml`: `*` within one path segment), and one path segment matched at any depth
(`*.py`, `docs/`). Anything else (`**`, `?`, a relative pattern with an inner `/`) is refused rather than
guessed, since a wrong guess under "last match wins" can hand a path to the wrong owners. The stack's own
file (infra/codeowners.py) uses only the first forms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOCATIONS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")
_UNSUPPORTED = re.compile(r"\*\*|[?\[\]!\\]")


class CodeownersError(ValueError):
    """A CODEOWNERS line the check cannot read with certainty; the message names it."""


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    owners: tuple[str, ...]
    """`@user` logins, lower-cased (GitHub logins are case-insensitive), teams and emails as written."""


def parse(text: str, where: str) -> list[Rule]:
    """The file's rules in order; CodeownersError naming the line of a pattern it does not support."""
    rules = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        pattern, owners = fields[0], tuple(_owner(owner) for owner in fields[1:])
        rules.append(Rule(_compile(pattern, f"{where} line {number}"), owners))
    return rules


def owners_of(rules: list[Rule], path: str) -> tuple[str, ...]:
    """The owners of path (relative to the repository root): the last matching rule's, or none."""
    for rule in reversed(rules):
        if rule.pattern.fullmatch(path):
            return rule.owners
    return ()


def _owner(owner: str) -> str:
    return owner.lower() if owner.startswith("@") and "/" not in owner else owner


def _compile(pattern: str, where: str) -> re.Pattern[str]:
    if pattern == "*":
        return re.compile(r".+")
    directory = pattern.endswith("/")
    body = pattern.strip("/")
    anchored = pattern.startswith("/")
    if not body or _UNSUPPORTED.search(pattern) or (not anchored and "/" in body):
        raise CodeownersError(
            f"{where}: the pattern {pattern!r} is not one the release's code-owner check reads (it reads "
            "`*`, patterns anchored with a leading `/`, and one path segment such as `*.py` or `docs/`); "
            "rewrite it in one of those forms"
        )
    segments = "/".join(re.escape(part).replace(r"\*", "[^/]*") for part in body.split("/"))
    prefix = "" if anchored else "(?:.*/)?"
    if directory:
        return re.compile(f"{prefix}{segments}/.+")
    # A name without a wildcard in its last segment may be a directory: it owns what is beneath it.
    # `docs/*` owns only the files directly in docs/ (GitHub's example).
    beneath = "" if "*" in body.rsplit("/", 1)[-1] else "(?:/.+)?"
    return re.compile(f"{prefix}{segments}{beneath}")
