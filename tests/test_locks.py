"""Locked inputs: every Python package installed in CI, on an agent or in the image comes from a lock
that pins it, and all it pulls in, with hashes, and every install runs pip in hash-checking mode.

pip's "Secure installs" (pip documentation, "Hash-checking mode"): with `--require-hashes` every
requirement must be pinned with `==` and carry at least one `--hash`, and so must every dependency pip
would install; a file whose lines carry hashes switches the mode on by itself. pip-tools' `pip-compile
--generate-hashes` writes such a file, with `--allow-unsafe` including pip and setuptools.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tracked() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [path for path in listed.stdout.splitlines() if (ROOT / path).is_file()]


# The project's own inputs: tracked files only (a venv or a pipeline run's scratch copy under .cache/
# holds other `requirements*.in`).
LOCKS = sorted(
    (ROOT / path).with_suffix(".txt")
    for path in tracked()
    if re.fullmatch(r"(?:.*/)?[^/]*requirements[^/]*\.in", path)
)
# Every file that runs pip, and what it must say.
INSTALLERS = {
    "Makefile": r"pip install",
    "app/Dockerfile": r"pip install",
    "tests/infra/boot/Dockerfile": r"pip install",
    ".github/workflows/pull-request.yaml": r"pip install",
    "plane/localservices.py": r'"pip", "download"',
    "tests/infra/test_boot.py": r'"pip", "download"',
    "jenkins/Jenkinsfile": r"pip install",
    "jenkins/operate.Jenkinsfile": r"pip install",
    "tests/e2e/pipeline.py": r'"pip", "download"',
    "tests/jenkins/test_jenkinsfile.py": r"pip install",
}


def canonical(name: str) -> str:
    """A project name as the index compares it (PEP 503: case and runs of `-_.` do not matter)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(lock: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a pip-compile lock; continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", lock.read_text())
    entries = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})+)", line)
        assert match, f"{lock.relative_to(ROOT)}: not pinned with hashes: {line}"
        entries[canonical(match[1])] = (match[2], re.findall(r"[0-9a-f]{64}", match[3]))
    return entries


def test_every_input_has_its_lock_and_the_lock_names_its_input() -> None:
    assert {p.relative_to(ROOT).as_posix() for p in LOCKS} == {
        "requirements.txt",
        "requirements-dev.txt",
        "requirements-release.txt",
        "requirements-checkov.txt",
        "app/requirements.txt",
        "policy/requirements.txt",
        "tests/infra/boot/requirements.txt",
    }
    for lock in LOCKS:
        assert lock.exists(), f"{lock.relative_to(ROOT)} missing: run `make lock`"
        header = lock.read_text().split("\n\n", 1)[0]
        assert "pip-compile" in header and "--generate-hashes" in header and "--allow-unsafe" in header
        assert lock.with_suffix(".in").name in header


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_requirement_is_pinned_with_hashes(lock: Path) -> None:
    entries = requirements(lock)
    assert entries, lock
    assert "--find-links" not in lock.read_text() and "--index-url" not in lock.read_text()


def test_what_an_input_names_is_in_its_lock_at_that_version() -> None:
    for lock in LOCKS:
        entries = requirements(lock)
        for line in lock.with_suffix(".in").read_text().splitlines():
            match = re.match(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==(\S+)", line)
            if match:
                assert entries[canonical(match[1])][0] == match[2], (lock, line)


def test_the_locks_agree_on_every_shared_version() -> None:
    """The venv, the image, the agents and the preview run the same versions: every lock but checkov's
    (its own venv, because it pins packaging<24) takes the dev lock's versions."""
    dev = requirements(ROOT / "requirements-dev.txt")
    for name in (
        "requirements.txt",
        "requirements-release.txt",
        "app/requirements.txt",
        "policy/requirements.txt",
    ):
        for package, (version, _) in requirements(ROOT / name).items():
            assert dev[package][0] == version, (
                f"{name}: {package} {version}, the dev lock has {dev[package][0]}"
            )


@pytest.mark.parametrize("path", sorted(INSTALLERS))
def test_every_pip_install_requires_hashes(path: str) -> None:
    text = (ROOT / path).read_text()
    calls = [m.start() for m in re.finditer(INSTALLERS[path], text)]
    assert calls, f"{path} no longer runs pip: update this list"
    for start in calls:
        # The call and its arguments, up to the requirements file it reads.
        call = text[start : text.index("requirements", start)]
        assert "--require-hashes" in call, f"{path}: {call}"
        # Wheels only: pip hash-checks what it installs, not the build dependencies it would fetch to
        # build a source distribution (pip's "Secure installs"), so no install may build one.
        assert re.search(r"--only-binary[= ]:all:", call), f"{path}: {call}"
    assert "--upgrade pip" not in text


# What starts pip: pip itself, and Pulumi's `pip` toolchain (`pulumi install`, or any Pulumi command that
# finds its `virtualenv` missing), whose `InstallDependencies` first runs `pip install --upgrade pip
# setuptools wheel`, with no pins and no hashes (pulumi/pulumi `sdk/python/toolchain/pip.go`,
# `InstallDependencies` and `EnsureVenv`, commit 01ba6bcc239f).
RUNS_PIP = re.compile(r'pip3? (install|download)|"pip", "(install|download)"|pulumi install')


def test_every_file_that_runs_pip_is_checked() -> None:
    """A new install path cannot slip past the list above (this file names the patterns it checks)."""
    runs = {
        path
        for path in tracked()
        if not path.endswith((".md", ".txt")) and path != "tests/test_locks.py"
        and RUNS_PIP.search((ROOT / path).read_text(errors="replace"))
    }  # fmt: skip
    assert runs == set(INSTALLERS)


def test_the_docs_never_tell_an_operator_to_install_without_hashes() -> None:
    """Every command the docs' code blocks give that installs packages names a lock and
    `--require-hashes`; none runs `pulumi install`."""
    for path in ["README.md", *(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]:
        for command in re.findall(r"(?ms)^```(?:bash|sh)?\n(.*?)^```", (ROOT / path).read_text()):
            for line in command.splitlines():
                line = line.split(" # ", 1)[0]
                assert "pulumi install" not in line, f"{path}: {line}"
                if re.search(r"pip3? install ", line):
                    assert "--require-hashes" in line and "-r " in line, f"{path}: {line}"
                    assert re.search(r"--only-binary[= ]:all:", line), f"{path}: {line}"


def test_pip_refuses_a_lock_that_misses_a_transitive_dependency(tmp_path: Path) -> None:
    """The mode is all-or-nothing: the app's lock without werkzeug (Flask's dependency) is refused
    before anything is installed, and the whole lock is accepted."""
    lock = (ROOT / "app" / "requirements.txt").read_text()
    partial = tmp_path / "partial.txt"
    partial.write_text(re.sub(r"(?m)^werkzeug==.*(?:\n(?:    |\s+--hash).*)*\n", "", lock))
    assert "werkzeug==" not in partial.read_text() and "flask==" in partial.read_text()

    def download(requirements_file: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--require-hashes",
             "-d", str(tmp_path / "wheels"), "-r", str(requirements_file)],
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip

    refused = download(partial)
    assert refused.returncode != 0
    assert "werkzeug" in refused.stderr.lower() and "hash" in refused.stderr.lower(), refused.stderr
    accepted = download(ROOT / "app" / "requirements.txt")
    assert accepted.returncode == 0, accepted.stderr[-2000:]


def test_every_image_the_tree_runs_is_pinned_by_digest() -> None:
    """A workflow's container and service images, and each Dockerfile's base: by digest, so a re-pushed tag
    cannot change what runs (Docker docs, "Image digests"; GitHub Actions `jobs.<id>.container.image`
    takes any reference `docker pull` takes). Images built here (`local/`) are not pulled."""
    references = []
    for path in tracked():
        text = (ROOT / path).read_text(errors="replace")
        if path.startswith(".github/workflows/"):
            references += [(path, m) for m in re.findall(r"^\s*image:\s*(\S+)", text, re.M)]
        if Path(path).name == "Dockerfile":
            references += [(path, m) for m in re.findall(r"^ARG BASE_IMAGE=(\S+)", text, re.M)]
            references += [(path, m) for m in re.findall(r"^FROM\s+([^$\s]\S*)", text, re.M)]
    assert references
    for path, image in references:
        assert image.startswith("local/") or re.search(r"@sha256:[0-9a-f]{64}$", image), (path, image)
