"""SIGKILL at random points, then recovery: every saga has all of its effects or none.

200 runs on the embedded default (SQLite files for the catalog and all five stores)
and 200 runs across the real servers (catalog in PostgreSQL; orders in PostgreSQL,
stock in Redis, documents in MongoDB-wire, events in Cassandra, purchases in Neo4j).
Every run prints its seed; ``POLYSTORE_SAGA_SEEDS`` replays chosen ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.saga.harness import Report, embedded_toolkit, run_faults
from tests.saga.servers import checkout_toolkit, fresh_namespace
from toolkit import Toolkit


def _seeds(base: int, count: int) -> list[int]:
    chosen = os.environ.get("POLYSTORE_SAGA_SEEDS")
    if chosen:
        return [int(seed) for seed in chosen.split(",")]
    return list(range(base, base + count))


def _check(toolkit: Toolkit, make: Callable[[str], Toolkit], arg: str, where: str, **options: Any) -> Report:
    """``run_faults`` with its report printed (even when it passes) and no violation allowed."""
    lines: list[str] = []
    report = run_faults(toolkit, make, arg, log=lines.append, **options)
    print("\n" + report.line(where))
    assert report.violations == [], "\n".join(report.violations + lines)
    return report


@pytest.mark.slow
def test_sigkill_then_recovery_on_the_embedded_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    with embedded_toolkit(data) as toolkit, capsys.disabled():
        where = "the embedded default (SQLite)"
        options = {"orders": 3, "max_point": 60, "max_delay": 0.1, "run_tag": "e"}
        report = _check(toolkit, embedded_toolkit, data, where, seeds=_seeds(1000, 200), **options)
    assert report.self_kills + report.timer_kills >= len(report.seeds) * 0.6


@pytest.fixture
def namespace() -> Iterator[str]:
    yield from fresh_namespace("fi")


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 200 runs of about 1.5 s each, more on a busy machine
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.mongo
@pytest.mark.cassandra
@pytest.mark.neo4j
def test_sigkill_then_recovery_across_the_real_servers(namespace: str, capsys: pytest.CaptureFixture[str]) -> None:
    with checkout_toolkit(namespace) as toolkit, capsys.disabled():
        options = {"orders": 2, "max_point": 45, "max_delay": 0.35, "run_tag": namespace}
        report = _check(toolkit, checkout_toolkit, namespace, "the real servers", seeds=_seeds(5000, 200), **options)
    assert report.self_kills + report.timer_kills >= len(report.seeds) * 0.5
