"""`make preflight` (infra/preflight) against moto, plane/fakeaws.py (the EKS and Service Quotas calls moto
lacks) and plane/fakegithubapi.py, which answers with GitHub's status codes, bodies and headers:

- 404 `{"message": "Not Found", "documentation_url", "status": "404"}` for a user that does not exist
  (github/docs content/rest/using-the-rest-api/troubleshooting-the-rest-api.md, "404 Not Found"; the body
  is github/rest-api-description's components/schemas/basic-error);
- 403 `Resource not accessible by personal access token` with `X-Accepted-GitHub-Permissions: name=level`
  for a permission the token lacks (same page, "Resource not accessible"), 422 `Invalid request` for an
  allowed request without its required fields (same page, "Invalid request");
- a private repository on Free: no environments, no required reviewers, no rulesets (github/docs
  data/reusables/gated-features/environments.md and repo-rules.md), and the rulesets endpoint's 403
  `Upgrade to GitHub Pro or make this repository public to enable this feature.`
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests

from infra.codeowners import render
from infra.config import RELEASE_KEYS
from infra.github_permissions import API_NAMES, stack_types, token_permissions
from infra.preflight import __main__ as cli
from infra.preflight.github import accepted_permissions, plan_features, probes
from plane.fakeaws import standard_support_until
from plane.preflightworld import (
    CIPHERTEXT,
    PULLS_TOKEN,
    REPOSITORY,
    REVIEWER,
    ROOT,
    STACK,
    TOKEN,
    World,
    world,
)
from tests.infra.conftest import Program

pytestmark = pytest.mark.timeout(120)
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"


@pytest.fixture
def fake(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    """A world in which only the Pulumi CLI is missing; each test changes what it is about."""
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    with world(moto_server) as w:
        for name, value in w.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        # No Pulumi CLI here (MACHINE.md): the stack file is read, and the backend check says so.
        monkeypatch.setenv(
            "PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not _has_pulumi(p))
        )
        yield w


def _has_pulumi(directory: str) -> bool:
    return (Path(directory) / "pulumi").exists()


def preflight(w: World, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str], str]:
    """Run preflight in-process: (exit code, check -> its row's text, the whole output)."""
    code = cli.main(["--stack", STACK, "--root", str(w.root)])
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines():
        if line[:1] in {"✓", "✗", "-"}:
            check = line[3:].split("  ")[0].strip()
            rows[check] = line
    return code, rows, out


def fix_after(out: str, check: str) -> str:
    lines = out.splitlines()
    index = next(i for i, line in enumerate(lines) if line[3:].startswith(check))
    return lines[index + 1].strip()


def test_a_ready_world_blocks_only_on_the_missing_pulumi_cli(
    fake: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, rows, out = preflight(fake, capsys)
    assert code == 1
    assert [check for check, line in rows.items() if line.startswith("✗")] == ["Pulumi backend"]
    assert "the Pulumi CLI is not installed" in rows["Pulumi backend"]
    assert rows["EKS 1.35"].startswith("✓") and "until 2027-03-27" in rows["EKS 1.35"]
    assert rows[f"reviewer {REVIEWER}"].startswith("✓")
    assert rows["pullsToken"].startswith("-") and "encrypted in the stack file" in rows["pullsToken"]
    assert rows["git and ssh"].startswith("✓")
    assert "1 blocker(s)" in out


def test_a_machine_without_ssh_is_a_blocker_naming_it(
    fake: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`pulumi up` pushes the commit that switches signing on with git over SSH (infra/signing_switch.py)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    monkeypatch.setenv("PATH", str(bin_dir))
    code, rows, out = preflight(fake, capsys)
    assert code == 1
    assert rows["git and ssh"].startswith("✗") and "ssh not found on PATH" in rows["git and ssh"]
    assert (
        fix_after(out, "git and ssh")
        == "fix: install git and an OpenSSH client (e.g. `apt-get install git openssh-client`)"
    )


def test_unknown_reviewer_is_named_with_githubs_404(fake: World, capsys: pytest.CaptureFixture[str]) -> None:
    # GET /users/{username} for a login no account has: 404 "Not Found" (basic-error body).
    fake.set_config(
        "gitops-eks:preview", {"environment": "preview", "reviewers": [REVIEWER, "ghost-maintainer"]}
    )
    code, rows, out = preflight(fake, capsys)
    assert code == 1
    assert rows["reviewer ghost-maintainer"].startswith("✗")
    assert "GitHub answered 404 'Not Found': no such GitHub user" in rows["reviewer ghost-maintainer"]
    assert fix_after(out, "reviewer ghost-maintainer") == "fix: fix gitops-eks:preview.reviewers"
    assert rows[f"reviewer {REVIEWER}"].startswith("✓")


def test_a_token_github_does_not_know_is_named(fake: World, capsys: pytest.CaptureFixture[str]) -> None:
    # 401 "Bad credentials" (basic-error body) for a revoked, expired or mistyped token.
    fake.github.tokens.clear()
    code, rows, _ = preflight(fake, capsys)
    assert code == 1
    assert (
        rows["GitHub token"].startswith("✗")
        and "GitHub answered 401 'Bad credentials'" in rows["GitHub token"]
    )
    assert "reviewer octo-reviewer" not in rows  # nothing else is asked with a token GitHub refuses


def test_reviewer_without_access_to_the_repository_blocks(
    fake: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # "Get repository permissions for a user": permission is one of admin, write, read, none.
    fake.github.users.add("outsider")
    fake.set_config("gitops-eks:preview", {"environment": "preview", "reviewers": ["outsider"]})
    code, rows, _ = preflight(fake, capsys)
    assert code == 1
    assert "has no access to example-org/hello-gitops (permission 'none')" in rows["reviewer outsider"]


def test_a_reviewer_who_can_only_read_blocks_unless_no_review_is_required(
    fake: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # "About code owners": code owners must have write permissions for the repository; main's ruleset
    # requires a code owner's review whenever requiredApprovals is above 0 (infra/branch_protection.py).
    fake.github.repositories[REPOSITORY].collaborators[REVIEWER] = "read"
    code, rows, out = preflight(fake, capsys)
    assert code == 1 and rows[f"reviewer {REVIEWER}"].startswith("✗")
    assert "can only read (read)" in rows[f"reviewer {REVIEWER}"]
    assert fix_after(out, f"reviewer {REVIEWER}").startswith(f"fix: give {REVIEWER} write access")
    fake.set_config("gitops-eks:requiredApprovals", "0")
    _, rows, _ = preflight(fake, capsys)
    assert rows[f"reviewer {REVIEWER}"].startswith("✓") and "can read (read)" in rows[f"reviewer {REVIEWER}"]


def test_a_reviewer_with_a_custom_role_is_judged_by_its_base_permission(
    fake: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # "Get repository permissions for a user": `permission` is the base role (admin, write, read, none;
    # maintain maps to write, triage to read), `role_name` the assigned role, custom roles included.
    repository = fake.github.repositories[REPOSITORY]
    repository.roles[REVIEWER] = "release-approver"
    _, rows, _ = preflight(fake, capsys)
    assert rows[f"reviewer {REVIEWER}"].startswith("✓")
    assert "(write, role release-approver)" in rows[f"reviewer {REVIEWER}"]


def test_codeowners_is_read_from_the_branch_github_enforces_it_from(
    fake: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """GitHub reads the code owners file of the pull request's base branch ("About code owners"); preflight
    reads it there ("Get repository content": `encoding` base64, `content`; rest-api-description's
    content-file schema) and compares it with what `pulumi up` requires (infra/codeowners.py)."""
    check = "CODEOWNERS on main"
    _, rows, _ = preflight(fake, capsys)
    assert rows[check].startswith("✓")
    fake.github.users.add("octo-second")
    fake.github.repositories[REPOSITORY].collaborators["octo-second"] = "write"
    reviewers = [REVIEWER, "octo-second"]
    fake.set_config("gitops-eks:preview", {"environment": "preview", "reviewers": reviewers})
    code, rows, out = preflight(fake, capsys)
    assert code == 1 and rows[check].startswith("✗")
    assert ".github/CODEOWNERS on main does not name exactly the reviewers" in rows[check]
    assert "@octo-reviewer @octo-second) and push it to main before `pulumi up`" in fix_after(out, check)
    fake.github.repositories[REPOSITORY].files[".github/CODEOWNERS"] = render(reviewers)
    _, rows, _ = preflight(fake, capsys)
    assert rows[check].startswith("✓")
    del fake.github.repositories[REPOSITORY].files[".github/CODEOWNERS"]
    _, rows, _ = preflight(fake, capsys)
    assert rows[check].startswith("✗") and "GitHub answered 404 'Not Found'" in rows[check]
    # Previews off without reviewers: `pulumi up` only warns that the file is the operator's.
    fake.set_config("gitops-eks:preview", {"enabled": False})
    _, rows, _ = preflight(fake, capsys)
    assert rows[check].startswith("-")


def test_previews_need_the_pulumi_team_variable_the_workflow_reads(
    fake: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """.github/workflows/pull-request.yaml asks Pulumi Cloud for `team:${{ vars.PULUMI_PREVIEW_TEAM }}`, a
    variable set by hand (docs/security.md). "Get a repository variable": 404 when it is not there; an
    organization variable shared with the repository serves as well ("List repository organization
    variables")."""
    check = "variable PULUMI_PREVIEW_TEAM"
    repository = fake.github.repositories[REPOSITORY]
    _, rows, _ = preflight(fake, capsys)
    assert rows[check].startswith("✓") and "team 'preview-readers'" in rows[check]
    repository.variables.clear()
    code, rows, out = preflight(fake, capsys)
    assert code == 1 and rows[check].startswith("✗") and "GitHub answered 404 'Not Found'" in rows[check]
    assert f"`gh variable set PULUMI_PREVIEW_TEAM --repo {REPOSITORY} --body <team>`" in fix_after(out, check)
    repository.variables["PULUMI_PREVIEW_TEAM"] = " "  # `team:` alone names no team
    _, rows, _ = preflight(fake, capsys)
    assert rows[check].startswith("✗") and "the repository variable is empty" in rows[check]
    repository.organization_variables["PULUMI_PREVIEW_TEAM"] = "preview-readers"
    _, rows, _ = preflight(fake, capsys)
    assert rows[check].startswith("✓") and "organization variable" in rows[check]
    fake.set_config("gitops-eks:preview", {"enabled": False})
    _, rows, _ = preflight(fake, capsys)
    assert check not in rows


def test_missing_permission_is_read_from_x_accepted_github_permissions(
    fake: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # A token without "Webhooks" gets 403 with X-Accepted-GitHub-Permissions naming the permission.
    fake.github.tokens[TOKEN].discard("repository_hooks=write")
    code, rows, out = preflight(fake, capsys)
    assert code == 1
    row = rows["permission repository_hooks=write"]
    assert row.startswith("✗")
    assert "GitHub answered 403 'Resource not accessible by personal access token'" in row
    assert "it accepts repository_hooks=write" in row
    assert fix_after(out, "permission repository_hooks=write").startswith(
        "fix: edit the token: grant repository_hooks=write"
    )
    assert rows["permission administration=write"].startswith("✓")


def test_a_token_that_cannot_read_branches_is_a_blocker(
    fake: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # fine-grained-pat-permissions.json: "Get a branch" (GET /repos/{owner}/{repo}/branches/{branch}) is
    # Contents: read, which the stack's getBranch needs (the release's trust anchor).
    fake.github.tokens[TOKEN].discard("contents=read")
    code, rows, out = preflight(fake, capsys)
    assert code == 1
    assert rows["branch main"].startswith("✗")
    assert "GitHub answered 403 'Resource not accessible by personal access token'" in rows["branch main"]
    assert fix_after(out, "branch main").startswith("fix: edit the token: grant contents=read")


def test_environment_permissions_are_checked_once_the_environment_exists(
    fake: World, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.github.repositories[REPOSITORY].environments.add("preview")
    # "Create an environment variable" takes Environments and Variables, both write (one request).
    variables = "permission environments=write,actions_variables=write"
    _, rows, _ = preflight(fake, capsys)
    assert rows[variables].startswith("✓") and rows["permission actions=read"].startswith("✓")
    fake.github.tokens[TOKEN].discard("actions_variables=write")
    fake.github.tokens[TOKEN].discard("actions=read")
    _, rows, _ = preflight(fake, capsys)
    assert rows[variables].startswith("✗")
    assert "it accepts environments=write and actions_variables=write" in rows[variables]
    # "Get an environment" takes Actions: read.
    assert rows["permission actions=read"].startswith("✗")


def test_pages_permission_matters_only_for_a_repository_with_a_pages_site(
    fake: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # terraform-provider-github data_source_github_repository.go reads the Pages site (GET .../pages,
    # Pages: read) only when the repository has one.
    fake.github.tokens[TOKEN].discard("pages=read")
    code, rows, _ = preflight(fake, capsys)
    assert rows["permission pages=read"].startswith("-")
    assert "no Pages site" in rows["permission pages=read"]
    assert not any(r.startswith("✗") for k, r in rows.items() if k.startswith("permission"))
    fake.github.repositories[REPOSITORY].has_pages = True
    code, rows, _ = preflight(fake, capsys)
    assert code == 1 and rows["permission pages=read"].startswith("✗")


@pytest.mark.parametrize("previews", [True, False], ids=["previews on", "previews off"])
def test_every_permission_the_readme_lists_is_proven_by_one_check(previews: bool) -> None:
    """The probes come from the map the README's list is tested against (test_github_permissions.py ties
    `stack_types` to what the program declares either way): each permission of `github:token` is probed once,
    or proven by the branch check (contents) or granted to every token (metadata)."""
    probed = [p for probe in probes(previews) for p in probe.permission.split(",")]
    assert len(probed) == len(set(probed))
    listed = {
        f"{API_NAMES[name]}={access}" for name, access in token_permissions(stack_types(previews)).items()
    }
    assert set(probed) == listed - {"contents=read", "metadata=read"}
    assert {"contents=read", "metadata=read"} <= listed


# The README's token for a stack with previews off: Administration and Webhooks, Read and write; Contents
# and Metadata, Read-only (as GitHub's API names them: fine-grained-pat-permissions.json).
PREVIEWS_OFF_TOKEN = {"administration=write", "repository_hooks=write", "contents=read", "metadata=read"}


def test_a_previews_off_stack_needs_only_the_previews_off_token(
    fake: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """A private repository on Team (environments, but no required reviewers for private repositories:
    environments.md) with previews off: nothing about the preview gate may block."""
    fake.set_config("gitops-eks:preview", {"enabled": False})
    fake.github.tokens[TOKEN] = set(PREVIEWS_OFF_TOKEN)
    fake.github.repositories[REPOSITORY].private = True
    fake.github.organizations["example-org"] = "team"
    _, rows, out = preflight(fake, capsys)
    assert [check for check, line in rows.items() if line.startswith("✗")] == ["Pulumi backend"], out
    assert not any(check.startswith("permission environments") for check in rows)
    assert "permission actions=read" not in rows
    for feature in ("GitHub environments", "GitHub required reviewers"):
        assert rows[feature].startswith("-") and "previews are off" in rows[feature]
    assert rows["GitHub rulesets"].startswith("✓")


def test_a_later_environment_s_stack_asks_only_for_what_it_declares(
    fake: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """A prod stack that takes its releases from dev's (releaseFrom) declares Flux's deploy key and
    webhook, its VPC and cluster: the token needs Administration and Webhooks only (the map tied to the
    program in test_github_permissions.py), no Jenkins counts against the vCPUs, and the pulls token is
    the release side's."""
    fake.set_config("gitops-eks:environment", "prod")
    fake.set_config("gitops-eks:releaseFrom", "example-org/gitops-eks/dev")
    for key in RELEASE_KEYS:
        fake.set_config(f"gitops-eks:{key}", None)
    fake.github.tokens[TOKEN] = {"administration=write", "repository_hooks=write", "metadata=read"}
    code, rows, out = preflight(fake, capsys)
    assert code == 1, out  # the Pulumi CLI is missing here
    assert [check for check, line in rows.items() if line.startswith("✗")] == ["Pulumi backend"], out
    # The minimal token cannot read the branch; Flux reads it with its deploy key.
    assert (
        rows["branch main"].startswith("-") and "grant the token Contents: Read-only" in rows["branch main"]
    )
    assert rows["pullsToken"].startswith("-")
    assert "the release side's stack example-org/gitops-eks/dev holds it" in rows["pullsToken"]
    assert "jenkins" not in rows["quota On-Demand standard vCPUs"]
    assert "vCPUs of 3 x t3.medium of" in rows["quota On-Demand standard vCPUs"]
    assert rows["GitHub OIDC provider"].startswith("-")


def later_environment(fake: World, permissions: set[str]) -> None:
    """The world's stack as prod's: releaseFrom set, the release side's keys removed."""
    fake.set_config("gitops-eks:environment", "prod")
    fake.set_config("gitops-eks:releaseFrom", "example-org/gitops-eks/dev")
    for key in RELEASE_KEYS:
        fake.set_config(f"gitops-eks:{key}", None)
    fake.github.tokens[TOKEN] = permissions


def test_a_later_environment_s_missing_branch_blocks(fake: World, capsys: pytest.CaptureFixture[str]) -> None:
    later_environment(
        fake, {"administration=write", "repository_hooks=write", "metadata=read", "contents=read"}
    )
    fake.set_config("gitops-eks:branch", "no-such-branch")
    code, rows, out = preflight(fake, capsys)
    assert code == 1
    assert rows["branch no-such-branch"].startswith("✗"), out
    assert "set gitops-eks:branch to the branch the release side" in fix_after(out, "branch no-such-branch")


def test_a_later_environment_s_status_token_is_checked_when_the_branch_can_be_read(
    fake: World, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status_token = "github_pat_status_token_for_preflight"
    readable = {"administration=write", "repository_hooks=write", "metadata=read", "contents=read"}
    later_environment(fake, readable)
    fake.github.tokens[status_token] = {"statuses=write", "metadata=read"}
    secrets = {"github:token": TOKEN, "gitops-eks:commitStatusToken": status_token}
    pulumi_cli(fake, tmp_path, monkeypatch, secrets)
    _code, rows, out = preflight(fake, capsys)
    assert rows["branch main"].startswith("✓"), out
    assert rows["commitStatusToken permission statuses=write"].startswith("✓"), out
    # Without Contents the branch's head is unknown: the token is not checked, and the row says why.
    fake.github.tokens[TOKEN] = readable - {"contents=read"}
    _code, rows, out = preflight(fake, capsys)
    assert rows["commitStatusToken"].startswith("-"), out
    assert "github:token could not read" in rows["commitStatusToken"]


def test_a_private_repository_needs_the_enterprise_key_as_pulumi_up_does(
    fake: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """infra/ci_preview.py refuses a private repository's preview without preview.githubEnterprise, even
    when the owner's plan would hold the gate; with it, an unreadable plan is taken from the key."""
    fake.github.repositories[REPOSITORY].private = True
    fake.github.organizations["example-org"] = "enterprise"
    _, rows, out = preflight(fake, capsys)
    assert rows["GitHub required reviewers"].startswith("✗")
    assert "until gitops-eks:preview.githubEnterprise says so" in rows["GitHub required reviewers"]
    assert "'gitops-eks:preview.githubEnterprise' true" in fix_after(out, "GitHub required reviewers")
    fake.set_config(
        "gitops-eks:preview", {"environment": "preview", "reviewers": [REVIEWER], "githubEnterprise": True}
    )
    del fake.github.organizations["example-org"]  # GET /orgs/{org} without the plan: not an owner's token
    _, rows, out = preflight(fake, capsys)
    for feature in ("GitHub environments", "GitHub required reviewers", "GitHub rulesets"):
        assert rows[feature].startswith("✓"), out
        assert "on plan enterprise (gitops-eks:preview.githubEnterprise)" in rows[feature]


def test_private_repository_on_free_has_no_preview_gate(
    fake: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # environments.md: environments in private repositories need Pro, Team or Enterprise; required reviewers
    # on Free, Pro and Team are for public repositories only. repo-rules.md: rulesets likewise.
    fake.github.repositories[REPOSITORY].private = True
    code, rows, out = preflight(fake, capsys)
    assert code == 1
    for feature in ("GitHub environments", "GitHub required reviewers", "GitHub rulesets"):
        assert rows[feature].startswith("✗"), rows[feature]
        assert "not offered: private repository, owner example-org on plan free" in rows[feature]
    assert (
        "Upgrade to GitHub Pro or make this repository public to enable this feature."
        in rows["GitHub rulesets (answer)"]
    )
    assert "turn pull-request previews off" in fix_after(out, "GitHub required reviewers")


def test_private_repository_on_team_still_lacks_required_reviewers(
    fake: World, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.github.repositories[REPOSITORY].private = True
    fake.github.organizations["example-org"] = "team"
    _, rows, _ = preflight(fake, capsys)
    assert rows["GitHub environments"].startswith("✓")
    assert rows["GitHub rulesets"].startswith("✓")
    assert rows["GitHub required reviewers"].startswith("✗")


def test_existing_oidc_provider_is_found_and_reused(fake: World, capsys: pytest.CaptureFixture[str]) -> None:
    iam = boto3.client("iam")
    arn = iam.create_open_id_connect_provider(
        Url="https://token.actions.githubusercontent.com",
        ClientIDList=["sts.amazonaws.com"],
        ThumbprintList=["a" * 40],
    )["OpenIDConnectProviderArn"]
    _, rows, _ = preflight(fake, capsys)
    assert rows["GitHub OIDC provider"].startswith("✓")
    assert (
        f"exists ({arn}) with the audience sts.amazonaws.com: the stack reuses it"
        in rows["GitHub OIDC provider"]
    )


def test_an_existing_oidc_provider_without_the_sts_audience_blocks(
    fake: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # aws-actions/configure-aws-credentials README, "Configuring OIDC": the audience is sts.amazonaws.com.
    # AddClientIDToOpenIDConnectProvider adds one (IAM API reference; the AWS CLI's
    # `add-client-id-to-open-id-connect-provider --client-id --open-id-connect-provider-arn`).
    iam = boto3.client("iam")
    arn = iam.create_open_id_connect_provider(
        Url="https://token.actions.githubusercontent.com", ClientIDList=["my-app"], ThumbprintList=["a" * 40]
    )["OpenIDConnectProviderArn"]
    code, rows, out = preflight(fake, capsys)
    assert code == 1
    row = rows["GitHub OIDC provider"]
    assert row.startswith("✗") and "without the audience sts.amazonaws.com (it lists my-app)" in row
    assert fix_after(out, "GitHub OIDC provider") == (
        "fix: `aws iam add-client-id-to-open-id-connect-provider --client-id sts.amazonaws.com "
        f"--open-id-connect-provider-arn {arn}`"
    )
    # Previews off: the stack neither reads nor declares a provider.
    fake.set_config("gitops-eks:preview", {"enabled": False})
    _, rows, _ = preflight(fake, capsys)
    assert rows["GitHub OIDC provider"].startswith("-")


def test_configured_oidc_provider_that_does_not_exist_blocks(
    fake: World, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    fake.set_config(
        "gitops-eks:preview", {"environment": "preview", "reviewers": [REVIEWER], "oidcProviderArn": missing}
    )
    code, rows, _ = preflight(fake, capsys)
    assert code == 1
    assert "which this account does not have" in rows["GitHub OIDC provider"]


def test_eks_version_out_of_standard_support_blocks(fake: World, capsys: pytest.CaptureFixture[str]) -> None:
    fake.aws.versions["1.35"] = ("EXTENDED_SUPPORT", standard_support_until(2027, 3, 27)[1])
    code, rows, _ = preflight(fake, capsys)
    assert code == 1
    assert rows["EKS 1.35"].startswith("✗") and "EXTENDED_SUPPORT" in rows["EKS 1.35"]


# AWS's default vCPUs of the dev stack's instance types: Amazon EC2 User Guide, "General purpose instances",
# Hardware specifications (docs.aws.amazon.com/AWSEC2/latest/UserGuide/general-purpose-instances.html).
DEFAULT_VCPUS = {"t3.medium": 2, "t3.large": 2}


def declared_instances(program: Program) -> Counter[str]:
    """The instances the program may run at once: each node group and Auto Scaling group at its maximum
    (its launch template's instance type), and each EC2 instance."""
    templates = {f"{r.name}-id": r.inputs.get("instanceType") for r in program.of_type(LAUNCH_TEMPLATE)}
    running: Counter[str] = Counter()
    for group in program.of_type("eks:index:ManagedNodeGroup"):
        running[group.inputs["instanceTypes"][0]] += group.inputs["scalingConfig"]["maxSize"]
    for group in program.of_type("aws:autoscaling/group:Group"):
        running[templates[group.inputs["launchTemplate"]["id"]]] += group.inputs["maxSize"]
    for instance in program.of_type("aws:ec2/instance:Instance"):
        running[instance.inputs["instanceType"]] += 1
    return running


def test_default_vcpu_quota_does_not_fit_the_stack(
    fake: World, capsys: pytest.CaptureFixture[str], dev_program: Program
) -> None:
    # An account that never raised it: AWS's default of 5 vCPUs (GetAWSDefaultServiceQuota after
    # GetServiceQuota's NoSuchResourceException). What the dev stack declares (the world's stack file is
    # Pulumi.dev.yaml plus names and CIDRs): nodes, the controller, and both agent pools at their maximum.
    running = declared_instances(dev_program)
    assert running == {"t3.medium": 4, "t3.large": 4}
    needed = sum(DEFAULT_VCPUS[t] * n for t, n in running.items())
    fake.aws.applied.clear()
    code, rows, out = preflight(fake, capsys)
    assert code == 1
    row = rows["quota On-Demand standard vCPUs"]
    assert row.startswith("✗") and f"0 used + {needed} for vCPUs of 4 x t3.large, 4 x t3.medium of 5" in row
    assert f"--service-code ec2 --quota-code L-1216C47A --desired-value {needed}" in fix_after(
        out, "quota On-Demand standard vCPUs"
    )


def test_elastic_ips_in_use_count_against_the_quota(fake: World, capsys: pytest.CaptureFixture[str]) -> None:
    ec2 = boto3.client("ec2")
    for _ in range(5):
        ec2.allocate_address(Domain="vpc")
    _, rows, _ = preflight(fake, capsys)
    assert rows["quota Elastic IPs"].startswith("✗") and "5 used + 1" in rows["quota Elastic IPs"]


def pulumi_cli(
    w: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    secrets: dict[str, str],
    backend_url: str = "https://app.pulumi.com/octo-admin",
) -> None:
    """A stand-in Pulumi CLI on PATH: `pulumi config --json --show-secrets` prints the stack file in that
    command's shape (pulumi/pulumi pkg/cmd/pulumi/config/config.go, configValueJSON: {"value", "objectValue",
    "secret"}), with `secrets` as the decrypted values; `pulumi whoami --verbose`: a Pulumi Cloud user."""
    import yaml

    config = yaml.safe_load(w.stack_file().read_text())["config"]
    listing = {
        key: {"value": value if isinstance(value, str) else json.dumps(value), "secret": False}
        for key, value in config.items()
        if value != CIPHERTEXT
    }
    listing.update({key: {"value": value, "secret": True} for key, value in secrets.items()})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)  # a second call serves the stack file as it is then
    (bin_dir / "listing.json").write_text(json.dumps(listing))
    script = bin_dir / "pulumi"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f'  config) cat "{bin_dir}/listing.json" ;;\n'
        f'  whoami) echo "User: octo-admin"; echo "Backend URL: {backend_url}" ;;\n'
        "  *) exit 2 ;;\n"
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_the_stack_file_is_read_through_the_pulumi_cli_when_there_is_one(
    fake: World, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the CLI, `pulumi config --json --show-secrets` is the source, and `pulumi whoami` answers for the
    backend."""
    pulumi_cli(fake, tmp_path, monkeypatch, {"github:token": TOKEN, "gitops-eks:pullsToken": PULLS_TOKEN})
    monkeypatch.delenv("GITHUB_TOKEN")  # the token comes from `pulumi config` now
    code, rows, out = preflight(fake, capsys)
    assert "config from pulumi config" in out
    assert rows["Pulumi backend"].startswith("✓") and "octo-admin" in rows["Pulumi backend"]
    assert rows["Pulumi Cloud for previews"].startswith("✓")
    assert code == 0, out
    assert TOKEN not in out and PULLS_TOKEN not in out


def test_the_release_cannot_run_without_the_pulls_token(fake: World) -> None:
    # jenkins/Jenkinsfile binds the credential gitops-pulls-token, which the stack makes from pullsToken: the
    # stack's config refuses it unset, and preflight, which runs that check, exits 2 with its message.
    fake.set_config("gitops-eks:pullsToken", None)
    run = run_cli("--stack", STACK, "--root", str(fake.root), env={**os.environ})
    assert run.returncode == 2
    # fine-grained-pat-permissions.json: "List pull requests associated with a commit" is Pull requests:
    # read (docs/verified-identifiers.md).
    assert "gitops-eks:pullsToken: missing; set it: `pulumi config set --secret gitops-eks:pullsToken`" in (
        run.stderr
    )
    assert "only Pull requests: Read-only" in run.stderr


def test_the_pulls_token_is_probed_with_the_releases_own_request(
    fake: World, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET /repos/{owner}/{repo}/commits/{sha}/pulls: 200 with the permission, else 403 naming it in
    X-Accepted-GitHub-Permissions."""
    pulumi_cli(fake, tmp_path, monkeypatch, {"github:token": TOKEN, "gitops-eks:pullsToken": PULLS_TOKEN})
    check = "pullsToken permission pull_requests=read"
    _, rows, _ = preflight(fake, capsys)
    assert rows[check].startswith("✓")
    assert ("GET", f"/repos/{REPOSITORY}/commits/{'a' * 40}/pulls") in fake.github.requests
    # Promotion and `status` read Flux's reports with it: "List commit statuses for a reference",
    # Commit statuses: read (fine-grained-pat-permissions.json, docs/verified-identifiers.md).
    statuses = "pullsToken permission statuses=read"
    assert rows[statuses].startswith("✓")
    assert ("GET", f"/repos/{REPOSITORY}/commits/{'a' * 40}/statuses") in fake.github.requests
    fake.github.tokens[PULLS_TOKEN] = {"metadata=read"}
    code, rows, out = preflight(fake, capsys)
    assert code == 1 and rows[check].startswith("✗") and "it accepts pull_requests=read" in rows[check]
    assert rows[statuses].startswith("✗") and "it accepts statuses=read" in rows[statuses]
    assert PULLS_TOKEN not in out


def test_previews_need_a_pulumi_cloud_backend(
    fake: World, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pulumi/pulumi pkg/cmd/pulumi/whoami.go prints `Backend URL: <url>`; a DIY backend's is file://, s3://,
    gs:// or azblob://, where GitHub's OIDC token logs nobody in (pulumi/auth-actions is Pulumi Cloud's)."""
    pulumi_cli(
        fake,
        tmp_path,
        monkeypatch,
        {"github:token": TOKEN, "gitops-eks:pullsToken": PULLS_TOKEN},
        backend_url="s3://state-bucket",
    )
    code, rows, out = preflight(fake, capsys)
    assert code == 1
    assert rows["Pulumi backend"].startswith("✓")
    row = rows["Pulumi Cloud for previews"]
    assert row.startswith("✗") and "the backend is s3://state-bucket" in row
    assert "'gitops-eks:preview.enabled' false" in fix_after(out, "Pulumi Cloud for previews")
    fake.set_config("gitops-eks:preview", {"enabled": False})
    secrets = {"github:token": TOKEN, "gitops-eks:pullsToken": PULLS_TOKEN}
    pulumi_cli(fake, tmp_path, monkeypatch, secrets, backend_url="s3://state-bucket")
    code, rows, out = preflight(fake, capsys)
    assert "Pulumi Cloud for previews" not in rows
    assert code == 0, out


def test_a_pulumi_cli_that_is_not_logged_in_falls_back_to_the_stack_file(
    fake: World, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table still comes out, with the backend row saying what to do."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text("#!/bin/sh\necho 'error: no credentials: run `pulumi login`' >&2\nexit 255\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    code, rows, out = preflight(fake, capsys)
    assert code == 1
    assert f"config from {fake.stack_file()}, as `pulumi config --stack {STACK}` failed" in out
    assert rows["Pulumi backend"].startswith("✗") and "run `pulumi login`" in rows["Pulumi backend"]
    assert fix_after(out, "Pulumi backend") == "fix: `pulumi login` (or `pulumi login --local`)"


def test_encrypted_values_without_the_cli_are_named_not_guessed(
    fake: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pulumi config set --secret` writes `{secure: <ciphertext>}` to the stack file; only the CLI can
    decrypt it."""
    fake.set_config("github:token", {"secure": "v1:AAAABBBBCCCC"})
    fake.set_config("gitops-eks:commitStatusToken", {"secure": "v1:DDDDEEEEFFFF"})
    monkeypatch.delenv("GITHUB_TOKEN")
    code, rows, out = preflight(fake, capsys)
    assert code == 1
    assert (
        "github:token is encrypted in the stack file and the Pulumi CLI is not installed"
        in rows["GitHub token"]
    )
    assert "v1:AAAABBBBCCCC" not in out
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    _, rows, _ = preflight(fake, capsys)
    assert (
        rows["commitStatusToken"].startswith("-")
        and "encrypted in the stack file" in rows["commitStatusToken"]
    )


def test_a_token_in_plain_text_is_refused_as_pulumi_up_refuses_it(fake: World) -> None:
    fake.set_config("github:token", "github_pat_in_plain_text")
    run = run_cli("--stack", STACK, "--root", str(fake.root), env={**os.environ})
    assert run.returncode == 2
    assert "github:token: is set in plain text" in run.stderr
    assert "github_pat_in_plain_text" not in run.stderr + run.stdout


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.preflight", *args],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120, env=env,
    )  # fmt: skip


def test_unknown_stack_is_exit_2_with_the_stacks_there(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    run = run_cli("--stack", "prod", "--root", str(tmp_path))
    assert run.returncode == 2
    assert "stack 'prod': no stack file Pulumi.prod.yaml" in run.stderr and "(stacks here: dev)" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout


def test_malformed_stack_file_is_exit_2_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  aws:region: [us-east-1\n")
    run = run_cli("--stack", "dev", "--root", str(tmp_path))
    assert run.returncode == 2
    assert "Pulumi.dev.yaml: is not valid YAML at line" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout


def test_invalid_config_is_exit_2_with_the_stacks_own_message(fake: World) -> None:
    fake.set_config("gitops-eks:repository", "no-owner")
    run = run_cli("--stack", STACK, "--root", str(fake.root), env={**os.environ})
    assert run.returncode == 2
    assert "gitops-eks:repository: 'no-owner' is not valid" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout


def test_a_stack_named_unlike_any_environment_is_told_to_name_its_environment(fake: World) -> None:
    """The environment defaults to the name of the stack preflight checks (`--stack`), as `pulumi up`'s
    does: a stack named `preflight` deploys no overlay until `gitops-eks:environment` names one."""
    fake.set_config("gitops-eks:environment", None)
    run = run_cli("--stack", STACK, "--root", str(fake.root), env={**os.environ})
    assert run.returncode == 2
    assert (
        f"gitops-eks:environment: '{STACK}' (the stack's name, the default) is not an environment of "
        "k8s/environments.yaml (dev, prod)"
    ) in run.stderr


def test_without_network_or_credentials_it_fails_in_words(fake: World) -> None:
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens on loopback here
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITHUB_"))},
        "AWS_ENDPOINT_URL": closed,
        "GITHUB_API_URL": closed,
        "GITHUB_TOKEN": "github_pat_offline",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    run = run_cli("--stack", STACK, "--root", str(fake.root), env=env)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    assert "✗  AWS identity" in run.stdout and "Unable to locate credentials" in run.stdout
    assert (
        "✗  GitHub API" in run.stdout
        and "cannot reach http://127.0.0.1:9: [Errno 111] Connection refused" in run.stdout
    )
    assert "github_pat_offline" not in run.stdout + run.stderr


def test_accepted_permissions_header_format() -> None:
    # The troubleshooting page's own examples.
    assert accepted_permissions("contents=read") == [["contents=read"]]
    assert accepted_permissions("pull_requests=write,contents=read") == [
        ["pull_requests=write", "contents=read"]
    ]
    assert accepted_permissions("pull_requests=read,contents=read; issues=read,contents=read") == [
        ["pull_requests=read", "contents=read"],
        ["issues=read", "contents=read"],
    ]


@pytest.mark.parametrize(
    ("private", "plan", "expected"),
    [
        (False, None, (True, True, True)),
        (True, "free", (False, False, False)),
        (True, "pro", (True, False, True)),
        (True, "team", (True, False, True)),
        (True, "enterprise", (True, True, True)),
        (True, None, (None, None, None)),
    ],
)
def test_plan_features_follow_githubs_gated_features(
    private: bool, plan: str | None, expected: tuple
) -> None:
    # data/reusables/gated-features/environments.md and repo-rules.md (github/docs).
    features = plan_features(private, plan)
    assert (features["environments"], features["required reviewers"], features["rulesets"]) == expected
