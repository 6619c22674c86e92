"""The adapter-neutral contract: what every backend must do, through the Repository.

Runs once per backend (see conftest.py), always with at least two shards, so routing
and the fan-out merge are part of what is tested.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import TOKEN_FIELD, Capability, Filter
from sharding.base import TokenRange
from tests.contract.conftest import Backend
from tests.contract.reference import assert_matches_reference
from toolkit import (
    Entity,
    EntityValidationError,
    InvalidKeyError,
    QueryError,
)


class Item(Entity, store="items", key="id", indexes=["name"]):
    id: str
    name: str | None = None
    n: int | None = None
    score: float | None = None
    flag: bool | None = None
    blob: bytes | None = None
    at: dt.datetime | None = None
    day: dt.date | None = None
    uid: uuid.UUID | None = None
    doc: dict[str, Any] | None = None
    tags: list[str] = []


class Reading(Entity, store="items", key=("sensor", "seq"), shard_key="sensor"):
    sensor: str
    seq: int
    value: float


class Numbered(Entity, store="items", key="id"):
    id: int
    label: str


NASTY = [
    "'; DROP TABLE items; --",
    "1 OR 1=1",
    "Robert'); DELETE FROM items WHERE ('1'='1",
    "MATCH (n) DETACH DELETE n",
    "'}) RETURN n //",
    "APPLY BATCH; TRUNCATE items;",
    "$where",
    "{$gt: ''}",
    "{user}:{*}",
    "ключ-键-🔑",
    "\\x00\\n\\t",
    "%s %(name)s ? :name $1",
    "{user}",
    "user:{42}:*",
    "*",
    "a.b.c",
    "$gt",
    "key with spaces\tand\nnewlines",
    "null",
    "NULL",
    "",
]


def test_operator_looking_documents_are_literal(backend: Backend) -> None:
    items = backend.toolkit().repository(Item)
    doc = {"$where": "sleep(1000)", "$gt": "", "a.b": {"$ne": None}, "{k}": ["$in", "*"], "": "empty key"}
    items.put(Item(id="$where", name="{$gt: ''}", doc=doc, tags=["$or", "."]))
    items.put(Item(id="plain", name="plain"))
    assert items.get("$where") == Item(id="$where", name="{$gt: ''}", doc=doc, tags=["$or", "."])
    assert [i.id for i in items.find({"name": "{$gt: ''}"})] == ["$where"]
    assert items.count() == 2


def test_put_get_roundtrip_every_type(backend: Backend) -> None:
    items = backend.toolkit().repository(Item)
    item = Item(
        id="full",
        name="Ada",
        n=-(2**62),
        score=3.25,
        flag=False,
        blob=b"\x00\xff\x10binary",
        at=dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=dt.UTC),
        day=dt.date(1999, 12, 31),
        uid=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        doc={"nested": {"list": [1, 2.5, "x", None, True]}, "$gt": "literal"},
        tags=["a", "b"],
    )
    items.put(item)
    assert items.get("full") == item
    empty = Item(id="empty")
    items.put(empty)
    assert items.get("empty") == empty


def test_datetimes_are_instants(backend: Backend) -> None:
    items = backend.toolkit().repository(Item)
    plus_two = dt.timezone(dt.timedelta(hours=2))
    items.put(Item(id="tz", at=dt.datetime(2024, 1, 1, 12, 0, tzinfo=plus_two)))
    got = items.get("tz")
    assert got is not None
    assert got.at == dt.datetime(2024, 1, 1, 10, 0, tzinfo=dt.UTC)


def test_missing_keys(backend: Backend) -> None:
    items = backend.toolkit().repository(Item)
    assert items.get("nope") is None
    assert items.delete("nope") is False
    assert items.get_many(["nope", "also-nope"]) == {}
    assert items.delete_many(["nope"]) == 0
    assert items.count() == 0
    assert items.find() == []
    assert list(items.scan()) == []


def test_duplicate_put_is_an_upsert(backend: Backend) -> None:
    items = backend.toolkit().repository(Item)
    items.put(Item(id="k", name="first", n=1))
    items.put(Item(id="k", name="second"))
    assert items.get("k") == Item(id="k", name="second")
    assert items.count() == 1
    written = items.put_many([Item(id="d", n=1), Item(id="d", n=2), Item(id="e", n=3)])
    assert written == 2
    assert items.get("d") == Item(id="d", n=2)  # last write in a batch wins
    assert items.count() == 3


@pytest.mark.parametrize("text", NASTY)
def test_injection_looking_keys_and_values_are_literal(backend: Backend, text: str) -> None:
    items = backend.toolkit().repository(Item)
    items.put(Item(id="guard", name="guard"))
    items.put(Item(id=text, name=text, doc={text: text}, tags=[text]))
    got = items.get(text)
    assert got == Item(id=text, name=text, doc={text: text}, tags=[text])
    assert [found.id for found in items.find({"name": text})] == [text]
    assert items.count({"name": {"in": [text, "other"]}}) == 1
    assert items.get("guard") is not None  # nothing was executed
    assert items.count() == 2
    assert items.delete(text) is True
    assert items.get(text) is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40),
    value=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=80),
    blob=st.binary(max_size=64),
)
def test_arbitrary_unicode_and_bytes_roundtrip(backend: Backend, key: str, value: str, blob: bytes) -> None:
    items = backend.toolkit().repository(Item) if not backend.toolkits else backend.toolkits[0].repository(Item)
    items.put(Item(id=key, name=value, blob=blob, doc={"v": value}))
    got = items.get(key)
    assert got == Item(id=key, name=value, blob=blob, doc={"v": value})
    assert items.find({"name": value, "id": key}) == [got]
    items.delete(key)


def test_get_many_and_delete_many(backend: Backend) -> None:
    items = backend.toolkit().repository(Item)
    items.put_many(Item(id=f"k{i}", n=i) for i in range(50))
    found = items.get_many([f"k{i}" for i in range(0, 60, 5)])
    assert sorted(found) == sorted(f"k{i}" for i in range(0, 50, 5))
    assert all(found[key].id == key for key in found)
    assert items.delete_many([f"k{i}" for i in range(10)] + ["k1", "missing"]) == 10
    assert items.count() == 40


def test_rows_live_on_the_shard_the_router_names(backend: Backend) -> None:
    toolkit = backend.toolkit()
    items = toolkit.repository(Item)
    items.put_many(Item(id=f"r{i}") for i in range(200))
    store = toolkit.store("items")
    per_shard = items.count_by_shard()
    assert sum(per_shard.values()) == 200
    assert all(count > 0 for count in per_shard.values()), per_shard
    for i in range(0, 200, 17):
        key = f"r{i}"
        owner = store.router.shard_for(key)
        for shard in store.router.shards:
            row = store.adapter(shard).get(items.schema, key)
            assert (row is not None) == (shard == owner)


def _dataset(count: int, seed: int) -> list[Item]:
    rng = random.Random(seed)
    names = ["ann", "Bob", "bob", "cy", "dé", "Éa", "zed", "", None]
    return [
        Item(
            id=f"i{index:04d}",
            name=rng.choice(names),
            n=rng.choice([None, *range(-5, 15)]),
            score=rng.choice([None, 0.5, 1.5, -2.0, 10.0]),
            flag=rng.choice([None, True, False]),
            at=rng.choice([None, dt.datetime(2024, 1, rng.randint(1, 28), tzinfo=dt.UTC)]),
        )
        for index in range(count)
    ]


QUERIES: list[tuple[dict[str, Any], list[str], int | None]] = [
    ({}, [], None),
    ({"n": 3}, [], None),
    ({"n": {"ne": 3}}, ["n"], None),
    ({"n": None}, [], None),
    ({"n": {"gt": 2, "le": 9}}, ["-n"], 7),
    ({"n": {"lt": 0}}, ["n", "-id"], None),
    ({"name": {"in": ["bob", "Bob", None]}}, ["name"], None),
    ({"name": {"ge": "b"}}, ["name", "-n"], 15),
    ({"score": {"ge": 0.5}, "flag": True}, ["-score"], None),
    ({"flag": {"ne": None}}, ["flag", "-n"], 20),
    ({"at": {"lt": dt.datetime(2024, 1, 15, tzinfo=dt.UTC)}}, ["-at"], 10),
    ({"id": {"in": ["i0001", "i0002", "i0500"]}}, [], None),
    ({}, ["-name"], 5),
    ({}, [], 3),
]


@pytest.mark.parametrize(("where", "order", "limit"), QUERIES)
def test_find_matches_the_reference_semantics(
    backend: Backend, where: dict[str, Any], order: list[str], limit: int | None
) -> None:
    assert_matches_reference(backend, _dataset(300, seed=7), where, order, limit)


def test_limit_zero_and_bad_queries(backend: Backend) -> None:
    items = backend.toolkit().repository(Item)
    items.put(Item(id="a", n=1))
    assert items.find(limit=0) == []
    with pytest.raises(QueryError, match="unknown field 'nope'"):
        items.find({"nope": 1})
    with pytest.raises(QueryError, match="unknown operator 'like'"):
        items.find({"name": {"like": "%"}})
    if Capability.NESTED_FILTERS not in backend.spec.capabilities():
        with pytest.raises(QueryError, match="nested"):
            items.find({"doc": {"eq": {"a": 1}}})
    with pytest.raises(QueryError, match="limit"):
        items.find(limit=-1)
    with pytest.raises(QueryError, match="order_by"):
        items.find(order_by=[3])  # type: ignore[list-item]


def test_invalid_entities_and_keys_fail_before_io(backend: Backend) -> None:
    items = backend.toolkit().repository(Item)
    with pytest.raises(EntityValidationError, match=r"Item\.n"):
        items.put({"id": "x", "n": "not a number"})
    with pytest.raises(EntityValidationError, match=r"Item\.surprise"):
        items.put({"id": "x", "surprise": 1})
    numbered = backend.toolkits[0].repository(Numbered)
    numbered.put(Numbered(id=1, label="int one"))
    with pytest.raises(InvalidKeyError, match="keys are typed"):
        numbered.get("1")  # type: ignore[arg-type]
    assert numbered.get(1) == Numbered(id=1, label="int one")
    assert items.count() == 0


def test_composite_keys(backend: Backend) -> None:
    readings = backend.toolkit().repository(Reading)
    readings.put_many(Reading(sensor=s, seq=q, value=q / 2) for s in ("a", "b", "c") for q in range(20))
    assert readings.get(("b", 7), shard_key="b") == Reading(sensor="b", seq=7, value=3.5)
    assert readings.get(("b", 7)) == Reading(sensor="b", seq=7, value=3.5)  # fans out without shard_key
    with pytest.raises(InvalidKeyError):
        readings.get("b")
    assert [r.seq for r in readings.find({"sensor": "a", "seq": {"ge": 15}})] == [15, 16, 17, 18, 19]
    assert readings.count({"sensor": "c"}) == 20
    assert readings.delete(("c", 0)) is True
    assert readings.count() == 59
    # all of one sensor's readings share a shard (shard key = sensor)
    per_shard = readings.count_by_shard()
    assert sorted(per_shard.values()) in ([0, 59], [19, 40], [20, 39])


def test_scan_everything_in_batches(backend: Backend) -> None:
    items = backend.toolkit(shards=3).repository(Item)
    items.put_many(Item(id=f"s{i:03d}") for i in range(257))
    for batch_size in (1, 10, 500):
        seen = [item.id for item in items.scan(batch_size=batch_size)]
        assert sorted(seen) == [f"s{i:03d}" for i in range(257)]


def _scan_tokens(backend: Backend, prefix: str, count: int, span: TokenRange, batch_size: int) -> list[dict[str, Any]]:
    """Put ``count`` items, then scan ``span`` on every shard's adapter: the stored rows found."""
    toolkit = backend.toolkit()
    items = toolkit.repository(Item)
    items.put_many(Item(id=f"{prefix}{i}") for i in range(count))
    store = toolkit.store("items")
    return [
        row
        for shard in store.router.shards
        for batch in store.adapter(shard).scan(items.schema, tokens=span, batch_size=batch_size)
        for row in batch
    ]


def test_token_range_scan_reads_exactly_the_range(backend: Backend) -> None:
    span = TokenRange(-(2**62), 2**62)
    found = _scan_tokens(backend, "t", 300, span, batch_size=7)
    from sharding.keys import token

    expected = sorted(f"t{i}" for i in range(300) if token(f"t{i}") in span)
    assert sorted(row["id"] for row in found) == expected
    assert all(row[TOKEN_FIELD] in span for row in found)


def test_range_router_narrows_queries(backend: Backend) -> None:
    toolkit = backend.toolkit(
        router="range",
        shards=3,
        ranges=[{"shard": "s0", "upto": 100}, {"shard": "s1", "upto": 200}, {"shard": "s2"}],
    )
    numbered = toolkit.repository(Numbered)
    numbered.put_many(Numbered(id=i, label=str(i)) for i in range(300))
    assert numbered.count_by_shard() == {"s0": 100, "s1": 100, "s2": 100}
    router = toolkit.store("items").router
    assert router.shard_for(100) == "s1"  # a split point belongs to the upper range
    assert [n.id for n in numbered.find({"id": {"ge": 195, "lt": 205}})] == list(range(195, 205))
    assert numbered.count({"id": {"lt": 100}}) == 100


def test_directory_router_pins_keys(backend: Backend) -> None:
    toolkit = backend.toolkit(router="directory", shards=3)
    items = toolkit.repository(Item)
    toolkit.directory("items").assign({"vip": "s2", "other": "s0"})
    items.put(Item(id="vip", name="pinned"))
    store = toolkit.store("items")
    assert store.router.shard_for("vip") == "s2"
    assert store.adapter("s2").get(items.schema, "vip") is not None
    assert items.get("vip") == Item(id="vip", name="pinned")
    assert toolkit.directory("items").unassign(["other"]) == 1


def test_filter_objects_are_accepted(backend: Backend) -> None:
    items = backend.toolkit().repository(Item)
    items.put_many([Item(id="a", n=1), Item(id="b", n=2)])
    assert [i.id for i in items.find([Filter("n", "gt", 1)])] == ["b"]


def test_a_token_range_may_end_past_max_token(backend: Backend) -> None:
    """TokenRange.end is exclusive, so the last range of the token space ends at 2**63."""
    everything = TokenRange(-(2**63), 2**63)
    found = [row["id"] for row in _scan_tokens(backend, "e", 100, everything, batch_size=30)]
    assert sorted(found) == sorted(f"e{i}" for i in range(100))
