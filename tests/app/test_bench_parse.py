"""bench.app reads wrk's report correctly: the benchmark's numbers are only as good as this parser."""

from __future__ import annotations

import pytest

from bench.app import parse_wrk

REPORT = """Running 1s test @ http://127.0.0.1:18450/nope
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   743.85us    1.07ms  15.47ms   98.16%
    Req/Sec     3.14k   162.98     3.25k    80.00%
  Latency Distribution
     50%  597.00us
     75%  708.00us
     90%    0.85ms
     99%    {p99}
  3128 requests in 1.00s, 1.11MB read
{errors}Requests/sec:   3125.49
Transfer/sec:      1.11MB
"""


@pytest.mark.parametrize(("p99", "ms"), [("5.69ms", 5.69), ("812.00us", 0.812), ("1.20s", 1200.0)])
def test_p99_units(p99: str, ms: float) -> None:
    load = parse_wrk(REPORT.format(p99=p99, errors=""))
    assert (load.requests_per_s, load.requests, load.errors) == (3125.49, 3128, 0)
    assert load.p99_ms == pytest.approx(ms)


def test_errors_are_counted() -> None:
    errors = "  Socket errors: connect 0, read 2, write 1, timeout 4\n  Non-2xx or 3xx responses: 3128\n"
    assert parse_wrk(REPORT.format(p99="5.69ms", errors=errors)).errors == 3128 + 7


def test_an_unexpected_report_is_an_error_not_a_zero() -> None:
    with pytest.raises(ValueError, match="unexpected wrk output"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")
