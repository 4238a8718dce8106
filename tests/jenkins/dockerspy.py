"""Record how the real docker CLI is invoked: a wrapper first on PATH logs argv (and login's stdin),
then runs the real docker with the same arguments, so tests can check what reaches argv."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class DockerSpy:
    argv_log: Path
    stdin_log: Path

    def calls(self) -> list[str]:
        return self.argv_log.read_text().splitlines() if self.argv_log.exists() else []


def spy_on_docker(directory: Path, monkeypatch: pytest.MonkeyPatch) -> DockerSpy:
    real = shutil.which("docker")
    assert real, "docker CLI not on PATH"
    spy = DockerSpy(directory / "argv.log", directory / "stdin.log")
    wrapper = directory / "bin" / "docker"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$*\" >> '{spy.argv_log}'\n"
        f"if [ \"$1\" = login ]; then cat > '{spy.stdin_log}'; exec '{real}' \"$@\" < '{spy.stdin_log}'; fi\n"
        f"exec '{real}' \"$@\"\n"
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{os.environ['PATH']}")
    return spy
