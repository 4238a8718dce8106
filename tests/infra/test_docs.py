"""The docs' mechanically checkable claims, checked against what the program declares and parses.

Each check reads the claim from the document and the fact from the code's behaviour (the program run under
mocks, the config parser, the workflow file), so a doc that drifts from the code fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from infra import config
from tests.infra.conftest import ROOT, Program, run_program

README = ROOT / "README.md"
INFRA_DOC = ROOT / "docs" / "infra.md"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
USER_DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
WORKFLOW = ROOT / ".github" / "workflows" / "pull-request.yaml"

SECRET = "aws:secretsmanager/secret:Secret"
# What the stack generates and so can rotate: key pairs and random tokens.
GENERATED_CREDENTIALS = ("tls:index/privateKey:PrivateKey", "random:index/randomPassword:RandomPassword")
# AWS managed policies (IAM `arn:aws:iam::aws:policy/...`) and EKS access policies
# (`arn:aws:eks::aws:cluster-access-policy/...`) are named like this in AWS's own references.
MANAGED_POLICY_NAME = re.compile(r"\b(?:Amazon|AWS)[A-Za-z0-9_]*(?:Policy|Core|ReadOnly|ServiceRole)\b")
MANAGED_POLICY_ARN = re.compile(
    r"^arn:aws:(?:iam::aws:policy|eks::aws:cluster-access-policy)/(?:.*/)?([^/]+)$"
)


def section(path: Any, heading: str) -> str:
    """The text under `heading` (a `## ` line) up to the next heading of the same level."""
    text = path.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def first_cells(text: str) -> list[str]:
    """The first cell of each body row of the Markdown tables in `text` (a header row is the one above
    a `|---` line)."""
    lines = text.splitlines()
    return [
        line.split("|")[1].strip()
        for i, line in enumerate(lines)
        if line.startswith("|")
        and not line.startswith("|---")
        and not (i + 1 < len(lines) and lines[i + 1].startswith("|---"))
    ]


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@pytest.mark.parametrize(
    ("claim", "type_"),
    [(r"Secrets Manager \((\d+) secrets?\)", SECRET), (r"KMS keys \((\d+)\)", "aws:kms/key:Key")],
    ids=["secrets", "kms-keys"],
)
def test_the_cost_table_counts_what_the_stack_declares(dev_program: Program, claim: str, type_: str) -> None:
    declared = len(dev_program.of_type(type_))
    claims = [(path.name, int(n)) for path in USER_DOCS for n in re.findall(claim, path.read_text())]
    assert claims, f"no doc counts them any more ({claim})"
    assert [(doc, n) for doc, n in claims if n != declared] == [], f"the stack declares {declared}"


def test_the_rotation_section_covers_every_credential_and_only_those(dev_program: Program) -> None:
    """docs/operations.md "Rotate credentials": one row per credential the stack holds, named by its
    Pulumi resource (what `pulumi up --replace` takes) or its config key."""
    generated = {r.name for t in GENERATED_CREDENTIALS for r in dev_program.of_type(t)}
    credentials = generated | set(config.CREDENTIAL_KEYS)
    cells = first_cells(section(OPERATIONS_DOC, "Rotate credentials"))
    named = {code_spans(cell)[0] for cell in cells if code_spans(cell)}
    assert sorted(credentials - named) == [], "credentials without a rotation procedure"
    assert sorted(named - credentials) == [], "rotation rows for credentials the stack does not hold"


def test_managed_policies_named_in_the_docs_are_the_ones_attached() -> None:
    """A doc that names an AWS managed policy is believed to say the stack attaches it: it must be one the
    stack attaches (with every optional principal set, so conditional attachments count)."""
    program = run_program({"cluster.adminPrincipals": ["arn:aws:iam::123456789012:role/platform-admins"]})
    attached = {
        match[1]
        for resource in program.resources
        for value in strings(resource.inputs)
        if (match := MANAGED_POLICY_ARN.match(value))
    }
    named = {(doc.name, name) for doc in USER_DOCS for name in MANAGED_POLICY_NAME.findall(doc.read_text())}
    assert sorted((doc, name) for doc, name in named if name not in attached) == []


def parsed_keys() -> set[str]:
    return {*config.SCALAR_KEYS, *(f"{o}.{f}" for o, fields in config.OBJECT_KEYS.items() for f in fields)}


def documented_as_group(key: str, table: str) -> bool:
    """`cluster.minSize` / `desiredSize` / `maxSize` documents the three in one row."""
    obj, _, field = key.partition(".")
    return bool(field) and f"`{field}`" in table and f"`{obj}." in table


@pytest.mark.parametrize("doc", [README, INFRA_DOC], ids=lambda p: p.name)
def test_every_config_key_parsed_is_documented_and_every_documented_key_parsed(doc: Any) -> None:
    """The configuration tables are the user's reference: no key the code reads is missing, and no row
    names a key the code would refuse as unknown."""
    table = section(doc, "Configuration")
    keys = parsed_keys()
    assert sorted(k for k in keys if f"`{k}`" not in table and not documented_as_group(k, table)) == []
    rows = [code_spans(cell)[0] for cell in first_cells(table) if code_spans(cell)]
    objects = {k.partition(".")[0] for k in keys}
    unknown = [k for k in rows if ":" not in k and k not in keys and k not in objects]
    assert unknown == []


def branch_pattern(pattern: str) -> re.Pattern[str]:
    """GitHub's branch filter glob ("Filter pattern cheat sheet"): `*` stops at `/`, `**` does not.
    Other special characters are not used by this workflow and are refused rather than guessed."""
    if re.search(r"[?+\[\]!]", pattern):
        raise AssertionError(f"{pattern!r}: teach branch_pattern this glob before using it")
    parts = (re.escape(part).replace(r"\*", "[^/]*") for part in pattern.split("**"))
    return re.compile(".*".join(parts))


def triggers(workflow: dict[str, Any], base: str) -> bool:
    """Whether a pull request into `base` starts the workflow: `branches`/`branches-ignore` filter on the
    base branch ("Workflow syntax for GitHub Actions", on.pull_request.branches); no filter, every base."""
    event = workflow[True]["pull_request"] or {}  # YAML 1.1 reads the `on` key as True

    def matches(patterns: list[str]) -> bool:
        return any(branch_pattern(p).fullmatch(base) for p in patterns)

    if "branches" in event:
        return matches(event["branches"])
    return not matches(event.get("branches-ignore", []))


@pytest.mark.parametrize("branch", ["main", "release", "team/trunk"])
def test_the_pull_request_workflow_runs_for_the_branch_the_ruleset_protects(branch: str) -> None:
    """The ruleset requires the workflow's check on `gitops-eks:branch`: if pull requests into that
    branch did not start the workflow, no pull request could ever merge."""
    ruleset = run_program({"branch": branch}).one(
        "github:index/repositoryRuleset:RepositoryRuleset", "branch-protection-ruleset"
    )
    assert ruleset.inputs["conditions"]["refName"]["includes"] == [f"refs/heads/{branch}"]
    assert triggers(yaml.safe_load(WORKFLOW.read_text()), branch)


def test_the_outputs_the_readme_lists_are_the_ones_exported(dev_program: Program) -> None:
    """README "What you get": every output named there exists, and every output is named there."""
    text = README.read_text()
    listed = text[text.index("What you get (`pulumi stack output`)") :]
    listed = listed[: listed.index("\n\n")]
    named = set(code_spans(listed)) - {"pulumi stack output"}
    assert sorted(named - set(dev_program.outputs)) == []
    assert sorted(set(dev_program.outputs) - named) == []


def test_the_outputs_the_readme_lists_for_a_later_environment_are_the_ones_it_exports() -> None:
    from tests.infra.test_config_prod import run_prod

    text = README.read_text()
    listed = text[text.index("A later environment's stack ([Environments]") :]
    listed = listed[: listed.index("\n\n")]
    assert set(code_spans(listed)) == set(run_prod(run_program()).outputs)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (`_` and `-` kept), spaces to `-`."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_to_a_section_finds_it() -> None:
    broken = []
    for doc in USER_DOCS:
        for target, anchor in re.findall(r"\]\(([\w./-]*\.md)?#([\w-]+)\)", doc.read_text()):
            path = (doc.parent / target) if target else doc
            headings = re.findall(r"^#+ (.+)$", path.read_text(), flags=re.MULTILINE)
            if anchor not in {slug(h) for h in headings}:
                broken.append(f"{doc.name} -> {target or doc.name}#{anchor}")
    assert broken == []
