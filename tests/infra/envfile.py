"""Read an environment file the way its two real readers do: bash (`set -a; . file`, as the boot scripts
do) and systemd (`EnvironmentFile=` of the Jenkins unit's drop-in).

systemd's reader is its own parser, run here through systemd's environment.d generator, which parses each
file with the same function as `EnvironmentFile=` (systemd src/basic/env-file.c, parse_env_file_internal)
and then expands `$VAR` references, which gitops.env never contains (infra/jenkins/boot.py refuses `$`).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import require

SYSTEMD_GENERATOR = Path("/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator")


def bash_reads(text: str) -> dict[str, str]:
    """Every variable the file defines, as bash sees it after `set -a; . file` (empty dict = none)."""
    with tempfile.NamedTemporaryFile("w", suffix=".env") as handle:
        handle.write(text)
        handle.flush()
        result = subprocess.run(
            ["bash", "-c", 'set -euo pipefail; before=$(compgen -e); set -a; . "$1"; set +a;'
             ' comm -13 <(sort <<<"$before") <(compgen -e | sort) | while read -r k; do'
             ' printf "%s\\0%s\\0" "$k" "${!k}"; done', "bash", handle.name],
            capture_output=True, check=False, env={"PATH": os.environ["PATH"]},
        )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"bash cannot source the file: {result.stderr.decode()}")
    fields = result.stdout.decode().split("\0")[:-1]
    return dict(zip(fields[::2], fields[1::2], strict=True))


def systemd_reads(text: str) -> dict[str, str]:
    """Every variable the file defines, as systemd's env-file parser reads it."""
    require(SYSTEMD_GENERATOR.exists(), f"systemd's environment generator is missing ({SYSTEMD_GENERATOR})")
    with tempfile.TemporaryDirectory() as home:
        directory = Path(home) / "environment.d"
        directory.mkdir()
        (directory / "gitops.conf").write_text(text)
        baseline = subprocess.run(
            [str(SYSTEMD_GENERATOR)], capture_output=True, text=True, check=True,
            env={"XDG_CONFIG_HOME": str(Path(home) / "none"), "HOME": home},
        ).stdout  # fmt: skip
        result = subprocess.run(
            [str(SYSTEMD_GENERATOR)], capture_output=True, text=True, check=True,
            env={"XDG_CONFIG_HOME": home, "HOME": home},
        ).stdout  # fmt: skip
    # The generator prints KEY=value, quoting values shell-style when they need it.
    before = {line.split("=", 1)[0] for line in baseline.splitlines()}
    parsed = dict(shlex.split(line)[0].split("=", 1) for line in result.splitlines() if line)
    return {k: v for k, v in parsed.items() if k not in before}
