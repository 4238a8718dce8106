"""gunicorn settings for the hello app, as the image shipped them until granian replaced gunicorn.

Kept unchanged as bench.app's reference ("gunicorn ... (before)"): `gunicorn -c ../bench/gunicorn.conf.py
app:app` (run from app/). docs/app.md has the numbers and why granian serves the image now.

Environment knobs, all optional: HOST (default 0.0.0.0), PORT (8000), WEB_CONCURRENCY (worker
processes; default twice the CPUs this container may use), THREADS (per worker), DRAIN_SECONDS and
GRACEFUL_TIMEOUT (the two phases of a shutdown, below).

Shutdown on SIGTERM, so that a rolling update drops no request:
1. drain: /readyz answers 503 in every worker while they keep serving, for DRAIN_SECONDS; Kubernetes
   takes the pod out of the Service's endpoints meanwhile, so new connections go elsewhere;
2. stop: gunicorn's graceful stop closes the listener and lets in-flight requests finish, for at most
   GRACEFUL_TIMEOUT seconds.
The Deployment's terminationGracePeriodSeconds is larger than the two together (k8s/base/deployment.yaml).
"""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta
from typing import Any

from gunicorn.arbiter import Arbiter
from gunicorn.glogging import Logger

# One CPU count for both servers: serve.py's (run from app/, as bench.app does).
from serve import usable_cpus


def env_number(name: str, default: float, kind: type[int] | type[float] = int) -> int | float:
    """A non-negative number from the environment; a bad value stops start-up with a message naming it."""
    raw = os.environ.get(name, "")
    try:
        value = kind(raw) if raw else kind(default)
    except ValueError:
        raise SystemExit(
            f"gunicorn.conf.py: {name}={raw!r} is not a{' whole' if kind is int else ''} number"
        ) from None
    if value < 0:
        raise SystemExit(f"gunicorn.conf.py: {name}={raw!r} must not be negative")
    return value


bind = f"{os.environ.get('HOST', '0.0.0.0')}:{env_number('PORT', 8000)}"  # noqa: S104 - a pod serves its IP
# Threaded workers keep connections alive and do not stall on slow clients (there is no buffering
# proxy in front of the pods, only the cloud load balancer). Two processes per usable CPU: a
# keep-alive connection stays with the worker that accepted it, and with one worker per CPU an
# unlucky split leaves a CPU idle (on 2 CPUs, 4 workers x 2 threads served 1.1-2x the requests/s of 2 x 4).
worker_class = "gthread"
workers = env_number("WEB_CONCURRENCY", 2 * usable_cpus())
threads = env_number("THREADS", 2)
# Import the app once in the master: workers fork from it (less memory, faster start) and share the
# readiness flag the master sets on SIGTERM (app.Lifecycle).
preload_app = True
timeout = 30
keepalive = 5
drain_seconds = env_number("DRAIN_SECONDS", 5, float)
graceful_timeout = env_number("GRACEFUL_TIMEOUT", 20)
# The runtime control socket wants a writable home directory and nothing here uses it.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
loglevel = "info"


class AccessLogger(Logger):
    """gunicorn's logger with an access log that costs a few µs per request instead of ~70.

    gunicorn's own access() builds a dict of every log atom (each request and response header, the
    whole WSGI environ) and runs it through `logging` for every request: measured, a sixth of the
    CPU a request costs here (docs/app.md). This writes the same line, Apache's combined format plus
    the duration in seconds, straight to the access log's stream handlers ("-" or a file, which
    gunicorn reopens on USR1). `access_log_format` and the basic-auth user are not used. Any other
    access-log handler (syslog, a logconfig) gets gunicorn's own access(), unchanged.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        handlers = self.access_log.handlers
        self._fast = bool(handlers) and all(
            type(h) in (logging.StreamHandler, logging.FileHandler) for h in handlers
        )
        self._stamp = (0, "")

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        if not (self._fast and self.access_log_enabled):
            super().access(resp, req, environ, request_time)
            return
        second, stamp = self._stamp
        now = int(time.time())
        if now != second:  # the timestamp has a one-second resolution: format it once a second
            stamp = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(now))
            self._stamp = (now, stamp)
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        sent = "-" if resp.sent is None else resp.sent
        get = environ.get
        line = (
            f'{get("REMOTE_ADDR", "-")} - - {stamp} "{environ["REQUEST_METHOD"]} {environ["RAW_URI"]} '
            f'{environ["SERVER_PROTOCOL"]}" {status} {sent} "{get("HTTP_REFERER", "-")}" '
            f'"{get("HTTP_USER_AGENT", "-")}" {request_time.seconds}.{request_time.microseconds:06d}\n'
        )
        for handler in self.access_log.handlers:
            with handler.lock:  # worker threads share the stream; one whole line at a time
                handler.stream.write(line)
                handler.stream.flush()


logger_class = AccessLogger


def when_ready(server: Arbiter) -> None:
    """Replace gunicorn's immediate stop on SIGTERM by drain-then-stop (see the module docstring)."""

    def drain_then_stop() -> None:
        server.app.wsgi().extensions["lifecycle"].begin_shutdown()
        server.log.info("SIGTERM: /readyz now 503; serving %.1fs more before stopping", drain_seconds)
        # The master only supervises here: workers keep serving while it sleeps.
        time.sleep(drain_seconds)
        raise StopIteration  # gunicorn's graceful stop: close the listener, finish in-flight requests

    server.handle_term = drain_then_stop
