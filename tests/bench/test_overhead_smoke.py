"""bench/overhead.py runs end to end on SQLite (tiny, no servers, never a wall-clock test).

The benchmark is run by hand against the server stack; this keeps it from rotting
between those runs: argument parsing, the SQLite suite (polystore, Core, sqlite3), the
layout check, the interleaved measurement and the table all run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "overhead.py"


def load(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import the script as a module; registered in sys.modules while the test runs, as
    dataclasses need to resolve its (postponed) annotations."""
    spec = importlib.util.spec_from_file_location("bench_overhead", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_overhead_runs_on_sqlite(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    module = load(monkeypatch)
    assert module.main(["--backends", "sqlite", "--rows", "5", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "polystore repository vs raw drivers" in out
    for operation in ("get", "put", "put_many"):
        assert operation in out
    for baseline in ("sqlalchemy core", "sqlite3"):
        assert baseline in out
    assert "PASS" in out or "MISS" in out  # a verdict per row; which one is the machine's business
    assert "unreachable" not in out


def test_unknown_backend_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    module = load(monkeypatch)
    with pytest.raises(SystemExit):
        module.main(["--backends", "sqlite,nosuch"])
