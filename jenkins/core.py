"""The pure decision core: what the manifest should say, and whether moving it is allowed.

Nothing here touches git, the registry or the file system. The adapters gather facts (the manifest's
current image entry, the hold record, how the deployed commit relates to the new one) and these
functions turn them into a decision. That keeps every rule testable as plain data.
"""

from __future__ import annotations

import enum
import random
import re
import unicodedata
from dataclasses import dataclass

SHA_RE = re.compile(r"[0-9a-f]{40}")
# git's null object id: the manifest's "nothing released yet" tag. It has the shape of a full SHA (so
# the manifest contract holds) but no repository has that commit, so it names no release.
NOTHING_RELEASED = "0" * 40
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
SKIP_CI = "[skip ci]"
ACTION_TRAILER = "Gitops-Action"
MAX_TEXT = 1000  # characters of a --reason or --by: an annotation and a commit line, not an essay
# Bidirectional overrides make text display in another order than it reads ("Trojan Source").
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class Outcome(enum.StrEnum):
    """What a run did to the manifest (the `outcome` field of the JSON contract)."""

    CHANGED = "changed"
    NOOP = "noop"
    STALE = "stale"
    HELD = "held"


class Relation(enum.Enum):
    """How the commit the manifest names relates to the commit being promoted."""

    SAME = "same"  # the manifest already names this commit
    FORWARD = "forward"  # the deployed commit is an ancestor: moving forward
    BACKWARD = "backward"  # the deployed commit is newer or on another line of history
    UNKNOWN = "unknown"  # the deployed commit is a SHA that this repository does not have
    UNVERSIONED = "unversioned"  # the deployed tag names no release (NOTHING_RELEASED, not a SHA)


@dataclass(frozen=True)
class ImageEntry:
    """The app's entry under `images:` in kustomization.yaml."""

    name: str
    new_name: str | None = None
    new_tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str | None:
        """The full image reference kustomize renders, or None if the entry names no image yet."""
        if not self.new_name:
            return None
        ref = self.new_name + (f":{self.new_tag}" if self.new_tag else "")
        return ref + (f"@{self.digest}" if self.digest else "")


@dataclass(frozen=True)
class Hold:
    """An operator's hold on the manifest: who set it, why and when (ISO 8601, UTC)."""

    by: str
    reason: str
    at: str


@dataclass(frozen=True)
class HandChange:
    """A commit that is not the bot's and changed the app's image entry since the bot's newest commit:
    a deploy decision a person made in git (a revert of a bot commit, a hand edit)."""

    commit: str
    author: str

    def hold(self, at: str) -> Hold:
        """The hold a release records so that no release overwrites that decision until `unhold`."""
        reason = f"the deployed image was changed in git by commit {self.commit}"
        return Hold(by=self.author, reason=reason, at=at)


@dataclass(frozen=True)
class Decision:
    """The outcome and a one-line reason a console reader can act on."""

    outcome: Outcome
    reason: str


def is_sha(value: str | None) -> bool:
    """True for a full 40-character lowercase hex commit SHA."""
    return bool(value) and SHA_RE.fullmatch(value) is not None


def names_release(tag: str | None) -> bool:
    """True if a deployed tag names a released commit, so the ancestry guard applies to it.

    NOTHING_RELEASED and non-SHA tags name none: the first release may replace them.
    """
    return is_sha(tag) and tag != NOTHING_RELEASED


def is_digest(value: str | None) -> bool:
    """True for a `sha256:<64 hex>` image digest."""
    return bool(value) and DIGEST_RE.fullmatch(value) is not None


def desired_entry(current: ImageEntry, repository: str, commit: str, digest: str) -> ImageEntry:
    """The entry the manifest should hold to deploy repository:commit pinned by digest."""
    return ImageEntry(name=current.name, new_name=repository, new_tag=commit, digest=digest)


def decide_promote(
    current: ImageEntry,
    hold: Hold | None,
    desired: ImageEntry,
    relation: Relation,
    *,
    on_branch: bool,
    hand_change: HandChange | None = None,
) -> Decision:
    """Decide whether a release/promote may move the manifest from current to desired.

    Order matters: a hold wins over everything (an operator pinned production), then a person's change
    of the image in git (kept, and held), then the commit must still be on the branch this attempt
    writes to, then the ancestry guard (never move backwards), then "already there" (no change).
    """
    if hold is not None:
        return Decision(
            Outcome.HELD, f"manifest is held by {hold.by} since {hold.at}: {hold.reason} (run `unhold`)"
        )
    if hand_change is not None:
        return Decision(
            Outcome.HELD,
            f"commit {hand_change.commit} by {hand_change.author} changed the deployed image in git, not "
            f"a release: kept it and held the manifest instead of deploying {desired.new_tag} (run `unhold` "
            "to release again)",
        )
    if not on_branch:
        return off_branch(desired)
    if relation is Relation.BACKWARD:
        return Decision(
            Outcome.STALE,
            f"manifest already deploys {current.new_tag}, which is not an ancestor of {desired.new_tag}",
        )
    if relation is Relation.UNKNOWN:
        # A SHA we cannot find may well be newer than ours (a fetch we could not complete, rewritten
        # history): refusing is the safe side. An operator resolves it with `rollback` + `unhold`.
        return Decision(
            Outcome.STALE,
            f"manifest deploys {current.new_tag}, a commit this repository does not have; not moving it",
        )
    if current == desired:
        return Decision(Outcome.NOOP, f"manifest already deploys {desired.reference}")
    return Decision(Outcome.CHANGED, f"deploy {desired.reference} (was {current.reference})")


def off_branch(desired: ImageEntry) -> Decision:
    """The commit left the branch after the run began (a force-push that a retry fetched): production
    would run code that is no longer in git."""
    return Decision(
        Outcome.STALE,
        f"{desired.new_tag} is no longer on the branch (it was rewritten during this run); not deploying it",
    )


def decide_rollback(
    current: ImageEntry, hold: Hold | None, desired: ImageEntry, new_hold: Hold, *, on_branch: bool
) -> Decision:
    """A rollback bypasses the ancestry guard on purpose, not the branch; it is a noop only if already
    rolled back there."""
    if not on_branch:
        return off_branch(desired)
    if current == desired and hold is not None:
        return Decision(Outcome.NOOP, f"manifest already held at {desired.reference}")
    return Decision(Outcome.CHANGED, f"roll back to {desired.reference} and hold ({new_hold.reason})")


def decide_unhold(hold: Hold | None) -> Decision:
    """Releasing a hold is a change only if there is one."""
    if hold is None:
        return Decision(Outcome.NOOP, "manifest is not held")
    return Decision(Outcome.CHANGED, f"release the hold set by {hold.by} at {hold.at}")


def one_line(value: str) -> str:
    """value as one line of plain text: each run of whitespace (line breaks too) becomes one space.

    ValueError says why text cannot be kept as it reads: bytes that are not UTF-8 (they arrive as
    lone surrogates), control characters, bidirectional overrides, more than MAX_TEXT characters.
    """
    text = " ".join(value.split())
    for char in text:
        category = unicodedata.category(char)
        if category == "Cs":
            raise ValueError("is not valid UTF-8 text")
        if category == "Cc" or char in BIDI_CONTROLS or (category == "Cn" and _noncharacter(char)):
            raise ValueError(f"contains the non-printable character U+{ord(char):04X}")
    if len(text) > MAX_TEXT:
        raise ValueError(f"is {len(text)} characters long; at most {MAX_TEXT}")
    return text


def _noncharacter(char: str) -> bool:
    """U+FDD0..U+FDEF and U+xxFFFE/U+xxFFFF: never meant for interchange (YAML can only escape them)."""
    code = ord(char)
    return 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE


def is_bot_commit(author_email: str, bot_email: str) -> bool:
    """A commit the release bot made: the bot is its author. Its message proves nothing: anyone can type
    `[skip ci]` and our trailer (a copied bot message, a hand-made revert), and that commit is a push."""
    return author_email.strip().lower() == bot_email.strip().lower()


def newest_human(line: list[tuple[str, str]], bot_email: str) -> str | None:
    """The first commit of (sha, author email), newest first, that the bot did not make."""
    return next((sha for sha, email in line if not is_bot_commit(email, bot_email)), None)


def commit_message(subject: str, body: str, trailers: dict[str, str]) -> str:
    """A bot commit message: `[skip ci]` subject so CI never loops, then body, then git trailers."""
    trailer_text = "\n".join(f"{key}: {value}" for key, value in trailers.items())
    parts = [f"{subject} {SKIP_CI}", body.strip(), trailer_text]
    return "\n\n".join(part for part in parts if part) + "\n"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with full-jitter exponential backoff, for pushes that lose a race."""

    max_attempts: int = 20
    base_delay: float = 0.05
    max_delay: float = 2.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based): uniform in [0, cap]."""
        cap = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return rng.uniform(0, cap)

    @property
    def worst_case_wait(self) -> float:
        """Upper bound of the total time spent sleeping between attempts."""
        return sum(min(self.max_delay, self.base_delay * 2 ** (n - 1)) for n in range(1, self.max_attempts))


@dataclass(frozen=True)
class SignedCommit:
    """A commit of the first-parent line and the fingerprint of the key whose good signature it bears
    (None: unsigned, a bad signature, or one that cannot be checked)."""

    sha: str
    signer: str | None


def untrusted_since_bot(
    line: list[SignedCommit], bot_keys: frozenset[str], anchor: str | None = None
) -> tuple[list[str], bool]:
    """Walk line (newest first) down to the newest commit the bot signed, or to the trust anchor (the
    branch's head when the stack was created), whichever comes first: (the commits on the way that the
    bot did not sign, whether such a commit was reached). Each of those must be vouched for otherwise
    (a pull request GitHub merged into the branch) before the bot signs on top, and one must have been
    reached (in this part of the line or an older one). The anchor itself is trusted as it is."""
    untrusted: list[str] = []
    for commit in line:
        if commit.signer in bot_keys or commit.sha == anchor:
            return untrusted, True
        untrusted.append(commit.sha)
    return untrusted, False
