"""GitHub's REST API as `make preflight` reads it, on 127.0.0.1 over plain HTTP (GITHUB_API_URL points at it),
for the preflight's tests and `make demo`. Each answer has GitHub's status, body and headers for the case:

- no or unknown token: 401 `Bad credentials`;
- a repository, user, organization or branch that does not exist (or that the token cannot see): 404, with
  GitHub's error body `{"message", "documentation_url", "status"}` (github/rest-api-description,
  components/schemas/basic-error; "Troubleshooting the REST API": 404 for a private resource);
- a request the token's permissions do not allow: 403 `Resource not accessible by personal access token`
  with `X-Accepted-GitHub-Permissions: name=level` (same page, "Resource not accessible"); permission names
  and levels per endpoint from github/docs
  src/github-apps/data/fpt-2022-11-28/fine-grained-pat-permissions.json;
- a request it allows, sent without a required field: 422 `Invalid request` (same page, "Invalid request");
- rulesets on a private repository whose owner is on the Free plan: 403 `Upgrade to GitHub Pro or make this
  repository public to enable this feature.` (data/reusables/gated-features/repo-rules.md: rulesets in
  private repositories need Pro, Team or Enterprise Cloud);
- GET /repos/{owner}/{repo}/commits/{sha}/pulls ("List pull requests associated with a commit", Pull
  requests: read): the pull requests that hold sha as one of their commits or as their merge commit, as
  `pull-request-simple` items (`number`, `state`, `merged_at`, `merge_commit_sha`, `base.ref`); per the
  operation's description, a commit not on the default branch lists open pull requests only;
- GET .../pulls/{number}/reviews (Pull requests: read): the reviews, oldest first (`user.login`, `state`,
  `commit_id`); GET .../collaborators/{username}/permission (Metadata: read): `permission`, the legacy base
  role (maintain reads as write, triage as read), `role_name`, and 404 for a login that is no user;
  GET .../rules/branches/{branch} (Metadata: read, which every token has): the ruleset's
  `pull_request` rule with the parameters rest-api-description's repository-rule-pull-request requires;
- GET .../contents/{path}?ref={branch} ("Get repository content", Contents: read): a file as `type` file,
  `encoding` base64 and `content` in base64 lines; 404 when the branch or the file is not there;
- GET .../actions/variables/{name} ("Get a repository variable") and .../actions/organization-variables
  ("List repository organization variables"), Variables: read (write includes it): `name`, `value`;
- GET .../commits/{sha}/statuses ("List commit statuses for a reference", Commit statuses: read; write
  includes it): the statuses posted on sha, newest first ("Statuses are returned in reverse chronological
  order. The first status in the list will be the latest one"), each with `state` and `context`;
- with `rate_limited`, the primary rate limit: 403 `API rate limit exceeded ...` with
  `x-ratelimit-remaining: 0` and `x-ratelimit-reset` ("Troubleshooting the REST API", Rate limit errors).
"""

from __future__ import annotations

import base64
import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from plane.httpserve import json_api, serving

DOCS = "https://docs.github.com/rest"
# endpoint (method, path pattern under /repos/{owner}/{repo}) -> the permissions it needs (all of them; the
# 403's header lists them comma-separated), and the fields GitHub requires in its body (a GET: none, 200).
GATED = (
    ("POST", re.compile(r"/keys"), "administration=write", ("key",)),
    ("POST", re.compile(r"/hooks"), "repository_hooks=write", ("config",)),
    (
        "POST",
        re.compile(r"/environments/(?P<env>[^/]+)/variables"),
        "environments=write,actions_variables=write",
        ("name", "value"),
    ),
    ("GET", re.compile(r"/environments/(?P<env>[^/]+)"), "actions=read", ()),
    ("GET", re.compile(r"/pages"), "pages=read", ()),
    ("POST", re.compile(r"/statuses/(?P<sha>[0-9a-f]{40})"), "statuses=write", ("state",)),
)
REPO = re.compile(r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)(?P<rest>/.*)?")


@dataclass
class Pull:
    """A pull request: its commits, and once merged into base, the commit GitHub made of it."""

    number: int
    base: str
    commits: tuple[str, ...]
    merge_commit_sha: str | None = None
    merged: bool = False
    head: str = ""
    author: str = "dev"
    reviews: list[dict[str, Any]] = field(default_factory=list)

    def simple(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "state": "closed" if self.merged else "open",
            "user": {"login": self.author},
            "merged_at": "2026-12-01T12:00:00Z" if self.merged else None,
            "merge_commit_sha": self.merge_commit_sha,
            "head": {"sha": self.head},
            "base": {"ref": self.base},
        }


@dataclass
class Repository:
    owner_type: str = "Organization"
    private: bool = True
    branches: dict[str, str] = field(default_factory=lambda: {"main": "a" * 40})
    collaborators: dict[str, str] = field(default_factory=dict)
    """login -> role (admin, maintain, write, triage, read); anyone else has none."""
    roles: dict[str, str] = field(default_factory=dict)
    """login -> `role_name` when it is a custom role (Enterprise Cloud), whose base role `collaborators`
    holds ("Get repository permissions for a user")."""
    environments: set[str] = field(default_factory=set)
    has_pages: bool = False
    pulls: list[Pull] = field(default_factory=list)
    default_commits: set[str] = field(default_factory=set)
    """the commits on the default branch: only for those are merged pull requests listed."""
    required_approvals: int = 1
    code_owner_review: bool = True
    files: dict[str, str] = field(default_factory=dict)
    """path -> text, the same on every branch (GET .../contents/{path})."""
    variables: dict[str, str] = field(default_factory=dict)
    """Actions variables: the repository's own, name -> value."""
    organization_variables: dict[str, str] = field(default_factory=dict)
    """Actions variables of the owner shared with the repository."""
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """sha -> the commit statuses posted on it, newest first (`state`, `context`)."""

    def post_status(self, sha: str, context: str, state: str) -> None:
        """What Flux's notification-controller does for a revision it applied: the newest comes first."""
        self.statuses.setdefault(sha, []).insert(0, {"state": state, "context": context})


@dataclass
class FakeGitHubAPI:
    tokens: dict[str, set[str]] = field(default_factory=dict, repr=False)
    """token -> the permissions it was granted (`name=level`)."""
    viewer: str = "octo-admin"
    users: set[str] = field(default_factory=set)
    organizations: dict[str, str] = field(default_factory=dict)
    """login -> plan name as GET /orgs/{org} shows it to an owner."""
    repositories: dict[str, Repository] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""
    rate_limited: bool = False
    page_size: int = 100
    moved_to: str = ""
    """when set, every request answers 301 with this Location (a renamed repository, say)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, method: str, path: str, token: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            self.requests.append((method, path))
            if token not in self.tokens:
                return _error(401, "Bad credentials", DOCS)
            if self.moved_to:
                status, answer, _ = _error(301, "Moved Permanently", DOCS)
                return status, answer, {"Location": self.moved_to + path}
            if self.rate_limited:
                limits = f"{DOCS}/overview/rate-limits-for-the-rest-api"
                status, answer, _ = _error(403, "API rate limit exceeded for user ID 1.", limits)
                return status, answer, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1796131200"}
            granted = self.tokens[token]
            if method == "GET" and path == "/user":
                return 200, {"login": self.viewer, "type": "User", "plan": {"name": "free"}}, {}
            if method == "GET" and (m := re.fullmatch(r"/users/([^/]+)", path)):
                login = m[1]
                if login.lower() not in {u.lower() for u in self.users}:
                    return _error(404, "Not Found", f"{DOCS}/users/users#get-a-user")
                return 200, {"login": login, "type": "User"}, {}
            if method == "GET" and (m := re.fullmatch(r"/orgs/([^/]+)", path)):
                if m[1] not in self.organizations:
                    return _error(404, "Not Found", f"{DOCS}/orgs/orgs#get-an-organization")
                return (
                    200,
                    {"login": m[1], "type": "Organization", "plan": {"name": self.organizations[m[1]]}},
                    {},
                )
            match = REPO.fullmatch(path)
            full_name = f"{match['owner']}/{match['name']}" if match else ""
            repo = self.repositories.get(full_name)
            if match is None or repo is None:
                return _error(404, "Not Found", f"{DOCS}/repos/repos#get-a-repository")
            return self._repository(method, full_name, repo, match["rest"] or "", granted, body)

    def _repository(
        self, method: str, full_name: str, repo: Repository, rest: str, granted: set[str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        owner = full_name.split("/")[0]
        if method == "GET" and rest == "":
            visibility = "private" if repo.private else "public"
            shape = {"login": owner, "type": repo.owner_type}
            return (
                200,
                {
                    "full_name": full_name,
                    "private": repo.private,
                    "visibility": visibility,
                    "owner": shape,
                    "has_pages": repo.has_pages,
                },
                {},
            )
        if method == "GET" and (m := re.fullmatch(r"/branches/([^/]+)", rest)):
            if "contents=read" not in granted:  # "Get a branch" takes Contents: read
                return _forbidden("contents=read")
            if m[1] not in repo.branches:
                return _error(404, "Branch not found", f"{DOCS}/branches/branches#get-a-branch")
            return 200, {"name": m[1], "commit": {"sha": repo.branches[m[1]]}}, {}
        if method == "GET" and (m := re.fullmatch(r"/collaborators/([^/]+)/permission", rest)):
            if m[1].lower() not in {u.lower() for u in self.users}:
                return _error(
                    404,
                    "Not Found",
                    f"{DOCS}/collaborators/collaborators#get-repository-permissions-for-a-user",
                )
            # `permission` is the legacy base role: maintain reads as write, triage as read; `role_name` the
            # role itself (rest-api-description, repos/get-collaborator-permission-level).
            role = repo.collaborators.get(m[1], "none")
            permission = {"maintain": "write", "triage": "read"}.get(role, role)
            role = repo.roles.get(m[1], role)
            return 200, {"permission": permission, "role_name": role, "user": {"login": m[1]}}, {}
        if method == "GET" and (m := re.fullmatch(r"/commits/([0-9a-f]{40})/pulls(?:\?.*)?", rest)):
            if "pull_requests=read" not in granted:
                return _forbidden("pull_requests=read")
            sha = m[1]
            listed = [
                pull.simple()
                for pull in repo.pulls
                if sha in (*pull.commits, pull.merge_commit_sha)
                and (not pull.merged or sha in repo.default_commits)
            ]
            return 200, listed, {}
        if method == "GET" and (m := re.fullmatch(r"/pulls/([0-9]+)/reviews(?:\?(.*))?", rest)):
            if "pull_requests=read" not in granted:
                return _forbidden("pull_requests=read")
            pull = next((p for p in repo.pulls if p.number == int(m[1])), None)
            if pull is None:
                return _error(404, "Not Found", f"{DOCS}/pulls/reviews#list-reviews-for-a-pull-request")
            # Pages of `page_size` with a `Link: <...>; rel="next"` header ("Using pagination in the REST
            # API"), GitHub's per_page capped at it.
            query = dict(part.split("=", 1) for part in (m[2] or "").split("&") if "=" in part)
            size = min(int(query.get("per_page", "30")), self.page_size)
            page = int(query.get("page", "1"))
            reviews = pull.reviews[(page - 1) * size : page * size]
            headers = {}
            if page * size < len(pull.reviews):
                path = f"/repos/{full_name}/pulls/{pull.number}/reviews"
                after = f"{self.url}{path}?per_page={size}&page={page + 1}"
                headers["Link"] = f'<{after}>; rel="next"'
            return 200, reviews, headers
        if method == "GET" and (m := re.fullmatch(r"/commits/([0-9a-f]{40})/statuses(?:\?.*)?", rest)):
            if not {"statuses=read", "statuses=write"} & granted:
                return _forbidden("statuses=read")
            return 200, list(repo.statuses.get(m[1], [])), {}
        if method == "GET" and re.fullmatch(r"/rules/branches/[^/?]+(?:\?.*)?", rest):
            # repository-rule-pull-request: these five parameters are required; values as the stack's ruleset
            # declares them (infra/branch_protection.py), code-owner review per `code_owner_review`.
            trial = repo.required_approvals == 0
            parameters = {
                "dismiss_stale_reviews_on_push": True,
                "require_code_owner_review": repo.code_owner_review,
                "require_last_push_approval": not trial,
                "required_approving_review_count": repo.required_approvals,
                "required_review_thread_resolution": True,
            }
            return 200, [{"type": "pull_request", "parameters": parameters}], {}
        if method == "GET" and (m := re.fullmatch(r"/contents/([^?]+)\?ref=([^&]+)", rest)):
            if "contents=read" not in granted:  # "Get repository content" takes Contents: read
                return _forbidden("contents=read")
            if m[2] not in repo.branches or m[1] not in repo.files:
                return _error(404, "Not Found", f"{DOCS}/repos/contents#get-repository-content")
            encoded = base64.encodebytes(repo.files[m[1]].encode()).decode()  # in lines, as GitHub sends it
            return 200, {"type": "file", "path": m[1], "encoding": "base64", "content": encoded}, {}
        if method == "GET" and (
            m := re.fullmatch(r"/actions/(variables/[^/?]+|organization-variables)(?:\?.*)?", rest)
        ):
            if not {"actions_variables=read", "actions_variables=write"} & granted:
                return _forbidden("actions_variables=read")
            if m[1] == "organization-variables":
                shared = [{"name": k, "value": v} for k, v in repo.organization_variables.items()]
                return 200, {"total_count": len(shared), "variables": shared}, {}
            name = m[1].split("/", 1)[1]
            if name not in repo.variables:
                return _error(404, "Not Found", f"{DOCS}/actions/variables#get-a-repository-variable")
            return 200, {"name": name, "value": repo.variables[name]}, {}
        if method == "GET" and rest == "/rulesets":
            plan = self.organizations.get(owner, "free")
            if repo.private and plan == "free":
                return _error(
                    403,
                    "Upgrade to GitHub Pro or make this repository public to enable this feature.",
                    f"{DOCS}/repos/rules#get-all-repository-rulesets",
                )
            return 200, [], {}
        for verb, pattern, permission, required in GATED:
            m = pattern.fullmatch(rest)
            if verb != method or m is None:
                continue
            if not set(permission.split(",")) <= granted:
                return _forbidden(permission)
            if "env" in m.groupdict() and m["env"] not in repo.environments:
                return _error(404, "Not Found", DOCS)
            if rest == "/pages" and not repo.has_pages:
                return _error(404, "Not Found", f"{DOCS}/pages/pages#get-a-apiname-pages-site")
            if verb == "GET":
                return 200, {}, {}
            missing = [f for f in required if not isinstance(body, dict) or f not in body]
            if missing:
                names = ", ".join(f'"{f}"' for f in missing)
                return _error(422, f"Invalid request.\n\n{names} wasn't supplied.", DOCS)
            return 201, {}, {}
        return _error(404, "Not Found", DOCS)


def _forbidden(permission: str) -> tuple[int, Any, dict[str, str]]:
    status, body, _ = _error(403, "Resource not accessible by personal access token", DOCS)
    return status, body, {"X-Accepted-GitHub-Permissions": permission}


def _error(status: int, message: str, documentation_url: str) -> tuple[int, Any, dict[str, str]]:
    return status, {"message": message, "documentation_url": documentation_url, "status": str(status)}, {}


def _bearer(github: FakeGitHubAPI) -> Callable[..., tuple[int, Any, dict[str, str]]]:
    def answer(method: str, path: str, headers: Message, body: Any) -> tuple[int, Any, dict[str, str]]:
        auth = headers.get("Authorization", "")
        return github.answer(
            method, path, auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else "", body
        )

    return answer


@contextlib.contextmanager
def serve(github: FakeGitHubAPI) -> Iterator[FakeGitHubAPI]:
    """Serve `github` on a free loopback port until the block ends; `github.url` is its GITHUB_API_URL."""
    with serving(json_api(_bearer(github)), "fake-github-api") as port:
        github.url = f"http://127.0.0.1:{port}"
        yield github
