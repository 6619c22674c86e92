"""The resilience benchmarks run end to end, tiny and unasserted: they print real-time
figures (an outage, a slow backend, throttles, the guard's cost), which are never
wall-clock assertions in tests. This only keeps them from rotting between runs by hand."""

from __future__ import annotations

import pytest

from tests.bench.scripts import load_bench

STACK = [pytest.mark.postgres, pytest.mark.mongo, pytest.mark.redis, pytest.mark.cassandra, pytest.mark.neo4j]


def run(name: str, argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    assert load_bench(name, monkeypatch).main(argv) == 0
    return capsys.readouterr().out


def test_the_guard_cost(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = run("resilience", ["--calls", "20", "--slices", "1"], monkeypatch, capsys)
    assert "overhead µs" in out
    assert out.count("default guard") == 2  # get and put


@pytest.mark.parametrize(
    ("name", "argv", "printed"),
    [
        pytest.param(
            "resilience_outage",
            ["--threads", "2", "--before", "0.2", "--open", "0.2", "--after", "0.1", "--cool-down", "0.2"],
            ["time from kill to open breaker", "calls failed fast while open", "all four"],
            marks=STACK,
            id="outage",
        ),
        pytest.param(
            "resilience_slow",
            ["--threads", "4", "--delay", "0.05", "--phase", "0.2", "--settle", "0.05", "--pairs", "1"],
            ["bulkhead 1 slot, no wait", "no bulkhead (control)"],
            marks=STACK,
            id="slow",
        ),
        pytest.param(
            "resilience_throttle",
            ["--rate", "50", "--threads", "2", "--seconds", "0.2"],
            ["token_bucket", "leaky_bucket", "fixed_window", "sliding_window"],
            marks=pytest.mark.redis,
            id="throttle",
        ),
    ],
)
def test_a_benchmark_on_the_stack(
    name: str, argv: list[str], printed: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run(name, argv, monkeypatch, capsys)
    for line in printed:
        assert line in out, line
