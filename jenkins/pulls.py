"""Whether a commit on the branch is the merge of a pull request merged into it: GitHub's REST API answers.

The history check (jenkins/gitops.py `check_history`) trusts, besides the bot's own signed commits, only
the commits GitHub made when it merged a pull request into the branch, which the ruleset lets happen
only after review. A signature cannot say that (GitHub's web-flow key signs every commit made in its
web interface, in any repository), so the check asks GitHub:

GET /repos/{owner}/{repo}/commits/{commit_sha}/pulls ("List pull requests associated with a commit",
github/rest-api-description api.github.com.json, operationId repos/list-pull-requests-associated-with-
commit: "Lists the merged pull request that introduced the commit to the repository. If the commit is not
present in the default branch, will only return open pull requests associated with the commit"). Its
items are `pull-request-simple`: `merged_at` (null until merged), `base.ref` (the branch merged into) and
`merge_commit_sha`, which after the merge is the merge commit (merge), the squashed commit (squash) or
the commit the branch was moved to (rebase: the last of the rebased commits; the earlier ones are not
it, so a rebase merge of more than one commit is refused). The fine-grained token needs "Pull
requests: read" and nothing else (github/docs src/github-apps/data/fpt-2022-11-28/
fine-grained-pat-permissions.json, section pull_requests: slug list-pull-requests-associated-with-a-
commit, access read, no additional permissions).

"Merged" alone proves no review: GitHub marks a pull request merged when its head becomes reachable from
the base branch by any push ("About pull request merges", Indirect merges: "even if branch protection
rules have not been satisfied"). So the commit must also be exactly what GitHub's button makes of the
pull request's final head commit (`head.sha`), which jenkins/gitops.py `merged_as` checks with git.

Only approvals GitHub itself would count toward the rule are counted: GitHub lets anyone who can see a
public repository submit an approving review, but a required approval must come from someone with write
access ("About pull request reviews"; "Approving a pull request with required reviews"). So each
approver's access is asked of GitHub: GET /repos/{owner}/{repo}/collaborators/{username}/permission ("Get
repository permissions for a user", operationId repos/get-collaborator-permission-level), whose
`permission` is the legacy base role `admin`, `write`, `read` or `none` ("the `maintain` role is mapped to
`write` and the `triage` role is mapped to `read`"); the token needs "Metadata: read" for it, which every
fine-grained token has (fine-grained-pat-permissions.json, section metadata: slug
get-repository-permissions-for-a-user, access read).

`merge_commit_sha` per "Get a pull request" (same description, operationId pulls/get): "If merged as a
merge commit, merge_commit_sha represents the SHA of the merge commit. If merged via a squash, [...] the
SHA of the squashed commit on the base branch. If rebased, [...] the commit that the base branch was
updated to."

`promote --to` asks the same token what Flux reported for a revision in an environment: GET
/repos/{owner}/{repo}/commits/{ref}/statuses ("List commit statuses for a reference", operationId
repos/list-commit-statuses-for-ref: "Statuses are returned in reverse chronological order. The first
status in the list will be the latest one"); each item has `context` and `state` (error, failure,
pending or success). The token needs "Commit statuses: read" for it (fine-grained-pat-permissions.json at
commit 012beafe, section statuses: slug list-commit-statuses-for-a-reference, access read, no additional
permissions).

The token travels only in the Authorization header: never in argv, a log line or an exception message.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from jenkins.codeowners import Rule, owners_of

TOKEN = "GITOPS_PULLS_TOKEN"  # noqa: S105 - the variable's name, not a token
API_URL = "GITOPS_GITHUB_API_URL"
DEFAULT_API = "https://api.github.com"
TIMEOUT = 30.0  # seconds for one API request
MAX_PAGES = 10  # of 100 items: far more pull requests per commit, or reviews per pull request, than occur
API_VERSION = "2022-11-28"  # X-GitHub-Api-Version the fields above are documented for
# git@github.com:owner/name(.git), ssh://git@github.com/owner/name(.git), https://github.com/owner/name(.git)
_REMOTE = re.compile(
    r"(?:[^@/]+@github\.com:|(?:ssh|https)://(?:[^@/]+@)?github\.com(?::\d+)?/)"
    r"(?P<owner>[A-Za-z0-9-]+)/(?P<name>[A-Za-z0-9._-]+?)(?:\.git)?/?"
)


# The base branch's CODEOWNERS rules and the paths the commit changes (jenkins/gitops.py reads both from git).
Ownership = Callable[[], tuple[list[Rule], list[str]]]
# Why the commit is not exactly GitHub's merge of pull request (number, final head commit), or None
# (jenkins/gitops.py compares it with git's own merge).
MergedAs = Callable[[int, str], str | None]
_SHA = re.compile(r"[0-9a-f]{40}")


class PullsError(Exception):
    """GitHub could not answer; the message says what to do and never holds the token."""


class _NotFound(PullsError):
    """GitHub answered 404: for a repository path, the token cannot see it; for a user, there is none."""


def merged_pulls(sha: str, branch: str, pulls: list[Any]) -> list[dict[str, Any]]:
    """The pull requests, among GitHub's answer for sha, merged into branch with sha as their merge
    commit: none for an open or closed-unmerged pull request, one merged into another branch, or one
    whose merge commit is another commit (sha is one of its own commits); more than one when merging a
    pull request also merged one whose head it holds ("About pull request merges", Indirect merges)."""
    return [
        pull
        for pull in pulls
        if isinstance(pull, dict)
        and pull.get("merged_at")
        and isinstance(pull.get("base"), dict)
        and pull["base"].get("ref") == branch
        and pull.get("merge_commit_sha") == sha
        and isinstance(pull.get("number"), int)
    ]


@dataclass(frozen=True)
class ReviewRule:
    """What the branch's rules ask of a pull request's reviews."""

    approvals: int = 0
    code_owners: bool = False


def review_rule(rules: list[Any]) -> ReviewRule:
    """The strictest of the branch's `pull_request` rules ("Get rules for a branch"; a repository ruleset
    and an organization one may both apply): the most `required_approving_review_count`, and
    `require_code_owner_review` if any asks for it (rest-api-description, repository-rule-pull-request)."""
    parameters = [
        rule["parameters"]
        for rule in rules
        if isinstance(rule, dict)
        and rule.get("type") == "pull_request"
        and isinstance(rule.get("parameters"), dict)
    ]
    counts = [p.get("required_approving_review_count") for p in parameters]
    return ReviewRule(
        approvals=max((count for count in counts if isinstance(count, int)), default=0),
        code_owners=any(p.get("require_code_owner_review") is True for p in parameters),
    )


def approvers(pull: dict[str, Any], reviews: list[Any]) -> set[str]:
    """Who approved the pull request's final head commit and did not later request changes or see the
    approval dismissed: reviews come in chronological order ("List reviews for a pull request"); a
    dismissed review's state is DISMISSED; a COMMENTED review changes nothing. The author's own review
    never counts (GitHub does not let an author approve their own pull request)."""
    head = (pull.get("head") or {}).get("sha") if isinstance(pull.get("head"), dict) else None
    author = (pull.get("user") or {}).get("login") if isinstance(pull.get("user"), dict) else None
    latest: dict[str, tuple[str, str | None]] = {}
    for review in reviews:
        if not isinstance(review, dict) or not isinstance(review.get("user"), dict):
            continue
        login, state = review["user"].get("login"), review.get("state")
        if isinstance(login, str) and state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[login] = (state, review.get("commit_id"))
    return {
        login
        for login, (state, commit) in latest.items()
        if state == "APPROVED" and head is not None and commit == head and login != author
    }


def repository_of(url: str) -> str | None:
    """owner/name of a github.com remote URL, None for any other host."""
    match = _REMOTE.fullmatch(url.strip())
    return f"{match['owner']}/{match['name']}" if match else None


@dataclass(frozen=True)
class GitHubPulls:
    """The REST API client for that one question, with a read-only token."""

    token: str = field(repr=False)
    api: str = DEFAULT_API

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> GitHubPulls | None:
        token = environ.get(TOKEN, "").strip()
        if not token:
            return None
        return cls(token=token, api=environ.get(API_URL, "").rstrip("/") or DEFAULT_API)

    def vouch(
        self, repository: str, sha: str, branch: str, ownership: Ownership, merged_as: MergedAs
    ) -> str | None:
        """None if sha is the merge commit of a pull request merged into branch, exactly what GitHub
        makes of its final head commit (`merged_as`), with the approvals the branch's rules require on
        that commit, by reviewers with write access, a code owner of each owned path it changes among
        them if the rules ask for that (`ownership`: the base's CODEOWNERS rules and the paths sha
        changes, asked only then); otherwise why not. PullsError when GitHub does not answer."""
        candidates = merged_pulls(
            sha, branch, self._list(f"/repos/{repository}/commits/{sha}/pulls?per_page=100")
        )
        if not candidates:
            return f"not the merge commit of a pull request merged into {branch}"
        pull, refusals = None, []
        for candidate in candidates:
            head = candidate["head"].get("sha") if isinstance(candidate.get("head"), dict) else None
            why = (
                merged_as(candidate["number"], head)
                if isinstance(head, str) and _SHA.fullmatch(head)
                else "GitHub names no head commit of it"
            )
            if why is None:
                pull = candidate
                break
            refusals.append(f"not GitHub's merge of pull request #{candidate['number']}: {why}")
        if pull is None:
            return "; ".join(refusals)
        rule = review_rule(self._list(f"/repos/{repository}/rules/branches/{quote(branch, safe='')}"))
        if rule == ReviewRule():
            return None
        reviews = self._list(f"/repos/{repository}/pulls/{pull['number']}/reviews?per_page=100")
        approved = sorted(approvers(pull, reviews))
        answers: dict[str, bool] = {}

        def can_write(login: str) -> bool:
            if login not in answers:
                answers[login] = self._can_write(repository, login)
            return answers[login]

        # Ask about reviewers only until enough can write: anyone may approve a public repository's pull
        # request, and each reviewer is one more request.
        writers = 0
        for login in approved:
            if writers == rule.approvals:
                break
            writers += can_write(login)
        if writers < rule.approvals:
            readers = len(answers) - writers
            ignored = f"; {readers} approval(s) without write access do not count" if readers else ""
            return (
                f"pull request #{pull['number']} into {branch} has {writers} of the {rule.approvals} "
                f"approvals of its final commit the branch's rules require (merged around review?){ignored}"
            )
        if rule.code_owners:
            return self._unowned(pull["number"], branch, approved, can_write, ownership)
        return None

    @staticmethod
    def _unowned(
        number: int, branch: str, approved: list[str], can_write: Callable[[str], bool], ownership: Ownership
    ) -> str | None:
        """Why the pull request lacks a code owner's approval, or None: each changed path that has
        owners needs the approval of one of them with write access (GitHub counts no other owner)."""
        rules, paths = ownership()
        by_login = {f"@{login.lower()}": login for login in approved}
        lacking = [
            path
            for path in paths
            if (owners := owners_of(rules, path))
            and not any(owner in by_login and can_write(by_login[owner]) for owner in owners)
        ]
        if not lacking:
            return None
        more = f" and {len(lacking) - 3} more" if len(lacking) > 3 else ""
        return (
            f"pull request #{number} into {branch} changes {', '.join(lacking[:3])}{more} without the "
            "approval of a code owner of it, which the branch's rules require (merged around review?)"
        )

    def status(self, repository: str, sha: str, context: str) -> str | None:
        """The state of the newest status with that context on sha (GitHub lists them newest first);
        None if there is none. PullsError when GitHub does not answer."""
        for item in self._list(f"/repos/{repository}/commits/{sha}/statuses?per_page=100"):
            if isinstance(item, dict) and item.get("context") == context:
                return str(item.get("state"))
        return None

    def _can_write(self, repository: str, login: str) -> bool:
        """Whether login has write access (write, maintain or admin) to the repository, as GitHub answers
        now; a login GitHub does not know (a deleted account) has none."""
        path = f"/repos/{repository}/collaborators/{quote(login, safe='')}/permission"
        try:
            answer, _ = self._page(f"{self.api}{path}", f"GitHub ({self.api}) on GET {path}")
        except _NotFound:
            return False
        return isinstance(answer, dict) and answer.get("permission") in ("admin", "write")

    def _list(self, path: str) -> list[Any]:
        """GET path and every next page GitHub links (`Link: <...>; rel="next"`, "Using pagination in
        the REST API"); the JSON lists joined, or PullsError saying why not."""
        where = f"GitHub ({self.api}) on GET {path.split('?')[0]}"
        url: str | None = f"{self.api}{path}"
        items: list[Any] = []
        for _ in range(MAX_PAGES):
            if url is None:
                return items
            page, url = self._page(url, where)
            if not isinstance(page, list):
                raise PullsError(f"{where}: expected a JSON list, got {type(page).__name__}")
            items += page
        raise PullsError(f"{where}: more than {MAX_PAGES} pages; check the pull request by hand")

    def _page(self, url: str, where: str) -> tuple[Any, str | None]:
        request = urllib.request.Request(  # noqa: S310 - the scheme is the API URL's, https by default
            url,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "gitops-release",
            },
        )
        try:
            with _OPENER.open(request, timeout=TIMEOUT) as response:
                body = json.loads(response.read().decode("utf-8"))
                links = response.headers.get("Link") or ""
        except urllib.error.HTTPError as exc:
            raise (_NotFound if exc.code == 404 else PullsError)(f"{where}: {_refusal(exc)}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PullsError(f"{where}: unreachable ({reason}); re-run when GitHub answers") from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise PullsError(f"{where}: the answer is not JSON") from None
        following = _NEXT.search(links)
        # Only pages of the same API: the token goes nowhere else.
        if following and not following[1].startswith(f"{self.api}/"):
            raise PullsError(f"{where}: GitHub linked a next page outside {self.api}")
        return body, following[1] if following else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would repeat the Authorization header to wherever a redirect points: follow none. A
    renamed or transferred repository answers 301; the error then says so."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


def _refusal(exc: urllib.error.HTTPError) -> str:
    """What GitHub's error status means here (its body's `message`, and what to do)."""
    try:
        message = str(json.loads(exc.read().decode("utf-8")).get("message", ""))[:200]
    except (ValueError, AttributeError, OSError):
        message = ""
    said = f"HTTP {exc.code} {message!r}" if message else f"HTTP {exc.code}"
    # "Troubleshooting the REST API", Rate limit errors: the primary limit answers 403 or 429 with
    # x-ratelimit-remaining 0, a secondary one 403 or 429 with a message saying so (and maybe retry-after).
    limited = exc.headers.get("x-ratelimit-remaining") == "0" or exc.headers.get("retry-after") is not None
    if exc.code == 429 or (exc.code == 403 and (limited or "rate limit" in message.lower())):
        reset = exc.headers.get("x-ratelimit-reset") or exc.headers.get("retry-after") or "?"
        return f"{said}: rate limited (reset {reset}); re-run later"
    if exc.code in (301, 302, 307, 308):
        return f"{said}: the repository moved (renamed or transferred?): point the git remote at its new name"
    if exc.code == 401:
        return f"{said}: {TOKEN} is not a valid token (expired or revoked?): rotate it"
    if exc.code in (403, 404):
        return (
            f"{said}: {TOKEN} cannot read this repository's pull requests or commit statuses: it needs the "
            "fine-grained permissions Pull requests: read and Commit statuses: read on this repository (and "
            "Metadata: read, which every token has)"
        )
    return f"{said}; re-run when GitHub answers"
