"""What the GitHub tokens must be allowed to do, per GitHub resource type and data source the stack uses.

For each type: the fine-grained permissions that the REST endpoints the provider calls for it require
(create, read, update, delete). The endpoints per type are those of integrations/terraform-provider-github
at v6.13.0 (commit 20728bb, the `upstream` of pulumi-github v6.15.0): `github/resource_github_*.go` and
`github/data_source_github_*.go`. The permission of each endpoint is the one GitHub's REST reference
lists under "Fine-grained access tokens" (its data: github/docs
`src/github-apps/data/fpt-2022-11-28/fine-grained-pat-permissions.json`). Write includes read, so each
type lists the write permission its create needs plus any other permission its read needs.
README's token paragraph and docs/infra.md list exactly `token_permissions()`
(tests/infra/test_github_permissions.py).
"""

from __future__ import annotations

from collections.abc import Set
from typing import NamedTuple

REST = "https://docs.github.com/en/rest"


class Permission(NamedTuple):
    """One fine-grained permission, as GitHub's token settings name it, and where GitHub says so."""

    name: str
    access: str
    """`read` or `write`."""
    doc: str
    """The REST reference entry of the endpoint that needs it."""


# Every repository's fine-grained token has it (GitHub adds "Metadata: read" to each token); listed
# because Repositories.Get (GET /repos/{owner}/{repo}) is called by most of the types below.
_METADATA = Permission("Metadata", "read", f"{REST}/repos/repos#get-a-repository")

PERMISSIONS: dict[str, tuple[Permission, ...]] = {
    # Repositories.CreateKey / GetKey / DeleteKey: POST, GET, DELETE /repos/{owner}/{repo}/keys[/{key_id}].
    "github:index/repositoryDeployKey:RepositoryDeployKey": (
        Permission("Administration", "write", f"{REST}/deploy-keys/deploy-keys#create-a-deploy-key"),
    ),
    # Repositories.CreateHook / GetHook / EditHook / DeleteHook: /repos/{owner}/{repo}/hooks[/{hook_id}].
    "github:index/repositoryWebhook:RepositoryWebhook": (
        Permission("Webhooks", "write", f"{REST}/repos/webhooks#create-a-repository-webhook"),
    ),
    # Repositories.CreateUpdateEnvironment / DeleteEnvironment: PUT, DELETE
    # /repos/{owner}/{repo}/environments/{name} (Administration); GetEnvironment: GET of the same path
    # (Actions: read); Repositories.Get for the repository id (Metadata).
    "github:index/repositoryEnvironment:RepositoryEnvironment": (
        Permission(
            "Administration", "write", f"{REST}/deployments/environments#create-or-update-an-environment"
        ),
        Permission("Actions", "read", f"{REST}/deployments/environments#get-an-environment"),
        _METADATA,
    ),
    # Actions.CreateEnvVariable / GetEnvVariable / UpdateEnvVariable / DeleteEnvVariable:
    # /repos/{owner}/{repo}/environments/{name}/variables[/{variable}]. GitHub lists these endpoints under
    # both "Environments" and "Variables" (each with the other as an additional permission): both, write.
    "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable": (
        Permission("Environments", "write", f"{REST}/actions/variables#create-an-environment-variable"),
        Permission("Variables", "write", f"{REST}/actions/variables#create-an-environment-variable"),
        _METADATA,
    ),
    # Repositories.CreateRuleset / UpdateRuleset / DeleteRuleset (Administration); GetRuleset and
    # Repositories.Get (Metadata).
    "github:index/repositoryRuleset:RepositoryRuleset": (
        Permission("Administration", "write", f"{REST}/repos/rules#create-a-repository-ruleset"),
        _METADATA,
    ),
    # Set / Get default workflow permissions for a repository: PUT, GET
    # /repos/{owner}/{repo}/actions/permissions/workflow (Administration write / read).
    "github:index/workflowRepositoryPermissions:WorkflowRepositoryPermissions": (
        Permission(
            "Administration",
            "write",
            f"{REST}/actions/permissions#set-default-workflow-permissions-for-a-repository",
        ),
    ),
    # Create / update / delete a deployment branch policy:
    # /repos/{owner}/{repo}/environments/{environment_name}/deployment-branch-policies[/{id}]
    # (Administration write). Its GET was not looked up here; the environment's own read already asks
    # for Actions: read.
    "github:index/repositoryEnvironmentDeploymentPolicy:RepositoryEnvironmentDeploymentPolicy": (
        Permission(
            "Administration", "write", f"{REST}/deployments/branch-policies#create-a-deployment-branch-policy"
        ),
    ),
    # Repositories.Get; Repositories.License when the repository has a license (Metadata too); and
    # Repositories.GetPagesInfo, GET /repos/{owner}/{repo}/pages, when it has GitHub Pages: "Pages: read",
    # without which the data source fails on such a repository.
    "github:index/getRepository:getRepository": (
        _METADATA,
        Permission("Pages", "read", f"{REST}/pages/pages#get-a-github-pages-site"),
    ),
    # Repositories.GetBranch, GET /repos/{owner}/{repo}/branches/{branch} (data_source_github_branch.go):
    # the branch's head, recorded once as the release's trust anchor (infra/trust_anchor.py).
    "github:index/getBranch:getBranch": (
        Permission("Contents", "read", f"{REST}/branches/branches#get-a-branch"),
    ),
    # Users.Get, Users.ListKeys, Users.ListGPGKeys of a named user: public data, no permission ("can be used
    # without authentication ... if only public resources are requested").
    "github:index/getUser:getUser": (),
    # Meta.Get, GET /meta: public, no permission.
    "github:index/getSshKeys:getSshKeys": (),
    "github:index/getIpRanges:getIpRanges": (),
}

# `commitStatusToken`: Flux's notification-controller, `github` Provider (fluxcd/notification-controller
# internal/notifier/github.go, commit 2e46958): Repositories.ListStatuses, GET .../commits/{ref}/statuses
# (read), then Repositories.CreateStatus, POST /repos/{owner}/{repo}/statuses/{sha} (write). Nothing else.
COMMIT_STATUS_PERMISSIONS: tuple[Permission, ...] = (
    Permission("Commit statuses", "write", f"{REST}/commits/statuses#create-a-commit-status"),
)

# `pullsToken`: the release's history check (jenkins/pulls.py) calls "List pull requests associated with a
# commit" (GET /repos/{owner}/{repo}/commits/{commit_sha}/pulls) and "List reviews for a pull request"
# (GET .../pulls/{pull_number}/reviews), both listed under `pull_requests`, read, no additional
# permission; "Get rules for a branch" (GET .../rules/branches/{branch}) and "Get repository permissions
# for a user" (GET .../collaborators/{username}/permission), both under `metadata`, read. `promote --to` and
# `status` read Flux's reports with it: "List commit statuses for a reference" (GET
# .../commits/{ref}/statuses), section `statuses`, read, no additional permission (same file, commit
# 012beafe).
PULLS_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "Pull requests", "read", f"{REST}/commits/commits#list-pull-requests-associated-with-a-commit"
    ),
    Permission("Commit statuses", "read", f"{REST}/commits/statuses#list-commit-statuses-for-a-reference"),
    Permission("Metadata", "read", f"{REST}/repos/rules#get-rules-for-a-branch"),
)


# GitHub's API names of these permissions (the keys of fine-grained-pat-permissions.json, the names the REST
# API's `X-Accepted-GitHub-Permissions` header uses).
API_NAMES = {
    "Actions": "actions",
    "Administration": "administration",
    "Commit statuses": "statuses",
    "Contents": "contents",
    "Environments": "environments",
    "Metadata": "metadata",
    "Pages": "pages",
    "Pull requests": "pull_requests",
    "Variables": "actions_variables",
    "Webhooks": "repository_hooks",
}


# What only the preview gate declares or reads (infra/ci_preview.py, with `preview.enabled` only): the
# environment, its variables and branch policy, and the repository and reviewers it reads first.
PREVIEW_TYPES = frozenset(
    {
        "github:index/repositoryEnvironment:RepositoryEnvironment",
        "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable",
        "github:index/repositoryEnvironmentDeploymentPolicy:RepositoryEnvironmentDeploymentPolicy",
        "github:index/getRepository:getRepository",
        "github:index/getUser:getUser",
    }
)


# What only the release side's stack declares or reads (infra/stack.py `_release_side`): the branch ruleset
# and the workflow permissions beside it, and the branch head its trust anchor records.
RELEASE_TYPES = frozenset(
    {
        "github:index/repositoryRuleset:RepositoryRuleset",
        "github:index/workflowRepositoryPermissions:WorkflowRepositoryPermissions",
        "github:index/getBranch:getBranch",
    }
)


def stack_types(previews: bool, releases: bool = True) -> frozenset[str]:
    """The GitHub types and data sources the stack declares or reads, with previews on or off, as the
    release side's stack or a later environment's (which has no previews either)."""
    if not releases:
        return frozenset(PERMISSIONS) - PREVIEW_TYPES - RELEASE_TYPES
    return frozenset(PERMISSIONS) if previews else frozenset(PERMISSIONS) - PREVIEW_TYPES


def token_permissions(types: Set[str] | None = None) -> dict[str, str]:
    """The `github:token` permission set, {permission: access}, for the given types (default: all)."""
    wanted: dict[str, str] = {}
    for type_, permissions in PERMISSIONS.items():
        if types is not None and type_ not in types:
            continue
        for permission in permissions:
            if wanted.get(permission.name) != "write":
                wanted[permission.name] = permission.access
    return wanted
