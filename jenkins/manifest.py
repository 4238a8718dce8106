"""Structural edits of an environment's kustomization.yaml (k8s/overlays/<environment>): the app's
`images:` entry, the hold record, and the day-0 `replicas:` entry that the first release removes.

Round-trip with ruamel.yaml so comments, key order and quoting survive. Every function here maps text
to data or text to text; reading and writing files is the caller's business.

The hold record lives in the kustomization's own `metadata.annotations`. kustomize accepts that field
and does not copy it onto the rendered resources, so a hold neither breaks `kustomize build` nor
restarts pods, and it stays in the one file bot commits are allowed to touch.
"""

from __future__ import annotations

import difflib
import io
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.util import load_yaml_guess_indent

from jenkins.core import NOTHING_RELEASED, Hold, ImageEntry, names_release

FILE_NAME = "kustomization.yaml"
DEFAULT_IMAGE_NAME = "hello-gitops"
HOLD_PREFIX = "release.gitops/"
HOLD_KEYS = {"by": "held-by", "reason": "hold-reason", "at": "held-at"}


class ManifestError(Exception):
    """The manifest cannot be read or does not have what we need; the message names the problem."""


BOM = "\ufeff"


@dataclass(frozen=True)
class Layout:
    """How the file is written, so an edit changes only the lines it must: byte-order mark, line
    endings, final newline, `---` start, and the indentation of mappings and block sequences."""

    bom: bool
    newline: str
    final_newline: bool
    explicit_start: bool
    mapping: int
    sequence: int  # column of a sequence item's content, relative to its parent key
    offset: int  # column of the dash, relative to its parent key

    @classmethod
    def of(cls, text: str) -> tuple[str, Layout]:
        """text normalised for the parser (no BOM, LF line ends), and the layout to write it back."""
        bom = text.startswith(BOM)
        body = text.removeprefix(BOM)
        crlf = body.count("\r\n")
        newline = "\r\n" if crlf and crlf * 2 >= body.count("\n") else "\n"
        body = body.replace("\r\n", "\n")
        try:
            _, sequence, offset = load_yaml_guess_indent(body, yaml=_NoLoad())
        except IndexError:  # its line scanner trips on some odd lines; the parser judges the text
            sequence = offset = None
        return body, cls(
            bom=bom,
            newline=newline,
            final_newline=body.endswith("\n") or not body,
            explicit_start=body.lstrip().startswith("---"),
            mapping=_mapping_indent(body),
            # No block sequence yet: the style yamllint's default and kubectl users expect.
            sequence=sequence if offset is not None else 4,
            offset=offset if offset is not None else 2,
        )


class _NoLoad:
    """Stands in for YAML in load_yaml_guess_indent: we only want its indentation guess."""

    def load(self, _text: str) -> None:
        return None


def _mapping_indent(body: str) -> int:
    """Indent of the first nested mapping (2 when there is none)."""
    previous: int | None = None
    for line in body.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        column = len(line) - len(line.lstrip(" "))
        if previous is not None and column > previous and not stripped.startswith("- "):
            return column - previous
        previous = column if stripped.endswith(":") and not stripped.startswith("- ") else None
    return 2


def _yaml(layout: Layout | None = None) -> YAML:
    yaml = YAML()  # round-trip mode
    yaml.preserve_quotes = True
    if layout is not None:
        yaml.indent(mapping=layout.mapping, sequence=layout.sequence, offset=layout.offset)
        yaml.explicit_start = layout.explicit_start
    yaml.width = 4096  # never fold a long hold reason onto several lines
    return yaml


def load(text: str) -> tuple[CommentedMap, Layout]:
    """Parse kustomization.yaml text; raise ManifestError unless it is a YAML mapping."""
    body, layout = Layout.of(text)
    try:
        doc = _yaml().load(body)
    except YAMLError as exc:
        raise ManifestError(f"{FILE_NAME} is not valid YAML: {exc}") from exc
    if not isinstance(doc, CommentedMap):
        raise ManifestError(f"{FILE_NAME} is not a YAML mapping")
    return doc, layout


def parse(text: str) -> CommentedMap:
    """The document as a round-trip mapping (see load)."""
    return load(text)[0]


def render(doc: CommentedMap, layout: Layout) -> str:
    """Serialise doc the way the original was written (see Layout)."""
    out = io.StringIO()
    _yaml(layout).dump(doc, out)
    text = out.getvalue()
    if not layout.final_newline:
        text = text.removesuffix("\n")
    return (BOM if layout.bom else "") + text.replace("\n", layout.newline)


def _mapping(value: object, where: str) -> dict | None:
    """value if it is a mapping, None if empty (`key:` with no value); ManifestError otherwise."""
    if value is None or isinstance(value, dict):
        return value
    raise ManifestError(f"{FILE_NAME}: `{where}` must be a mapping, not {type(value).__name__}")


def _entry_map(doc: CommentedMap, name: str) -> CommentedMap:
    images = doc.get("images")
    if not isinstance(images, list):
        raise ManifestError(f"{FILE_NAME} has no `images:` list (expected an entry named {name!r})")
    found = [item for item in images if isinstance(item, dict) and item.get("name") == name]
    if not found:
        raise ManifestError(f"{FILE_NAME} has no `images:` entry named {name!r}")
    if len(found) > 1:
        raise ManifestError(f"{FILE_NAME} has {len(found)} `images:` entries named {name!r}; keep one")
    return _unshared(found[0], f"the `images:` entry named {name!r}")


def _unshared(node: object, what: str) -> object:
    """node, unless it carries a YAML anchor: every alias of it (a merge key `<<: *x` too) is the same
    node to kustomize, so an edit here would change those places as well. Refuse instead."""
    anchor = getattr(getattr(node, "anchor", None), "value", None)
    if anchor is not None:
        raise ManifestError(
            f"{FILE_NAME}: {what} carries the YAML anchor &{anchor}, so an edit would also change every "
            f"alias of it (*{anchor}); write it out in full there and remove the anchor"
        )
    return node


def _scalar(item: dict, key: str) -> str | None:
    value = item.get(key)
    if isinstance(value, dict | list):
        raise ManifestError(f"{FILE_NAME}: `{key}` of the app's `images:` entry must be a string")
    return None if value is None else str(value)


def read_image(text: str, name: str = DEFAULT_IMAGE_NAME) -> ImageEntry:
    """The app's image entry as data."""
    item = _entry_map(parse(text), name)
    return ImageEntry(
        name=name,
        new_name=_scalar(item, "newName"),
        new_tag=_scalar(item, "newTag"),
        digest=_scalar(item, "digest"),
    )


def _annotations(doc: CommentedMap) -> dict:
    metadata = _mapping(doc.get("metadata"), "metadata") or {}
    return _mapping(metadata.get("annotations"), "metadata.annotations") or {}


def read_hold(text: str) -> Hold | None:
    """The hold record, or None when the manifest is not held."""
    annotations = _annotations(parse(text))
    values = {field: annotations.get(HOLD_PREFIX + key) for field, key in HOLD_KEYS.items()}
    if values["by"] is None and values["reason"] is None:
        return None
    return Hold(**{field: "" if value is None else str(value) for field, value in values.items()})


def _replicas_entry(doc: CommentedMap, name: str) -> dict | None:
    """The `replicas:` entry named name (kustomize's ReplicaCountTransform: name, count), or None."""
    replicas = doc.get("replicas")
    if replicas is None:
        return None
    if not isinstance(replicas, list):
        raise ManifestError(f"{FILE_NAME}: `replicas` must be a list, not {type(replicas).__name__}")
    found = [item for item in replicas if isinstance(item, dict) and item.get("name") == name]
    if len(found) > 1:
        raise ManifestError(f"{FILE_NAME} has {len(found)} `replicas:` entries named {name!r}; keep one")
    return _unshared(found[0], f"the `replicas:` entry named {name!r}") if found else None


def read_replicas(text: str, name: str = DEFAULT_IMAGE_NAME) -> int | None:
    """The count the `replicas:` entry named name sets (the shipped manifests name the Deployment like
    its image), or None when there is no such entry."""
    item = _replicas_entry(parse(text), name)
    if item is None:
        return None
    count = item.get("count")
    if isinstance(count, bool) or not isinstance(count, int):
        raise ManifestError(
            f"{FILE_NAME}: `count` of the `replicas:` entry named {name!r} must be an integer"
        )
    return count


def _drop_day0_replicas(doc: CommentedMap, name: str) -> None:
    """Remove the `replicas:` entry that keeps the app at 0 pods until its first release (and the list,
    when that was its only entry). An entry with another count is a person's choice: kept."""
    item = _replicas_entry(doc, name)
    count = None if item is None else item.get("count")
    if isinstance(count, bool) or count != 0:
        return
    replicas = doc["replicas"]
    replicas.remove(item)
    if not replicas:
        del doc["replicas"]


def with_image(text: str, entry: ImageEntry) -> str:
    """text with the app's entry set to entry's newName/newTag/digest (comments and order kept).

    The first release (from NOTHING_RELEASED to a released commit) also removes the day-0 `replicas:`
    entry that scaled the app to 0 while no image existed.
    """
    doc, layout = load(text)
    item = _entry_map(doc, entry.name)
    if _scalar(item, "newTag") == NOTHING_RELEASED and names_release(entry.new_tag):
        _drop_day0_replicas(doc, entry.name)
    # Quote the name and the tag: a SHA such as 1234e567... is otherwise a float to YAML 1.1 readers
    # (kustomize) and an all-digit one an integer, and a repository named `yes`, `on`, `n` or `null`
    # (a valid single-component name) a boolean or null. Double quotes read back as the very string in
    # YAML 1.1 and 1.2 alike. A digest (`sha256:<hex>`) is never anything but a string.
    fields = {"newName": entry.new_name, "newTag": entry.new_tag, "digest": entry.digest}
    for key, value in fields.items():
        if item.get(key) == value:
            continue
        _drop_end_of_line_comment(item, key)
        if value is None:
            item.pop(key, None)
        else:
            item[key] = value if key == "digest" else DoubleQuotedScalarString(value)
    return render(doc, layout)


def _drop_end_of_line_comment(item: CommentedMap, key: str) -> None:
    """A comment at the end of a line we rewrite describes the old value ("placeholder"): drop it.

    ruamel stores it together with any full-line comments that follow; those are kept.
    """
    slots = item.ca.items.get(key)
    if not slots or len(slots) < 3 or slots[2] is None:
        return
    _, _, following = slots[2].value.partition("\n")
    if following:
        slots[2].value = "\n" + following
    else:
        slots[2] = None


def with_hold(text: str, hold: Hold | None) -> str:
    """text with the hold record set (hold) or removed (None); empty containers are removed too."""
    doc, layout = load(text)
    _annotations(doc)  # refuse a metadata or annotations that is not a mapping before editing
    metadata = _unshared(doc.get("metadata"), "`metadata`")
    if metadata is not None:
        _unshared(metadata.get("annotations"), "`metadata.annotations`")
    if hold is not None:
        if metadata is None:
            metadata = CommentedMap()
            if "metadata" in doc:
                doc["metadata"] = metadata
            else:
                # Where a reader looks for it: right after apiVersion/kind, as in any Kubernetes object.
                keys = list(doc)
                doc.insert(keys.index("kind") + 1 if "kind" in keys else 0, "metadata", metadata)
        if metadata.get("annotations") is None:
            metadata["annotations"] = CommentedMap()
        annotations = metadata["annotations"]
        for field, key in HOLD_KEYS.items():
            # Double-quoted: every YAML reader (1.1 or 1.2) reads it back as this very string, never
            # as a boolean, null, number or date; line breaks and control characters are escaped.
            annotations[HOLD_PREFIX + key] = DoubleQuotedScalarString(getattr(hold, field))
    elif metadata is not None:
        annotations = metadata.get("annotations") or {}
        for key in HOLD_KEYS.values():
            annotations.pop(HOLD_PREFIX + key, None)
        if "annotations" in metadata and not annotations:
            del metadata["annotations"]
        if not metadata:
            del doc["metadata"]
    return render(doc, layout)


def unified_diff(old: str, new: str, path: str) -> str:
    """A `git diff`-style unified diff of one file, marking a last line without a newline as git does."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
    )
    marker = "\n\\ No newline at end of file\n"
    return "".join(line if line.endswith("\n") else line + marker for line in lines)
