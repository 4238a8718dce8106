"""The app as the image serves it (app/serve.py: granian), over real HTTP on 127.0.0.1, SIGTERM included."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.app import APP_DIR
from tests.conftest import free_port, wait_for_http

DRAIN_SECONDS = 2.5
COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
# One access-log line (serve.py's AccessLog): Apache's combined log format, then the seconds taken.
ACCESS_LINE = (
    r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "%s HTTP/1\.1" %d %d "-" "-" \d+\.\d{6}'
)


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int

    def get(self, path: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()


def start(port: int, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "serve.py"],
        cwd=APP_DIR,
        env={**os.environ, "HOST": "127.0.0.1", "PORT": str(port), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def server() -> Iterator[Server]:
    port = free_port()
    proc = start(port, WEB_CONCURRENCY="2", DRAIN_SECONDS=str(DRAIN_SECONDS), GIT_COMMIT=COMMIT)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=20)
        yield Server(proc, port)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_endpoints_over_http(server: Server) -> None:
    assert server.get("/") == (200, "Hello World!")
    assert server.get("/healthz")[0] == 200
    assert server.get("/readyz")[0] == 200
    status, body = server.get("/version")
    assert (status, json.loads(body)) == (200, {"commit": COMMIT})
    assert server.get("/does-not-exist")[0] == 404


@dataclass
class Traffic:
    """Clients that keep sending requests, each on a new connection, until told to stop."""

    server: Server
    stop: threading.Event = field(default_factory=threading.Event)
    served: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                status, _ = self.server.get("/")
            except OSError as exc:
                self.failures.append(repr(exc))
                continue
            if status == 200:
                self.served.append(time.monotonic())
            else:
                self.failures.append(f"HTTP {status}")


def test_sigterm_drains_without_dropping_requests(server: Server) -> None:
    """On SIGTERM readiness turns 503 while every request still gets its answer, then the server exits 0.

    The clients play the load balancer: they keep sending until they have seen /readyz fail, as a
    Service's endpoints drop a pod that is not ready; not one of their requests may fail.
    """
    traffic = Traffic(server)
    clients = [threading.Thread(target=traffic.run) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        deadline = time.monotonic() + 10
        while len(traffic.served) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert traffic.served, "no request was served before SIGTERM"
        sigterm_at = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        readyz = 200
        while readyz == 200 and time.monotonic() - sigterm_at < DRAIN_SECONDS:
            readyz, _ = server.get("/readyz")
        not_ready_at = time.monotonic()
        time.sleep(0.2)  # what the endpoints controller takes to react, roughly
    finally:
        traffic.stop.set()
        for client in clients:
            client.join(timeout=10)
    assert readyz == 503, "readiness never turned 503 during the drain"
    assert not_ready_at - sigterm_at < DRAIN_SECONDS / 2
    assert traffic.failures == []
    assert any(t > not_ready_at for t in traffic.served), "requests were refused as soon as readiness failed"
    assert server.proc.wait(timeout=DRAIN_SECONDS + 15) == 0
    log = server.proc.stdout.read()
    assert "SIGTERM: /readyz now 503" in log
    hello_lines = re.findall("^" + ACCESS_LINE % ("GET /", 200, len("Hello World!")) + "$", log, re.M)
    assert len(hello_lines) == len(traffic.served), "one access-log line on stdout per request served"


def test_access_log_escapes_what_the_client_sent(server: Server) -> None:
    """granian percent-decodes the path: a client's newline or quote must not forge or break a line.

    Escaped as Apache httpd's ap_escape_logitem: `"` and `\\` with a backslash, \\n (and \\b \\r \\t \\v) in C
    style, other control bytes as \\xhh.
    """
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(
            "GET", "/x%0A127.0.0.1%22%01?q=%0A", headers={"User-Agent": 'evil" \\ agent', "Referer": "r"}
        )
        response = conn.getresponse()
        assert (response.status, len(response.read())) == (404, 207)
    finally:
        conn.close()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=DRAIN_SECONDS + 15) == 0
    log = server.proc.stdout.read()
    # What the log must hold, as the characters written.
    request = r'"GET /x\n127.0.0.1\"\x01?q=%0A HTTP/1.1" 404 207 "r" "evil\" \\ agent" '
    line = re.compile(r"^127\.0\.0\.1 - - \[[^]]+\] " + re.escape(request) + r"\d+\.\d{6}$", re.M)
    assert line.search(log), log
    assert not re.search(r'^127\.0\.0\.1"', log, re.M), "the decoded newline started a forged line"


def test_idle_keep_alive_connection_does_not_hold_up_the_stop(server: Server) -> None:
    """A keep-alive connection is served through the drain, then closed: the stop does not wait for it."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"Hello World!"
        sigterm_at = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        conn.request("GET", "/readyz")  # the same connection, during the drain
        assert conn.getresponse().status == 503
        assert server.proc.wait(timeout=DRAIN_SECONDS + 15) == 0
        assert time.monotonic() - sigterm_at < DRAIN_SECONDS + 3
    finally:
        conn.close()


def test_workers_exit_when_the_main_process_is_killed(server: Server) -> None:
    """SIGKILL of the main process (the OOM killer, a supervisor outside a container): no worker goes on."""
    workers = [
        int(pid)
        for pid in Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
    ]
    assert len(workers) == 2
    server.proc.kill()
    server.proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "orphaned workers still running"
    with pytest.raises(ConnectionRefusedError):
        server.get("/")


def test_stops_accepting_after_the_drain(server: Server) -> None:
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=DRAIN_SECONDS + 15) == 0
    with pytest.raises(ConnectionRefusedError):
        server.get("/")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HOST", "localhost"),
        ("PORT", "http"),
        ("PORT", "70000"),
        ("DRAIN_SECONDS", "soon"),
        ("DRAIN_SECONDS", "nan"),
        ("GRACEFUL_TIMEOUT", "-3"),
        ("GRACEFUL_TIMEOUT", "0"),
        ("THREADS", "2.5"),
        ("WEB_CONCURRENCY", "0"),
    ],
)
def test_bad_settings_stop_startup_naming_the_variable(name: str, value: str) -> None:
    proc = start(free_port(), **{name: value})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert f"{name}={value!r}" in out


def test_sigterm_while_starting_as_pid_1_is_not_lost() -> None:
    """PID 1 of a PID namespace (a container's entrypoint) is not killed by a signal it has no handler for:
    the kernel drops it (pid_namespaces(7), "The namespace init process"). A SIGTERM from the kubelet
    while serve.py still imports Flask and granian (about 0.3 s here) must stop it, not be lost until
    terminationGracePeriodSeconds ends in a SIGKILL.
    """
    if not shutil.which("unshare") or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) for a PID namespace")
    port = free_port()
    outer = subprocess.Popen(
        ["unshare", "--pid", "--kill-child", sys.executable, "serve.py"],
        cwd=APP_DIR,
        env={**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        children = Path(f"/proc/{outer.pid}/task/{outer.pid}/children")
        deadline = time.monotonic() + 10
        while not (pid := children.read_text().split()) and time.monotonic() < deadline:
            time.sleep(0.001)
        init = Path(f"/proc/{pid[0]}")
        # Sent as soon as serve.py catches SIGTERM, or once granian's extension is loaded (the imports
        # are under way), whichever comes first: signal(7), SigCgt is the caught signals' mask.
        while not (
            int(re.search(r"^SigCgt:\s*(\w+)", (init / "status").read_text(), re.M)[1], 16)
            & 1 << (signal.SIGTERM - 1)
            or "_granian" in (init / "maps").read_text()
        ):
            time.sleep(0.001)
        os.kill(int(init.name), signal.SIGTERM)
        out, _ = outer.communicate(timeout=10)
    finally:
        if outer.poll() is None:
            outer.kill()
            outer.wait(timeout=10)
    assert outer.returncode == 0, out


def workers_of(proc: subprocess.Popen[str]) -> set[int]:
    return {int(pid) for pid in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()}


def test_crashed_worker_is_respawned_and_drains_with_the_others(server: Server) -> None:
    """A worker killed by SIGKILL (the OOM killer) is replaced; the new one shares the readiness flag.

    granian 2.8.7 (server/common.py `_serve_loop`, respawn_failed_workers) forks the replacement from
    the main process, which created the flag's shared page before the first fork.
    """
    before = workers_of(server.proc)
    assert len(before) == 2
    for victim in sorted(before):  # one after the other, both: every request then meets a new worker
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while (len(now := workers_of(server.proc)) != 2 or victim in now) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(now) == 2 and victim not in now, "the killed worker was not replaced"
    assert not before & workers_of(server.proc)
    assert {server.get("/readyz")[0] for _ in range(10)} == {200}
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert {server.get("/readyz")[0] for _ in range(20)} == {503}
    assert server.proc.wait(timeout=DRAIN_SECONDS + 15) == 0


def test_slow_client_holds_the_stop_no_longer_than_graceful_timeout() -> None:
    """A client that sent half its headers keeps its worker from a graceful stop (hyper waits for the
    request): GRACEFUL_TIMEOUT (granian's workers_kill_timeout) bounds that, then the worker is killed.
    """
    port = free_port()
    proc = start(port, WEB_CONCURRENCY="1", DRAIN_SECONDS="0.5", GRACEFUL_TIMEOUT="2")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=20)
        with socket.create_connection(("127.0.0.1", port)) as slow:
            slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            time.sleep(0.3)
            sigterm_at = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
            assert 2 <= time.monotonic() - sigterm_at < 0.5 + 2 + 3
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    assert "Killing worker-1 after it refused to gracefully stop" in proc.stdout.read()
