"""Build adapter: `docker build` and `docker push`, streamed to the console for Jenkins.

Builds use the layer cache (never --no-cache): after an app change only the layers below the change are
rebuilt. Build-arg values travel in docker's environment (`--build-arg KEY` with no value), so a mirror
URL carrying a token never shows in argv.
"""

from __future__ import annotations

import collections
import functools
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

TAIL_LINES = 30
BUILD_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Build-arg values ride in docker's own environment, so names the docker CLI itself reads are out.
RESERVED_NAME = re.compile(r"PATH|HOME|DOCKER_\w*")
PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


class BuildError(Exception):
    """docker build or push failed; the message ends with the tail of docker's output."""


def build_arg_name_error(name: str) -> str | None:
    """Why NAME cannot be a build-arg name, or None if it can (the one rule the CLI and the build use)."""
    if not BUILD_ARG_NAME.fullmatch(name):
        return "expected letters, digits and _, not starting with a digit"
    if RESERVED_NAME.fullmatch(name):
        return "reserved for the docker CLI itself (PATH, HOME, DOCKER_*)"
    return None


def build_image(
    context: Path, image: str, *, git_commit: str, build_args: Mapping[str, str], network: str | None
) -> None:
    """Build CONTEXT/Dockerfile as IMAGE with GIT_COMMIT and the given build args."""
    dockerfile = context / "Dockerfile"
    if not dockerfile.is_file():
        raise BuildError(f"no Dockerfile at {dockerfile}; --context must name the app's build directory")
    args = {**build_args, "GIT_COMMIT": git_commit}
    problems = sorted(f"{name!r}: {why}" for name in args if (why := build_arg_name_error(name)))
    if problems:
        raise BuildError(f"bad build-arg name(s): {'; '.join(problems)}")
    argv = ["docker", "build", "--file", str(dockerfile), "--tag", image]
    for name in args:
        argv += ["--build-arg", name]
    if network:
        argv += ["--network", network]
    argv.append(str(context))
    env = {**os.environ, **docker_build_env(), **args}
    run_streaming(argv, env, f"docker build of {image} failed")


def push_image(image: str) -> str:
    """Push IMAGE and return the digest the registry stored it under."""
    output = run_streaming(["docker", "push", image], dict(os.environ), f"docker push of {image} failed")
    found = PUSHED_DIGEST.findall("\n".join(output))
    if not found:
        raise BuildError(
            f"pushed {image} but docker printed no digest; check the registry with `docker pull`"
        )
    return found[-1]


@functools.cache
def docker_build_env() -> dict[str, str]:
    """Use BuildKit when the buildx plugin exists; otherwise the classic builder (a bare 20.10 engine)."""
    buildx = subprocess.run(["docker", "buildx", "version"], capture_output=True, check=False)
    return {} if buildx.returncode == 0 else {"DOCKER_BUILDKIT": "0"}


def run_streaming(argv: list[str], env: Mapping[str, str], failure: str) -> list[str]:
    """Run docker, echoing its output indented on stderr (stdout stays for --json); return the lines."""
    lines: list[str] = []
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(
            argv, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
    except OSError as exc:
        raise BuildError(
            f"{failure}: cannot run docker ({exc.strerror}); is the docker CLI installed?"
        ) from None
    assert proc.stdout is not None
    with proc:
        for line in proc.stdout:
            line = line.rstrip()
            if not line:
                continue
            lines.append(line)
            tail.append(line)
            print(f"    | {line}", file=sys.stderr, flush=True)
    if proc.returncode != 0:
        raise BuildError(f"{failure} (exit {proc.returncode}); last lines of its output:\n" + "\n".join(tail))
    return lines
