"""bench/overhead.py runs end to end on SQLite (tiny, no servers, never a wall-clock test).

The benchmark is run by hand against the server stack; this keeps it from rotting
between those runs: argument parsing, the SQLite suite (polystore, Core, sqlite3), the
layout check, the interleaved measurement and the table all run.
"""

from __future__ import annotations

import pytest

from tests.bench.scripts import load_bench


def test_overhead_runs_on_sqlite(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    module = load_bench("overhead", monkeypatch)
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
    module = load_bench("overhead", monkeypatch)
    with pytest.raises(SystemExit):
        module.main(["--backends", "sqlite,nosuch"])
