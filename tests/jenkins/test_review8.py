"""Adversarial review of issue 8 (release correctness): each test failed on the code before its fix.

Real git (bare remote, detached workspaces), the real local registry and moto where the case involves
them; `kubectl kustomize` renders what the bot wrote. Where a real registry cannot give the odd answer
(a malformed digest header), a tiny loopback HTTP server speaks the registry API instead.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jenkins import actions, manifest, registry
from jenkins.core import Hold, ImageEntry, Outcome, Relation, RetryPolicy
from jenkins.gitops import Git, Identity
from tests.conftest import ROOT
from tests.jenkins.conftest import BOT_EMAIL, MANIFEST, GitopsRepo, git, run_cli
from tests.jenkins.test_registry_ecr import promote_twice_into_an_all_immutable_repository

PushImage = Callable[[str, str], str]
SHA = "1234e567" + "0" * 32
DIGEST = "sha256:" + "b" * 64
HOLD = Hold(by="ops", reason="INC-1", at="2026-12-01T00:00:00Z")
KUBECTL = shutil.which("kubectl") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "kubectl")
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
      - name: app
        image: hello-gitops
      - name: proxy
        image: proxy
"""


def kustomize(tmp_path: Path, kustomization: str) -> str:
    (tmp_path / "deployment.yaml").write_text(DEPLOYMENT)
    (tmp_path / "kustomization.yaml").write_text(kustomization)
    return subprocess.run(
        [KUBECTL, "kustomize", str(tmp_path)], capture_output=True, text=True, check=True
    ).stdout


# --- YAML anchors: an edit of a shared node would change every place that aliases it ----------------

# kustomize (go-yaml) resolves anchors, aliases and merge keys: the proxy image here comes from the
# app's entry. Writing the app's new image into that shared node would silently change the proxy too.
SHARED_ENTRY = """\
resources:
- deployment.yaml
images:
- &app {name: hello-gitops, newName: registry.example.com/app}
- <<: *app
  name: proxy
"""
# commonAnnotations go onto every rendered object, pod templates included: a hold written into
# annotations shared with them would restart every pod and leak the hold reason into the cluster.
SHARED_ANNOTATIONS = """\
metadata:
  annotations: &notes
    team: web
commonAnnotations: *notes
resources:
- deployment.yaml
images:
- name: hello-gitops
  newName: registry.example.com/app
"""


def test_an_image_entry_shared_through_an_anchor_is_refused_not_edited_for_both(tmp_path: Path) -> None:
    assert "image: registry.example.com/app\n" in kustomize(tmp_path, SHARED_ENTRY)  # the proxy's too

    with pytest.raises(manifest.ManifestError, match="anchor"):
        manifest.with_image(SHARED_ENTRY, ImageEntry("hello-gitops", "registry.example.com/app", SHA, DIGEST))


def test_annotations_shared_through_an_anchor_get_no_hold(tmp_path: Path) -> None:
    assert "team: web" in kustomize(tmp_path, SHARED_ANNOTATIONS)  # rendered onto the objects

    with pytest.raises(manifest.ManifestError, match="anchor"):
        manifest.with_hold(SHARED_ANNOTATIONS, HOLD)


def test_an_anchored_value_inside_the_entry_is_edited_without_touching_its_aliases(tmp_path: Path) -> None:
    shared = "- &app {name: hello-gitops, newName: registry.example.com/app}\n- <<: *app\n"
    text = SHARED_ENTRY.replace(
        shared, "- {name: hello-gitops, newName: &repo registry.example.com/app}\n- newName: *repo\n"
    )
    edited = manifest.with_image(text, ImageEntry("hello-gitops", "registry.example.com/new", SHA, DIGEST))

    rendered = kustomize(tmp_path, edited)
    assert f"image: registry.example.com/new:{SHA}@{DIGEST}" in rendered
    assert "image: registry.example.com/app\n" in rendered  # the proxy keeps its image


# --- --commit / --to as git understands revisions ---------------------------------------------------


def test_commit_given_as_a_tree_or_blob_id_is_bad_input(
    gitops_repo: GitopsRepo, image_repository: str
) -> None:
    tip = gitops_repo.tip()
    ws = gitops_repo.workspace(tip)
    for rev in (
        git(ws, "rev-parse", f"{tip}^{{tree}}").strip(),
        git(ws, "rev-parse", f"{tip}:{MANIFEST}").strip(),
    ):
        result = run_cli(ws, "release", "--image-repository", image_repository, "--commit", rev, "--json")
        assert result.returncode == 2, result.output
        assert result.json["outcome"] == "error" and "not a commit" in result.json["error"]


def test_commit_given_as_a_tag_or_relative_rev_releases_the_commit_it_names(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    first = gitops_repo.app_commit("v1")
    gitops_repo.app_commit("v2")
    push_test_image(image_repository, first)
    ws = gitops_repo.workspace(gitops_repo.tip())
    git(ws, "tag", "-a", "-m", "release", "v1", first)
    for rev in ("v1", "HEAD~1", first[:10]):
        result = run_cli(ws, "promote", "--image-repository", image_repository, "--commit", rev,
                         "--dry-run", "--json")  # fmt: skip
        assert result.returncode == 0, result.output
        assert result.json["source_commit"] == first


# --- registries returning odd answers ---------------------------------------------------------------


class OddRegistry(http.server.BaseHTTPRequestHandler):
    """Answers every manifest HEAD with 200 and whatever digest header the test sets; with a challenge
    set, asks for authentication first (401), and its token endpoint answers with `token_body`."""

    digest = ""
    challenge = ""
    token_body = b"{}"

    def do_HEAD(self) -> None:
        if self.challenge and "Authorization" not in self.headers:
            self.send_response(401)
            self.send_header("WWW-Authenticate", self.challenge)
        else:
            self.send_response(200)
            self.send_header("Docker-Content-Digest", self.digest)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.token_body)))
        self.end_headers()
        self.wfile.write(self.token_body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def odd_registry() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OddRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "header",
    [
        "sha256:" + "z" * 64,
        "sha256:" + "A" * 64,
        "sha512:" + "a" * 128,
        "sha256:abc",
        "a" * 64,
        "sha256:" + "a" * 64 + "\x7f",
    ],
)
def test_a_digest_header_that_is_no_sha256_digest_is_an_error_not_written(
    odd_registry: str, gitops_repo: GitopsRepo, header: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(OddRegistry, "digest", header)
    with pytest.raises(registry.RegistryError, match="not sha256: followed by 64 lowercase hex"):
        registry.resolve_digest(f"{odd_registry}/hello", SHA)

    tip = gitops_repo.tip()
    before = gitops_repo.manifest_at()
    result = run_cli(
        gitops_repo.workspace(tip), "promote", "--image-repository", f"{odd_registry}/hello", "--json"
    )
    assert result.returncode == 1, result.output
    assert result.json["outcome"] == "error" and "is not sha256:" in result.json["error"]
    assert (gitops_repo.tip(), gitops_repo.manifest_at()) == (tip, before)


# --- a failure after the manifest commit landed says so --------------------------------------------


def test_a_mark_that_fails_after_the_push_reports_the_pushed_commit(
    aws_env: str, gitops_repo: GitopsRepo
) -> None:
    second, result = promote_twice_into_an_all_immutable_repository(gitops_repo, "gitops/review-8-immutable")

    assert result.returncode == 1
    pushed = gitops_repo.tip()
    assert f'newTag: "{second}"' in gitops_repo.manifest_at()  # the manifest commit did land ...
    assert result.json["commit"] == pushed  # ... and the caller is told which one
    assert "nothing was written to git" not in result.stderr
    assert pushed[:12] in result.stderr


# --- only the bot's own commits are skipped ---------------------------------------------------------


def test_a_human_commit_that_copies_the_bots_message_is_still_released(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    """Anyone can type `[skip ci]` and a Gitops-Action trailer (a copied bot message, a hand-made revert
    of a rollback); only the bot's identity makes a bot commit. Otherwise, with a bot commit on top, the
    walk skips this human's code and releases an older commit (here: `stale`, nothing deployed)."""
    git(gitops_repo.dev, "pull", "--quiet", "--rebase", "origin", "main")
    (gitops_repo.dev / "app" / "version.txt").write_text("hand-made\n")
    message = "deploy hello-gitops by hand [skip ci]\n\nGitops-Action: promote\n"
    git(gitops_repo.dev, "commit", "--quiet", "-am", message)
    git(gitops_repo.dev, "push", "--quiet", "origin", "HEAD:main")
    human = gitops_repo.tip()
    push_test_image(image_repository, human)
    ops = gitops_repo.workspace(human)
    rolled = run_cli(ops, "rollback", "--image-repository", image_repository, "--to", human, "--reason", "x")
    assert rolled.returncode == 0, rolled.output
    assert run_cli(ops, "unhold").returncode == 0  # a bot commit now sits on top of the human one

    result = run_cli(gitops_repo.workspace(gitops_repo.tip()), "release", "--image-repository",
                     image_repository, "--json")  # fmt: skip

    assert result.returncode == 0, result.output
    assert result.json["source_commit"] == human


# --- the git deadline is input too --------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "0", "-5", "nan", "inf", "1e999", "12s"])
def test_a_git_timeout_that_is_no_positive_number_is_bad_input_with_a_json_line(
    gitops_repo: GitopsRepo, value: str
) -> None:
    """A typo in GITOPS_GIT_TIMEOUT crashed at import (a traceback, no JSON line); 0 or a negative value
    failed every fetch as a "hung remote" (exit 1), and inf silently removed the deadline."""
    ws = gitops_repo.workspace(gitops_repo.tip())
    before = gitops_repo.tip()
    result = run_cli(ws, "unhold", "--json", env={"GITOPS_GIT_TIMEOUT": value})
    assert result.returncode == 2, result.output
    assert "Traceback" not in result.output
    assert "GITOPS_GIT_TIMEOUT" in result.json["error"]
    assert gitops_repo.tip() == before


# --- the bot's identity decides what is skipped: it must be one ---------------------------------------


@pytest.mark.parametrize(
    ("name", "email"),
    [
        ("gitops-bot", ""),
        ("gitops-bot", "bot <x@y>"),
        ("", "bot@example.com"),
        ("gitops\nbot", "bot@example.com"),
        ("gitops-bot", "bot@example.com\nGitops-Action: promote"),
    ],
)
def test_a_bot_identity_that_is_no_git_ident_is_bad_input(
    gitops_repo: GitopsRepo, name: str, email: str
) -> None:
    """An empty GITOPS_BOT_EMAIL made every commit without an email "the bot's" (skipped by the walk to
    the human commit); git silently rewrites a name or email it cannot store, so the bot's own commits
    would then not match it."""
    ws = gitops_repo.workspace(gitops_repo.tip())
    result = run_cli(ws, "unhold", "--json", env={"GITOPS_BOT_NAME": name, "GITOPS_BOT_EMAIL": email})
    assert result.returncode == 2, result.output
    assert "GITOPS_BOT_" in result.json["error"]


# --- a submodule in the build context ---------------------------------------------------------------


def test_a_build_context_with_a_submodule_is_bad_input_before_anything_is_built(
    gitops_repo: GitopsRepo, image_repository: str, tmp_path: Path
) -> None:
    """The commit's tree holds only the submodule's commit id: exporting it gives an empty directory, so
    the image would silently lack that code. Refuse, naming the path."""
    lib = tmp_path / "lib"
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(lib))
    git(
        lib,
        "-c",
        "user.name=L",
        "-c",
        "user.email=l@example.com",
        "commit",
        "--quiet",
        "--allow-empty",
        "-m",
        "lib",
    )
    git(gitops_repo.dev, "pull", "--quiet", "--rebase", "origin", "main")
    git(
        gitops_repo.dev,
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "--quiet",
        "add",
        str(lib),
        "app/vendor/lib",
    )
    git(gitops_repo.dev, "commit", "--quiet", "-m", "app: vendor lib as a submodule")
    git(gitops_repo.dev, "push", "--quiet", "origin", "HEAD:main")
    tip = gitops_repo.tip()

    result = run_cli(gitops_repo.workspace(tip), "release", "--image-repository", image_repository, "--json")

    assert result.returncode == 2, result.output
    assert "app/vendor/lib" in result.json["error"] and "submodule" in result.json["error"]
    assert gitops_repo.tip() == tip
    assert registry.resolve_digest(image_repository, tip) is None


@pytest.mark.parametrize("body", [b"[]", b'"token"', b'{"token": 5}', b"null"])
def test_a_token_endpoint_answering_no_json_object_is_a_registry_error(
    odd_registry: str, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(OddRegistry, "challenge", f'Bearer realm="http://{odd_registry}/token",service="x"')
    monkeypatch.setattr(OddRegistry, "token_body", body)
    with pytest.raises(registry.RegistryError, match="token"):
        registry.resolve_digest(f"{odd_registry}/hello", SHA)


def test_docker_credentials_that_are_not_base64_are_a_registry_error(
    odd_registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"auths": {odd_registry: {"auth": "not base64!"}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setattr(OddRegistry, "challenge", 'Basic realm="registry"')
    with pytest.raises(registry.RegistryError, match=r"config\.json"):
        registry.resolve_digest(f"{odd_registry}/hello", SHA)


# --- a force-push during the retry loop -------------------------------------------------------------


class ForcePushOnFirstPlan(Git):
    """The real git adapter; while the first attempt plans, someone force-pushes the branch to a history
    without the commit being released (so that attempt's push loses the race)."""

    def __init__(self, cwd: Path, rewrite: Callable[[], None]) -> None:
        super().__init__(cwd)
        self.rewrite: Callable[[], None] | None = rewrite

    def relation(self, remote: str, deployed_tag: str | None, target: str) -> Relation:
        if self.rewrite is not None:
            self.rewrite()
            self.rewrite = None
        return super().relation(remote, deployed_tag, target)


def test_a_commit_force_pushed_away_during_the_retry_loop_is_not_deployed(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image: PushImage
) -> None:
    base = gitops_repo.tip()
    doomed = gitops_repo.app_commit("doomed")
    digest = push_test_image(image_repository, doomed)

    def rewrite() -> None:  # main := base + another commit; `doomed` is gone from the branch
        git(gitops_repo.dev, "reset", "--quiet", "--hard", base)
        (gitops_repo.dev / "app" / "version.txt").write_text("rewritten\n")
        git(gitops_repo.dev, "commit", "--quiet", "-am", "app: rewritten")
        git(gitops_repo.dev, "push", "--quiet", "--force", "origin", "HEAD:main")

    ws = gitops_repo.workspace(doomed)
    ctx = actions.Context(
        git=ForcePushOnFirstPlan(ws, rewrite), remote="origin", branch="main", manifest_path=MANIFEST,
        image_name=manifest.DEFAULT_IMAGE_NAME, bot=Identity("gitops-bot", BOT_EMAIL),
        policy=RetryPolicy(max_attempts=3, base_delay=0.01), dry_run=False, environment="dev",
    )  # fmt: skip
    report = actions.promote(ctx, image_repository, doomed, digest)

    rewritten = gitops_repo.tip()
    assert report.outcome is Outcome.STALE, report
    assert "no longer on the branch" in report.reason
    assert doomed not in gitops_repo.manifest_at(rewritten)
    assert git(gitops_repo.remote, "log", "-1", "--format=%s", "main").strip() == "app: rewritten"


# --- an interrupted run -------------------------------------------------------------------------------


def test_an_interrupted_run_ends_with_json_and_leaves_no_git_behind(
    gitops_repo: GitopsRepo, tmp_path: Path
) -> None:
    """Ctrl-C (SIGINT) during a hung fetch printed a traceback, no JSON line, and left the fetch's own
    process group (ssh) running: it has a session of its own, so the terminal's signal never reaches it."""
    ws = gitops_repo.workspace(gitops_repo.tip())
    git(ws, "remote", "set-url", "origin", "ssh://git@192.0.2.1/never/answers.git")
    pid_file = tmp_path / "ssh.pid"
    hang = tmp_path / "hang.sh"
    hang.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    hang.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GIT_SSH_COMMAND": str(hang), "GITOPS_GIT_TIMEOUT": "60"}
    # As a terminal's foreground job has it: SIGINT at its default. A suite launched in the background
    # (`cmd &` without job control) inherits SIGINT ignored, and Python then never raises
    # KeyboardInterrupt, so the Ctrl-C this test sends would not be one.
    proc = subprocess.Popen(
        [sys.executable, "-m", "jenkins", "unhold", "--json"], cwd=ws, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=20)

    assert proc.returncode == 1, stdout + stderr
    assert "Traceback" not in stderr
    assert json.loads(stdout.strip().splitlines()[-1])["outcome"] == "error"
    ssh = int(pid_file.read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{ssh}").exists() or "zombie" in Path(f"/proc/{ssh}/status").read_text()
