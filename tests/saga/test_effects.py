"""``increment_once`` / ``undo_increment`` on every backend with ATOMIC_INCREMENT.

Exactly-once (marker and counter in one transaction or one Lua script: the adapters'
APPLY_ONCE) on SQLite, PostgreSQL, Redis and Redis Cluster; check-then-act against the
saga log on MongoDB and Neo4j, which must refuse to guess after a crash (AmbiguousEffect).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from adapters.base import Capability
from tests.backends import discover
from tests.contract.conftest import Backend, _param
from toolkit import Entity
from toolkit.errors import NotFoundError
from toolkit.saga import AmbiguousEffect, SagaLog, exactly_once
from toolkit.saga._effects import increment_once

EXACT = {"sqlite", "postgres", "redis", "redis_cluster"}
BACKENDS = [cls for cls in discover() if Capability.ATOMIC_INCREMENT in cls.capabilities()]


class Tally(Entity, store="items", key="id"):
    id: str
    n: int = 0
    x: float = 0.0


def _backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    spec = request.param(tmp_path)
    spec.connect()
    built = Backend(spec)
    yield built
    built.cleanup()


@pytest.fixture(params=[_param(cls) for cls in BACKENDS])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from _backend(request, tmp_path)


@pytest.fixture(params=[_param(cls) for cls in BACKENDS if cls.name in EXACT])
def exact_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from _backend(request, tmp_path)


@pytest.fixture(params=[_param(cls) for cls in BACKENDS if cls.name not in EXACT])
def logged_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from _backend(request, tmp_path)


def _setup(backend: Backend) -> tuple[Any, SagaLog]:
    toolkit = backend.toolkit()
    tallies = toolkit.repository(Tally)
    tallies.put(Tally(id="t", n=10, x=1.5))
    return tallies, SagaLog(toolkit.catalog.engine)


def _inc(tallies: Any, log: SagaLog, marker: str, amount: int | float, mode: str, field: str = "n") -> Any:
    return increment_once(tallies, "t", field, amount, marker, mode=mode, log=log)  # type: ignore[arg-type]


def test_replays_apply_once_and_undo_once(backend: Backend) -> None:
    tallies, log = _setup(backend)
    marker = f"saga-{uuid.uuid4()}:1"
    assert _inc(tallies, log, marker, -3, "do") == 7
    assert _inc(tallies, log, marker, -3, "do") in (7, None)  # a replay: nothing applied
    assert tallies.get("t").n == 7
    _inc(tallies, log, marker, -3, "undo")
    _inc(tallies, log, marker, -3, "undo")
    assert tallies.get("t").n == 10
    _inc(tallies, log, marker, -3, "do")  # a zombie retry after the compensation: still nothing
    assert tallies.get("t").n == 10
    floats = f"saga-{uuid.uuid4()}:2"
    assert _inc(tallies, log, floats, 0.25, "do", "x") == pytest.approx(1.75)
    _inc(tallies, log, floats, 0.25, "do", "x")
    assert tallies.get("t").x == pytest.approx(1.75)


def test_a_compensation_before_its_action_leaves_a_tombstone(backend: Backend) -> None:
    tallies, log = _setup(backend)
    marker = f"saga-{uuid.uuid4()}:0"
    _inc(tallies, log, marker, 5, "undo")
    assert tallies.get("t").n == 10
    _inc(tallies, log, marker, 5, "do")
    assert tallies.get("t").n == 10


def test_a_missing_row_raises_and_leaves_no_marker(backend: Backend) -> None:
    tallies, log = _setup(backend)
    marker = f"saga-{uuid.uuid4()}:0"
    with pytest.raises(NotFoundError):
        increment_once(tallies, "absent", "n", 1, marker, mode="do", log=log)
    tallies.put(Tally(id="absent", n=1))
    assert increment_once(tallies, "absent", "n", 1, marker, mode="do", log=log) == 2


def _owner(tallies: Any, key: str) -> Any:
    """The adapter of the shard that holds ``key`` (behind its guard)."""
    (shard,) = tallies.shards_for_key(key)
    return tallies.store.adapter(shard)


def test_which_backends_are_exactly_once(backend: Backend) -> None:
    tallies, _ = _setup(backend)
    assert exactly_once(tallies) == (backend.name in EXACT)
    assert exactly_once(_owner(tallies, "t")) == (backend.name in EXACT)


def test_concurrent_attempts_of_one_step_apply_once(exact_backend: Backend) -> None:
    tallies, log = _setup(exact_backend)
    marker = f"saga-{uuid.uuid4()}:0"

    def attempt(_: int) -> Any:
        try:
            return _inc(tallies, log, marker, 1, "do")
        except Exception as exc:  # a racing insert of the marker may lose: that attempt applied nothing
            return exc

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(attempt, range(8)))
    assert tallies.get("t").n == 11


def test_check_then_act_backends_refuse_to_guess_after_a_crash(logged_backend: Backend) -> None:
    """Markers there are separate writes: a crash between increment and confirmation is visible."""
    tallies, log = _setup(logged_backend)
    marker = f"saga-{uuid.uuid4()}:0"
    assert log.mark(marker, "intent", 0.0)  # announced, then the process died before confirming
    with pytest.raises(AmbiguousEffect):
        _inc(tallies, log, marker, 1, "do")
    with pytest.raises(AmbiguousEffect):
        _inc(tallies, log, marker, 1, "undo")
    assert tallies.get("t").n == 10


def test_exactly_once_increments_go_through_the_shards_guard(exact_backend: Backend) -> None:
    """The exactly-once path is a contract method (``increment_once``): the breaker sees it."""
    from toolkit.errors import CircuitOpen, StoreUnavailable
    from toolkit.resilience import GuardedAdapter

    tallies, log = _setup(exact_backend)
    adapter = _owner(tallies, "t")
    assert isinstance(adapter, GuardedAdapter)
    breaker = adapter.guard.breaker
    assert breaker is not None
    for _ in range(breaker.policy.failures):
        breaker.failure(False, StoreUnavailable("down", store="items", shard=adapter.shard))
    marker = f"saga-{uuid.uuid4()}:0"
    with pytest.raises(CircuitOpen):
        _inc(tallies, log, marker, 1, "do")
    breaker.reset()
    assert _inc(tallies, log, marker, 1, "do") == 11
    assert tallies.get("t").n == 11
