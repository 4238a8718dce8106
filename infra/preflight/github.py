"""The GitHub side, with the stack's token (GITHUB_TOKEN, else `github:token` as `pulumi config` reads it),
against GITHUB_API_URL (default https://api.github.com): the repository and branch, each permission the
stack needs as GitHub itself answers it, the plan features the preview gate relies on, and the reviewers.

Permissions are read from GitHub's answers: a request the permission allows is refused for its body (422,
nothing is created), one it does not allow gets 403 with `X-Accepted-GitHub-Permissions` naming what is
missing ("Troubleshooting the REST API", Resource not accessible).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from infra import codeowners
from infra.config import PROJECT, Secret, StackConfig
from infra.github_permissions import (
    API_NAMES,
    PERMISSIONS,
    Permission,
    stack_types,
    token_permissions,
)
from infra.preflight.report import Row, fail, guarded, ok, skip

DEFAULT_API = "https://api.github.com"
ACCESS_FIX = (
    "create a fine-grained token for this one repository with the permissions the README lists and set "
    "it (`pulumi config set --secret github:token`, or export GITHUB_TOKEN)"
)


@dataclass(frozen=True)
class Probe:
    """A request that needs `permission` and changes nothing: the body lacks a required field."""

    permission: str
    """As GitHub names it in X-Accepted-GitHub-Permissions, `name=level`."""
    method: str
    path: str
    """Relative to /repos/{owner}/{repo}; `{environment}` is the preview environment."""
    needed_for: str


# How preflight proves a permission without changing anything, keyed by GitHub's API name of it: a write
# sent without a required field (422 when allowed), or a read (200; 404 when what it reads does not exist
# yet). `contents=read` is proven by the branch check (GET .../branches/{branch}, "Get a branch") and
# `metadata=read` is on every fine-grained token, so neither needs a probe.
PROBE_REQUESTS: dict[str, tuple[str, str]] = {
    "administration": ("POST", "/keys"),
    "repository_hooks": ("POST", "/hooks"),
    # "Create an environment variable" needs both (github_permissions.py): one request proves the two.
    "environments": ("POST", "/environments/{environment}/variables"),
    "actions_variables": ("POST", "/environments/{environment}/variables"),
    "actions": ("GET", "/environments/{environment}"),
    "pages": ("GET", "/pages"),
}
PROVEN_ELSEWHERE = {"contents", "metadata"}


@functools.cache
def probes(previews: bool, releases: bool = True) -> tuple[Probe, ...]:
    """One probe per distinct request, for every permission `github:token` needs with previews on or off
    (infra/github_permissions.py `stack_types`): the same map the README's list and the map's test read,
    so they cannot drift apart."""
    requests: dict[tuple[str, str], list[str]] = {}
    users: dict[str, list[str]] = {}
    types = stack_types(previews, releases)
    for name, access in token_permissions(types).items():
        api = API_NAMES[name]
        for type_, permissions in PERMISSIONS.items():
            if type_ in types and any(p.name == name for p in permissions):
                users.setdefault(f"{api}={access}", []).append(type_.rsplit(":", 1)[-1])
        if api not in PROVEN_ELSEWHERE:
            requests.setdefault(PROBE_REQUESTS[api], []).append(f"{api}={access}")
    return tuple(
        Probe(
            ",".join(permissions),
            method,
            path,
            ", ".join(sorted({user for p in permissions for user in users[p]})),
        )
        for (method, path), permissions in requests.items()
    )


# "Get repository permissions for a user": `permission` is the base role, admin, write, read or none (maintain
# maps to write, triage to read); `role_name` may name a custom role (GitHub Enterprise Cloud).
READ_PERMISSIONS = {"read", "write", "admin"}
WRITE_PERMISSIONS = {"write", "admin"}
# The plan features only the preview gate (its environment) relies on; rulesets protect the branch always.
PREVIEW_FEATURES = ("environments", "required reviewers")
PREVIEW_TEAM = "PULUMI_PREVIEW_TEAM"
PREVIEWS_OFF = f"pulumi config set --path '{PROJECT}:preview.enabled' false"


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def message(self) -> str:
        return str(self.body.get("message", "")) if isinstance(self.body, dict) else ""

    def said(self) -> str:
        return f"GitHub answered {self.status}" + (f" {self.message!r}" if self.message else "")


class GitHub:
    def __init__(self, token: Secret, base: str | None = None) -> None:
        self._token = token
        self.base = (base or os.environ.get("GITHUB_API_URL") or DEFAULT_API).rstrip("/")

    def call(self, method: str, path: str, body: Any = None) -> Answer:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method)  # noqa: S310
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", "2022-11-28")
        request.add_header("User-Agent", "gitops-eks-preflight")
        request.add_header("Authorization", f"Bearer {self._token.reveal()}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
                status, raw, headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, raw, headers = error.code, error.read(), error.headers
        except (urllib.error.URLError, TimeoutError) as error:
            raise ConnectionError(f"cannot reach {self.base}: {getattr(error, 'reason', error)}") from None
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return Answer(status, parsed, {k.lower(): v for k, v in headers.items()})


def accepted_permissions(header: str) -> list[list[str]]:
    """`X-Accepted-GitHub-Permissions`: sets separated by `;`, each a `,`-separated list of name=level."""
    return [[p.strip() for p in part.split(",") if p.strip()] for part in header.split(";") if part.strip()]


def _describe(sets: list[list[str]]) -> str:
    return " or ".join(" and ".join(s) for s in sets)


def plan_features(private: bool, plan: str | None) -> dict[str, bool | None]:
    """What GitHub offers the repository (None: unknown). GitHub docs, data/reusables/gated-features:
    environments.md (environments in private repositories: Pro, Team, Enterprise; required reviewers on
    Free, Pro and Team: public repositories only) and repo-rules.md (rulesets in private repositories:
    Pro, Team, Enterprise Cloud)."""
    if not private:
        return {"environments": True, "required reviewers": True, "rulesets": True}
    if plan is None:
        return {"environments": None, "required reviewers": None, "rulesets": None}
    paid = plan in {"pro", "team", "business", "enterprise"}
    enterprise = plan in {"business", "enterprise"}
    return {"environments": paid, "required reviewers": enterprise, "rulesets": paid}


def _repository(api: GitHub, config: StackConfig) -> Iterator[Row]:
    repo = api.call("GET", f"/repos/{config.repository}")
    if repo.status == 401:
        yield fail("GitHub token", repo.said(), ACCESS_FIX)
        return
    if repo.status != 200:
        yield fail(
            f"repository {config.repository}",
            f"{repo.said()}: it does not exist or the token cannot see it",
            "check gitops-eks:repository, and that the token's repository access includes it",
        )
        return
    yield ok(
        f"repository {config.repository}",
        f"{repo.body.get('visibility', 'private' if repo.body.get('private') else 'public')}",
    )
    if not config.releases:
        yield from _later_environment(api, config)
        return
    branch = _branch(api, config)
    if branch.status == 403 and branch.headers.get("x-accepted-github-permissions"):
        # "Get a branch" takes contents=read: the stack reads the branch's head (getBranch) as the release's
        # trust anchor, so a token without it fails `pulumi up` too.
        accepted = _describe(accepted_permissions(branch.headers["x-accepted-github-permissions"]))
        yield fail(
            f"branch {config.branch}",
            f"{branch.said()}; it accepts {accepted}",
            f"edit the token: grant {accepted} (getBranch, the release's trust anchor)",
        )
        sha = None
    elif branch.status != 200:
        yield fail(
            f"branch {config.branch}",
            branch.said(),
            f"push the branch first (`git push origin {config.branch}`) or set gitops-eks:branch",
        )
        sha = None
    else:
        sha = branch.body.get("commit", {}).get("sha")
        yield ok(f"branch {config.branch}", f"at {str(sha)[:12]}")
    # The provider reads the Pages site only of a repository that has one (getRepository).
    needed = probes(config.preview.enabled)
    wanted = tuple(p for p in needed if p.path != "/pages" or repo.body.get("has_pages"))
    if len(wanted) < len(needed):
        yield skip("permission pages=read", "the repository has no Pages site: the stack does not read it")
    yield from _permissions(api, config, wanted, sha)
    yield from _plan(api, config, repo.body)
    yield from _reviewers(api, config)
    if sha is not None:
        yield from _codeowners(api, config)
    if config.preview.enabled:
        yield from _preview_team(api, config)


def _branch(api: GitHub, config: StackConfig) -> Answer:
    """GitHub's "Get a branch" for the stack's branch (Contents: read)."""
    return api.call(
        "GET", f"/repos/{config.repository}/branches/{urllib.parse.quote(config.branch, safe='')}"
    )


def _later_environment(api: GitHub, config: StackConfig) -> Iterator[Row]:
    """A later environment's stack declares Flux's deploy key and webhook only: the ruleset, the code
    owners and the plan's rulesets are the release side's. Its Flux follows the branch (with its deploy
    key); the token reads it only if granted Contents, which this stack does not need."""
    check = f"branch {config.branch}"
    branch = _branch(api, config)
    if branch.status == 200:
        sha = branch.body.get("commit", {}).get("sha")
        yield ok(check, f"at {str(sha)[:12]}; its ruleset and code owners are the release side's")
    elif branch.status == 404:
        yield fail(
            check,
            branch.said(),
            f"set gitops-eks:branch to the branch the release side ({config.release_from}) writes",
        )
    else:
        yield skip(check, f"{UNREAD_BRANCH} ({branch.said()})")
    yield from _permissions(api, config, probes(previews=False, releases=False), None)


# Why a later environment's stack may not read its branch: Flux reads it with its own deploy key.
UNREAD_BRANCH = (
    "not readable with github:token, which this stack needs no Contents permission for (Flux reads the "
    "branch with its deploy key); grant the token Contents: Read-only to let preflight check it"
)


def _probe_path(config: StackConfig, probe: Probe, sha: str | None) -> str | None:
    if "{sha}" in probe.path and sha is None:
        return None
    path = probe.path.format(environment=urllib.parse.quote(config.preview.environment, safe=""), sha=sha)
    return f"/repos/{config.repository}{path}"


def _permissions(
    api: GitHub, config: StackConfig, probes: tuple[Probe, ...], sha: str | None
) -> Iterator[Row]:
    for probe in probes:
        check = f"permission {probe.permission}"
        path = _probe_path(config, probe, sha)
        if path is None:
            yield skip(check, "needs the branch's head commit, which was not found")
            continue
        answer = api.call(probe.method, path, {})
        header = answer.headers.get("x-accepted-github-permissions", "")
        if answer.status == (200 if probe.method == "GET" else 422):
            yield ok(check, f"accepted for {probe.needed_for}")
        elif answer.status == 403 and header:
            yield fail(
                check,
                f"{answer.said()}; it accepts {_describe(accepted_permissions(header))}",
                f"edit the token: grant {_describe(accepted_permissions(header))} ({probe.needed_for})",
            )
        elif answer.status == 404 and "{environment}" in probe.path:
            yield skip(
                check,
                f"environment {config.preview.environment!r} does not exist yet: provable once it does",
            )
        else:
            yield fail(check, f"{answer.said()} to {probe.method} {path}", ACCESS_FIX)


def _owner_plan(api: GitHub, owner: dict[str, Any]) -> str | None:
    # The plan is shown only to the account itself (GET /user) or an organization's owners (GET /orgs).
    if owner.get("type") == "Organization":
        answer = api.call("GET", f"/orgs/{owner.get('login')}")
    else:
        answer = api.call("GET", "/user")
        if (
            answer.status == 200
            and str(answer.body.get("login", "")).lower() != str(owner.get("login", "")).lower()
        ):
            return None
    plan = answer.body.get("plan") if answer.status == 200 and isinstance(answer.body, dict) else None
    return str(plan.get("name", "")).lower() or None if isinstance(plan, dict) else None


def _plan(api: GitHub, config: StackConfig, repo: dict[str, Any]) -> Iterator[Row]:
    private = bool(repo.get("private"))
    owner = repo.get("owner") or {}
    plan = _owner_plan(api, owner) if private else None
    preview = config.preview
    said = ""
    if private and plan is None and preview.github_enterprise:
        # GitHub shows the plan only to the account or an organization owner: take the key's word for it,
        # as `pulumi up` does (infra/ci_preview.py check_gate).
        plan, said = "enterprise", f" ({PROJECT}:preview.githubEnterprise)"
    features = plan_features(private, plan)
    where = (
        f"private repository, owner {owner.get('login')} on plan {plan or 'unknown'}{said}"
        if private
        else "public repository (every plan)"
    )
    fix = (
        "make the repository public, or move the owner to a plan that offers it (GitHub Enterprise Cloud for "
        "required reviewers on a private repository), or turn pull-request previews off "
        f"(`{PREVIEWS_OFF}`, docs/security.md)"
    )
    for feature, available in features.items():
        check = f"GitHub {feature}"
        if feature in PREVIEW_FEATURES and not preview.enabled:
            yield skip(check, f"previews are off ({PROJECT}:preview.enabled): no environment is declared")
        elif feature == "required reviewers" and private and not preview.github_enterprise and available:
            # infra/ci_preview.py check_gate refuses a private repository's preview without the key.
            yield fail(
                check,
                f"offered ({where}), but `pulumi up` refuses a private repository's preview until "
                f"{PROJECT}:preview.githubEnterprise says so",
                f"`pulumi config set --path '{PROJECT}:preview.githubEnterprise' true`",
            )
        elif available:
            yield ok(check, f"offered: {where}")
        elif available is None:
            yield fail(
                check,
                f"cannot tell: {where} (GitHub shows the plan only to the account or an organization owner)",
                "run preflight with an owner's token, set "
                f"{PROJECT}:preview.githubEnterprise if the owner is on GitHub Enterprise Cloud, or " + fix,
            )
        else:
            yield fail(check, f"not offered: {where}", fix)
    # GitHub's own answer for rulesets, whatever the plan says.
    rulesets = api.call("GET", f"/repos/{config.repository}/rulesets")
    if rulesets.status == 403 and not rulesets.headers.get("x-accepted-github-permissions"):
        yield fail("GitHub rulesets (answer)", rulesets.said(), fix)


def _reviewers(api: GitHub, config: StackConfig) -> Iterator[Row]:
    for login in config.preview.reviewers:
        check = f"reviewer {login}"
        user = api.call("GET", f"/users/{urllib.parse.quote(login, safe='')}")
        if user.status == 404:
            yield fail(check, f"{user.said()}: no such GitHub user", "fix gitops-eks:preview.reviewers")
            continue
        if user.status != 200:
            yield fail(check, user.said(), ACCESS_FIX)
            continue
        access = api.call(
            "GET", f"/repos/{config.repository}/collaborators/{urllib.parse.quote(login, safe='')}/permission"
        )
        body = access.body if access.status == 200 and isinstance(access.body, dict) else {}
        permission, role = body.get("permission"), body.get("role_name")
        named = f"{permission}" + (f", role {role}" if role and role != permission else "")
        # Code owners count only with write access ("About code owners"; docs/verified-identifiers.md):
        # a reviewer who can only read could never give the code-owner review main's ruleset requires.
        if permission in WRITE_PERMISSIONS or (
            permission in READ_PERMISSIONS and not config.required_approvals
        ):
            yield ok(check, f"can {'write' if permission in WRITE_PERMISSIONS else 'read'} ({named})")
        elif permission in READ_PERMISSIONS:
            yield fail(
                check,
                f"can only read ({named}): GitHub counts a code owner's review only with write access, so "
                "main's ruleset could never be satisfied for the paths .github/CODEOWNERS gives them",
                f"give {login} write access to {config.repository}, or fix gitops-eks:preview.reviewers",
            )
        elif access.status == 200:
            yield fail(
                check,
                f"has no access to {config.repository} (permission {permission!r})",
                f"give {login} read access to {config.repository}, or fix gitops-eks:preview.reviewers",
            )
        else:
            yield fail(check, f"{access.said()} asking for {login}'s permission", ACCESS_FIX)


def _codeowners(api: GitHub, config: StackConfig) -> Iterator[Row]:
    """GitHub enforces the code owners file of the pull request's base branch ("About code owners"), so the
    branch's copy must be the one `pulumi up` requires locally (infra/codeowners.py `check`)."""
    check = f"CODEOWNERS on {config.branch}"
    reviewers = config.preview.reviewers
    if not reviewers:
        yield skip(check, f"{PROJECT}:preview.reviewers is empty: `pulumi up` leaves the file to you")
        return
    # "Get repository content" (Contents: read): a file's `content` is base64 (`encoding`), with line breaks.
    path = f"/repos/{config.repository}/contents/{codeowners.RELATIVE_PATH}"
    answer = api.call("GET", f"{path}?ref={urllib.parse.quote(config.branch, safe='')}")
    fix = (
        f"commit .github/CODEOWNERS as `pulumi up` requires it (infra/codeowners.py: each owned path, then "
        f"@{' @'.join(reviewers)}) and push it to {config.branch} before `pulumi up`"
    )
    if answer.status == 404:
        yield fail(check, f"{answer.said()}: {codeowners.RELATIVE_PATH} is not on {config.branch}", fix)
        return
    body = answer.body if answer.status == 200 and isinstance(answer.body, dict) else {}
    if body.get("encoding") != "base64":
        yield fail(check, f"{answer.said()}: {codeowners.RELATIVE_PATH} could not be read", ACCESS_FIX)
        return
    try:
        text = base64.b64decode(str(body.get("content", ""))).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        text = None
    if text == codeowners.render(reviewers):
        yield ok(check, f"names exactly {PROJECT}:preview.reviewers")
    else:
        yield fail(
            check, f"{codeowners.RELATIVE_PATH} on {config.branch} does not name exactly the reviewers", fix
        )


def _preview_team(api: GitHub, config: StackConfig) -> Iterator[Row]:
    """What the preview workflow reads as `vars.PULUMI_PREVIEW_TEAM` (.github/workflows/pull-request.yaml),
    set by hand once (docs/security.md): a repository variable ("Get a repository variable"), or an
    organization variable shared with the repository ("List repository organization variables")."""
    check = f"variable {PREVIEW_TEAM}"
    answer = api.call("GET", f"/repos/{config.repository}/actions/variables/{PREVIEW_TEAM}")
    value = str(answer.body.get("value") or "").strip() if isinstance(answer.body, dict) else ""
    if answer.status == 200 and value:
        yield ok(check, f"repository variable: team {value!r}")
        return
    # One page (`per_page` is at most 30 for GitHub's variable lists); past that page: unknown, not absent.
    shared = api.call("GET", f"/repos/{config.repository}/actions/organization-variables?per_page=30")
    body = shared.body if shared.status == 200 and isinstance(shared.body, dict) else {}
    listed = [v for v in body.get("variables", []) if isinstance(v, dict)]
    if any(v.get("name") == PREVIEW_TEAM and str(v.get("value") or "").strip() for v in listed):
        yield ok(check, "organization variable shared with the repository")
        return
    if int(body.get("total_count") or 0) > len(listed):
        yield skip(
            check, f"not a repository variable; {body['total_count']} organization variables: not all read"
        )
        return
    found = "the repository variable is empty" if answer.status == 200 else answer.said()
    yield fail(
        check,
        f"{found}: the preview workflow reads it to ask Pulumi Cloud for a team token",
        f"set it to the Pulumi team of the preview's OIDC policy (docs/security.md, Setting up the preview): "
        f"`gh variable set {PREVIEW_TEAM} --repo {config.repository} --body <team>`, or turn previews off "
        f"(`{PREVIEWS_OFF}`)",
    )


def _ui(permissions: tuple[Permission, ...]) -> str:
    """As GitHub's token settings show them: `Pull requests: Read-only and Metadata: Read-only`."""
    return " and ".join(
        f"{p.name}: {'Read-only' if p.access == 'read' else 'Read and write'}" for p in permissions
    )


@dataclass(frozen=True)
class ExtraToken:
    """A token of its own, with one permission, that the stack hands on (infra/github_permissions.py)."""

    key: str
    """Its config key under the project."""
    probes: tuple[Probe, ...]
    """One per permission of its map (infra/github_permissions.py), each the request its user makes."""
    value: Callable[[StackConfig], Secret | None]
    unset: Row | None
    """What preflight says when the key is not set; None for a required key (the stack's own config
    check refuses it unset, and preflight with it: exit 2)."""
    release_side: bool = False
    """Only the release side's stack has it (a later environment's stack refuses it: infra/config.py)."""


EXTRA_TOKENS = (
    ExtraToken(
        "commitStatusToken",
        (Probe("statuses=write", "POST", "/statuses/{sha}", "Flux's deploy reports"),),
        lambda config: config.commit_status_token,
        skip("commitStatusToken", "not set: Flux's deploy reports are off"),
    ),
    # "List pull requests associated with a commit" (Pull requests: read): 200 when the token may.
    ExtraToken(
        "pullsToken",
        (
            Probe("pull_requests=read", "GET", "/commits/{sha}/pulls", "the release's history check"),
            # "List commit statuses for a reference" (Commit statuses: read): promotion's gate and status.
            Probe("statuses=read", "GET", "/commits/{sha}/statuses", "promotion's gate and `status`"),
        ),
        lambda config: config.pulls_token,
        None,
        release_side=True,
    ),
)


def _extra_token(config: StackConfig, extra: ExtraToken, token: Secret, api: GitHub) -> Iterator[Row]:
    branch = _branch(api, config)
    if branch.status != 200:
        yield skip(
            extra.key, f"needs the branch's head commit, which github:token could not read ({branch.said()})"
        )
        return
    sha = branch.body.get("commit", {}).get("sha")
    for row in _permissions(GitHub(token, api.base), config, extra.probes, sha):
        yield Row(row.mark, f"{extra.key} {row.check}", row.detail, row.fix)


def checks(config: StackConfig, token: Secret | None, encrypted: frozenset[str]) -> list[Row]:
    api = None if token is None else GitHub(token)
    if api is None:
        detail = (
            "github:token is encrypted in the stack file and the Pulumi CLI is not installed to read it"
            if "github:token" in encrypted
            else "no token: neither GITHUB_TOKEN nor github:token is set"
        )
        rows = [fail("GitHub token", detail, ACCESS_FIX)]
    else:
        fix = f"check the network path to {api.base} (proxy, GITHUB_API_URL) and run `make preflight` again"
        rows = guarded("GitHub API", lambda: _repository(api, config), fix)
    # The other tokens' rows need GitHub only to probe a token that is set.
    for extra in EXTRA_TOKENS:
        if f"{PROJECT}:{extra.key}" in encrypted:
            rows.append(skip(extra.key, "encrypted in the stack file: install the Pulumi CLI to check it"))
        elif extra.release_side and not config.releases:
            holder = f"the release side's stack {config.release_from} holds it"
            rows.append(skip(extra.key, f"not read here: {holder}"))
        elif (value := extra.value(config)) is None:
            rows += [extra.unset] if extra.unset else []
        elif api is not None and not any(
            r.check in {"GitHub token", "GitHub API"} and r.blocks for r in rows
        ):
            rows += guarded(extra.key, lambda e=extra, v=value: _extra_token(config, e, v, api), fix)
    return rows
