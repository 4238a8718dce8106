"""The trust anchor: the commit at the head of the branch when the stack was created, recorded once.

With signing on, the release bot signs on top of the branch only when every commit on its first-parent
line since the bot's newest signed commit is the bot's or a reviewed merged pull request's. A
repository the bot has never released has no such commit; the anchor stands in for it, so the first
release needs no human push.
It is recorded once: the SSM parameter keeps the value it was created with (`ignore_changes`), so a
later `pulumi up`, after someone pushed around review, cannot bless that push. An operator re-anchors
deliberately by replacing the parameter (`pulumi up --replace <its URN>`, docs/release.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_github as github

from infra.config import PROJECT
from infra.errors import ConfigError

_FULL_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class TrustAnchorArgs:
    repository: str
    """`owner/name`, for the parameter's description."""
    branch: str
    head: str
    """The branch's head now (branch_head): recorded only when the parameter is created; or the commit the
    operator named (`pinned`)."""
    pinned: bool = False
    """`head` is `gitops-eks:trustAnchor`, the commit the operator checked: recorded as given on every
    update (re-anchoring without reading a head that may have moved since the check)."""


def branch_head(repository_name: str, branch: str) -> str:
    """The SHA at the head of branch, as GitHub answers now; ConfigError when the branch has none.

    terraform-provider-github's data source (github/data_source_github_branch.go) reads the ref with
    `GET /repos/{owner}/{repo}/git/ref/heads/{branch}` and, on a 404, answers with no error and no `sha`.
    """
    try:
        sha = github.get_branch(repository=repository_name, branch=branch).sha
    except Exception as error:  # the invoke's failure carries the provider's message only
        raise ConfigError(
            f"{PROJECT}:branch: GitHub refused reading branch {branch!r} of {repository_name} ({error}); "
            "check github:token and the repository"
        ) from None
    if not sha or not _FULL_SHA.fullmatch(sha):
        raise ConfigError(
            f"{PROJECT}:branch: {repository_name} has no branch {branch!r} (GitHub answered {sha!r}); push "
            "the repository's first commit to it, or set the branch Flux follows"
        )
    return sha


class TrustAnchor(pulumi.ComponentResource):
    """An SSM parameter holding the branch's head at creation; `commit` is what the release agent gets
    as GITOPS_TRUST_ANCHOR."""

    def __init__(self, name: str, args: TrustAnchorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gitops:infra:TrustAnchor", name, None, opts)
        self.parameter = aws.ssm.Parameter(
            f"{name}-commit",
            type="String",
            # Not secret: a commit id. `insecure_value` keeps it out of the secret-marked `value`.
            insecure_value=args.head,
            description=(
                f"The release bot's trust anchor on {args.repository}:{args.branch}: the head when the "
                "stack was created, or the commit gitops-eks:trustAnchor names (docs/release.md)."
            ),
            # The engine keeps the state's value for an ignored input on every later update, and takes
            # the program's value only when the resource is created, or replaced with --replace. A pinned
            # anchor is the operator's statement, so it is recorded as given.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=[] if args.pinned else ["insecureValue"]),
        )
        self.commit: pulumi.Output[str] = self.parameter.insecure_value
        self.urn_to_replace: pulumi.Output[str] = self.parameter.urn
        self.register_outputs({"commit": self.commit})
