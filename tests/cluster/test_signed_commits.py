"""Signed deploys on the real control plane: source-controller verifies the tip of the branch against the
stack's Secret of public keys, which holds the bot's key alone (made by the stack's own provider,
infra/openpgp.py).

What a stolen write key can push, Flux does not apply: an unsigned tip, or a tip signed by a key of the
thief's own. source-controller checks only the tip (`verify.mode: HEAD`), so an unsigned commit under a
bot-signed tip would be applied with it: the last test shows that rule of Flux's, which is why the bot
refuses to sign on top of a history holding a commit nobody trusted signed (docs/security.md).

Pushes go straight to the bare remote, as any holder of a write key can push; the transport is no part
of what Flux checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from infra.openpgp import OpenPgpKeyProvider
from plane.localcluster import FluxLoop, condition
from plane.sandbox import BRANCH, DEV, OpenPgpSigner, git

# source-controller v1.9.3 internal/controller/gitrepository_controller.go, verifySignature: a failed
# verification sets the SourceVerified condition False with this reason and "signature verification of
# commit '<sha>' failed", and returns before the artifact is built.
REFUSED = "InvalidCommitSignature"


@pytest.fixture(scope="module")
def thief() -> Iterator[OpenPgpSigner]:
    """A key the thief made, in the same form as the bot's: valid, but nobody trusts it."""
    outs = OpenPgpKeyProvider().create({"user_id": "gitops-bot <gitops-bot@users.noreply.github.com>"}).outs
    with OpenPgpSigner.of(outs["private_key"]) as signer:
        yield signer


def change(flux: FluxLoop, what: str) -> None:
    """Stage a change outside k8s/ at the branch tip: the Kustomization applies the same objects."""
    flux.repo.checkout_tip()
    notes = flux.repo.work / "NOTES"
    notes.write_text(f"{notes.read_text() if notes.exists() else ''}{what}\n")
    git(flux.repo.work, "add", "NOTES")


def push(flux: FluxLoop) -> str:
    git(flux.repo.work, "push", "--quiet", "origin", f"HEAD:{BRANCH}")
    flux.push_event()
    return flux.repo.tip()


def source(flux: FluxLoop) -> dict[str, Any]:
    return flux.status("GitRepository")


def refused(flux: FluxLoop, commit: str) -> dict[str, Any]:
    """Wait for source-controller to refuse `commit`; its SourceVerified condition."""

    def verdict() -> dict[str, Any] | None:
        verified = condition(source(flux), "SourceVerified")
        if verified and verified["status"] == "False" and commit in verified.get("message", ""):
            return dict(verified)
        return None

    return flux.cluster.wait_for(f"source-controller to refuse {commit[:12]}", verdict, timeout=120)


def deployed(flux: FluxLoop) -> tuple[str, str]:
    """The revision of the GitRepository's artifact and the Kustomization's last applied one."""
    artifact = source(flux).get("status", {}).get("artifact", {}).get("revision", "")
    applied = flux.status("Kustomization").get("status", {}).get("lastAppliedRevision", "")
    return artifact, applied


@pytest.fixture(scope="module")
def signed_tip(flux: FluxLoop) -> str:
    """A bot-signed tip, applied: where each refusal below must leave the deployment."""
    change(flux, "signed by the bot")
    tip = flux.commit_signed("-m", "A bot-signed commit [skip ci]")
    flux.push_event()
    flux.wait_applied(tip)
    verified = condition(source(flux), "SourceVerified")
    assert verified and verified["status"] == "True" and tip in verified["message"]
    return tip


def test_an_unsigned_tip_pushed_with_a_stolen_write_key_is_not_deployed(
    flux: FluxLoop, signed_tip: str
) -> None:
    change(flux, "unsigned: pushed with a stolen key")
    git(flux.repo.work, "commit", "--quiet", "-m", "Looks like a bot commit [skip ci]", env=DEV)
    unsigned = push(flux)

    verdict = refused(flux, unsigned)

    assert verdict["reason"] == REFUSED
    assert condition(source(flux), "Ready")["status"] == "False"
    assert deployed(flux) == (f"{BRANCH}@sha1:{signed_tip}", f"{BRANCH}@sha1:{signed_tip}")


def test_a_tip_signed_by_a_key_flux_does_not_trust_is_not_deployed(
    flux: FluxLoop, signed_tip: str, thief: OpenPgpSigner
) -> None:
    change(flux, "signed by the thief's own key")
    thief.commit(flux.repo.work, "-m", "Signed, but not by the bot [skip ci]")
    forged = push(flux)

    verdict = refused(flux, forged)

    assert verdict["reason"] == REFUSED
    assert deployed(flux) == (f"{BRANCH}@sha1:{signed_tip}", f"{BRANCH}@sha1:{signed_tip}")


def test_flux_checks_only_the_tip_so_the_bot_must_never_sign_over_an_unsigned_commit(
    flux: FluxLoop, signed_tip: str
) -> None:
    """A bot-signed tip over an unsigned commit is applied, and the unsigned commit with it: only the
    bot's refusal to sign on top of such a history keeps it out of the cluster."""
    change(flux, "unsigned, then covered")
    git(flux.repo.work, "commit", "--quiet", "-m", "Unsigned, under a signed tip [skip ci]", env=DEV)
    git(flux.repo.work, "push", "--quiet", "origin", f"HEAD:{BRANCH}")
    unsigned = flux.repo.tip()
    change(flux, "signed by the bot on top")
    tip = flux.commit_signed("-m", "A bot-signed commit over an unsigned one [skip ci]")
    flux.push_event()

    flux.wait_applied(tip)

    assert condition(source(flux), "SourceVerified")["status"] == "True"
    assert git(flux.repo.remote, "merge-base", "--is-ancestor", unsigned, tip) == ""
