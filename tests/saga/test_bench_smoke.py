"""bench/sagas.py runs end to end (tiny and unasserted: benchmarks are never wall-clock tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "sagas.py"


def test_bench_script_runs(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_sagas", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--sagas", "5", "--steps", "3", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("ms per step", "overhead per step", "ratio saga / plain", "catalog writes per saga"):
        assert row in out
    assert "4.00 (N + 1 = 4)" in out  # one write per step plus one: the log batches as designed
