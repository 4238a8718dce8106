"""The first run: the committed Pulumi.dev.yaml names exactly what the operator must set; CIDRs that can
never match a real client (documentation ranges, reserved blocks on a public endpoint) are refused with
the key; the Kubernetes version is in EKS standard support; cluster administrators are declared."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import DEFAULT_KUBERNETES_VERSION
from tests.infra.conftest import (
    DELETE,
    OPERATOR_CONFIG,
    ROOT,
    apply_overrides,
    committed_config,
    config_error,
    dev_config,
    run_program,
)

EKS = "eks:index:Cluster"
EGRESS = "your egress address is `curl -s https://checkip.amazonaws.com` (add /32)"


def test_the_committed_dev_file_asks_for_every_operator_key_by_key_and_command() -> None:
    """Pulumi.dev.yaml used to ship 203.0.113.0/24 as a "working" value (AWS accepted it, nobody could
    reach the API), and the reviewer `example-maintainer`, which `github.get_user` fails on at preview.
    Now the committed file holds nothing that only looks like a value: the first run stops, names every
    key the operator must set and says how, before anything is read or declared."""
    message = config_error({}, config=committed_config())
    assert message == (
        "gitops-eks:repository, github:owner, gitops-eks:cluster.publicAccessCidrs, "
        "gitops-eks:jenkins.allowedCidrs, gitops-eks:preview.reviewers, gitops-eks:pullsToken: missing; set "
        "each before the first run: `pulumi config set gitops-eks:repository <owner>/<name>`; "
        "`pulumi config set github:owner <owner>`; "
        "`pulumi config set --path 'gitops-eks:cluster.publicAccessCidrs[0]' <CIDR>`; "
        "`pulumi config set --path 'gitops-eks:jenkins.allowedCidrs[0]' <CIDR>`; "
        "`pulumi config set --path 'gitops-eks:preview.reviewers[0]' <login>`; "
        "`pulumi config set --secret gitops-eks:pullsToken` (a fine-grained token for this repository with "
        "only Pull requests: Read-only; the release checks with it that what it signs was reviewed); "
        + EGRESS
    )
    # One key left: its own check names it, with the same command.
    all_but_jenkins = {k: v for k, v in OPERATOR_CONFIG.items() if k != "jenkins.allowedCidrs"}
    assert config_error(all_but_jenkins, config=committed_config()) == (
        "gitops-eks:jenkins.allowedCidrs: missing; list the CIDRs that may reach Jenkins: "
        "`pulumi config set --path 'gitops-eks:jenkins.allowedCidrs[0]' <CIDR>`; " + EGRESS
    )
    lines = (ROOT / "Pulumi.dev.yaml").read_text().splitlines()
    header = "\n".join(line for line in lines if line.startswith("#"))
    for command in (
        "pulumi config set gitops-eks:repository <owner>/<name>",
        "pulumi config set github:owner <owner>",
        "pulumi config set --path 'gitops-eks:cluster.publicAccessCidrs[0]'",
        "pulumi config set --path 'gitops-eks:jenkins.allowedCidrs[0]'",
        "pulumi config set --path 'gitops-eks:preview.reviewers[0]' <login>",
        "pulumi config set --path 'gitops-eks:preview.enabled' false",
        "pulumi config set --secret gitops-eks:pullsToken",
    ):
        assert command in header


def test_no_reviewer_is_refused_with_one_line_naming_the_key_and_what_to_do() -> None:
    """Only the reviewers missing: one line, the key, the command, and the way to turn previews off."""
    message = config_error({"preview.reviewers": DELETE})
    assert "\n" not in message
    assert message == (
        "gitops-eks:preview.reviewers: missing; list the GitHub logins that may approve a pull request's "
        "preview (1 to 6): `pulumi config set --path 'gitops-eks:preview.reviewers[0]' <login>`, or turn "
        "previews off: `pulumi config set --path 'gitops-eks:preview.enabled' false`"
    )


def test_the_committed_dev_file_holds_no_placeholder() -> None:
    """Every value the committed file sets is a real default: no example owner, repository or login."""
    committed = committed_config()
    assert "github:owner" not in committed and "gitops-eks:repository" not in committed
    assert "reviewers" not in committed["gitops-eks:preview"]
    assert "example" not in "\n".join(
        line
        for line in (ROOT / "Pulumi.dev.yaml").read_text().splitlines()
        if not line.lstrip().startswith("#")
    )


# RFC 5737 (IPv4: TEST-NET-1/2/3), RFC 3849 (IPv6 2001:db8::/32), RFC 9637 (IPv6 3fff::/20).
DOCUMENTATION = ["192.0.2.0/24", "198.51.100.0/25", "203.0.113.7/32", "2001:db8:1::/48", "3fff:123::/32"]


@pytest.mark.parametrize("cidr", DOCUMENTATION)
@pytest.mark.parametrize(
    ("key", "purpose"),
    [("jenkins.allowedCidrs", "Jenkins"), ("cluster.publicAccessCidrs", "the Kubernetes API")],
)
def test_documentation_ranges_are_refused_in_every_cidr_key(key: str, purpose: str, cidr: str) -> None:
    message = config_error({key: ["100.20.0.0/24", cidr]})
    assert message.startswith(f"gitops-eks:{key}[1]: '{cidr}' is a documentation range (RFC 5737/3849/9637)")
    assert f"set the CIDRs of the machines that reach {purpose}: {EGRESS}" in message


def test_a_range_that_merely_contains_a_documentation_range_is_real_and_accepted() -> None:
    run_program({"jenkins.allowedCidrs": ["192.0.0.0/16"]})


@pytest.mark.parametrize("cidr", ["10.0.0.0/8", "192.168.1.0/24", "100.64.0.0/10", "127.0.0.0/8", "fd00::/8"])
def test_the_public_eks_endpoint_refuses_reserved_ranges(cidr: str) -> None:
    """EKS: publicAccessCidrs "cannot include reserved addresses" (EKS user guide, cluster-endpoint)."""
    message = config_error({"cluster.publicAccessCidrs": [cidr]})
    assert message.startswith(f"gitops-eks:cluster.publicAccessCidrs[0]: '{cidr}' is a reserved (non-public)")


def test_the_vpc_keeps_its_private_range() -> None:
    """network.cidrBlock must be private (its own check); documentation ranges are not private."""
    assert "must be a private IPv4 range" in config_error({"network.cidrBlock": "198.51.100.0/24"})


# --- Kubernetes version ------------------------------------------------------------------------------


def test_default_and_dev_kubernetes_version_is_in_eks_standard_support() -> None:
    """EKS calendar (docs/verified-identifiers.md): 1.33 left standard support on 2026-07-29 and bills at
    the extended-support rate; 1.35 is in standard support until 2027-03-27."""
    assert DEFAULT_KUBERNETES_VERSION == "1.35"
    assert committed_config()["gitops-eks:cluster"]["kubernetesVersion"] == "1.35"
    program = run_program({"cluster.kubernetesVersion": DELETE})
    assert program.one(EKS).inputs["version"] == "1.35"


# --- cluster administrators (EKS access entries) -------------------------------------------------------

ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
TEAM = ["arn:aws:iam::123456789012:role/platform-admins", "arn:aws:iam::123456789012:role/ci/gitops-deployer"]


def _entries(principals: list[str]) -> dict[str, Any]:
    return run_program({"cluster.adminPrincipals": principals}).one(EKS).inputs.get("accessEntries", {})


def test_admin_principals_get_cluster_admin_access_entries() -> None:
    """Without them only the creator can use the cluster (EKS bootstraps the creator alone)."""
    entries = _entries(TEAM)
    assert sorted(e["principalArn"] for e in entries.values()) == sorted(TEAM)
    for entry in entries.values():
        (association,) = entry["accessPolicies"].values()
        assert association == {"policyArn": ADMIN_POLICY, "accessScope": {"type": "cluster"}}
    assert _entries([]) == {} and "accessEntries" not in run_program().one(EKS).inputs


def test_reordering_admin_principals_keeps_each_entry_under_its_name() -> None:
    """A principal moving to another entry name would be created before its old entry is deleted, which
    EKS refuses (one access entry per principal)."""
    assert _entries(TEAM) == _entries(list(reversed(TEAM)))


@pytest.mark.parametrize(
    ("principals", "expected"),
    [
        (
            ["arn:aws:sts::123456789012:assumed-role/platform-admins/alice"],
            "gitops-eks:cluster.adminPrincipals[0]: 'arn:aws:sts::123456789012:assumed-role/platform-admins/"
            "alice' is a session, not a principal; EKS access entries take the role: "
            "arn:aws:iam::123456789012:role/platform-admins",
        ),
        (["platform-admins"], "gitops-eks:cluster.adminPrincipals[0]: 'platform-admins' is not an IAM user"),
        (
            ["arn:aws:iam::123456789012:group/admins"],
            "gitops-eks:cluster.adminPrincipals[0]: 'arn:aws:iam::123456789012:group/admins' is not an IAM",
        ),
        ([TEAM[0], TEAM[0]], "gitops-eks:cluster.adminPrincipals[1]: '" + TEAM[0] + "' is listed twice"),
        ("arn:aws:iam::123456789012:role/x", "gitops-eks:cluster.adminPrincipals: must be a list, got str"),
    ],
    ids=["session", "bare name", "group", "duplicate", "not a list"],
)
def test_bad_admin_principals_are_refused(principals: Any, expected: str) -> None:
    assert config_error({"cluster.adminPrincipals": principals}).startswith(expected)


def test_dev_config_used_by_the_tests_is_the_committed_file_plus_the_operator_keys() -> None:
    assert dev_config() == apply_overrides(committed_config(), OPERATOR_CONFIG)
    touched = {"gitops-eks:repository", "github:owner", "gitops-eks:cluster", "gitops-eks:jenkins"}
    touched |= {"gitops-eks:preview", "gitops-eks:pullsToken"}
    committed, used = committed_config(), dev_config()
    assert {k: v for k, v in used.items() if k not in touched} == {
        k: v for k, v in committed.items() if k not in touched
    }


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"cluster.adminPrincipals": [TEAM[0] + "\n"]}, "gitops-eks:cluster.adminPrincipals[0]: "),
        ({"cluster.kubernetesVersion": "1.35\n"}, "gitops-eks:cluster.kubernetesVersion: "),
        ({"jenkins.instanceType": "t3.medium\n"}, "gitops-eks:jenkins.instanceType: "),
        ({"flux.interval": "1m\n"}, "gitops-eks:flux.interval: "),
        ({"branch": "main\n"}, "gitops-eks:branch: "),
        ({"repository": "example-org/hello-gitops\n"}, "gitops-eks:repository: "),
    ],
    ids=["principal", "kubernetes version", "instance type", "flux interval", "branch", "repository"],
)
def test_a_value_with_a_trailing_newline_is_refused(overrides: dict[str, Any], expected: str) -> None:
    """Python's `$` also matches before a final newline, so a pasted value ending in one passed every
    pattern; AWS (EKS CreateAccessEntry, RunInstances), git and Flux refuse it halfway through `up`."""
    assert config_error(overrides).startswith(expected)
