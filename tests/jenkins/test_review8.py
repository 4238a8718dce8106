"""Adversarial review of issue 8 (release correctness): each test failed on the code before its fix.

Real git (bare remote, detached workspaces), the real local registry and moto where the case involves
them; `kubectl kustomize` renders what the bot wrote. Where a real registry cannot give the odd answer
(a malformed digest header), a tiny loopback HTTP server speaks the registry API instead.
"""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from jenkins import manifest, registry
from jenkins.core import Hold, ImageEntry
from tests.jenkins.conftest import GitopsRepo, git, run_cli
from tests.jenkins.test_registry_ecr import put_commit_image

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
    text = SHARED_ENTRY.replace("- &app {name: hello-gitops, newName: registry.example.com/app}\n- <<: *app\n",
                                "- {name: hello-gitops, newName: &repo registry.example.com/app}\n"
                                "- newName: *repo\n")  # fmt: skip
    edited = manifest.with_image(text, ImageEntry("hello-gitops", "registry.example.com/new", SHA, DIGEST))

    rendered = kustomize(tmp_path, edited)
    assert f"image: registry.example.com/new:{SHA}@{DIGEST}" in rendered
    assert "image: registry.example.com/app\n" in rendered  # the proxy keeps its image
