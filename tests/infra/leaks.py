"""Find a secret in text the way it actually leaks: escaped in JSON, folded or quoted in YAML, base64'd
or gzipped in user data, or only some of its lines.

`secret in text` misses all of those for a multi-line secret (a private key inside JSON has `\\n` where
the key has newlines; YAML may fold or indent it), so a leak test built on it passes with the key in
plain sight. `leaks(secret, value)` decodes every string it finds (JSON, YAML, base64, gzip), then
looks for the whole secret, for it with all whitespace removed, and for each of its body lines.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

MIN_LINE = 16  # a body line shorter than this is too common to mean anything (PEM lines are 64-70)
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]{24,}$")
_MARKER = re.compile(r"^-----(BEGIN|END) [A-Z ]+-----$")


def decoded_strings(value: Any, depth: int = 0) -> Iterator[str]:
    """Every string in `value` and every string inside those strings' JSON, YAML, base64 or gzip."""
    if depth > 6:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from decoded_strings(key, depth)
            yield from decoded_strings(item, depth)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from decoded_strings(item, depth)
    elif isinstance(value, bytes):
        if value[:2] == b"\x1f\x8b":
            yield from decoded_strings(gzip.decompress(value), depth + 1)
        else:
            try:
                yield from decoded_strings(value.decode(), depth + 1)
            except UnicodeDecodeError:
                return
    elif isinstance(value, str):
        yield value
        for inner in _parsed(value):
            yield from decoded_strings(inner, depth + 1)


def _parsed(text: str) -> Iterator[Any]:
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"'):
        try:
            parsed = json.loads(stripped)
        except ValueError:
            parsed = None
        if parsed is not None:
            yield parsed
    if "\n" in stripped or ": " in stripped:
        try:
            document = yaml.safe_load(stripped)
        except yaml.YAMLError:
            document = None
        if isinstance(document, (dict, list)):
            yield document
    if _BASE64.match(stripped):
        try:
            raw = base64.b64decode("".join(stripped.split()), validate=True)
        except (binascii.Error, ValueError):
            raw = None
        if raw is not None:
            yield raw


def body_lines(secret: str) -> list[str]:
    """The lines of a multi-line secret that identify it (PEM markers and short lines left out)."""
    lines = [line.strip() for line in secret.splitlines()]
    return [line for line in lines if len(line) >= MIN_LINE and not _MARKER.match(line)]


def leaks(secret: str, value: Any) -> bool:
    """Whether `secret` (or a telling part of it) can be read back from `value`."""
    whole = secret.strip()
    squeezed = "".join(whole.split())
    parts = body_lines(whole) if "\n" in whole else []
    for text in decoded_strings(value):
        if whole in text or (len(squeezed) >= MIN_LINE and squeezed in "".join(text.split())):
            return True
        if any(part in text for part in parts):
            return True
    return False
