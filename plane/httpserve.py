"""The HTTP plumbing the stand-ins share: a threaded server on a free loopback port, and JSON in and out.
Each stand-in keeps only its own answers (fakeaws, fakegithub, fakegithubapi)."""

from __future__ import annotations

import contextlib
import http.server
import json
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any


def read_body(handler: http.server.BaseHTTPRequestHandler) -> bytes:
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def send_json(
    handler: http.server.BaseHTTPRequestHandler,
    code: int,
    answer: Any,
    headers: Mapping[str, str] | None = None,
    content_type: str = "application/json; charset=utf-8",
) -> None:
    data = json.dumps(answer).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that logs nothing (a test's output stays the test's)."""

    def log_message(self, *args: object) -> None:
        pass


def json_api(answer: Callable[..., tuple[Any, ...]]) -> type[http.server.BaseHTTPRequestHandler]:
    """A handler that hands every request to `answer(method, path, headers, body)`, `body` being the JSON
    sent (its text when it is not JSON; None when empty), and sends back the `(status, JSON[, headers])`
    it returns."""

    class Handler(QuietHandler):
        def _serve(self) -> None:
            raw = read_body(self)
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            send_json(self, *answer(self.command, self.path, self.headers, body))

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler


@contextlib.contextmanager
def serving(
    handler: type[http.server.BaseHTTPRequestHandler], name: str, tls: ssl.SSLContext | None = None
) -> Iterator[int]:
    """Serve `handler` on a free port of 127.0.0.1 (over TLS with `tls`) until the block ends: the port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
