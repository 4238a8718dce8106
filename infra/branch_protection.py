"""`main`'s protection as a GitHub repository ruleset: people land changes through a pull request that a
code owner (.github/CODEOWNERS) approved and whose CI check passed; the Jenkins deploy key is the only
bypass, so the bot's manifest-only commits still land. GitHub Actions may not approve pull requests, so
no workflow's token counts as a review. A one-person trial (`requiredApprovals` 0) asks for no approval,
of a code owner or anyone else.

A ruleset's bypass actor of type `DeployKey` carries no id (GitHub REST API, OpenAPI schema
`repository-ruleset-bypass-actor`: "If `actor_type` is `DeployKey`, this should be null", and bypass
mode `pull_request` "is not applicable for the `DeployKey` actor type"). It therefore admits every
deploy key of the repository that can push: the stack registers exactly one such key (Jenkins'; Flux's
is read-only), and whoever can add another one already administers the repository.

A bypass covers every rule of its ruleset, so a second ruleset keeps the branch's history with no bypass
at all: no force push, no deletion, for deploy keys too. The bot only ever fast-forwards; without it, a
stolen write key could move the branch back to any older commit the bot once signed, and Flux, which
checks signatures and not history, would deploy it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_github as github

# The check GitHub reports for the pull-request workflow's test job: a job's check is named by its
# `name:` (.github/workflows/pull-request.yaml, job `test`; tests/infra/test_branch_protection.py
# keeps the two in step).
REQUIRED_CHECK = "make test"
# Only a check run by GitHub Actions counts: without an integration id, a commit status of the same
# name from anyone who can write statuses (every collaborator with write access, Flux's commit-status
# token) would satisfy the rule. 15368 is GitHub Actions' app id (a check run's `app.id`; docs/security.md).
GITHUB_ACTIONS_APP_ID = 15368
TRIAL_WARNING = (
    "gitops-eks:requiredApprovals is 0: pull requests into {branch} merge without any review "
    "(a one-person trial); set it to 1 or more before a second person can push"
)
# The merge methods that put one commit on the branch's first-parent line, the one GitHub names as the
# pull request's `merge_commit_sha`: the history check vouches only for that commit (jenkins/pulls.py,
# docs/release.md "Merge methods"); a rebase merge of several commits puts the others there too, and
# the bot would refuse them.
MERGE_METHODS = ("merge", "squash")


@dataclass(frozen=True)
class BranchProtectionArgs:
    repository_name: str
    branch: str
    required_approvals: int = 1
    """0 = a one-person trial: no review, and no rule that only a second person could satisfy."""


class BranchProtection(pulumi.ComponentResource):
    """A ruleset on the branch Flux follows: no deletion, no force push, pull requests with approvals
    (a code owner's among them, not the last pusher's own) and a green CI check; only deploy keys bypass.
    Workflows cannot approve pull requests. With 0 approvals (a one-person trial) no approval is asked."""

    def __init__(
        self, name: str, args: BranchProtectionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("gitops:infra:BranchProtection", name, None, opts)
        trial = args.required_approvals == 0
        if trial:
            pulumi.log.warn(TRIAL_WARNING.format(branch=args.branch), resource=self)
        branch_only = github.RepositoryRulesetConditionsArgs(
            ref_name=github.RepositoryRulesetConditionsRefNameArgs(
                includes=[f"refs/heads/{args.branch}"], excludes=[]
            )
        )
        self.ruleset = github.RepositoryRuleset(
            f"{name}-ruleset",
            name=f"protect {args.branch}",
            repository=args.repository_name,
            target="branch",
            enforcement="active",
            conditions=branch_only,
            bypass_actors=[
                github.RepositoryRulesetBypassActorArgs(actor_type="DeployKey", bypass_mode="always")
            ],
            rules=github.RepositoryRulesetRulesArgs(
                deletion=True,
                non_fast_forward=True,
                pull_request=github.RepositoryRulesetRulesPullRequestArgs(
                    required_approving_review_count=args.required_approvals,
                    dismiss_stale_reviews_on_push=True,
                    # "the most recent reviewable push must be approved by someone other than the person
                    # who pushed it": with nobody else to approve, a solo maintainer could never merge.
                    require_last_push_approval=not trial,
                    required_review_thread_resolution=True,
                    # A code owner's approval is an approval: with nobody else to approve, it would block
                    # the trial the same way.
                    require_code_owner_review=not trial,
                    allowed_merge_methods=list(MERGE_METHODS),
                ),
                required_status_checks=github.RepositoryRulesetRulesRequiredStatusChecksArgs(
                    required_checks=[
                        github.RepositoryRulesetRulesRequiredStatusChecksRequiredCheckArgs(
                            context=REQUIRED_CHECK, integration_id=GITHUB_ACTIONS_APP_ID
                        )
                    ],
                    strict_required_status_checks_policy=True,
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Declared, so a setting changed by hand is put back at the next `pulumi up`: a workflow token
        # that could approve would be a reviewer that anyone who can push a workflow controls. `read`
        # keeps GITHUB_TOKEN read-only wherever a workflow asks for nothing (ours ask per job).
        self.workflow_permissions = github.WorkflowRepositoryPermissions(
            f"{name}-workflow-permissions",
            repository=args.repository_name,
            can_approve_pull_request_reviews=False,
            default_workflow_permissions="read",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.history_ruleset = github.RepositoryRuleset(
            f"{name}-history",
            name=f"keep {args.branch} history",
            repository=args.repository_name,
            target="branch",
            enforcement="active",
            conditions=branch_only,
            rules=github.RepositoryRulesetRulesArgs(deletion=True, non_fast_forward=True),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"ruleset": self.ruleset.name, "history_ruleset": self.history_ruleset.name})
