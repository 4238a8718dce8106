"""notification-controller, for real: the stack's Receiver takes GitHub's signed push event and nothing
else, and the stack's `github` Provider and Alert report each applied commit back to it.

The rules asserted are notification-controller v1.9.2's (the version tools/notification-controller pins):
- internal/server/receiver_handlers.go: a Receiver is found by its `status.webhookPath` (404 otherwise);
  a `github` Receiver validates the body with go-github's `ValidatePayload` against the Secret's `token`
  (HMAC, `X-Hub-Signature-256`, falling back to `X-Hub-Signature`), takes the event from
  `X-GitHub-Event` and refuses one not in `spec.events` (400 for both, and for a `Content-Type` other than
  application/json or form data; the body itself is never parsed, so the signature is its only check); a
  valid delivery sets `reconcile.fluxcd.io/requestedAt` on each resource and answers 200.
- api/v1/receiver_types.go `GetWebhookPath`: `/hook/` + hex(sha256(token + name + namespace)).
- internal/notifier/github.go: a commit status per event with a revision (`success` for info, `failure`
  for error), context the Provider's `commitStatusExpr` evaluated (internal/server/event_handlers.go
  createCommitStatus; the default `kustomization/<name>/<first segment of the Provider's UID>`,
  provider_commit_status.go, when it is unset), description the event reason split into lower-case
  words, sent with `Authorization: Bearer <the Secret's token>`.
"""

from __future__ import annotations

import hashlib

import pytest

from infra.gitops import GIT_AUTH, STATUS_AUTH, webhook_path
from plane.fakegithub import Recorded
from plane.localcluster import (
    REQUESTED_AT,
    FluxLoop,
    condition,
    github_push_payload,
    github_signatures,
    post_github_event,
)
from plane.sandbox import BRANCH, git
from tests.infra.conftest import STACK


def requested_at(flux: FluxLoop) -> str | None:
    return flux.status("GitRepository")["metadata"].get("annotations", {}).get(REQUESTED_AT)


def test_the_receiver_serves_the_path_the_stack_registers_with_github(flux: FluxLoop) -> None:
    """infra/gitops.py computes the webhook URL it registers in GitHub instead of reading it back from
    the Receiver: the controller must serve exactly that path."""
    url = flux.receiver_url()
    assert url.endswith(webhook_path(flux.receiver_token()))
    receiver = flux.named("Receiver")["metadata"]
    assert receiver["namespace"] == flux.app_namespace


def signed_change(flux: FluxLoop, message: str) -> str:
    """An app change at the branch tip, signed with the bot's key (Flux deploys nothing else), pushed."""
    flux.repo.checkout_tip()
    with (flux.repo.work / "app" / "app.py").open("a") as source:
        source.write(f"# {message}\n")
    git(flux.repo.work, "add", "app/app.py")
    return flux.commit_signed("-m", message)


def test_a_signed_push_event_makes_flux_fetch_and_apply_the_new_commit(flux: FluxLoop) -> None:
    flux.wait_applied(flux.repo.tip())
    before = requested_at(flux)
    commit = signed_change(flux, "A change announced by GitHub's push event")

    flux.push_event()

    # The Receiver annotated the GitRepository before it answered 200.
    stamp = requested_at(flux)
    assert stamp and stamp != before

    def handled() -> bool:
        status = flux.status("GitRepository").get("status", {})
        at_commit = status.get("artifact", {}).get("revision") == f"{BRANCH}@sha1:{commit}"
        return status.get("lastHandledReconcileAt") == stamp and at_commit

    flux.cluster.wait_for("source-controller to handle the Receiver's request", handled)
    flux.wait_applied(commit)


def test_github_s_ping_is_accepted(flux: FluxLoop) -> None:
    """GitHub sends `ping` when the webhook is created; the stack subscribes the Receiver to it, so the
    new webhook shows a successful first delivery."""
    body = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    status, text = post_github_event(
        flux.receiver_url(), "ping", body, github_signatures(flux.receiver_token(), body)
    )
    assert status == 200, text


def _wrong_secret(flux: FluxLoop, body: bytes) -> dict[str, str]:
    return github_signatures(flux.receiver_token() + "x", body)


def _other_body(flux: FluxLoop, body: bytes) -> dict[str, str]:
    return github_signatures(flux.receiver_token(), body.replace(b"refs/heads", b"refs/tags"))


def _sha1_of_other_secret(flux: FluxLoop, body: bytes) -> dict[str, str]:
    return {"X-Hub-Signature": github_signatures("other", body)["X-Hub-Signature"]}


REFUSED = {
    # name: (event, headers(flux, body), expected HTTP status)
    "unsigned": ("push", lambda flux, body: {}, 400),
    "signed with another secret": ("push", _wrong_secret, 400),
    "signature of another body": ("push", _other_body, 400),
    "only a sha1 signature, wrong": ("push", _sha1_of_other_secret, 400),
    "an event it is not subscribed to": (
        "issues",
        lambda flux, body: github_signatures(flux.receiver_token(), body),
        400,
    ),
    "a Content-Type GitHub does not send": (
        "push",
        lambda flux, body: {**github_signatures(flux.receiver_token(), body), "Content-Type": "text/plain"},
        400,
    ),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_delivery_that_is_not_github_s_is_refused_and_changes_nothing(flux: FluxLoop, case: str) -> None:
    event, headers, expected = REFUSED[case]
    url = flux.receiver_url()
    before = requested_at(flux)
    body = github_push_payload(flux.repository, BRANCH, "0" * 40, flux.repo.tip())

    status, text = post_github_event(url, event, body, headers(flux, body))

    assert status == expected, text
    assert requested_at(flux) == before


def test_a_signed_body_is_not_parsed_so_the_signature_is_its_only_check(flux: FluxLoop) -> None:
    """go-github's ValidatePayload checks the Content-Type and the HMAC, never that the body is JSON: a
    signed body that is not a push event still annotates. So the secret is the Receiver's only guard."""
    before = requested_at(flux)
    body = b"not a GitHub event"

    status, text = post_github_event(
        flux.receiver_url(), "push", body, github_signatures(flux.receiver_token(), body)
    )

    assert status == 200, text
    assert requested_at(flux) != before


def test_a_path_of_another_token_is_not_found(flux: FluxLoop) -> None:
    url = flux.receiver_url()
    guessed = "/hook/" + hashlib.sha256(b"guess" + b"flux-system").hexdigest()
    body = github_push_payload(flux.repository, BRANCH, "0" * 40, flux.repo.tip())
    before = requested_at(flux)

    status, _ = post_github_event(
        url.split("/hook/")[0] + guessed, "push", body, github_signatures("guess", body)
    )

    assert status == 404
    assert requested_at(flux) == before


def status_context(flux: FluxLoop) -> str:
    """The environment's context, as infra/gitops.py names it for the stack the plane runs (dev)."""
    return f"gitops-eks/{STACK}"


def test_each_applied_commit_gets_a_success_status_sent_with_the_stack_s_token(flux: FluxLoop) -> None:
    """The Alert routes kustomize-controller's events to the Provider, which posts a commit status with
    the `commitStatusToken` Secret (the stub answers 401 to any other credential). `success` comes
    after the health check (`wait: true`), so only once the Deployment has rolled out."""
    commit = signed_change(flux, "A change whose deploy reports back")
    flux.push_event()
    flux.wait_applied(commit)

    def reported() -> list[dict]:
        return [s for s in flux.github.statuses_for(commit) if s["state"] == "success"]

    (status,) = flux.cluster.wait_for(f"a success status on {commit[:12]}", reported, timeout=60)
    assert flux.available(flux.deployment_image())
    assert status["context"] == status_context(flux)
    assert status["description"] == "reconciliation succeeded"
    assert all(r.authorization == f"Bearer {flux.github.token}" for r in flux.github.requests)
    assert not [r for r in flux.github.requests if r.path.count(flux.repository) != 1]


def test_provider_and_alert_are_accepted_as_declared(flux: FluxLoop) -> None:
    """v1beta3 Providers and Alerts carry no status; what the API server keeps is what the stack sent."""
    for kind in ("Provider", "Alert"):
        declared = flux.named(kind)
        stored = flux.status(kind)
        assert stored["apiVersion"] == declared["apiVersion"] == "notification.toolkit.fluxcd.io/v1beta3"
        assert {k: stored["spec"].get(k) for k in declared["spec"]} == declared["spec"]
        assert condition(stored, "Ready") is None


def test_no_secret_shows_in_what_pytest_prints_for_a_failing_assertion(flux: FluxLoop) -> None:
    """A failing `assert requested_at(flux) == before` prints `where ... = requested_at(FluxLoop(...))`:
    the loop's repr (and the stub's, with the requests it recorded) must carry none of the stack's secrets,
    the deploy key checked line by line (repr escapes its newlines)."""
    # What the stub records for each request, without adding to the session's own record.
    shown = repr(flux) + repr(Recorded("GET", "/", f"Bearer {flux.github.token}", None))
    key = flux.secret_value(GIT_AUTH, "identity").splitlines()[1:-1]
    secrets = {
        "commitStatusToken": flux.secret_value(STATUS_AUTH, "token"),
        "the stub's token": flux.github.token,
        "receiver token": flux.receiver_token(),
        **{f"deploy key line {n}": line for n, line in enumerate(key, 2)},
    }
    assert [name for name, value in secrets.items() if value in shown] == []  # names only, never values
