"""bench/sagas.py runs end to end (tiny and unasserted: benchmarks are never wall-clock tests)."""

from __future__ import annotations

import pytest

from tests.bench.scripts import load_bench


def test_bench_script_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    module = load_bench("sagas", monkeypatch)
    assert module.main(["--sagas", "5", "--steps", "3", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("ms per step", "overhead per step", "ratio saga / plain", "catalog writes per saga"):
        assert row in out
    assert "4.00 (N + 1 = 4)" in out  # one write per step plus one: the log batches as designed
