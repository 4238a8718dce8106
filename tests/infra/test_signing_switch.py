"""The commit that switches signing on (infra/signing_switch.py), pushed as `pulumi up` pushes it: over a
real sshd with a deploy key and a pinned host key, into a bare repository. Its signature is checked by
the tools that consume it: GnuPG through `git verify-commit`, and the release bot's own history reading
(jenkins/gitops.py `signed_line`, which decides where the bot's checks start). source-controller's
verdict is on the control plane: plane/localcluster.py switches signing on with this function, and
tests/cluster/test_signed_commits.py deploys only what the bot's key signed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from infra import signing_switch
from infra.openpgp import BOT_USER_ID, OpenPgpKeyProvider
from infra.signing_switch import (
    BOT_HISTORY,
    FAILED,
    MOVED,
    PUSHED,
    SigningSwitchError,
    SigningSwitchProvider,
    switch_on,
)
from jenkins import signing
from jenkins.cli import DEFAULT_BOT
from jenkins.core import is_bot_commit, newest_human
from jenkins.gitops import Git
from tests.conftest import require
from tests.infra.conftest import create_in_own_process
from tests.jenkins import conftest as jenkins_fixtures
from tests.jenkins import test_ssh
from tests.jenkins.conftest import GitopsRepo, git
from tests.jenkins.test_ssh import Sshd, keygen

# The release tests' repository and sshd (a deploy key limited to the repository, a pinned host key).
gitops_repo = jenkins_fixtures.gitops_repo
sshd = test_ssh.sshd

BRANCH = "main"


@pytest.fixture(scope="module")
def bot_key() -> dict[str, str]:
    require(subprocess.run(["gpg", "--version"], capture_output=True).returncode == 0, "gpg is not installed")
    return OpenPgpKeyProvider().create({"user_id": BOT_USER_ID}).outs


def switch_args(
    repo: GitopsRepo, sshd: Sshd, bot_key: dict[str, str], anchor: str, **kw: str
) -> dict[str, str]:
    """The switch's inputs for this repository over this sshd, `kw` replacing any of them."""
    return {
        "url": sshd.url(repo.remote),
        "branch": BRANCH,
        "anchor": anchor,
        "deploy_key": sshd.key.read_text(),
        "known_hosts": sshd.known_hosts.read_text(),
        "signing_key": bot_key["private_key"],
        **kw,
    }


def push_switch(
    repo: GitopsRepo, sshd: Sshd, bot_key: dict[str, str], anchor: str, **kw: str
) -> tuple[str, str]:
    return switch_on(**switch_args(repo, sshd, bot_key, anchor, **kw))


def test_on_the_anchor_it_pushes_an_empty_commit_the_bot_reads_as_its_own_signed_one(
    gitops_repo: GitopsRepo, sshd: Sshd, bot_key: dict[str, str], tmp_path: Path
) -> None:
    anchor = gitops_repo.tip()

    outcome, commit = push_switch(gitops_repo, sshd, bot_key, anchor)

    assert (outcome, gitops_repo.tip()) == (PUSHED, commit)
    remote = gitops_repo.remote
    assert git(remote, "rev-parse", f"{commit}^@").split() == [anchor]  # one parent: the anchor
    assert git(remote, "rev-parse", f"{commit}^{{tree}}") == git(remote, "rev-parse", f"{anchor}^{{tree}}")
    assert git(remote, "cat-file", "commit", commit).count("\ngpgsig -----BEGIN PGP SIGNATURE-----\n") == 1
    assert (
        git(remote, "log", "-1", "--format=%an <%ae>|%cn <%ce>", commit).strip()
        == f"{BOT_USER_ID}|{BOT_USER_ID}"
    )
    assert git(remote, "log", "-1", "--format=%s", commit).strip().endswith("[skip ci]")
    # git's own parser reads the object (fsck would name a malformed header).
    subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=remote, check=True, capture_output=True)
    # The release's reading: the bot made it (so a build looks under it for the human commit), and it is
    # the newest commit gpg finds signed by the bot's key, with only that key in the keyring.
    assert is_bot_commit(git(remote, "log", "-1", "--format=%ae", commit).strip(), DEFAULT_BOT.email)
    assert (
        newest_human([(commit, DEFAULT_BOT.email), (anchor, "dev@example.com")], DEFAULT_BOT.email) == anchor
    )
    key_file = tmp_path / "signing.asc"
    key_file.write_text(bot_key["private_key"])
    with signing.from_env({signing.KEY_FILE: str(key_file)}) as signer:
        assert signer is not None
        (signed,) = Git(remote).signed_line(commit, 0, 1, signer)
        assert signed.signer in signer.bot_keys
        (unsigned,) = Git(remote).signed_line(anchor, 0, 1, signer)
        assert unsigned.signer is None


def test_a_branch_that_moved_since_the_anchor_gets_nothing(
    gitops_repo: GitopsRepo, sshd: Sshd, bot_key: dict[str, str]
) -> None:
    """Signing on top of a push made after the anchor would vouch for it: the first release's history
    check decides about it instead."""
    anchor = gitops_repo.tip()
    pushed = gitops_repo.app_commit("pushed after the stack read its head")

    assert push_switch(gitops_repo, sshd, bot_key, anchor) == (MOVED, "")
    assert gitops_repo.tip() == pushed


def test_a_branch_rewound_below_the_anchor_is_not_brought_back(
    gitops_repo: GitopsRepo, sshd: Sshd, bot_key: dict[str, str]
) -> None:
    """A fast-forward from the rewound tip would restore the removed anchor: the lease refuses."""
    first = gitops_repo.tip()
    anchor = gitops_repo.app_commit("later removed")
    git(gitops_repo.remote, "update-ref", f"refs/heads/{BRANCH}", first)

    assert push_switch(gitops_repo, sshd, bot_key, anchor) == (MOVED, "")
    assert gitops_repo.tip() == first


def test_the_lease_holds_when_the_branch_moves_between_fetch_and_push(
    gitops_repo: GitopsRepo, sshd: Sshd, bot_key: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    anchor = gitops_repo.tip()
    real = signing_switch._git

    def racing(cwd: Path, *args: str, **kw: object) -> str:
        out = real(cwd, *args, **kw)  # type: ignore[arg-type]
        if args[0] == "hash-object":  # after the fetch, before the push: someone pushes
            gitops_repo.app_commit("raced")
        return out

    monkeypatch.setattr(signing_switch, "_git", racing)
    assert push_switch(gitops_repo, sshd, bot_key, anchor) == (MOVED, "")
    assert git(gitops_repo.remote, "log", "-1", "--format=%s", BRANCH).strip() == "app: raced"


def test_an_unknown_host_key_fails_naming_the_step_and_no_key(
    gitops_repo: GitopsRepo, sshd: Sshd, bot_key: dict[str, str], tmp_path: Path
) -> None:
    anchor = gitops_repo.tip()
    other = keygen(tmp_path / "other_host")

    with pytest.raises(SigningSwitchError) as caught:
        push_switch(gitops_repo, sshd, bot_key, anchor, known_hosts=f"[127.0.0.1]:{sshd.port} {other}\n")

    message = str(caught.value)
    assert "fetch main" in message and "Host key verification failed" in message
    assert "PRIVATE" not in message and sshd.key.read_text().split()[3] not in message
    assert gitops_repo.tip() == anchor


def test_a_key_the_repository_does_not_know_fails_and_pushes_nothing(
    gitops_repo: GitopsRepo,
    sshd: Sshd,
    bot_key: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signing_switch, "FETCH_DELAYS", (0.0,))
    anchor = gitops_repo.tip()
    keygen(tmp_path / "stranger")

    with pytest.raises(SigningSwitchError, match=r"fetch main .*Permission denied"):
        push_switch(gitops_repo, sshd, bot_key, anchor, deploy_key=(tmp_path / "stranger").read_text())
    assert gitops_repo.tip() == anchor


def test_the_provider_runs_from_the_state_in_a_process_of_its_own(
    gitops_repo: GitopsRepo, sshd: Sshd, bot_key: dict[str, str]
) -> None:
    anchor = gitops_repo.tip()
    props = switch_args(gitops_repo, sshd, bot_key, anchor, head=anchor)
    outs = create_in_own_process(SigningSwitchProvider(), props)
    assert (outs["outcome"], outs["commit"], outs["id"]) == (PUSHED, gitops_repo.tip(), gitops_repo.tip())
    # The outputs carry no key: only the inputs, which the resource marks secret, do.
    assert sorted(outs) == ["anchor", "branch", "commit", "id", "outcome", "reason", "url"]


def test_it_is_made_once_and_only_a_failed_attempt_is_tried_again() -> None:
    """Pulumi hands `diff` the old outputs (pulumi/dynamic/__main__.py `Diff`: request.olds)."""
    provider = SigningSwitchProvider()
    outs = {"url": "git@github.com:o/r.git", "branch": "main", "anchor": "a" * 40, "outcome": PUSHED,
            "commit": "c" * 40, "reason": ""}  # fmt: skip
    news = {"url": outs["url"], "branch": "main", "anchor": "a" * 40, "head": "d" * 40, "deploy_key": "x"}
    assert provider.diff("x", outs, news).changes is False  # a new head, a rotated key: nothing
    # A re-anchor switches nothing: a new bot commit there would become where the release's check of a
    # person's image change starts (jenkins/actions.py hand_change), and forget that change.
    assert provider.diff("x", outs, {**news, "anchor": "b" * 40}).changes is False
    failed = {**outs, "outcome": FAILED, "commit": ""}
    retry = provider.diff("x", failed, news)
    assert (retry.changes, bool(retry.replaces)) == (True, True)
    # Tried again on the anchor of that moment (where the same rules decide: bot history, moved head).
    assert provider.diff("x", failed, {**news, "anchor": "b" * 40}).changes is True


def test_a_head_the_program_read_that_is_not_the_anchor_needs_no_ssh() -> None:
    """An existing stack gets the resource with its old anchor; the program's head from GitHub differs."""
    result = SigningSwitchProvider().create({
        "url": "git@nowhere.invalid:o/r.git", "branch": "main", "anchor": "a" * 40, "head": "b" * 40,
        "deploy_key": "", "known_hosts": "", "signing_key": "",
    })  # fmt: skip
    assert (result.outs["outcome"], result.outs["commit"]) == (MOVED, "")


def test_a_failure_is_recorded_not_raised_and_names_no_key(
    gitops_repo: GitopsRepo,
    sshd: Sshd,
    bot_key: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Flux then waits for the first release, as without the switch; `pulumi up` goes on."""
    monkeypatch.setattr(signing_switch, "FETCH_DELAYS", ())
    anchor = gitops_repo.tip()
    keygen(tmp_path / "other_host")
    other = f"[127.0.0.1]:{sshd.port} {(tmp_path / 'other_host.pub').read_text()}"
    result = SigningSwitchProvider().create(
        switch_args(gitops_repo, sshd, bot_key, anchor, head=anchor, known_hosts=other)
    )
    assert result.outs["outcome"] == FAILED
    assert "Host key verification failed" in result.outs["reason"]
    assert "PRIVATE" not in json.dumps(result.outs)
    assert gitops_repo.tip() == anchor


def test_a_branch_the_bot_committed_to_before_gets_nothing(
    gitops_repo: GitopsRepo, sshd: Sshd, bot_key: dict[str, str]
) -> None:
    """A stack re-created on a repository an earlier stack released (or an existing stack re-anchored):
    the bot's newest commit is where the release's check of a person's image change starts
    (jenkins/actions.py hand_change, through `newest_by`); a switch on top would move that start past a
    person's change made since. Read as the release reads it."""
    dev = gitops_repo.dev
    git(dev, "commit", "--quiet", "--allow-empty", "-m", "release by an earlier stack [skip ci]",
        env={"GIT_AUTHOR_NAME": DEFAULT_BOT.name, "GIT_AUTHOR_EMAIL": DEFAULT_BOT.email.upper()})  # fmt: skip
    git(dev, "push", "--quiet", "origin", "HEAD:main")
    anchor = gitops_repo.app_commit("a person's change since")
    assert Git(gitops_repo.remote).newest_by(anchor, DEFAULT_BOT.email)  # the release has a starting point

    assert push_switch(gitops_repo, sshd, bot_key, anchor) == (BOT_HISTORY, "")
    assert gitops_repo.tip() == anchor


def test_a_server_that_serves_partial_clones_gets_the_same_commit(
    gitops_repo: GitopsRepo, sshd: Sshd, bot_key: dict[str, str]
) -> None:
    """GitHub serves `--filter=blob:none`; the test remote does only when told (uploadpack.allowFilter)."""
    git(gitops_repo.remote, "config", "uploadpack.allowFilter", "true")
    anchor = gitops_repo.tip()
    outcome, commit = push_switch(gitops_repo, sshd, bot_key, anchor)
    assert (outcome, gitops_repo.tip()) == (PUSHED, commit)
    remote = gitops_repo.remote
    assert git(remote, "rev-parse", f"{commit}^{{tree}}") == git(remote, "rev-parse", f"{anchor}^{{tree}}")
    subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=remote, check=True, capture_output=True)


def test_a_deploy_key_github_does_not_take_yet_is_tried_again(
    gitops_repo: GitopsRepo,
    sshd: Sshd,
    bot_key: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Right after `pulumi up` registers the deploy key, GitHub may refuse it for a moment."""
    authorized = sshd.key.parent / "authorized_keys"
    granted = authorized.read_text()
    authorized.write_text("")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        authorized.write_text(granted)  # the key is taken from now on

    monkeypatch.setattr(signing_switch, "_sleep", sleep)
    anchor = gitops_repo.tip()
    assert push_switch(gitops_repo, sshd, bot_key, anchor)[0] == PUSHED
    assert waits == [signing_switch.FETCH_DELAYS[0]]


def test_the_operators_git_config_changes_nothing(
    gitops_repo: GitopsRepo,
    sshd: Sshd,
    bot_key: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ~/.gitconfig that rewrites the URL or signs pushes would send the push elsewhere or fail it."""
    home = tmp_path / "home"
    home.mkdir()
    url = sshd.url(gitops_repo.remote)
    (home / ".gitconfig").write_text(
        f'[url "file:///nonexistent/"]\n\tinsteadOf = {url}\n[push]\n\tgpgSign = true\n'
    )
    monkeypatch.setenv("HOME", str(home))
    anchor = gitops_repo.tip()
    assert push_switch(gitops_repo, sshd, bot_key, anchor)[0] == PUSHED


def test_gits_variables_in_the_operators_shell_change_nothing(
    gitops_repo: GitopsRepo, sshd: Sshd, bot_key: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pulumi up` run from a shell with GIT_DIR (and friends) exported must neither write into that
    repository nor read its config."""
    checkout = gitops_repo.dev
    before = git(checkout, "for-each-ref").strip(), git(checkout, "count-objects", "-v").strip()
    monkeypatch.setenv("GIT_DIR", str(checkout / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(checkout))
    monkeypatch.setenv("GIT_INDEX_FILE", str(checkout / ".git" / "index"))
    anchor = gitops_repo.tip()

    outcome, commit = push_switch(gitops_repo, sshd, bot_key, anchor)

    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name)
    assert (outcome, gitops_repo.tip()) == (PUSHED, commit)
    assert (git(checkout, "for-each-ref").strip(), git(checkout, "count-objects", "-v").strip()) == before
