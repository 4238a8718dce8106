"""The app as shipped (its image, gunicorn) against the original way of serving it (Flask's debug server).

Same app code, same machine, one run: wrk loads each server on 127.0.0.1 in alternating rounds, so
background noise hits both alike; the table shows the median requests/s and p99 latency, their ratios,
and how many MB the app adds to its base image. The image build and container run below are also what
tests/app uses, so the benchmark measures exactly what the tests check.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from scripts.localservices import BASE_IMAGE, ROOT, docker_available, free_port, wait_for_http, wheelhouse

APP_DIR = ROOT / "app"
ROUNDS = 5
SECONDS = 5
CONNECTIONS = 16
WRK_THREADS = 2


def build_image(tag: str, *, commit: str, base_image: str, find_links: str) -> None:
    """Build app/ hermetically: wheels from find_links only (no index), host network, the given base."""
    subprocess.run(
        ["docker", "build", "--quiet", "--network", "host",
         "--build-arg", f"BASE_IMAGE={base_image}",
         "--build-arg", f"PIP_FIND_LINKS={find_links}",
         "--build-arg", "PIP_NO_INDEX=1",
         "--build-arg", f"GIT_COMMIT={commit}",
         "-t", tag, str(APP_DIR)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip


def run_container(image: str, port: int, *env: str) -> str:
    """Start the image as production runs it (read-only root, /tmp in memory), on 127.0.0.1:port."""
    env_args = [arg for pair in env for arg in ("-e", pair)]
    started = subprocess.run(
        ["docker", "run", "--rm", "--detach", "--network", "host", "--read-only", "--tmpfs", "/tmp",  # noqa: S108 - a tmpfs mount point
         "-e", "HOST=127.0.0.1", "-e", f"PORT={port}", *env_args, image],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return started.stdout.strip()


def remove_container(container: str) -> None:
    subprocess.run(["docker", "rm", "--force", container], check=False, capture_output=True)


def remove_image(image: str) -> None:
    subprocess.run(["docker", "rmi", "--force", image], check=False, capture_output=True)


def image_size_mb(image: str) -> float:
    inspected = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", image],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(inspected.stdout) / 1e6


@dataclasses.dataclass(frozen=True)
class Load:
    """One wrk run, and the CPU the server's processes spent on it."""

    requests_per_s: float
    p99_ms: float
    errors: int
    requests: int
    cpu_us_per_request: float = 0.0


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> Load:
    """Requests/s, p99 latency (from --latency), errors and request count out of wrk's report."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    total = re.search(r"^\s+(\d+) requests in", output, re.M)
    if not rps or not p99 or not total:
        raise ValueError(f"unexpected wrk output:\n{output}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return Load(
        float(rps.group(1)), float(p99.group(1)) * _UNIT_MS[p99.group(2)], errors, int(total.group(1))
    )


def wrk(url: str, seconds: int = SECONDS) -> Load:
    out = subprocess.run(
        ["wrk", f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", url],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return parse_wrk(out.stdout)


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (a container's processes are host processes too)."""
    tree = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended has no children
            for child in (task / "children").read_text().split():
                tree += process_tree(int(child))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far."""
    ticks = 0
    for pid in pids:
        # utime and stime (fields 14 and 15), the process's threads included, those ended too.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class Server:
    url: str
    pid: int  # the root of the server's processes


@contextlib.contextmanager
def shipped_server(image: str | None) -> Iterator[Server]:
    """The image's own server (gunicorn per app/gunicorn.conf.py); the venv's gunicorn without docker."""
    port = free_port()
    if image:
        container = run_container(image, port)
        try:
            pid = subprocess.run(
                ["docker", "inspect", "--format", "{{.State.Pid}}", container],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            yield Server(f"http://127.0.0.1:{port}/", int(pid))
        finally:
            remove_container(container)
        return
    with _process(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "app:app"], port
    ) as s:
        yield s


@contextlib.contextmanager
def original_server() -> Iterator[Server]:
    """The original's way: `python app.py`, i.e. `app.run(debug=True)`, the reloader included."""
    with _process([sys.executable, "app.py"], free_port()) as server:
        yield server


@contextlib.contextmanager
def _process(argv: list[str], port: int) -> Iterator[Server]:
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "DRAIN_SECONDS": "0"}
    # A session of its own: the debug server's reloader forks a child, and both must go at the end.
    proc = subprocess.Popen(
        argv,
        cwd=APP_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield Server(f"http://127.0.0.1:{port}/", proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def measure(server: contextlib.AbstractContextManager[Server]) -> Load:
    with server as s:
        wait_for_http(s.url)
        wrk(s.url, seconds=1)  # warm-up: imports, first connections, all workers up
        pids = process_tree(s.pid)
        before = cpu_seconds(pids)
        load = wrk(s.url)
        used = cpu_seconds(pids) - before
        return dataclasses.replace(load, cpu_us_per_request=used / max(load.requests, 1) * 1e6)


def docker_ready() -> bool:
    """A Docker engine with the base image: what building the shipped image needs."""
    if not docker_available():
        return False
    inspected = subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True, check=False)
    return inspected.returncode == 0


def main() -> None:
    """Build the image, load both servers in alternating rounds, print the table."""
    if not shutil.which("wrk"):
        sys.exit("bench.app needs wrk (apt-get install wrk, or `sudo make services`)")
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    image, added_mb = None, None
    with contextlib.ExitStack() as cleanup:
        if docker_ready():
            image = f"bench/hello-gitops:{commit[:12]}"
            with wheelhouse(ROOT / ".cache" / "wheels") as find_links:
                build_image(image, commit=commit, base_image=BASE_IMAGE, find_links=find_links)
            cleanup.callback(remove_image, image)
            added_mb = image_size_mb(image) - image_size_mb(BASE_IMAGE)
        else:
            print(f"bench.app: no Docker engine or no {BASE_IMAGE}: 'as shipped' is gunicorn from the venv")
        shipped: list[Load] = []
        original: list[Load] = []
        for _ in range(ROUNDS):
            shipped.append(measure(shipped_server(image)))
            original.append(measure(original_server()))
    report(shipped, original, added_mb, "image (gunicorn)" if image else "venv gunicorn")


def report(shipped: list[Load], original: list[Load], added_mb: float | None, shipped_label: str) -> None:
    def median(loads: list[Load], field: str) -> float:
        return statistics.median(getattr(load, field) for load in loads)

    def spread(loads: list[Load], field: str, number: str) -> str:
        values = [getattr(load, field) for load in loads]
        return f"({number.format(min(values))}-{number.format(max(values))})"

    rows = [(f"as shipped: {shipped_label}", shipped), ("original: app.run(debug=True)", original)]
    load = f"wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{SECONDS}s on 127.0.0.1"
    print(
        f"\nbench.app: {load}, {ROUNDS} alternating rounds, medians ({os.cpu_count()} CPUs, shared with wrk)"
    )
    header = ("requests/s", "(min-max)", "p99 ms", "(min-max)", "CPU us/req", "errors")
    print(
        f"{'server':<34}" + "".join(f"{h:>{w}}" for h, w in zip(header, (12, 13, 8, 14, 12, 8), strict=True))
    )
    for label, loads in rows:
        rps, p99, cpu = (median(loads, f) for f in ("requests_per_s", "p99_ms", "cpu_us_per_request"))
        rps_range = spread(loads, "requests_per_s", "{:.0f}")
        p99_range = spread(loads, "p99_ms", "{:.1f}")
        errors = sum(run.errors for run in loads)
        print(f"{label:<34}{rps:>12.0f}{rps_range:>13}{p99:>8.1f}{p99_range:>14}{cpu:>12.0f}{errors:>8}")
    throughput = median(shipped, "requests_per_s") / median(original, "requests_per_s")
    latency = median(original, "p99_ms") / median(shipped, "p99_ms")
    efficiency = median(original, "cpu_us_per_request") / median(shipped, "cpu_us_per_request")
    print(f"throughput ratio (shipped / original):   {throughput:.1f}x  (goal >= 4x)")
    print(f"p99 ratio (original / shipped):          {latency:.1f}x  (goal > 1x, i.e. a lower p99)")
    print(f"CPU per request (original / shipped):    {efficiency:.1f}x  (server processes only)")
    if added_mb is not None:
        print(f"the app adds {added_mb:.1f} MB to its base image        (goal < 30 MB)")


if __name__ == "__main__":
    main()
