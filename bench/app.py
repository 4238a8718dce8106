"""The app as shipped (its image, granian) against other WSGI servers and the original (Flask's debug server).

Same app code, same machine, one run: wrk loads each server on 127.0.0.1 in interleaved rounds (every
server once per round), so background noise hits all alike; the table shows medians and min-max of
requests/s, p99 latency and CPU per request, each server's ratios to the original in the same round,
the machine's load average, and how many MB the app adds to its base image. The image build and
container run below are also what tests/app uses, so the benchmark measures exactly what the tests check.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from plane.localservices import BASE_IMAGE, ROOT, docker_available, free_port, wait_for_http, wheelhouse

APP_DIR = ROOT / "app"
BENCH_DIR = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent
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
def image_server(image: str) -> Iterator[Server]:
    """The image's own server (granian per app/serve.py), read-only, host network."""
    container = run_container(image, free_port())
    try:
        inspected = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Pid}} {{.Config.Env}}", container],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        port = re.search(r"\bPORT=(\d+)", inspected).group(1)
        yield Server(f"http://127.0.0.1:{port}/", int(inspected.split()[0]))
    finally:
        remove_container(container)


@contextlib.contextmanager
def process_server(argv: list[str], port: int | None = None) -> Iterator[Server]:
    """A server process started from app/ (HOST and PORT in its environment); its whole session ends after."""
    port = port or free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "DRAIN_SECONDS": "0"}
    # A session of its own: the debug server's reloader forks a child, and both must go at the end.
    proc = subprocess.Popen(
        [arg.format(port=port) for arg in argv],
        cwd=APP_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield Server(f"http://127.0.0.1:{port}/", proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGKILL if argv[0].endswith("uwsgi") else signal.SIGTERM)
        proc.wait(timeout=30)


@dataclasses.dataclass(frozen=True)
class Candidate:
    label: str
    server: Callable[[], contextlib.AbstractContextManager[Server]]


def version(distribution: str) -> str:
    return importlib.metadata.version(distribution)


# uWSGI's HTTP router in front of its workers: --http, which its docs advise when nothing else is in front
UWSGI = [str(VENV_BIN / "uwsgi"), "--http", "127.0.0.1:{port}", "--http-keepalive", "--master",
         "--die-on-term", "--processes", str(os.cpu_count()), "--threads", "2", "--need-app",
         "--wsgi-file", "app.py", "--callable", "app"]  # fmt: skip
# Each server with its best configuration measured on this machine (docs/app.md: how it was chosen).
# Every one writes an access log with each request's duration, to /dev/null here.
VENV_CANDIDATES = [
    Candidate(
        f"granian {version('granian')}, venv",
        lambda: process_server([sys.executable, "serve.py"]),
    ),
    Candidate(
        f"gunicorn {version('gunicorn')} gthread (before)",
        lambda: process_server(
            [str(VENV_BIN / "gunicorn"), "-c", str(BENCH_DIR / "gunicorn.conf.py"), "app:app"]
        ),
    ),
    Candidate(f"uWSGI {version('pyuwsgi')}", lambda: process_server(UWSGI)),
]
ORIGINAL = Candidate("original: app.run(debug=True)", lambda: process_server([sys.executable, "app.py"]))


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


def load_average() -> str:
    return "/".join(f"{n:.1f}" for n in os.getloadavg())


def main() -> None:
    """Build the image, load every server in interleaved rounds, print the table."""
    if not shutil.which("wrk"):
        sys.exit("bench.app needs wrk (apt-get install wrk, or `sudo make services`)")
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    candidates, added_mb = list(VENV_CANDIDATES), None
    with contextlib.ExitStack() as cleanup:
        if docker_ready():
            image = f"bench/hello-gitops:{commit[:12]}"
            with wheelhouse(ROOT / ".cache" / "wheels") as find_links:
                build_image(image, commit=commit, base_image=BASE_IMAGE, find_links=find_links)
            cleanup.callback(remove_image, image)
            added_mb = image_size_mb(image) - image_size_mb(BASE_IMAGE)
            candidates.insert(0, Candidate("as shipped: the image (granian)", lambda: image_server(image)))
        else:
            print(f"bench.app: no Docker engine or no {BASE_IMAGE}: only the venv's servers are measured")
        candidates.append(ORIGINAL)
        started = load_average()
        results: dict[str, list[Load]] = {c.label: [] for c in candidates}
        for _ in range(ROUNDS):
            for candidate in candidates:
                results[candidate.label].append(measure(candidate.server()))
    report(results, ORIGINAL.label, added_mb, (started, load_average()))


def report(
    results: dict[str, list[Load]], original: str, added_mb: float | None, load: tuple[str, str]
) -> None:
    """Medians and min-max of each server, and its ratios to the original measured in the same round."""

    def column(loads: list[Load], field: str, number: str) -> tuple[str, str]:
        values = [getattr(run, field) for run in loads]
        low, high = number.format(min(values)), number.format(max(values))
        return number.format(statistics.median(values)), f"({low}-{high})"

    def ratios(values: list[float]) -> str:
        return f"{statistics.median(values):.1f}x ({min(values):.1f}-{max(values):.1f})"

    rounds = len(results[original])
    print(
        f"\nbench.app: wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{SECONDS}s on 127.0.0.1, {rounds} interleaved "
        f"rounds, {os.cpu_count()} CPUs shared with wrk; load average {load[0]} (start), {load[1]} (end)"
    )
    header = ("requests/s", "(min-max)", "p99 ms", "(min-max)", "CPU us/req", "(min-max)", "errors")
    widths = (11, 14, 8, 14, 11, 12, 7)
    print(f"{'server':<36}" + "".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for label, loads in results.items():
        cells = (
            *column(loads, "requests_per_s", "{:.0f}"),
            *column(loads, "p99_ms", "{:.1f}"),
            *column(loads, "cpu_us_per_request", "{:.0f}"),
            str(sum(run.errors for run in loads)),
        )
        print(f"{label:<36}" + "".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    print("\nratios to the original, per round: median (min-max)")
    print(f"{'server':<36}{'throughput':>18}{'p99 (orig/this)':>20}{'CPU/req (orig/this)':>22}")
    for label, loads in results.items():
        if label == original:
            continue
        pairs = list(zip(loads, results[original], strict=True))
        cells = (
            ratios([this.requests_per_s / orig.requests_per_s for this, orig in pairs]),
            ratios([orig.p99_ms / this.p99_ms for this, orig in pairs]),
            ratios([orig.cpu_us_per_request / this.cpu_us_per_request for this, orig in pairs]),
        )
        print(f"{label:<36}{cells[0]:>18}{cells[1]:>20}{cells[2]:>22}")
    print("goals: throughput >= 4x the original's, p99 ratio > 1x (a lower p99)")
    if added_mb is not None:
        print(f"the app adds {added_mb:.1f} MB to its base image (goal < 30 MB)")


if __name__ == "__main__":
    main()
