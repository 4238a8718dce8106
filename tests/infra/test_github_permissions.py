"""The GitHub tokens' permissions, complete and proven: every GitHub resource type and data source the stack
uses has an entry in infra/github_permissions.py; each entry covers what GitHub requires of the endpoints
the provider calls for it; the README and docs/infra.md list exactly that set."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from infra.github_permissions import (
    API_NAMES,
    COMMIT_STATUS_PERMISSIONS,
    PERMISSIONS,
    PULLS_PERMISSIONS,
    stack_types,
    token_permissions,
)
from tests.infra.conftest import ROOT, Program, run_program

# The REST calls of each type: integrations/terraform-provider-github v6.13.0 (commit 20728bb, pulumi-github
# v6.15.0's `upstream`), github/resource_github_<type>.go and data_source_github_<type>.go (create, read,
# update, delete; Repositories.Get where the resource reads the repository's id).
ENDPOINTS: dict[str, list[tuple[str, str]]] = {
    "github:index/repositoryDeployKey:RepositoryDeployKey": [
        ("post", "/repos/{owner}/{repo}/keys"),
        ("get", "/repos/{owner}/{repo}/keys/{key_id}"),
        ("delete", "/repos/{owner}/{repo}/keys/{key_id}"),
    ],
    "github:index/repositoryWebhook:RepositoryWebhook": [
        ("post", "/repos/{owner}/{repo}/hooks"),
        ("get", "/repos/{owner}/{repo}/hooks/{hook_id}"),
        ("patch", "/repos/{owner}/{repo}/hooks/{hook_id}"),
        ("delete", "/repos/{owner}/{repo}/hooks/{hook_id}"),
    ],
    "github:index/repositoryEnvironment:RepositoryEnvironment": [
        ("put", "/repos/{owner}/{repo}/environments/{environment_name}"),
        ("get", "/repos/{owner}/{repo}/environments/{environment_name}"),
        ("delete", "/repos/{owner}/{repo}/environments/{environment_name}"),
        ("get", "/repos/{owner}/{repo}"),
    ],
    "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable": [
        ("post", "/repos/{owner}/{repo}/environments/{environment_name}/variables"),
        ("get", "/repos/{owner}/{repo}/environments/{environment_name}/variables/{name}"),
        ("patch", "/repos/{owner}/{repo}/environments/{environment_name}/variables/{name}"),
        ("delete", "/repos/{owner}/{repo}/environments/{environment_name}/variables/{name}"),
        ("get", "/repos/{owner}/{repo}"),
    ],
    "github:index/repositoryRuleset:RepositoryRuleset": [
        ("post", "/repos/{owner}/{repo}/rulesets"),
        ("get", "/repos/{owner}/{repo}/rulesets/{ruleset_id}"),
        ("put", "/repos/{owner}/{repo}/rulesets/{ruleset_id}"),
        ("delete", "/repos/{owner}/{repo}/rulesets/{ruleset_id}"),
        ("get", "/repos/{owner}/{repo}"),
    ],
    "github:index/workflowRepositoryPermissions:WorkflowRepositoryPermissions": [
        ("put", "/repos/{owner}/{repo}/actions/permissions/workflow"),
        ("get", "/repos/{owner}/{repo}/actions/permissions/workflow"),
    ],
    # Create, update, delete; the policy's GET is not listed: its permission was not looked up.
    "github:index/repositoryEnvironmentDeploymentPolicy:RepositoryEnvironmentDeploymentPolicy": [
        ("post", "/repos/{owner}/{repo}/environments/{environment_name}/deployment-branch-policies"),
        (
            "put",
            "/repos/{owner}/{repo}/environments/{environment_name}/deployment-branch-policies/{branch_policy_id}",
        ),
        (
            "delete",
            "/repos/{owner}/{repo}/environments/{environment_name}/deployment-branch-policies/{branch_policy_id}",
        ),
    ],
    # GetPagesInfo only when the repository has Pages, License only when it has a license; either fails
    # the data source when GitHub refuses it.
    "github:index/getRepository:getRepository": [
        ("get", "/repos/{owner}/{repo}"),
        ("get", "/repos/{owner}/{repo}/license"),
        ("get", "/repos/{owner}/{repo}/pages"),
    ],
    "github:index/getBranch:getBranch": [("get", "/repos/{owner}/{repo}/branches/{branch}")],
    # Users.Get, Users.ListKeys, Users.ListGPGKeys (public) and Meta.Get (public).
    "github:index/getUser:getUser": [
        ("get", "/users/{username}"),
        ("get", "/users/{username}/keys"),
        ("get", "/users/{username}/gpg_keys"),
    ],
    "github:index/getSshKeys:getSshKeys": [("get", "/meta")],
    "github:index/getIpRanges:getIpRanges": [("get", "/meta")],
}
# What GitHub requires of each endpoint from a fine-grained token: github/docs
# src/github-apps/data/fpt-2022-11-28/fine-grained-pat-permissions.json (commit 6e50491; the REST reference
# renders it as "Fine-grained access tokens for <endpoint>"). Both permissions where GitHub lists the
# endpoint under two (environment variables: "Environments" and "Variables", each the other's additional
# permission). None: public data, "can be used without authentication or the aforementioned permissions
# if only public resources are requested" (Get a user, List public keys for a user, Get GitHub meta).
GITHUB_REQUIRES: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("post", "/repos/{owner}/{repo}/keys"): (("Administration", "write"),),
    ("get", "/repos/{owner}/{repo}/keys/{key_id}"): (("Administration", "read"),),
    ("delete", "/repos/{owner}/{repo}/keys/{key_id}"): (("Administration", "write"),),
    ("post", "/repos/{owner}/{repo}/hooks"): (("Webhooks", "write"),),
    ("get", "/repos/{owner}/{repo}/hooks/{hook_id}"): (("Webhooks", "read"),),
    ("patch", "/repos/{owner}/{repo}/hooks/{hook_id}"): (("Webhooks", "write"),),
    ("delete", "/repos/{owner}/{repo}/hooks/{hook_id}"): (("Webhooks", "write"),),
    ("put", "/repos/{owner}/{repo}/environments/{environment_name}"): (("Administration", "write"),),
    ("get", "/repos/{owner}/{repo}/environments/{environment_name}"): (("Actions", "read"),),
    ("delete", "/repos/{owner}/{repo}/environments/{environment_name}"): (("Administration", "write"),),
    ("post", "/repos/{owner}/{repo}/environments/{environment_name}/variables"): (
        ("Environments", "write"),
        ("Variables", "write"),
    ),
    ("get", "/repos/{owner}/{repo}/environments/{environment_name}/variables/{name}"): (
        ("Environments", "read"),
        ("Variables", "read"),
    ),
    ("patch", "/repos/{owner}/{repo}/environments/{environment_name}/variables/{name}"): (
        ("Environments", "write"),
        ("Variables", "write"),
    ),
    ("delete", "/repos/{owner}/{repo}/environments/{environment_name}/variables/{name}"): (
        ("Environments", "write"),
        ("Variables", "write"),
    ),
    # Section `administration` (commit 012beaf): set/get default workflow permissions for a repository,
    # create/update/delete a deployment branch policy.
    ("put", "/repos/{owner}/{repo}/actions/permissions/workflow"): (("Administration", "write"),),
    ("get", "/repos/{owner}/{repo}/actions/permissions/workflow"): (("Administration", "read"),),
    ("post", "/repos/{owner}/{repo}/environments/{environment_name}/deployment-branch-policies"): (
        ("Administration", "write"),
    ),
    (
        "put",
        "/repos/{owner}/{repo}/environments/{environment_name}/deployment-branch-policies/{branch_policy_id}",
    ): (("Administration", "write"),),
    (
        "delete",
        "/repos/{owner}/{repo}/environments/{environment_name}/deployment-branch-policies/{branch_policy_id}",
    ): (("Administration", "write"),),
    ("post", "/repos/{owner}/{repo}/rulesets"): (("Administration", "write"),),
    ("get", "/repos/{owner}/{repo}/rulesets/{ruleset_id}"): (("Metadata", "read"),),
    ("put", "/repos/{owner}/{repo}/rulesets/{ruleset_id}"): (("Administration", "write"),),
    ("delete", "/repos/{owner}/{repo}/rulesets/{ruleset_id}"): (("Administration", "write"),),
    ("get", "/repos/{owner}/{repo}"): (("Metadata", "read"),),
    ("get", "/repos/{owner}/{repo}/license"): (("Metadata", "read"),),
    # Section `pages`, slug get-a-github-pages-site, access read (same file, same commit).
    ("get", "/repos/{owner}/{repo}/pages"): (("Pages", "read"),),
    # Section `contents`, get-a-branch, access read (same file; the preflight checks it against GitHub too).
    ("get", "/repos/{owner}/{repo}/branches/{branch}"): (("Contents", "read"),),
    ("get", "/users/{username}"): (),
    ("get", "/users/{username}/keys"): (),
    ("get", "/users/{username}/gpg_keys"): (),
    ("get", "/meta"): (),
    # fluxcd/notification-controller internal/notifier/github.go (commit 2e46958): ListStatuses, CreateStatus.
    ("get", "/repos/{owner}/{repo}/commits/{ref}/statuses"): (("Commit statuses", "read"),),
    ("post", "/repos/{owner}/{repo}/statuses/{sha}"): (("Commit statuses", "write"),),
    # jenkins/pulls.py; read in fine-grained-pat-permissions.json at commit 012beafe: sections
    # pull_requests (list-pull-requests-associated-with-a-commit, list-reviews-for-a-pull-request) and
    # metadata (get-rules-for-a-branch, get-repository-permissions-for-a-user), access read, no
    # additional permissions.
    ("get", "/repos/{owner}/{repo}/commits/{commit_sha}/pulls"): (("Pull requests", "read"),),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"): (("Pull requests", "read"),),
    ("get", "/repos/{owner}/{repo}/rules/branches/{branch}"): (("Metadata", "read"),),
    ("get", "/repos/{owner}/{repo}/collaborators/{username}/permission"): (("Metadata", "read"),),
}
# What the release's history check, `promote --to` and `status` call (jenkins/pulls.py).
RELEASE_ENDPOINTS = [
    ("get", "/repos/{owner}/{repo}/commits/{ref}/statuses"),
    ("get", "/repos/{owner}/{repo}/commits/{commit_sha}/pulls"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    ("get", "/repos/{owner}/{repo}/rules/branches/{branch}"),
    ("get", "/repos/{owner}/{repo}/collaborators/{username}/permission"),
]
FLUX_STATUS_ENDPOINTS = [
    ("get", "/repos/{owner}/{repo}/commits/{ref}/statuses"),
    ("post", "/repos/{owner}/{repo}/statuses/{sha}"),
]
GITHUB_UI = {"read": "Read-only", "write": "Read and write"}
"""How GitHub's fine-grained token page names each access level."""


def _covers(granted: dict[str, str], required: tuple[tuple[str, str], ...]) -> bool:
    return all(granted.get(name) in (access, "write") for name, access in required)


def _token(call: str) -> str:
    """The Pulumi type token of `github.RepositoryWebhook` / `github.get_user` (pulumi-github's naming)."""
    if call.startswith("get_"):
        camel = re.sub(r"_([a-z])", lambda m: m[1].upper(), call)
        return f"github:index/{camel}:{camel}"
    return f"github:index/{call[0].lower()}{call[1:]}:{call}"


def declared_in_source() -> set[str]:
    """Every `github.<Resource>(...)` and `github.get_*(...)` call in infra/, read from the syntax tree (so a
    code path no test runs still counts)."""
    calls: set[str] = set()
    for path in sorted((ROOT / "infra").rglob("*.py")):
        if "import pulumi_github as github" not in path.read_text():
            continue  # another `github` (the preflight's own module of checks)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "github"
                and (node.func.attr.startswith("get_") or not node.func.attr.endswith("Args"))
            ):
                calls.add(_token(node.func.attr))
    return calls


def test_the_source_scan_sees_the_stacks_github_calls() -> None:
    """The scan is not vacuous: it finds the calls this test was written against."""
    assert {
        "github:index/repositoryDeployKey:RepositoryDeployKey",
        "github:index/getUser:getUser",
        "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable",
    } <= declared_in_source()


def test_every_github_type_the_stack_uses_has_its_permissions_and_no_other(dev_program: Program) -> None:
    """Fails when a new GitHub resource or data source reaches infra/ without its permissions here (the
    token would get a 403 halfway through `pulumi up`), or when one leaves and the README asks for more."""
    declared = {r.type for r in dev_program.resources if r.type.startswith("github:")}
    read = {i.token for i in dev_program.invokes if i.token.startswith("github:")}
    assert declared | read <= declared_in_source()
    assert declared_in_source() == set(PERMISSIONS) == set(ENDPOINTS)


@pytest.mark.parametrize("type_", sorted(ENDPOINTS))
def test_each_types_permissions_cover_every_endpoint_the_provider_calls(type_: str) -> None:
    granted = {p.name: p.access for p in PERMISSIONS[type_]}
    for endpoint in ENDPOINTS[type_]:
        assert _covers(granted, GITHUB_REQUIRES[endpoint]), (type_, endpoint)
    # Nothing beyond what the endpoints need (Metadata is on every fine-grained token anyway).
    needed = {name for endpoint in ENDPOINTS[type_] for name, _ in GITHUB_REQUIRES[endpoint]}
    assert set(granted) <= needed | {"Metadata"}
    for permission in PERMISSIONS[type_]:
        assert permission.access in GITHUB_UI
        assert re.fullmatch(r"https://docs\.github\.com/en/rest/[a-z-]+/[a-z-]+#[a-z-]+", permission.doc)


def test_every_permission_has_its_api_name() -> None:
    """github/docs fine-grained-pat-permissions.json: section keys `actions`, `administration`, `statuses`
    ("Commit statuses"), `environments`, `metadata`, `actions_variables` ("Variables"),
    `repository_hooks` ("Webhooks"), `pages` ("Pages")."""
    tokens = (*PERMISSIONS.values(), COMMIT_STATUS_PERMISSIONS, PULLS_PERMISSIONS)
    names = {p.name for ps in tokens for p in ps}
    assert set(API_NAMES) == names


def test_the_commit_status_token_needs_commit_statuses_write_only() -> None:
    granted = {p.name: p.access for p in COMMIT_STATUS_PERMISSIONS}
    assert granted == {"Commit statuses": "write"}
    assert all(_covers(granted, GITHUB_REQUIRES[endpoint]) for endpoint in FLUX_STATUS_ENDPOINTS)


def test_the_pulls_token_needs_pull_requests_and_commit_statuses_read_only() -> None:
    """The release's token reads; it writes nothing, and nothing but pull requests and commit statuses
    (Metadata: read is in every fine-grained token)."""
    granted = {p.name: p.access for p in PULLS_PERMISSIONS}
    assert granted == {"Pull requests": "read", "Commit statuses": "read", "Metadata": "read"}
    assert all(_covers(granted, GITHUB_REQUIRES[endpoint]) for endpoint in RELEASE_ENDPOINTS)


def _listed(text: str) -> dict[str, str]:
    """`*Name*: Read and write` pairs, as the docs list the token's repository permissions."""
    levels = {ui: access for access, ui in GITHUB_UI.items()}
    pairs = re.findall(r"\*([A-Z][a-z]+(?: [a-z]+)?)\*: (Read-only|Read and write)", " ".join(text.split()))
    return {name: levels[level] for name, level in pairs}


def _section(path: Path, start: str, end: str) -> str:
    text = path.read_text()
    begin = text.index(start)
    return text[begin : text.index(end, begin)]


@pytest.mark.parametrize(
    ("path", "start", "end"),
    [
        (ROOT / "README.md", "Prerequisites:", "```bash"),
        (ROOT / "docs" / "infra.md", "- A GitHub token", "\n- "),
    ],
    ids=["README", "docs/infra.md"],
)
def test_the_docs_ask_for_exactly_the_tokens_permissions(path: Path, start: str, end: str) -> None:
    assert _listed(_section(path, start, end)) == token_permissions()


@pytest.mark.parametrize("path", [ROOT / "README.md", ROOT / "docs" / "infra.md"], ids=["README", "infra.md"])
def test_the_docs_give_the_commit_status_token_exactly_its_permission(path: Path) -> None:
    (row,) = [line for line in path.read_text().splitlines() if line.startswith("| `commitStatusToken`")]
    assert _listed(row) == {p.name: p.access for p in COMMIT_STATUS_PERMISSIONS}


@pytest.mark.parametrize("path", [ROOT / "README.md", ROOT / "docs" / "infra.md"], ids=["README", "infra.md"])
def test_the_docs_give_the_pulls_token_exactly_its_permissions(path: Path) -> None:
    (row,) = [line for line in path.read_text().splitlines() if line.startswith("| `pullsToken`")]
    assert _listed(row) == {p.name: p.access for p in PULLS_PERMISSIONS}


def _github_types(program: Program) -> set[str]:
    """The GitHub types and data sources one run of the program declared or read."""
    return ({r.type for r in program.resources} | {i.token for i in program.invokes}) & set(PERMISSIONS)


def test_previews_off_need_fewer_permissions() -> None:
    """Without previews the stack declares no environment or variables: the token needs no more. Preflight
    asks for `stack_types(previews)`, which is what the program declares and reads either way."""
    program = run_program({"preview.enabled": False})
    types = _github_types(program)
    assert token_permissions(types) == {
        "Administration": "write",
        "Webhooks": "write",
        "Contents": "read",
        "Metadata": "read",
    }
    assert stack_types(previews=False) == types


def test_a_later_environment_s_stack_needs_the_deploy_key_and_webhook_permissions_only() -> None:
    """A stack with releaseFrom declares no ruleset, environment or trust anchor (infra/stack.py): what it
    declares and reads is `stack_types(previews=False, releases=False)`."""
    from tests.infra.test_config_prod import run_prod

    program = run_prod(run_program())
    types = _github_types(program)
    assert token_permissions(types) == {"Administration": "write", "Webhooks": "write"}
    assert stack_types(previews=False, releases=False) == types


def test_previews_on_use_every_type(dev_program: Program) -> None:
    assert stack_types(previews=True) == _github_types(dev_program)
