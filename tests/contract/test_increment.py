"""The ATOMIC_INCREMENT capability, on every backend that declares it.

Semantics (adapters.base.Adapter.increment): add to a numeric field of an existing row
on the server and return the new value; a missing row raises NotFoundError and is not
created; a null field counts as 0; concurrent increments never lose an update.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from adapters.base import Capability
from tests.contract.conftest import Backend
from toolkit import Entity, QueryError
from toolkit.errors import NotFoundError

pytestmark = pytest.mark.capability(Capability.ATOMIC_INCREMENT)


class Counter(Entity, store="items", key="id"):
    id: str
    hits: int | None = None
    total: float | None = None
    label: str = ""


def test_increments_int_and_float_fields(backend: Backend) -> None:
    counters = backend.toolkit().repository(Counter)
    counters.put(Counter(id="c", hits=10, total=1.5, label="kept"))
    assert counters.increment("c", "hits") == 11
    assert counters.increment("c", "hits", 5) == 16
    assert counters.increment("c", "hits", -20) == -4
    assert counters.increment("c", "total", 0.25) == 1.75
    assert counters.increment("c", "total", 2) == 3.75
    assert counters.get("c") == Counter(id="c", hits=-4, total=3.75, label="kept")


def test_float_increments_are_double_arithmetic(backend: Backend) -> None:
    counters = backend.toolkit().repository(Counter)
    counters.put(Counter(id="f", total=0.1))
    assert counters.increment("f", "total", 0.2) == 0.1 + 0.2
    got = counters.get("f")
    assert got is not None
    assert got.total == 0.1 + 0.2


def test_large_ints_stay_exact(backend: Backend) -> None:
    counters = backend.toolkit().repository(Counter)
    counters.put(Counter(id="big", hits=2**62))
    assert counters.increment("big", "hits", 3) == 2**62 + 3
    got = counters.get("big")
    assert got is not None
    assert got.hits == 2**62 + 3


def test_a_null_field_counts_as_zero(backend: Backend) -> None:
    counters = backend.toolkit().repository(Counter)
    counters.put(Counter(id="n"))
    assert counters.increment("n", "hits", 3) == 3
    assert counters.increment("n", "total", 0.5) == 0.5
    assert counters.get("n") == Counter(id="n", hits=3, total=0.5)


def test_a_missing_row_is_not_created(backend: Backend) -> None:
    counters = backend.toolkit().repository(Counter)
    with pytest.raises(NotFoundError):
        counters.increment("ghost", "hits")
    assert counters.get("ghost") is None
    assert counters.count() == 0


def test_concurrent_increments_sum_exactly(backend: Backend) -> None:
    counters = backend.toolkit().repository(Counter)
    counters.put_many([Counter(id="a", hits=0), Counter(id="b", total=0.0)])
    threads, rounds = 8, 25

    def work(_: int) -> None:
        for _ in range(rounds):
            counters.increment("a", "hits", 1)
            counters.increment("b", "total", 0.5)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(work, range(threads)))
    assert counters.get("a") == Counter(id="a", hits=threads * rounds)
    assert counters.get("b") == Counter(id="b", total=threads * rounds * 0.5)


def test_incremented_values_are_seen_by_queries(backend: Backend) -> None:
    counters = backend.toolkit().repository(Counter)
    counters.put_many(Counter(id=f"q{i}", hits=i) for i in range(6))
    counters.increment("q0", "hits", 100)
    assert [c.id for c in counters.find({"hits": {"ge": 5}}, order_by=["-hits"])] == ["q0", "q5"]
    assert counters.count({"hits": {"gt": 4}}) == 2


def test_only_numeric_fields_with_matching_amounts(backend: Backend) -> None:
    counters = backend.toolkit().repository(Counter)
    counters.put(Counter(id="x", hits=1))
    with pytest.raises(QueryError):
        counters.increment("x", "label")
    with pytest.raises(QueryError):
        counters.increment("x", "hits", 0.5)
    with pytest.raises(QueryError):
        counters.increment("x", "nope")
    assert counters.get("x") == Counter(id="x", hits=1)
