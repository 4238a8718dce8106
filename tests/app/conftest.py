"""Fixtures for the app's tests: the image built once per session, the hermetic way the release builds it."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator

import pytest

from bench.app import build_image, remove_image


@pytest.fixture(scope="session")
def commit() -> str:
    """A made-up 40-hex commit SHA, baked into the test image."""
    return secrets.token_hex(20)


@pytest.fixture(scope="session")
def app_image(base_image: str, wheelhouse_url: str, commit: str) -> Iterator[str]:
    """app/Dockerfile built from the wheelhouse on 127.0.0.1 (no index), removed after the session."""
    tag = f"test/hello-gitops:{commit}"
    try:
        build_image(tag, commit=commit, base_image=base_image, find_links=wheelhouse_url)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"docker build failed:\n{exc.stdout}\n{exc.stderr}")
    yield tag
    remove_image(tag)
