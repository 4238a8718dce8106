"""The hello app: a greeting, liveness and readiness probes, and the commit the image was built from.

`app` is the WSGI object the server serves (see serve.py). Readiness is shared across processes so
that the server's main process can turn every worker's /readyz to 503 with one write when it is
asked to stop, while the workers keep serving the requests that still arrive.
"""

from __future__ import annotations

import mmap
import os

from flask import Flask


class Lifecycle:
    """Whether the server is shutting down, visible to every process forked after it is created."""

    def __init__(self) -> None:
        # An anonymous MAP_SHARED page: serve.py forks its workers after importing this module, so
        # a byte the main process writes here is read by every worker.
        self._flag = mmap.mmap(-1, 1)

    def begin_shutdown(self) -> None:
        """Report not-ready from now on, so load balancers stop sending new traffic here."""
        self._flag[0] = 1

    @property
    def shutting_down(self) -> bool:
        return self._flag[0] == 1


def create_app(commit: str | None = None, lifecycle: Lifecycle | None = None) -> Flask:
    """Build the app; `commit` defaults to GIT_COMMIT, which the image sets from its build argument."""
    flask_app = Flask(__name__)
    flask_app.extensions["lifecycle"] = state = lifecycle or Lifecycle()
    version = {"commit": commit if commit is not None else os.environ.get("GIT_COMMIT", "unknown")}

    @flask_app.get("/")
    def hello() -> str:
        return "Hello World!"

    @flask_app.get("/healthz")
    def healthz() -> tuple[dict[str, str], int]:
        return {"status": "ok"}, 200

    @flask_app.get("/readyz")
    def readyz() -> tuple[dict[str, str], int]:
        if state.shutting_down:
            return {"status": "shutting down"}, 503
        return {"status": "ready"}, 200

    @flask_app.get("/version")
    def show_version() -> dict[str, str]:
        return version

    return flask_app


app = create_app()

if __name__ == "__main__":
    # The original way of serving the app, kept for local hacking and as the benchmark's baseline.
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), debug=True)
