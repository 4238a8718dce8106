"""Structural edits of kustomization.yaml, checked with the real kustomize (kubectl) and yamllint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jenkins import manifest
from jenkins.core import Hold, ImageEntry
from tests.conftest import ROOT, require

DATA = Path(__file__).parent / "data"
ORIGINAL = (DATA / "kustomization.yaml").read_text()
DIGEST = "sha256:" + "0" * 64
HOLD = Hold(by="alice@example.com", reason="v2: 500s on /checkout, see INC-42", at="2026-11-24T07:00:00Z")


def entry(tag: str, digest: str | None = DIGEST) -> ImageEntry:
    return ImageEntry("hello-gitops", "127.0.0.1:5000/hello", tag, digest)


def kustomize(text: str, directory: Path, resources: Path = DATA) -> str:
    """`kubectl kustomize` of text with the resources next to it; returns the rendered YAML."""
    require(shutil.which("kubectl") is not None, "kubectl (for `kubectl kustomize`) is not installed")
    shutil.copytree(resources, directory, dirs_exist_ok=True)
    (directory / "kustomization.yaml").write_text(text)
    proc = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def yamllint(path: Path) -> None:
    """yamllint --strict with the project's config, as `make lint` runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-c", str(ROOT / ".yamllint"), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout


def test_with_image_changes_only_the_entry_and_keeps_comments_and_order() -> None:
    sha = "1" * 40
    edited = manifest.with_image(ORIGINAL, entry(sha))
    # The comment on the rewritten newName line described the old value: it goes; all others stay.
    expected = ORIGINAL.replace(
        "    newTag: bootstrap\n", f'    newTag: "{sha}"\n    digest: {DIGEST}\n'
    ).replace("registry.invalid/hello  # replaced by the first release", "127.0.0.1:5000/hello")
    assert edited == expected
    assert manifest.read_image(edited) == entry(sha)


def test_comment_lines_after_a_rewritten_value_are_kept() -> None:
    text = "images:\n  - name: hello-gitops\n    newTag: old  # placeholder\n    # keep me\n  - name: other\n"
    edited = manifest.with_image(text, ImageEntry("hello-gitops", None, "8" * 40, None))
    assert (
        edited
        == f'images:\n  - name: hello-gitops\n    newTag: "{"8" * 40}"\n    # keep me\n  - name: other\n'
    )
    assert manifest.with_image(edited, manifest.read_image(edited)) == edited  # unchanged values: untouched


def test_edit_round_trips() -> None:
    edited = manifest.with_image(ORIGINAL, entry("2" * 40))
    back = manifest.with_image(edited, manifest.read_image(ORIGINAL))
    expected = ORIGINAL.replace("newTag: bootstrap", 'newTag: "bootstrap"')  # tags are always quoted
    assert back == expected.replace("  # replaced by the first release", "")


@pytest.mark.parametrize("sha", ["1234567890" * 4, "1234567e12" + "3" * 30, "0123456789" * 4])
def test_tags_that_look_like_numbers_stay_strings_for_kustomize(sha: str, tmp_path: Path) -> None:
    rendered = kustomize(manifest.with_image(ORIGINAL, entry(sha)), tmp_path)
    assert f"image: 127.0.0.1:5000/hello:{sha}@{DIGEST}" in rendered


def test_hold_is_valid_kustomize_and_does_not_touch_rendered_resources(tmp_path: Path) -> None:
    plain = manifest.with_image(ORIGINAL, entry("3" * 40))
    held = manifest.with_hold(plain, HOLD)
    assert manifest.read_hold(held) == HOLD
    assert manifest.read_hold(plain) is None
    assert 'kind: Kustomization\nmetadata:\n  annotations:\n    release.gitops/held-by: "alice' in held
    assert kustomize(held, tmp_path) == kustomize(plain, tmp_path)  # no rollout just for a hold
    assert manifest.with_hold(held, None) == plain


def test_hold_keeps_other_annotations() -> None:
    text = ORIGINAL.replace(
        "kind: Kustomization\n", "kind: Kustomization\nmetadata:\n  annotations:\n    team: web\n"
    )
    held = manifest.with_hold(text, HOLD)
    assert "team: web" in held
    assert manifest.with_hold(held, None) == text


def test_edited_manifest_passes_yamllint_strict(tmp_path: Path) -> None:
    path = tmp_path / "kustomization.yaml"
    path.write_text(manifest.with_hold(manifest.with_image(ORIGINAL, entry("4" * 40)), HOLD))
    yamllint(path)


def test_explicit_document_start_is_kept() -> None:
    edited = manifest.with_image("---\n" + ORIGINAL, entry("5" * 40))
    assert edited.startswith("---\n# The kustomize base")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("images: [\n", "not valid YAML"),
        ("- a\n- b\n", "not a YAML mapping"),
        ("kind: Kustomization\n", "no `images:` list"),
        ("images:\n  - name: other\n", "no `images:` entry named 'hello-gitops'"),
    ],
)
def test_unusable_manifests_are_named(text: str, message: str) -> None:
    with pytest.raises(manifest.ManifestError, match=message.replace("[", r"\[")):
        manifest.read_image(text)


def test_unified_diff() -> None:
    diff = manifest.unified_diff(
        ORIGINAL, manifest.with_image(ORIGINAL, entry("6" * 40)), "k8s/kustomization.yaml"
    )
    assert diff.startswith("--- a/k8s/kustomization.yaml\n+++ b/k8s/kustomization.yaml\n")
    assert "-    newTag: bootstrap\n" in diff and f"+    digest: {DIGEST}\n" in diff
    assert manifest.unified_diff(ORIGINAL, ORIGINAL, "x") == ""


def test_the_repositorys_own_manifest_takes_every_edit(tmp_path: Path) -> None:
    """k8s/kustomization.yaml as shipped: the release edits keep it a valid, lint-clean kustomization."""
    source = ROOT / "k8s" / "kustomization.yaml"
    require(source.is_file(), "k8s/kustomization.yaml is missing")
    text = source.read_text()
    manifest.read_image(text)
    edited = manifest.with_hold(manifest.with_image(text, entry("7" * 40)), HOLD)
    rendered = kustomize(edited, tmp_path / "k8s", resources=source.parent)
    assert f"image: 127.0.0.1:5000/hello:{'7' * 40}@{DIGEST}" in rendered
    yamllint(tmp_path / "k8s")
