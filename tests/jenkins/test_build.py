"""Build adapter against the real Docker engine (host network, the offline base image)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jenkins.build import BuildError, build_image, push_image
from tests.conftest import free_port
from tests.jenkins.dockerspy import spy_on_docker

SHA = "0123456789abcdef0123456789abcdef01234567"
SECRET_MIRROR = "http://mirror-user:mirror-token-5e1d@127.0.0.1:9/simple"


@pytest.fixture
def image() -> Iterator[str]:
    name = f"c2-build-test:{uuid.uuid4().hex[:12]}"
    yield name
    subprocess.run(["docker", "image", "rm", "--force", name], capture_output=True, check=False)


def write_context(directory: Path, dockerfile: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Dockerfile").write_text(dockerfile)
    return directory


def run_in(image: str, *command: str) -> str:
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "host", image, *command],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_build_passes_commit_and_args_through_the_environment_not_argv(
    base_image: str,
    image: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    context = write_context(
        tmp_path / "app",
        f"FROM {base_image}\nARG GIT_COMMIT\nARG PIP_INDEX_URL\n"
        'RUN printf "%s %s" "$GIT_COMMIT" "$PIP_INDEX_URL" > /built-from\n',
    )
    spy = spy_on_docker(tmp_path / "spy", monkeypatch)

    build_image(context, image, git_commit=SHA, build_args={"PIP_INDEX_URL": SECRET_MIRROR}, network="host")

    assert run_in(image, "cat", "/built-from") == f"{SHA} {SECRET_MIRROR}"
    [build_call] = [call for call in spy.calls() if call.startswith("build ")]
    assert "--build-arg GIT_COMMIT" in build_call
    assert "--build-arg PIP_INDEX_URL" in build_call
    assert "--network host" in build_call
    assert "--no-cache" not in build_call
    assert SECRET_MIRROR not in build_call
    assert "Successfully tagged" in capfd.readouterr().err  # docker's output streams to stderr


def test_rebuild_reuses_the_layer_cache(
    base_image: str, image: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    context = write_context(
        tmp_path / "app", f"FROM {base_image}\nRUN echo {uuid.uuid4().hex} > /layer\nARG GIT_COMMIT\n"
    )
    build_image(context, image, git_commit=SHA, build_args={}, network="host")
    capfd.readouterr()
    build_image(context, image, git_commit="f" * 40, build_args={}, network="host")
    assert cache_hit(capfd.readouterr().err)


def cache_hit(console: str) -> bool:
    """docker's own words for a reused layer: the classic builder's and BuildKit's."""
    return "Using cache" in console or " CACHED " in console


def test_failing_build_reports_the_tail_of_dockers_output(
    base_image: str, image: str, tmp_path: Path
) -> None:
    context = write_context(tmp_path / "app", f"FROM {base_image}\nRUN echo compile-error-marker && exit 3\n")
    with pytest.raises(BuildError) as err:
        build_image(context, image, git_commit=SHA, build_args={}, network="host")
    message = str(err.value)
    assert message.startswith(f"docker build of {image} failed (exit 3); last lines of its output:")
    assert "compile-error-marker" in message
    assert "returned a non-zero code: 3" in message


def test_missing_dockerfile_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=f"no Dockerfile at {tmp_path / 'Dockerfile'}; --context"):
        build_image(tmp_path, "app:latest", git_commit=SHA, build_args={}, network=None)


@pytest.mark.parametrize(
    ("build_args", "message"),
    [
        (
            {"BAD NAME": "x", "A=B": "y"},
            "bad build-arg name(s): 'A=B': expected letters, digits and _, not starting with a digit; "
            "'BAD NAME': expected letters",
        ),
        (
            {"PATH": "/tmp", "DOCKER_HOST": "tcp://127.0.0.1:9"},
            "'DOCKER_HOST': reserved for the docker CLI itself (PATH, HOME, DOCKER_*); 'PATH': reserved",
        ),
    ],
)
def test_bad_build_arg_names_are_rejected_before_docker_runs(
    build_args: dict[str, str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = write_context(tmp_path / "app", "FROM scratch\n")
    spy = spy_on_docker(tmp_path / "spy", monkeypatch)
    with pytest.raises(BuildError) as err:
        build_image(context, "app:latest", git_commit=SHA, build_args=build_args, network=None)
    assert message in str(err.value)
    assert not [call for call in spy.calls() if call.startswith("build")]


def test_push_to_an_unreachable_registry_fails_with_dockers_reason(
    docker_engine: None, tmp_path: Path
) -> None:
    context = write_context(tmp_path / "app", "FROM scratch\nCOPY Dockerfile /\n")
    image = f"127.0.0.1:{free_port()}/app:{SHA}"
    build_image(context, image, git_commit=SHA, build_args={}, network=None)
    try:
        with pytest.raises(BuildError) as err:
            push_image(image)
        assert f"docker push of {image} failed" in str(err.value)
        assert "connection refused" in str(err.value)
    finally:
        subprocess.run(["docker", "image", "rm", image], capture_output=True, check=False)
