"""The pure decision core: guard, hold, noop, bot commits, commit messages and the retry policy."""

from __future__ import annotations

import random
import subprocess

import pytest

from jenkins import core
from jenkins.core import Hold, ImageEntry, Outcome, Relation, RetryPolicy

OLD, NEW = "a" * 40, "b" * 40
DIGEST = "sha256:" + "c" * 64
CURRENT = ImageEntry("hello-gitops", "127.0.0.1:5000/hello", OLD, "sha256:" + "d" * 64)
DESIRED = core.desired_entry(CURRENT, "127.0.0.1:5000/hello", NEW, DIGEST)
HOLD = Hold(by="alice@example.com", reason="v2 returns 500s", at="2026-11-24T07:00:00Z")


@pytest.mark.parametrize(
    ("relation", "outcome"),
    [
        (Relation.FORWARD, Outcome.CHANGED),
        (Relation.UNVERSIONED, Outcome.CHANGED),
        (Relation.SAME, Outcome.CHANGED),  # same commit, new digest: the registry's digest wins
        (Relation.BACKWARD, Outcome.STALE),
        (Relation.UNKNOWN, Outcome.STALE),
    ],
)
def test_promote_moves_forward_only(relation: Relation, outcome: Outcome) -> None:
    assert core.decide_promote(CURRENT, None, DESIRED, relation, on_branch=True).outcome is outcome


def test_promote_to_what_is_deployed_is_noop() -> None:
    decision = core.decide_promote(DESIRED, None, DESIRED, Relation.SAME, on_branch=True)
    assert decision.outcome is Outcome.NOOP
    assert NEW in decision.reason


@pytest.mark.parametrize("relation", list(Relation))
def test_a_hold_wins_over_every_relation(relation: Relation) -> None:
    decision = core.decide_promote(CURRENT, HOLD, DESIRED, relation, on_branch=True)
    assert decision.outcome is Outcome.HELD
    assert "alice@example.com" in decision.reason and "unhold" in decision.reason


def test_stale_reason_names_both_commits() -> None:
    reason = core.decide_promote(CURRENT, None, DESIRED, Relation.BACKWARD, on_branch=True).reason
    assert OLD in reason and NEW in reason


def test_rollback_ignores_the_guard_and_is_noop_only_when_already_held_there() -> None:
    older = core.desired_entry(CURRENT, CURRENT.new_name, "e" * 40, DIGEST)
    assert core.decide_rollback(CURRENT, None, older, HOLD, on_branch=True).outcome is Outcome.CHANGED
    assert (
        core.decide_rollback(older, None, older, HOLD, on_branch=True).outcome is Outcome.CHANGED
    )  # adds the hold
    assert core.decide_rollback(older, HOLD, older, HOLD, on_branch=True).outcome is Outcome.NOOP


def test_unhold() -> None:
    assert core.decide_unhold(HOLD).outcome is Outcome.CHANGED
    assert core.decide_unhold(None).outcome is Outcome.NOOP


@pytest.mark.parametrize(
    ("author", "bot"),
    [
        ("gitops-bot@users.noreply.github.com", True),
        ("GitOps-Bot@users.noreply.github.com", True),  # email addresses compare case-insensitively here
        ("dev@example.com", False),  # whatever its message says (test_review8.py runs it through git)
        ("", False),
    ],
)
def test_is_bot_commit(author: str, bot: bool) -> None:
    assert core.is_bot_commit(author, "gitops-bot@users.noreply.github.com") is bot


def test_commit_message_trailers_parse_as_git_trailers() -> None:
    message = core.commit_message(
        "deploy hello 0123abcd", "Deploy it.", {"Source-Commit": NEW, "Image-Digest": DIGEST}
    )
    assert message.splitlines()[0] == "deploy hello 0123abcd [skip ci]"
    parsed = subprocess.run(
        ["git", "interpret-trailers", "--parse"], input=message, capture_output=True, text=True, check=True
    ).stdout
    assert parsed == f"Source-Commit: {NEW}\nImage-Digest: {DIGEST}\n"


def test_entry_reference() -> None:
    assert DESIRED.reference == f"127.0.0.1:5000/hello:{NEW}@{DIGEST}"
    assert ImageEntry("hello-gitops").reference is None


@pytest.mark.parametrize(
    ("value", "ok"), [(NEW, True), (NEW[:-1], False), (NEW.upper(), False), (None, False)]
)
def test_is_sha(value: str | None, ok: bool) -> None:
    assert core.is_sha(value) is ok


@pytest.mark.parametrize(
    ("tag", "names"),
    [(NEW, True), (core.NOTHING_RELEASED, False), ("bootstrap", False), (None, False)],
)
def test_the_null_id_placeholder_names_no_release(tag: str | None, names: bool) -> None:
    # The shipped manifest's tag has the shape of a SHA (the manifest contract) but names no release.
    assert core.is_sha(core.NOTHING_RELEASED)
    assert core.names_release(tag) is names


@pytest.mark.parametrize(("value", "ok"), [(DIGEST, True), ("sha256:abc", False), ("md5:" + "c" * 64, False)])
def test_is_digest(value: str, ok: bool) -> None:
    assert core.is_digest(value) is ok


def test_backoff_is_jittered_and_bounded() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=0.1, max_delay=1.0)
    rng = random.Random(42)
    for attempt in range(1, 12):
        cap = min(1.0, 0.1 * 2 ** (attempt - 1))
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap * 0.8 and min(delays) < cap * 0.2  # full jitter spreads racers apart
    assert policy.worst_case_wait == pytest.approx(0.1 + 0.2 + 0.4 + 0.8 + 1.0 * 5)


def test_default_policy_gives_up_within_a_minute() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts >= 12  # enough for a dozen racers even if the newest always loses
    assert policy.worst_case_wait < 60


@pytest.mark.parametrize("relation", list(Relation))
def test_a_commit_no_longer_on_the_branch_is_never_deployed(relation: Relation) -> None:
    """test_review8.py drives this through a real force-push during the retry loop."""
    assert core.decide_promote(CURRENT, None, DESIRED, relation, on_branch=False).outcome is Outcome.STALE
    assert core.decide_promote(CURRENT, HOLD, DESIRED, relation, on_branch=False).outcome is Outcome.HELD
    older = core.desired_entry(CURRENT, CURRENT.new_name, "e" * 40, DIGEST)
    assert core.decide_rollback(CURRENT, HOLD, older, HOLD, on_branch=False).outcome is Outcome.STALE
