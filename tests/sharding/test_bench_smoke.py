"""bench/routers.py runs end to end (tiny and unasserted: benchmarks are never wall-clock tests)."""

from __future__ import annotations

import pytest

from tests.bench.scripts import load_bench


def test_bench_script_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import uhashring  # noqa: F401 - the peer the bench compares against (the dev extra installs it)

    module = load_bench("routers", monkeypatch)
    status = module.main(["--keys", "4000", "--repeat", "1"])
    assert status in (0, 1)  # 4,000 keys are too few to judge balance; only the report matters here
    out = capsys.readouterr().out
    for row in ("lookups/s", "max/mean", "moved on adding s10", "weights"):
        assert row in out
