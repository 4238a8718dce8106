"""Structural edits of k8s/kustomization.yaml: the app's `images:` entry and the hold record.

Round-trip with ruamel.yaml so comments, key order and quoting survive. Every function here maps text
to data or text to text; reading and writing files is the caller's business.

The hold record lives in the kustomization's own `metadata.annotations`. kustomize accepts that field
and does not copy it onto the rendered resources, so a hold neither breaks `kustomize build` nor
restarts pods, and it stays in the one file bot commits are allowed to touch.
"""

from __future__ import annotations

import difflib
import io

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from jenkins.core import Hold, ImageEntry

FILE_NAME = "kustomization.yaml"
DEFAULT_IMAGE_NAME = "hello-gitops"
HOLD_PREFIX = "release.gitops/"
HOLD_KEYS = {"by": "held-by", "reason": "hold-reason", "at": "held-at"}


class ManifestError(Exception):
    """The manifest cannot be read or does not have what we need; the message names the problem."""


def _yaml() -> YAML:
    yaml = YAML()  # round-trip mode
    yaml.preserve_quotes = True
    # Indented sequences (`  - name:`) are what yamllint's default config and kubectl users expect.
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # never fold a long hold reason onto several lines
    return yaml


def parse(text: str) -> CommentedMap:
    """Parse kustomization.yaml text; raise ManifestError unless it is a YAML mapping."""
    try:
        doc = _yaml().load(text)
    except YAMLError as exc:
        raise ManifestError(f"{FILE_NAME} is not valid YAML: {exc}") from exc
    if not isinstance(doc, CommentedMap):
        raise ManifestError(f"{FILE_NAME} is not a YAML mapping")
    return doc


def render(doc: CommentedMap, original: str) -> str:
    """Serialise doc, keeping the original's explicit `---` document start if it had one."""
    yaml = _yaml()
    yaml.explicit_start = original.lstrip().startswith("---")
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def _entry_map(doc: CommentedMap, name: str) -> CommentedMap:
    images = doc.get("images")
    if not isinstance(images, list):
        raise ManifestError(f"{FILE_NAME} has no `images:` list (expected an entry named {name!r})")
    for item in images:
        if isinstance(item, dict) and item.get("name") == name:
            return item
    raise ManifestError(f"{FILE_NAME} has no `images:` entry named {name!r}")


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def read_image(text: str, name: str = DEFAULT_IMAGE_NAME) -> ImageEntry:
    """The app's image entry as data."""
    item = _entry_map(parse(text), name)
    return ImageEntry(
        name=name,
        new_name=_str_or_none(item.get("newName")),
        new_tag=_str_or_none(item.get("newTag")),
        digest=_str_or_none(item.get("digest")),
    )


def read_hold(text: str) -> Hold | None:
    """The hold record, or None when the manifest is not held."""
    annotations = (parse(text).get("metadata") or {}).get("annotations") or {}
    values = {field: annotations.get(HOLD_PREFIX + key) for field, key in HOLD_KEYS.items()}
    if values["by"] is None and values["reason"] is None:
        return None
    return Hold(**{field: str(value or "") for field, value in values.items()})


def with_image(text: str, entry: ImageEntry) -> str:
    """text with the app's entry set to entry's newName/newTag/digest (comments and order kept)."""
    doc = parse(text)
    item = _entry_map(doc, entry.name)
    # Always quote the tag: a SHA such as 1234e567... is otherwise a float to YAML 1.1 readers
    # (kustomize) and an all-digit one an integer.
    fields = {"newName": entry.new_name, "newTag": entry.new_tag, "digest": entry.digest}
    for key, value in fields.items():
        if item.get(key) == value:
            continue
        _drop_end_of_line_comment(item, key)
        if value is None:
            item.pop(key, None)
        else:
            item[key] = DoubleQuotedScalarString(value) if key == "newTag" else value
    return render(doc, text)


def _drop_end_of_line_comment(item: CommentedMap, key: str) -> None:
    """A comment at the end of a line we rewrite describes the old value ("placeholder"): drop it.

    ruamel stores it together with any full-line comments that follow; those are kept.
    """
    slots = item.ca.items.get(key)
    if not slots or slots[2] is None:
        return
    _, _, following = slots[2].value.partition("\n")
    if following:
        slots[2].value = "\n" + following
    else:
        slots[2] = None


def with_hold(text: str, hold: Hold | None) -> str:
    """text with the hold record set (hold) or removed (None); empty containers are removed too."""
    doc = parse(text)
    metadata = doc.get("metadata")
    if hold is not None:
        if metadata is None:
            # Where a reader looks for it: right after apiVersion/kind, as in any Kubernetes object.
            metadata = CommentedMap()
            keys = list(doc)
            doc.insert(keys.index("kind") + 1 if "kind" in keys else 0, "metadata", metadata)
        annotations = metadata.setdefault("annotations", CommentedMap())
        for field, key in HOLD_KEYS.items():
            annotations[HOLD_PREFIX + key] = getattr(hold, field)
    elif metadata is not None:
        annotations = metadata.get("annotations") or {}
        for key in HOLD_KEYS.values():
            annotations.pop(HOLD_PREFIX + key, None)
        if "annotations" in metadata and not annotations:
            del metadata["annotations"]
        if not metadata:
            del doc["metadata"]
    return render(doc, text)


def unified_diff(old: str, new: str, path: str) -> str:
    """A `git diff`-style unified diff of one file."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
        )
    )
