"""Issue 8 point 5: any text a user can pass stays text. Property-based (hypothesis): arbitrary reasons
and names go through the CLI's own normalisation (core.one_line) into the hold annotations; the real
kustomize (`kubectl kustomize`) must accept the result, and the annotations must read back equal with
a YAML 1.2 reader (ruamel, ours) and a YAML 1.1 reader (PyYAML, what `yes`/`on`/`1e3`/`12:30` trip).
Newlines in --by must never forge a commit trailer."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from jenkins import core, manifest
from jenkins.core import Hold
from tests.conftest import require
from tests.jenkins.conftest import DATA, GitopsRepo, git, run_cli

BASE = (DATA / "kustomization.yaml").read_text()
# Strings YAML 1.1 readers turn into something else when written plain (booleans, null, numbers,
# sexagesimals, dates, merge keys), plus YAML indicators and line breaks.
TRAPS = ["yes", "No", "on", "OFF", "y", "~", "null", "1e3", "0x1F", "0o17", "12:30", "2026-12-01",
         ".inf", "<<", "- x", "a: b", "#c", "'q'", '"dq"', "&a *a", "!tag", "%YAML", "@x", "`x`", "| x",
         "> x"]  # fmt: skip
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=120)


def kustomize_accepts(text: str) -> None:
    require(shutil.which("kubectl") is not None, "kubectl (for `kubectl kustomize`) is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(DATA / "deployment.yaml", Path(tmp) / "deployment.yaml")
        (Path(tmp) / "kustomization.yaml").write_text(text, encoding="utf-8")
        proc = subprocess.run(["kubectl", "kustomize", tmp], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def yaml11_annotations(text: str) -> dict:
    return (yaml.safe_load(text.removeprefix(manifest.BOM)).get("metadata") or {}).get("annotations") or {}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reason=TEXT, by=TEXT)
@example(reason="yes", by="null")
@example(reason="12:30", by="on")
@example(reason="line one\nGitops-Action: promote", by="eve\nHeld-By: mallory")
@example(reason="tab\there\u2028and\u0085next", by="  spaced  out  ")
@example(reason="\ufeffbom first", by="日本語 ☃ 👩‍💻")
def test_any_reason_and_name_stay_text_for_every_yaml_reader(reason: str, by: str) -> None:
    try:
        clean_reason, clean_by = core.one_line(reason), core.one_line(by)
    except ValueError as exc:
        # Refused (exit 2) only for what cannot be kept as it reads, and the message says which.
        assert any(word in str(exc) for word in ("non-printable", "UTF-8", "characters long"))
        return
    assume(clean_reason and clean_by)
    hold = Hold(by=clean_by, reason=clean_reason, at="2026-12-01T10:00:00Z")

    held = manifest.with_hold(BASE, hold)

    assert manifest.read_hold(held) == hold  # YAML 1.2 (ruamel)
    annotations = yaml11_annotations(held)  # YAML 1.1 (PyYAML)
    assert annotations[manifest.HOLD_PREFIX + "held-by"] == clean_by
    assert annotations[manifest.HOLD_PREFIX + "hold-reason"] == clean_reason
    assert annotations[manifest.HOLD_PREFIX + "held-at"] == hold.at
    kustomize_accepts(held)
    # A commit message line carries them: one line each, so no text can start a trailer line.
    message = core.commit_message("rollback x", f"Reason: {clean_reason}", {"Held-By": clean_by})
    assert sum(line.startswith("Held-By:") for line in message.splitlines()) == 1


@pytest.mark.parametrize("trap", TRAPS)
def test_yaml_11_traps_are_written_so_kustomize_reads_strings(trap: str) -> None:
    held = manifest.with_hold(BASE, Hold(by=trap, reason=trap, at="2026-12-01T10:00:00Z"))
    kustomize_accepts(held)
    assert set(yaml11_annotations(held).values()) == {trap, "2026-12-01T10:00:00Z"}


def test_rollback_with_hostile_text_end_to_end(
    gitops_repo: GitopsRepo, image_repository: str, push_test_image
) -> None:
    sha = gitops_repo.app_commit("v1")
    push_test_image(image_repository, sha)
    ws = gitops_repo.workspace(sha)

    result = run_cli(
        ws, "rollback", "--image-repository", image_repository, "--to", sha,
        "--reason", "yes", "--by", "no\nGitops-Action: promote\nSource-Commit: " + "f" * 40, "--json",
    )  # fmt: skip

    assert result.returncode == 0, result.output
    text = gitops_repo.manifest_at()
    kustomize_accepts(text)
    assert manifest.read_hold(text).reason == "yes"
    message = git(gitops_repo.remote, "log", "-1", "--format=%B", result.json["commit"])
    trailers = git(gitops_repo.remote, "interpret-trailers", "--parse", input_text=message).splitlines()
    assert [line for line in trailers if line.startswith("Gitops-Action:")] == ["Gitops-Action: rollback"]
    assert [line for line in trailers if line.startswith("Source-Commit:")] == [f"Source-Commit: {sha}"]
    # Control characters are refused as bad input, naming the flag; nothing is written.
    tip = gitops_repo.tip()
    bad = run_cli(ws, "rollback", "--image-repository", image_repository, "--to", sha, "--reason", "a\x07b")
    assert bad.returncode == 2 and "--reason: contains the non-printable character U+0007" in bad.stderr
    assert gitops_repo.tip() == tip
