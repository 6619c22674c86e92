"""The PARTITION_RANGE capability, on every backend that declares it.

Semantics (adapters.base.Adapter.partition): the rows of one partition (one value of
the shard key), in clustering order (the key fields that are not the shard key), with
``start`` inclusive and ``end`` exclusive on the first clustering field, optionally
descending and limited. Partitions of several shard keys live on several shards; a
read touches exactly its own partition.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest

from adapters.base import Capability
from tests.contract.conftest import Backend
from toolkit import Entity, QueryError

pytestmark = pytest.mark.capability(Capability.PARTITION_RANGE)

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
CUSTOMERS = ["ada", "bob", "cy", "dee", "eve", "'; DROP TABLE items; --", "{cust}:*"]


class Event(Entity, store="items", key=("customer", "at"), shard_key="customer"):
    customer: str
    at: dt.datetime
    kind: str
    amount: int | None = None


class Step(Entity, store="items", key=("run", "n"), shard_key="run"):
    run: str
    n: int
    note: str = ""


class Plain(Entity, store="items", key="id"):
    id: str


def _events() -> list[Event]:
    """Ten events per customer, a minute apart, written in a shuffled order."""
    events = [
        Event(customer=customer, at=T0 + dt.timedelta(minutes=m, microseconds=index), kind=f"k{m}", amount=m)
        for index, customer in enumerate(CUSTOMERS)
        for m in range(10)
    ]
    random.Random(3).shuffle(events)
    return events


def test_a_partition_is_exactly_its_rows_in_clustering_order(backend: Backend) -> None:
    toolkit = backend.toolkit()
    repo = toolkit.repository(Event)
    events = _events()
    repo.put_many(events)
    assert all(count > 0 for count in repo.count_by_shard().values())  # partitions on every shard
    for customer in CUSTOMERS:
        got = repo.partition(customer)
        expected = sorted((e for e in events if e.customer == customer), key=lambda e: e.at)
        assert got == expected
        assert {e.customer for e in got} == {customer}


def test_start_is_inclusive_and_end_exclusive(backend: Backend) -> None:
    repo = backend.toolkit().repository(Event)
    repo.put_many(_events())
    base = T0 + dt.timedelta(microseconds=1)  # bob's events are T0 + m minutes + 1 µs
    got = repo.partition("bob", start=base + dt.timedelta(minutes=2), end=base + dt.timedelta(minutes=5))
    assert [e.amount for e in got] == [2, 3, 4]
    assert [e.amount for e in repo.partition("bob", start=base + dt.timedelta(minutes=8))] == [8, 9]
    assert [e.amount for e in repo.partition("bob", end=base + dt.timedelta(minutes=2))] == [0, 1]
    between = repo.partition(
        "bob", start=base + dt.timedelta(seconds=30), end=base + dt.timedelta(minutes=2, seconds=1)
    )
    assert [e.amount for e in between] == [1, 2]
    assert repo.partition("bob", start=base + dt.timedelta(minutes=5), end=base + dt.timedelta(minutes=5)) == []


def test_descending_and_limit(backend: Backend) -> None:
    repo = backend.toolkit().repository(Event)
    repo.put_many(_events())
    assert [e.amount for e in repo.partition("cy", descending=True)] == list(range(9, -1, -1))
    assert [e.amount for e in repo.partition("cy", limit=3)] == [0, 1, 2]
    assert [e.amount for e in repo.partition("cy", descending=True, limit=3)] == [9, 8, 7]
    base = T0 + dt.timedelta(microseconds=2)
    window = repo.partition(
        "cy", start=base + dt.timedelta(minutes=2), end=base + dt.timedelta(minutes=7), descending=True, limit=2
    )
    assert [e.amount for e in window] == [6, 5]
    assert [e.amount for e in repo.partition("cy", limit=100)] == list(range(10))


def test_an_empty_or_unknown_partition_is_empty(backend: Backend) -> None:
    repo = backend.toolkit().repository(Event)
    assert repo.partition("nobody") == []
    repo.put_many(_events())
    assert repo.partition("nobody") == []
    assert repo.partition("ada", start=T0 + dt.timedelta(days=1)) == []
    assert repo.partition("ada", end=T0) == []


def test_datetimes_cluster_by_instant(backend: Backend) -> None:
    repo = backend.toolkit().repository(Event)
    plus_two = dt.timezone(dt.timedelta(hours=2))
    repo.put(Event(customer="tz", at=dt.datetime(2024, 1, 1, 13, 0, tzinfo=plus_two), kind="b"))  # 11:00 UTC
    repo.put(Event(customer="tz", at=dt.datetime(2024, 1, 1, 10, 30, tzinfo=dt.UTC), kind="a"))
    repo.put(Event(customer="tz", at=dt.datetime(2024, 1, 1, 11, 0, 0, 1, tzinfo=dt.UTC), kind="c"))
    got = repo.partition("tz")
    assert [e.kind for e in got] == ["a", "b", "c"]
    assert got[1].at == dt.datetime(2024, 1, 1, 11, 0, tzinfo=dt.UTC)
    assert got[2].at.microsecond == 1  # microseconds survive
    later = repo.partition("tz", start=dt.datetime(2024, 1, 1, 12, 0, tzinfo=plus_two))  # 10:00 UTC
    assert [e.kind for e in later] == ["a", "b", "c"]
    assert [e.kind for e in repo.partition("tz", end=dt.datetime(2024, 1, 1, 11, 0, tzinfo=dt.UTC))] == ["a"]


def test_int_clustering_is_numeric(backend: Backend) -> None:
    repo = backend.toolkit().repository(Step)
    numbers = [10, 2, -7, 0, 100, 33, 1, -(2**40), 2**40]
    repo.put_many(Step(run=run, n=n, note=f"{run}{n}") for run in ("r1", "r2", "r3") for n in numbers)
    assert [s.n for s in repo.partition("r2")] == sorted(numbers)
    assert [s.n for s in repo.partition("r2", start=0, end=33)] == [0, 1, 2, 10]
    assert [s.n for s in repo.partition("r2", start=-7, descending=True, limit=4)] == [2**40, 100, 33, 10]
    assert [s.note for s in repo.partition("r3", end=1)] == [f"r3{-(2**40)}", "r3-7", "r30"]


def test_writes_and_deletes_show_in_the_partition(backend: Backend) -> None:
    repo = backend.toolkit().repository(Step)
    repo.put_many(Step(run="w", n=n) for n in range(5))
    repo.put(Step(run="w", n=2, note="replaced"))
    assert repo.delete(("w", 3), shard_key="w") is True
    got = repo.partition("w")
    assert [(s.n, s.note) for s in got] == [(0, ""), (1, ""), (2, "replaced"), (4, "")]
    repo.put(Step(run="w", n=-1))
    assert [s.n for s in repo.partition("w", limit=2)] == [-1, 0]


def test_a_partition_read_needs_a_clustering_key(backend: Backend) -> None:
    repo = backend.toolkit().repository(Plain)
    with pytest.raises(QueryError, match="clustering"):
        repo.partition("x")
