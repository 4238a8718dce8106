"""Run one infra/jenkins component on its own under the same mocks as the whole program."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.deploy_keys import HookRanges
from tests.infra.conftest import GITHUB_HOST_KEYS, Program, _record, _stack_outputs, _start

KNOWN_HOSTS = "".join(f"github.com {key}\n" for key in GITHUB_HOST_KEYS)
GIT_RANGES = HookRanges(ipv4=("192.30.252.0/22", "140.82.112.0/20"), ipv6=("2a0a:a440::/29",))


def run_components(
    declare: Callable[[], None], extra_outputs: Mapping[str, Callable[[str, dict], dict]] | None = None
) -> Program:
    """Declare resources with `declare()` under fresh mocks (dev config) and record them."""
    mocks, monitor = _start(None, extra_outputs=extra_outputs)
    _sync_await(run_pulumi_func(declare))
    outputs, secret_outputs = _stack_outputs()
    return Program(_record(monitor, mocks), list(mocks.invokes), outputs, secret_outputs)
