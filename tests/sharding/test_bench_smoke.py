"""bench/routers.py runs end to end (tiny and unasserted: benchmarks are never wall-clock tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "routers.py"


def test_bench_script_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import uhashring  # noqa: F401 - the peer the bench compares against (the dev extra installs it)

    spec = importlib.util.spec_from_file_location("bench_routers", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    status = module.main(["--keys", "4000", "--repeat", "1"])
    assert status in (0, 1)  # 4,000 keys are too few to judge balance; only the report matters here
    out = capsys.readouterr().out
    for row in ("lookups/s", "max/mean", "moved on adding s10", "weights"):
        assert row in out
