"""Structural edits of kustomization.yaml, checked with the real kustomize (kubectl) and yamllint."""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jenkins import manifest
from jenkins.core import Hold, ImageEntry
from tests.conftest import ROOT, require

DATA = Path(__file__).parent / "data"
ORIGINAL = (DATA / "kustomization.yaml").read_text()
DIGEST = "sha256:" + "0" * 64
BOM = "\ufeff"  # a UTF-8 byte-order mark, which some Windows editors write
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


def shipped_overlay(text: str, root: Path, environment: str) -> str:
    """`kubectl kustomize` of a copy of k8s/ under root with text as the environment's overlay."""
    require(shutil.which("kubectl") is not None, "kubectl (for `kubectl kustomize`) is not installed")
    shutil.copytree(ROOT / "k8s", root / "k8s")
    overlay = root / "k8s" / "overlays" / environment
    (overlay / "kustomization.yaml").write_text(text)
    proc = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=False)
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
    ).replace("registry.invalid/hello  # replaced by the first release", '"127.0.0.1:5000/hello"')
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
    # Names and tags are always quoted.
    expected = ORIGINAL.replace("newTag: bootstrap", 'newTag: "bootstrap"').replace(
        "newName: registry.invalid/hello", 'newName: "registry.invalid/hello"'
    )
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
    """Every environment's overlay as shipped: the release edits keep it a valid, lint-clean
    kustomization over k8s/base."""
    for source in sorted((ROOT / "k8s" / "overlays").glob("*/kustomization.yaml")):
        text = source.read_text()
        manifest.read_image(text)
        edited = manifest.with_hold(manifest.with_image(text, entry("7" * 40)), HOLD)
        rendered = shipped_overlay(edited, tmp_path / source.parent.name, source.parent.name)
        assert f"image: 127.0.0.1:5000/hello:{'7' * 40}@{DIGEST}" in rendered
        yamllint(tmp_path / source.parent.name / "k8s")


# --- issue 8 point 6: every manifest kustomize accepts is edited or refused cleanly -----------------

ENTRY = "images:\n- name: hello-gitops\n  newTag: v1\n"
ACCEPTED_SHAPES = {
    "annotations with no value": "metadata:\n  annotations:\n" + ENTRY,
    "metadata with no value": "metadata:\n" + ENTRY,
    "empty metadata": "metadata: {}\n" + ENTRY,
    "empty annotations": "metadata:\n  annotations: {}\n" + ENTRY,
    "flow style images": "images: [{name: hello-gitops, newTag: v1}]\n",
    "entry with only a name": "images:\n- name: hello-gitops\n",
    "document start and end": "---\n" + ENTRY + "...\n",
    "other annotations": "metadata:\n  annotations:\n    team: web\n    note: 'yes'\n" + ENTRY,
}


@pytest.mark.parametrize("text", ACCEPTED_SHAPES.values(), ids=ACCEPTED_SHAPES.keys())
def test_shapes_kustomize_accepts_take_every_edit(text: str, tmp_path: Path) -> None:
    (tmp_path / "none").mkdir()  # no resources: the kustomization alone
    kustomize(text, tmp_path / "before", resources=tmp_path / "none")  # kustomize accepts the original
    edited = manifest.with_hold(manifest.with_image(text, entry("a" * 40)), HOLD)
    kustomize(edited, tmp_path / "after", resources=tmp_path / "none")
    assert manifest.read_image(edited) == entry("a" * 40)
    assert manifest.read_hold(edited) == HOLD
    released = manifest.with_hold(edited, None)
    assert manifest.read_hold(released) is None
    kustomize(released, tmp_path / "released", resources=tmp_path / "none")


REFUSED_SHAPES = {
    "metadata a list": ("metadata: [a]\n" + ENTRY, "`metadata` must be a mapping"),
    "annotations a list": ("metadata:\n  annotations: [a]\n" + ENTRY, "`metadata.annotations` must be"),
    "annotations a string": ("metadata:\n  annotations: x\n" + ENTRY, "`metadata.annotations` must be"),
    "images a mapping": ("images: {name: hello-gitops}\n", "no `images:` list"),
    "entry twice": (ENTRY + "- name: hello-gitops\n", "2 `images:` entries named 'hello-gitops'"),
    "newName a mapping": ("images:\n- name: hello-gitops\n  newName: {a: b}\n", "`newName`"),
    "empty file": ("", "not a YAML mapping"),
    "two documents": (ENTRY + "---\nkind: x\n", "not valid YAML"),
    "duplicate keys": (ENTRY + "images: []\n", "not valid YAML"),
    "tabs": ("images:\n\t- name: hello-gitops\n", "not valid YAML"),
}


@pytest.mark.parametrize(("text", "message"), REFUSED_SHAPES.values(), ids=REFUSED_SHAPES.keys())
def test_other_shapes_are_refused_with_a_manifest_error(text: str, message: str) -> None:
    for edit in (
        lambda: manifest.read_image(text),
        lambda: manifest.read_hold(text),
        lambda: manifest.with_image(text, entry("b" * 40)),
        lambda: manifest.with_hold(text, HOLD),
    ):
        try:
            edit()
        except manifest.ManifestError as exc:
            assert message in str(exc)
        # Only read_hold may succeed (it does not need the entry); nothing else may raise.


# --- issue 8 point 7: the bot changes only the lines it must ----------------------------------------

# What `kustomize edit set image` writes: sequences not indented under their key.
KUSTOMIZE_EDIT_STYLE = """apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- deployment.yaml
images:
- name: hello-gitops
  newName: registry.invalid/hello
  newTag: bootstrap
- name: busybox
  newTag: "1.36"
"""


def changed_lines(old: str, new: str) -> tuple[list[str], list[str]]:
    """(removed, added) lines, byte-exact (line endings included)."""
    diff = list(difflib.ndiff(old.splitlines(keepends=True), new.splitlines(keepends=True)))
    return [d[2:] for d in diff if d.startswith("- ")], [d[2:] for d in diff if d.startswith("+ ")]


LAYOUTS = {
    "kustomize edit style": KUSTOMIZE_EDIT_STYLE,
    "indented sequences": KUSTOMIZE_EDIT_STYLE.replace("\n- ", "\n  - ").replace("\n  new", "\n    new"),
    "CRLF": KUSTOMIZE_EDIT_STYLE.replace("\n", "\r\n"),
    "BOM": BOM + KUSTOMIZE_EDIT_STYLE,
    "no final newline": KUSTOMIZE_EDIT_STYLE.rstrip("\n"),
    "four-space mappings": "metadata:\n    labels:\n        a: b\n" + KUSTOMIZE_EDIT_STYLE,
}


@pytest.mark.parametrize("text", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_an_edit_changes_only_the_image_lines(text: str, tmp_path: Path) -> None:
    eol = "\r\n" if "\r\n" in text else "\n"
    edited = manifest.with_image(text, entry("c" * 40))

    removed, added = changed_lines(text, edited)
    assert [line.strip() for line in removed] == ["newName: registry.invalid/hello", "newTag: bootstrap"]
    assert [line.strip() for line in added] == [
        'newName: "127.0.0.1:5000/hello"',
        f'newTag: "{"c" * 40}"',
        f"digest: {DIGEST}",
    ]
    assert edited.startswith(BOM) == text.startswith(BOM)
    assert edited.endswith(eol) == text.endswith(eol)
    assert edited.count("\r\n") == edited.count("\n") if eol == "\r\n" else "\r" not in edited
    # And a hold adds its lines and nothing else.
    held_removed, held_added = changed_lines(edited, manifest.with_hold(edited, HOLD))
    # metadata: (unless there is one), annotations:, three keys
    assert held_removed == [] and len(held_added) == (4 if "metadata:" in text else 5)
    kustomize(edited.removeprefix(BOM), tmp_path)


@pytest.mark.parametrize("text", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_the_dry_run_diff_applies_with_git(text: str, tmp_path: Path) -> None:
    edited = manifest.with_image(text, entry("d" * 40))
    diff = manifest.unified_diff(text, edited, "kustomization.yaml")
    (tmp_path / "kustomization.yaml").write_bytes(text.encode())
    (tmp_path / "change.diff").write_bytes(diff.encode())
    subprocess.run(["git", "init", "--quiet", str(tmp_path)], check=True)
    subprocess.run(["git", "apply", "change.diff"], cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "kustomization.yaml").read_bytes() == edited.encode()


# --- day 0: the app is scaled to 0 until the first release, which removes that entry ----------------

NULL_ID = "0" * 40
DAY0 = (
    "images:\n  - name: hello-gitops\n    newName: registry.invalid/hello\n"
    f'    newTag: "{NULL_ID}"\n'
    "replicas:  # nothing released yet\n  - name: hello-gitops\n    count: 0\n"
)


def test_the_first_release_removes_the_day0_replicas_entry(tmp_path: Path) -> None:
    assert manifest.read_replicas(DAY0) == 0
    edited = manifest.with_image(DAY0, entry("3" * 40))
    assert edited == (
        'images:\n  - name: hello-gitops\n    newName: "127.0.0.1:5000/hello"\n'
        f'    newTag: "{"3" * 40}"\n    digest: {DIGEST}\n'
    )
    assert manifest.read_replicas(edited) is None


def test_only_the_apps_entry_goes_and_other_entries_stay() -> None:
    text = DAY0 + "  - name: worker\n    count: 0\n"
    edited = manifest.with_image(text, entry("3" * 40))
    assert edited.endswith("replicas:  # nothing released yet\n  - name: worker\n    count: 0\n")
    assert manifest.read_replicas(edited) is None
    assert manifest.read_replicas(edited, "worker") == 0


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (DAY0.replace("count: 0", "count: 3"), "a person chose 3 pods: not the day-0 entry"),
        (DAY0.replace(f'"{NULL_ID}"', '"' + "4" * 40 + '"'), "already released: a 0 now is a person's"),
    ],
)
def test_other_replicas_entries_are_kept(text: str, why: str) -> None:
    count = manifest.read_replicas(text)
    edited = manifest.with_image(text, entry("3" * 40))
    assert manifest.read_replicas(edited) == count, why


def test_writing_the_null_id_again_keeps_the_entry() -> None:
    """Writing "nothing released" is no first release."""
    edited = manifest.with_image(DAY0, entry(NULL_ID, None))
    assert manifest.read_replicas(edited) == 0


def test_the_shipped_overlays_are_at_day0_and_a_first_release_renders_two_pods(tmp_path: Path) -> None:
    for source in sorted((ROOT / "k8s" / "overlays").glob("*/kustomization.yaml")):
        text = source.read_text()
        assert manifest.read_image(text).new_tag == NULL_ID
        assert manifest.read_replicas(text) == 0
        root = tmp_path / source.parent.name
        rendered = shipped_overlay(manifest.with_image(text, entry("7" * 40)), root, source.parent.name)
        (deployment,) = [d for d in yaml.safe_load_all(rendered) if d["kind"] == "Deployment"]
        assert deployment["spec"]["replicas"] == 2  # k8s/base/deployment.yaml's own count
        assert "replicas" not in yaml.safe_load((root / source.relative_to(ROOT)).read_text())
        yamllint(root / "k8s")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            DAY0.replace(
                "replicas:  # nothing released yet\n  - name: hello-gitops\n    count: 0\n", "replicas: 0\n"
            ),
            "`replicas` must be a list",
        ),
        (DAY0 + "  - name: hello-gitops\n    count: 0\n", "2 `replicas:` entries named 'hello-gitops'"),
        (DAY0.replace("count: 0", "count: two"), "must be an integer"),
        (DAY0.replace("count: 0", "count: false"), "must be an integer"),
    ],
)
def test_bad_replicas_entries_are_named(text: str, message: str) -> None:
    with pytest.raises(manifest.ManifestError, match=re.escape(message)):
        manifest.read_replicas(text)
