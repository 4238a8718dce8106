"""Serve the hello app with granian, a Rust HTTP server with a WSGI interface: `python serve.py` (from app/).

Environment knobs, all optional: HOST (default 0.0.0.0), PORT (8000), WEB_CONCURRENCY (worker
processes; default one per CPU this container may use), THREADS (Python threads per worker, 2),
DRAIN_SECONDS and GRACEFUL_TIMEOUT (the two phases of a shutdown, below).

Shutdown on SIGTERM, so that a rolling update drops no request:
1. drain: /readyz answers 503 in every worker while they keep serving, for DRAIN_SECONDS; Kubernetes
   takes the pod out of the Service's endpoints meanwhile, so new connections go elsewhere;
2. stop: granian's own stop: each worker closes its listener, lets in-flight requests finish and
   closes idle keep-alive connections; a worker still busy after GRACEFUL_TIMEOUT seconds is killed.
The Deployment's terminationGracePeriodSeconds is larger than the two together (k8s/base/deployment.yaml).
SIGINT (Ctrl-C) skips the drain.
"""

from __future__ import annotations

import ctypes
import ipaddress
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO


def stop_before_serving(signum: int, frame: Any) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    # First, before the imports below take a good part of a second: as a container's PID 1 this
    # process is not killed by a signal it has no handler for, the kernel drops it (pid_namespaces(7)),
    # so a SIGTERM while starting would be lost until the kubelet's SIGKILL. granian's startup
    # replaces this handler with its own.
    signal.signal(signal.SIGTERM, stop_before_serving)

from granian.constants import HTTPModes, Interfaces, RuntimeModes  # noqa: E402 - see above
from granian.log import logger  # noqa: E402
from granian.server import MPServer  # noqa: E402


def usable_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may use: its affinity, capped by its cgroup's CPU quota (a pod's cpu limit).

    The quota is cpu.max ("max" or "QUOTA PERIOD") under cgroup v2, cpu/cpu.cfs_quota_us (-1 when
    there is none) over cpu/cpu.cfs_period_us under cgroup v1, which EKS's Amazon Linux 2 nodes run.
    A fractional quota rounds up: 1.5 CPUs run 2 workers.
    """
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:
            quota, period = (
                (cgroup / "cpu" / f"cpu.cfs_{name}_us").read_text().strip() for name in ("quota", "period")
            )
        except (OSError, ValueError):
            return cpus
    if quota in ("max", "-1"):
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


def env_number(
    name: str, default: float, kind: type[int] | type[float] = int, low: float = 0, high: float = math.inf
) -> Any:
    """A number from the environment; a bad value stops start-up with a message naming it."""
    raw = os.environ.get(name, "")
    whole = " whole" if kind is int else ""
    try:
        value = kind(raw) if raw else kind(default)
    except ValueError:
        raise SystemExit(f"serve.py: {name}={raw!r} is not a{whole} number") from None
    if not low <= value <= high:  # NaN fails this too
        limits = f"from {low} to {high}" if high < math.inf else f"of at least {low}"
        raise SystemExit(f"serve.py: {name}={raw!r} must be a{whole} number {limits}")
    return value


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Characters a client controls that must not reach the log as they are: granian hands the app a
# percent-decoded PATH_INFO, so "/%0A..." would otherwise start a forged log line. Escaped as Apache
# httpd's ap_escape_logitem (mod_log_config) does: \b \n \r \t \v in C style, quote and backslash
# with a backslash, every other control or non-ASCII byte as \xhh.
_ESCAPES = (
    {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0x100))}
    | {ord(c): "\\" + name for c, name in zip("\b\n\r\t\v", "bnrtv", strict=True)}
    | {0x22: '\\"', 0x5C: "\\\\"}
)


class AccessLog:
    """One line per request on `stream`: Apache's combined log format, then the seconds the app took.

    A WSGI middleware rather than granian's own access log: the same line the image logged before
    (a client's bytes escaped, see _ESCAPES), and cheaper than a `logging` record per request.
    Bytes sent come from the response's Content-Length ("-" when it has none).
    """

    def __init__(self, app: WSGIApp, stream: TextIO) -> None:
        self.app = app
        self.stream = stream
        self._lock = threading.Lock()  # worker threads share the stream; one whole line at a time
        self._stamp = (0, "")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        sent: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            sent[:] = (status, headers)
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, capture)
        except BaseException:
            self.write(environ, "500", "-", started)
            raise
        status, headers = sent or ("500", [])
        size = next((value for name, value in headers if name.lower() == "content-length"), "-")
        self.write(environ, status.split(" ", 1)[0], size, started)
        return body

    def write(self, environ: dict[str, Any], status: str, size: str, started: float) -> None:
        taken = time.perf_counter() - started
        second, stamp = self._stamp
        now = int(time.time())
        if now != second:  # the timestamp has a one-second resolution: format it once a second
            stamp = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(now))
            self._stamp = (now, stamp)
        get = environ.get
        target = get("PATH_INFO", "") + ("?" + environ["QUERY_STRING"] if get("QUERY_STRING") else "")
        request = f"{get('REQUEST_METHOD', '-')} {target} {get('SERVER_PROTOCOL', '-')}".translate(_ESCAPES)
        referer = get("HTTP_REFERER", "-").translate(_ESCAPES)
        agent = get("HTTP_USER_AGENT", "-").translate(_ESCAPES)
        line = (
            f'{get("REMOTE_ADDR", "-")} - - {stamp} "{request}" {status} {size} "{referer}" "{agent}" '
            f"{taken:.6f}\n"
        )
        with self._lock:
            self.stream.write(line)
            self.stream.flush()


def stop_with_main(main_pid: int) -> None:
    """In a worker: be sent SIGTERM (granian's graceful stop) when the main process dies, even by SIGKILL.

    Inside a container the kernel ends every process with PID 1; elsewhere (a test, a supervisor
    that signals one PID) a worker would go on serving on its own. PR_SET_PDEATHSIG fires when the
    thread that forked the worker ends: granian forks workers from the main thread only.
    """
    pr_set_pdeathsig = 1  # <linux/prctl.h>
    if ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != main_pid:  # it died before prctl took effect
        raise SystemExit(0)


class DrainingServer(MPServer):
    """granian's process manager, with drain-then-stop on SIGTERM instead of an immediate stop."""

    def __init__(self, *, on_drain: Callable[[], None], drain_seconds: float, **options: Any) -> None:
        super().__init__(**options)
        self.on_drain = on_drain
        self.drain_seconds = drain_seconds
        self.draining = False

    def startup(self, spawn_target: Any, target_loader: Any) -> None:
        super().startup(spawn_target, target_loader)
        signal.signal(signal.SIGTERM, self.drain_then_stop)  # after granian's own: SIGINT stays immediate

    def drain_then_stop(self, signum: int, frame: Any) -> None:
        if self.draining:
            return
        self.draining = True
        self.on_drain()
        logger.info(f"SIGTERM: /readyz now 503; serving {self.drain_seconds:.1f}s more before stopping")
        # The main process only supervises: the workers keep serving while the timer runs.
        stop = threading.Timer(self.drain_seconds, self.signal_handler_interrupt)
        stop.daemon = True
        stop.start()


def main() -> None:
    host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104 - a pod serves on its own IP
    try:
        ipaddress.ip_address(host)  # granian binds to an address, it resolves no names
    except ValueError:
        raise SystemExit(
            f"serve.py: HOST={host!r} is not an IP address (e.g. 0.0.0.0, 127.0.0.1, ::)"
        ) from None
    port = env_number("PORT", 8000, low=1, high=65535)
    workers = env_number("WEB_CONCURRENCY", usable_cpus(), low=1)
    threads = env_number("THREADS", 2, low=1)
    # Bounded so that a typo cannot hold a pod for hours (terminationGracePeriodSeconds kills it anyway).
    drain_seconds = env_number("DRAIN_SECONDS", 5, float, high=600)
    # granian's workers_kill_timeout: 0 would mean "wait forever" there, so at least one second.
    graceful_timeout = env_number("GRACEFUL_TIMEOUT", 20, low=1, high=1800)

    # Imported once here, and the workers forked from this process, so that they share the readiness
    # flag set on SIGTERM. granian starts workers with multiprocessing's start method; fork is the
    # default on Linux only up to Python 3.13, hence set here.
    multiprocessing.set_start_method("fork", force=True)
    from app import app

    server = DrainingServer(
        target="app:app",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        http=HTTPModes.http1,  # what the cloud load balancer speaks to the pods
        websockets=False,  # WSGI has none; granian would log that it ignores them
        # One process per CPU, as granian's README advises; in each, THREADS Python threads run the app
        # and one single-threaded Rust runtime ("st", which granian's README finds more efficient
        # with few processes; "auto" would pick "mt" for WSGI) does all network I/O.
        workers=workers,
        blocking_threads=threads,
        runtime_threads=1,
        runtime_mode=RuntimeModes.st,
        workers_kill_timeout=graceful_timeout,
        respawn_failed_workers=True,
        log_access=False,  # AccessLog below writes it
        on_drain=app.extensions["lifecycle"].begin_shutdown,
        drain_seconds=drain_seconds,
    )
    wsgi = AccessLog(app, sys.stdout)
    main_pid = os.getpid()

    def load_in_worker() -> WSGIApp:  # granian calls it in each worker, right after the fork
        stop_with_main(main_pid)
        return wsgi

    server.serve(target_loader=load_in_worker, wrap_loader=False)


if __name__ == "__main__":
    main()
