"""plane/cluster.sh's edges, without a control plane: bad input, a missing toolchain, and a stale state
directory whose pids now belong to someone else."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from plane.localcluster import Cluster
from tests.conftest import ROOT

SCRIPT = ROOT / "plane" / "cluster.sh"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_an_unknown_command_is_refused_with_the_usage() -> None:
    result = run("start")
    assert result.returncode == 1
    assert "usage:" in result.stderr and "build|up|down|status" in result.stderr


def test_a_missing_go_toolchain_is_named(tmp_path: Path) -> None:
    result = run(
        "build", env={"GO": str(tmp_path / "no-go"), "GITOPS_CLUSTER_CACHE": str(tmp_path / "cache")}
    )
    assert result.returncode == 1
    assert f"no Go toolchain at '{tmp_path / 'no-go'}'" in result.stderr
    assert not (tmp_path / "cache").exists()


FAKE_GO = """#!/usr/bin/env bash
# A Go toolchain whose `go build` of kube-apiserver fails and every other build succeeds.
case "$1" in
  version) echo "go version go1.26.8 linux/amd64" ;;
  env) shift; for v in "$@"; do printenv "$v" || echo; done ;;
  list) echo v1.35.4 ;;
  build)
    out=""
    while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
    case "$out" in */kube-apiserver) echo "compile error" >&2; exit 2 ;; esac
    mkdir -p "$(dirname "$out")" && touch "$out"
    ;;
esac
"""


def test_a_build_that_fails_half_way_is_not_cached(tmp_path: Path) -> None:
    """kube-apiserver fails to build, etcd (built after it) would succeed: nothing may be cached, or the
    next `up` would start from a cache entry without an API server."""
    go, cache = tmp_path / "go", tmp_path / "cache"
    go.write_text(FAKE_GO)
    go.chmod(0o755)

    result = run("build", env={"GO": str(go), "GITOPS_CLUSTER_CACHE": str(cache)})

    assert result.returncode == 1
    assert "kube: build failed" in result.stderr and "compile error" in result.stderr
    assert list(cache.iterdir()) == [], "a failed build left something in the cache"


WORKING_GO = """#!/usr/bin/env bash
# A Go toolchain whose builds all succeed; every module's directory is $FAKE_MODULE.
case "$1" in
  version) echo "go version go1.26.8 linux/amd64" ;;
  env) shift; for v in "$@"; do printenv "$v" || echo; done ;;
  list) case "$*" in *'{{.Dir}}'*) echo "$FAKE_MODULE" ;; *) echo v1.0.0 ;; esac ;;
  build)
    out=""
    while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
    mkdir -p "$(dirname "$out")" && touch "$out"
    ;;
esac
"""


def fake_checkout(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A copy of the script and tools/ (mode 644) and a Go whose builds all succeed: (script, cache,
    environment for it)."""
    root, cache, module = tmp_path / "checkout", tmp_path / "cache", tmp_path / "module"
    (root / "plane").mkdir(parents=True)
    script = root / "plane" / "cluster.sh"
    script.write_text(SCRIPT.read_text())
    script.chmod(0o644)
    for go_mod in (ROOT / "tools").glob("*/go.*"):
        copy = root / "tools" / go_mod.parent.name / go_mod.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(go_mod.read_text())
    (module / "config" / "crd" / "bases").mkdir(parents=True)
    (module / "config" / "crd" / "bases" / "crd.yaml").write_text("kind: CustomResourceDefinition\n")
    # The stages build_kwok copies from kwok's module.
    for stage in (
        "node/fast/node-initialize",
        "node/heartbeat-with-lease/node-heartbeat-with-lease",
        "pod/fast/pod-ready",
        "pod/fast/pod-complete",
        "pod/fast/pod-delete",
    ):
        path = module / "kustomize" / "stage" / f"{stage}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("kind: Stage\n")
    go = tmp_path / "go"
    go.write_text(WORKING_GO)
    go.chmod(0o755)
    return script, cache, {"GO": str(go), "GITOPS_CLUSTER_CACHE": str(cache), "FAKE_MODULE": str(module)}


def build_with(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script), "build"], capture_output=True, text=True, env={**os.environ, **env}, check=False
    )


def cached(cache: Path) -> list[str]:
    return sorted(entry.name for entry in cache.iterdir() if (entry / "versions").exists())


def test_a_checkout_without_the_executable_bit_builds(tmp_path: Path) -> None:
    """`make cluster-up` runs `bash plane/cluster.sh`, so the script must not need its mode bits (a
    copy or an archive may drop them): each build step runs through bash too."""
    script, cache, env = fake_checkout(tmp_path)

    result = build_with(script, env)

    assert result.returncode == 0, result.stderr
    built = sorted(name.rsplit("-", 1)[0] for name in cached(cache))
    assert built == ["kube", "kustomize-controller", "kwok", "notification-controller", "source-controller"]


def test_a_binary_built_with_other_go_settings_is_not_reused(tmp_path: Path) -> None:
    """CGO_ENABLED, GOFLAGS (build tags), GOEXPERIMENT, GOAMD64/GOARM64, GOFIPS140 change the binary but no
    go.mod: each is part of the cache key; an unrelated variable is not. GOFIPS140 other than `off` links
    another copy of crypto/internal/fips140 and defaults the binary to GODEBUG=fips140=on (Go's
    cmd/go/internal/fips140 package documentation)."""
    script, cache, env = fake_checkout(tmp_path)
    assert build_with(script, {**env, "CGO_ENABLED": "1"}).returncode == 0
    first = cached(cache)
    assert build_with(script, {**env, "CGO_ENABLED": "1", "UNRELATED": "x"}).returncode == 0
    assert cached(cache) == first

    settings = (
        {"CGO_ENABLED": "0"},
        {"GOFLAGS": "-tags=netgo"},
        {"GOEXPERIMENT": "nocoverageredesign"},
        {"GOFIPS140": "latest"},
        {"GOARM64": "v9.0"},
    )
    for setting in settings:
        assert build_with(script, {**env, "CGO_ENABLED": "1", **setting}).returncode == 0
    assert len(cached(cache)) == (1 + len(settings)) * len(first)


def test_an_interrupted_build_is_cleared_but_a_running_one_is_not(tmp_path: Path) -> None:
    script, cache, env = fake_checkout(tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    running = subprocess.Popen(["sleep", "60"])
    try:
        cache.mkdir()
        left = cache / f".build.{dead.pid}.abc123"
        other = cache / f".build.{running.pid}.def456"
        for directory in (left, other):
            (directory / "bin").mkdir(parents=True)

        assert build_with(script, env).returncode == 0

        assert not left.exists()
        assert other.exists(), "a build another checkout is running was removed"
    finally:
        running.kill()
        running.wait()


def test_a_build_running_as_another_user_is_not_cleared() -> None:
    """A cache shared by two users: the other user's build still runs (here: pid 1, root's), though
    `kill -0` on it fails with EPERM (kill(2)); its directory must stay. As root, the build runs as
    nobody to see that EPERM."""
    # Under the system's temporary directory, which nobody can reach (pytest's tmp_path is root's, 0700).
    base = Path(tempfile.mkdtemp())
    try:
        script, cache, env = fake_checkout(base)
        running = cache / ".build.1.abc123"
        (running / "bin").mkdir(parents=True)
        command = ["bash", str(script), "build"]
        if os.geteuid() == 0:
            for path in (base, *base.rglob("*")):
                os.chown(path, 65534, 65534)
            command = ["runuser", "-u", "nobody", "--", *command]

        result = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, **env}, check=False
        )

        assert result.returncode == 0, result.stderr
        assert running.exists(), "the build of another user, still running, was removed"
    finally:
        shutil.rmtree(base)


def test_a_leftover_that_cannot_be_removed_does_not_stop_the_build() -> None:
    """An interrupted build's directory this user cannot remove (here a read-only subdirectory; as
    well another user's) is named in a warning; the build goes on."""
    base = Path(tempfile.mkdtemp())
    try:
        script, cache, env = fake_checkout(base)
        dead = subprocess.Popen(["true"])
        dead.wait()
        stuck = cache / f".build.{dead.pid}.abc123" / "bin"
        stuck.mkdir(parents=True)
        (stuck / "etcd").write_text("half")
        command = ["bash", str(script), "build"]
        if os.geteuid() == 0:  # root removes anything: run as nobody, who owns the files
            for path in (base, *base.rglob("*")):
                os.chown(path, 65534, 65534)
            command = ["runuser", "-u", "nobody", "--", *command]
        stuck.chmod(0o555)

        result = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, **env}, check=False
        )

        assert result.returncode == 0, result.stderr
        assert f"cannot remove {stuck.parent}" in result.stderr
        built = sorted(name.rsplit("-", 1)[0] for name in cached(cache))
        assert built == [
            "kube",
            "kustomize-controller",
            "kwok",
            "notification-controller",
            "source-controller",
        ]
    finally:
        for path in base.rglob("*"):
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(base)


def test_up_without_the_venv_python_is_refused_before_starting_anything(tmp_path: Path) -> None:
    """Flux's flags and RBAC come from plane/fluxchart.py: without Python, `up` stops first."""
    state, python = tmp_path / "state", tmp_path / "no-python"
    result = run("up", env={"PYTHON": str(python), "GITOPS_CLUSTER_STATE": str(state)})
    assert result.returncode == 1
    assert f"no Python at '{python}'" in result.stderr and "make venv" in result.stderr
    assert not state.exists()


def test_down_never_stops_a_process_that_reused_a_recorded_pid(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "pids").mkdir(parents=True)
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        (state / "pids" / "kube-apiserver").write_text(f"{bystander.pid}\n")
        result = run("down", env={"GITOPS_CLUSTER_STATE": str(state), "GITOPS_CLUSTER_CACHE": str(tmp_path)})
        assert result.returncode == 0, result.stderr
        assert bystander.poll() is None, "down killed a process it did not start"
        assert "is not running" in result.stderr
        assert not state.exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_down_stops_what_up_started_from_another_cache_root(tmp_path: Path) -> None:
    """`GITOPS_CLUSTER_CACHE=/x make cluster-up` then a plain `make cluster-down`: down must stop the
    processes up started from /x's binaries, not drop their pids and leave them running."""
    cache, state = tmp_path / "cache-of-up", tmp_path / "state"
    (cache / "kube-0123456789abcdef" / "bin").mkdir(parents=True)
    binary = cache / "kube-0123456789abcdef" / "bin" / "etcd"
    binary.write_bytes(Path("/bin/sleep").read_bytes())
    binary.chmod(0o755)
    (state / "pids").mkdir(parents=True)
    (state / "cache").write_text(f"{cache}\n")
    started = subprocess.Popen([str(binary), "60"])
    try:
        (state / "pids" / "etcd").write_text(f"{started.pid}\n")
        other = tmp_path / "default-cache"
        result = run("down", env={"GITOPS_CLUSTER_STATE": str(state), "GITOPS_CLUSTER_CACHE": str(other)})
        assert result.returncode == 0, result.stderr
        assert started.wait(timeout=15) is not None, "down left a process up started running"
        assert not state.exists()
    finally:
        started.kill()
        started.wait()


def test_status_fails_when_nothing_runs(tmp_path: Path) -> None:
    assert run("status", env={"GITOPS_CLUSTER_STATE": str(tmp_path / "none")}).returncode != 0


# The processes `up` starts, one pid file each: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok and the three Flux controllers.
PLANE = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "source-controller",
    "kustomize-controller",
    "notification-controller",
)


def test_the_session_plane_runs_each_process_once(cluster: Cluster) -> None:
    assert sorted(p.name for p in (cluster.kubeconfig.parent / "pids").iterdir()) == sorted(PLANE)


def test_down_leaves_no_process_and_a_second_up_works(cluster: Cluster, tmp_path: Path) -> None:
    """A second control plane in its own state directory (the binaries come from the cache the session's
    cluster was started from): up, down, up again, down."""
    env = {"GITOPS_CLUSTER_STATE": str(tmp_path / "state")}
    for _ in range(2):
        started = run("up", env=env)
        try:
            assert started.returncode == 0, started.stderr
            pids = [int(p.read_text()) for p in (tmp_path / "state" / "pids").iterdir()]
            assert len(pids) == len(PLANE)
            assert run("status", env=env).returncode == 0
        except AssertionError:
            run("down", env=env)  # a failed check must not leave a second control plane running
            raise

        stopped = run("down", env=env)

        assert stopped.returncode == 0, stopped.stderr
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        assert alive == [], f"processes left behind: {alive}"
        assert not (tmp_path / "state").exists()


def test_run_without_a_command_is_refused() -> None:
    result = run("run")
    assert result.returncode == 1
    assert "usage:" in result.stderr and "run CMD" in result.stderr


def test_run_does_not_run_the_command_when_the_plane_cannot_start(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    result = run(
        "run", "touch", str(marker),
        env={"PYTHON": str(tmp_path / "no-python"), "GITOPS_CLUSTER_STATE": str(tmp_path / "state")},
    )  # fmt: skip
    assert result.returncode == 1
    assert "no Python at" in result.stderr
    assert not marker.exists()


def test_run_reuses_a_running_plane_and_leaves_it_up(cluster: Cluster, tmp_path: Path) -> None:
    """`make test` inside a checkout whose plane is up (the session's, in .cluster/): used, not stopped."""
    marker = tmp_path / "ran"
    result = run("run", "touch", str(marker))
    assert result.returncode == 0, result.stderr
    assert marker.exists()
    assert "reusing the control plane" in result.stderr
    assert run("status").returncode == 0


def test_run_stops_the_plane_it_started_and_keeps_the_commands_status(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A plane `run` started (in its own state directory) is stopped when the command fails, and the
    command's exit status is run's."""
    state = tmp_path / "state"
    seen = tmp_path / "pids"
    copy = f"cat {state}/pids/* > {seen}; exit 3"
    result = run("run", "sh", "-c", copy, env={"GITOPS_CLUSTER_STATE": str(state)})
    try:
        assert result.returncode == 3, result.stderr
        pids = [int(p) for p in seen.read_text().split()]
        assert len(pids) == len(PLANE)
        assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == []
        assert not state.exists()
    finally:
        run("down", env={"GITOPS_CLUSTER_STATE": str(state)})
