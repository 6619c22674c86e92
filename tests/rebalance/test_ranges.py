"""The whole-range shortcuts a rebalance takes on SQL shards, and that verify still repairs.

Adapter level (SQLite and the stack's PostgreSQL): ``range_checksum`` agrees on equal
rows and disagrees on a corrupted, missing or extra row; ``delete_range`` deletes the
span and nothing else; the stored-form copy round-trips every field type and the
expiry (SQLite recomputes the token, PostgreSQL copies it in binary), and on PostgreSQL
converges when it runs again over a partial or damaged copy. Rebalance level: rows corrupted, deleted and added on
the destination between the copy and the verify are found and repaired, and a clean run
verifies every unit by server checksums.
"""

from __future__ import annotations

import datetime as dt
import decimal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.base import EXPIRES_FIELD, TOKEN_FIELD, Relationship
from adapters.relational import RelationalAdapter
from sharding.base import KeyRange, TokenRange
from sharding.keys import token
from sharding.rebalance import ProgressEvent, RebalanceOptions, Rebalancer, plan_rebalance
from tests.backends import Backend
from tests.backends.postgres import Postgres
from tests.backends.sqlite import SQLite
from tests.rebalance.helpers import Item, compare, config_text, item, load, reference_of
from toolkit import Entity, Toolkit
from toolkit.model import EntitySchema, schema_of


class Wide(Entity, store="wide", key=("owner", "at"), shard_key="owner"):
    """Every scalar type the relational adapter stores, nullable fields and JSON."""

    owner: str
    at: dt.datetime
    flag: bool
    count: int
    ratio: float
    price: decimal.Decimal
    day: dt.date
    ident: uuid.UUID
    blob: bytes
    note: str | None = None
    data: dict[str, Any] = {}


WIDE = schema_of(Wide)
ITEM = schema_of(Item)
START = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def wide(i: int) -> dict[str, Any]:
    return {
        "owner": f"o{i % 40:02d}",
        "at": START + dt.timedelta(seconds=i, microseconds=i),
        "flag": i % 3 == 0,
        "count": i * 7 - 300,
        "ratio": i / 7,
        "price": decimal.Decimal(f"{i}.25"),
        "day": dt.date(2024, 1, 1) + dt.timedelta(days=i % 300),
        "ident": uuid.UUID(int=i * 7919),
        "blob": bytes([i % 256, 0, 255]),
        "note": None if i % 4 else f"note {i}",
        "data": {"z": i, "a": [1, "x", None], "nested": {"k": i % 5}},
        TOKEN_FIELD: token(f"o{i % 40:02d}"),
    }


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def layout(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    chosen = SQLite(tmp_path) if request.param == "sqlite" else Postgres(tmp_path)
    chosen.connect()
    try:
        yield chosen
    finally:
        chosen.cleanup()


def _pair(layout: Backend, schema: EntitySchema) -> tuple[RelationalAdapter, RelationalAdapter]:
    first, second = (
        RelationalAdapter(layout.url(name), store="ranges", shard=name, options={"namespace": layout.prefix})
        for name in ("a", "b")
    )
    for adapter in (first, second):
        adapter.ensure(schema, with_token=True)
    return first, second


def test_range_checksums_agree_on_equal_rows_and_catch_every_difference(layout: Backend) -> None:
    source, target = _pair(layout, WIDE)
    try:
        rows = [wide(i) for i in range(400)]
        source.put_many(WIDE, [dict(row) for row in rows])
        target.put_many(WIDE, [dict(row) for row in reversed(rows)])  # written in another order
        span = KeyRange("o10", "o30")
        now = time.time()
        ours = source.range_checksum(WIDE, keys=span, now=now)
        assert ours is not None
        assert ours.rows == sum(1 for row in rows if "o10" <= row["owner"] < "o30")
        assert ours == target.range_checksum(WIDE, keys=span, now=now)
        whole = TokenRange(-(2**63), 2**63)
        assert source.range_checksum(WIDE, tokens=whole, now=now) == target.range_checksum(WIDE, tokens=whole, now=now)

        inside = next(row for row in rows if "o10" <= row["owner"] < "o30")
        changes: list[tuple[str, Any]] = [
            ("ratio", inside["ratio"] + 1e-12),  # the last bits of a float
            ("note", "" if inside["note"] is None else None),  # null is not the empty string
            ("data", {**inside["data"], "z": -1}),
            ("flag", not inside["flag"]),
            ("blob", inside["blob"] + b"\x00"),
        ]
        for field, value in changes:
            target.put(WIDE, {**inside, field: value})
            assert target.range_checksum(WIDE, keys=span, now=now) != ours, field
            target.put(WIDE, dict(inside))
            assert target.range_checksum(WIDE, keys=span, now=now) == ours, field
        target.delete(WIDE, (inside["owner"], inside["at"]))
        missing = target.range_checksum(WIDE, keys=span, now=now)
        assert missing is not None
        assert missing.rows == ours.rows - 1
        target.put(WIDE, dict(inside))
        target.put(WIDE, {**inside, "at": START - dt.timedelta(days=1)})  # an extra row in the span
        assert target.range_checksum(WIDE, keys=span, now=now) != ours
        # A row outside the span changes nothing.
        outside = next(row for row in rows if row["owner"] >= "o30")
        source.put(WIDE, {**outside, "count": 0})
        assert source.range_checksum(WIDE, keys=span, now=now) == ours
    finally:
        source.close()
        target.close()


def test_delete_range_deletes_the_span_and_nothing_else(layout: Backend) -> None:
    source, other = _pair(layout, ITEM)
    try:
        rows = [{**item(i), TOKEN_FIELD: token(i)} for i in range(1000)]
        source.put_many(ITEM, [dict(row) for row in rows])
        source.put_ttl(ITEM, [{**item(5000), TOKEN_FIELD: token(5000)}], 0.05)  # expires, then still in the span
        time.sleep(0.1)
        span = TokenRange(-(2**62), 2**62)
        inside = {row["id"] for row in rows if span.start <= row[TOKEN_FIELD] < span.end}
        expired_inside = span.start <= token(5000) < span.end
        assert source.delete_range(ITEM, tokens=span, batch_size=70) == len(inside) + expired_inside
        left = {row["id"] for batch in source.scan(ITEM) for row in batch}
        assert left == {row["id"] for row in rows} - inside
        assert source.delete_range(ITEM, keys=KeyRange(100, 200), batch_size=1000) == len(set(range(100, 200)) & left)
        rest = len(left - set(range(100, 200))) + (not expired_inside)  # the expired row, if it was outside
        assert source.delete_range(ITEM, keys=KeyRange(None, None)) == rest
        assert source.count(ITEM) == 0
    finally:
        source.close()
        other.close()


def test_sqlite_range_writes_give_the_page_cache_back(tmp_path: Path) -> None:
    """The range delete and the stored copy raise SQLite's page cache for their one
    transaction; the pooled connection returns with the cache it had."""
    source, target = _pair(SQLite(tmp_path), ITEM)
    try:

        def cache_size(adapter: RelationalAdapter) -> int:
            with adapter.engine.connect() as connection:
                return int(connection.exec_driver_sql("PRAGMA cache_size").scalar_one())

        before = cache_size(target)
        source.put_many(ITEM, [{**item(i), TOKEN_FIELD: token(i)} for i in range(100)])
        for stored in source.scan_stored(ITEM, keys=KeyRange(0, 50), batch_size=20):
            target.put_stored(ITEM, stored)
        assert target.count(ITEM) == 50
        assert cache_size(target) == before
        assert target.delete_range(ITEM, keys=KeyRange(10, 40)) == 30
        assert target.count(ITEM) == 20
        assert cache_size(target) == before
    finally:
        source.close()
        target.close()


def test_delete_range_declines_a_shard_with_relationships(tmp_path: Path) -> None:
    adapter = RelationalAdapter(f"sqlite:///{tmp_path / 'g.db'}", store="ranges", shard="g")
    try:
        adapter.ensure(ITEM, with_token=True)
        adapter.put_many(ITEM, [{**item(i), TOKEN_FIELD: token(i)} for i in range(2)])
        assert adapter.delete_range(ITEM, keys=KeyRange(None, None)) == 2
        adapter.put_many(ITEM, [{**item(i), TOKEN_FIELD: token(i)} for i in range(2)])
        adapter.relate(ITEM, Relationship("next", 0, 1), ITEM)
        assert adapter.delete_range(ITEM, keys=KeyRange(None, None)) is None  # rows and edges: the row path
        assert adapter.count(ITEM) == 2
    finally:
        adapter.close()


def _copy_stored(source: RelationalAdapter, target: RelationalAdapter, span: KeyRange, batch: int) -> int:
    layout = source.stored_layout(WIDE)
    assert layout is not None
    assert layout == target.stored_layout(WIDE)
    return sum(target.put_stored(WIDE, stored) for stored in source.scan_stored(WIDE, keys=span, batch_size=batch))


def _assert_copied(target: RelationalAdapter, wanted: dict[tuple[str, dt.datetime], dict[str, Any]]) -> None:
    """The target holds exactly ``wanted``: every field, a correct token, expiry kept."""
    found = [row for batch in target.scan_expiring(WIDE) for row in batch]
    assert len(found) == len(wanted)
    for row in found:
        expected = wanted[(row["owner"], row["at"])]
        assert row[TOKEN_FIELD] == token(row["owner"])
        assert {k: v for k, v in row.items() if k not in (TOKEN_FIELD, EXPIRES_FIELD)} == {
            k: v for k, v in expected.items() if k != TOKEN_FIELD
        }
        if "timed" in expected["data"]:
            assert 590 < row[EXPIRES_FIELD] - time.time() <= 600  # the rest of its time to live
        else:
            assert row[EXPIRES_FIELD] is None


def test_the_stored_copy_round_trips_every_type_and_the_expiry(layout: Backend) -> None:
    """SQLite and PostgreSQL: every field type, nulls, JSON and the remaining TTL arrive
    unchanged. SQLite recomputes the token from the shard key (a wrong one on the source
    is corrected); PostgreSQL copies it as stored (binary COPY, nothing decoded)."""
    source, target = _pair(layout, WIDE)
    try:
        rows = [wide(i) for i in range(300)]
        wrong = layout.name == "sqlite"
        source.put_many(WIDE, [{**row, TOKEN_FIELD: 12345} if wrong else dict(row) for row in rows])
        timed = {**wide(1000), "owner": "o15", "data": {"timed": True}, TOKEN_FIELD: token("o15")}
        source.put_ttl(WIDE, [dict(timed)], 600)
        expired = {**wide(1001), "owner": "o16"}
        source.put_ttl(WIDE, [dict(expired)], 0.05)
        time.sleep(0.1)  # expired before the copy reads it: not copied
        copied = _copy_stored(source, target, KeyRange("o10", "o20"), 17)
        wanted = {(row["owner"], row["at"]): row for row in [*rows, timed] if "o10" <= row["owner"] < "o20"}
        assert copied == len(wanted)
        _assert_copied(target, wanted)
    finally:
        source.close()
        target.close()


@pytest.mark.postgres
def test_the_postgres_stored_copy_converges_over_a_partial_or_damaged_copy(tmp_path: Path) -> None:
    """A copy stopped after one batch and a target damaged since (a field changed, a row
    deleted, a TTL dropped) end equal to the source when the copy runs again: each batch
    is one upsert transaction, so a rerun after SIGKILL converges."""
    layout = Postgres(tmp_path)
    layout.connect()
    source, target = _pair(layout, WIDE)
    try:
        rows = [wide(i) for i in range(200)]
        source.put_many(WIDE, [dict(row) for row in rows])
        timed = {**wide(1000), "owner": "o12", "data": {"timed": True}, TOKEN_FIELD: token("o12")}
        source.put_ttl(WIDE, [dict(timed)], 600)
        span = KeyRange("o10", "o20")
        first = next(iter(source.scan_stored(WIDE, keys=span, batch_size=20)))
        assert target.put_stored(WIDE, first) == 20  # stopped here (the generator is dropped mid-COPY)
        assert target.count(WIDE) == 20
        wanted = {(row["owner"], row["at"]): row for row in [*rows, timed] if "o10" <= row["owner"] < "o20"}
        victim = next(row for row in rows if row["owner"] == "o11")
        other = next(row for row in rows if row["owner"] == "o13")
        target.put(WIDE, {**victim, "note": "damaged", "count": -1})
        target.delete(WIDE, (other["owner"], other["at"]))
        target.put(WIDE, dict(timed))  # without its TTL
        assert _copy_stored(source, target, span, 7) == len(wanted)
        _assert_copied(target, wanted)
        now = time.time()
        assert source.range_checksum(WIDE, keys=span, now=now) == target.range_checksum(WIDE, keys=span, now=now)
    finally:
        source.close()
        target.close()
        layout.cleanup()


@pytest.mark.postgres
def test_the_postgres_stored_copy_needs_the_same_column_types(tmp_path: Path) -> None:
    """The layout comes from the server's catalog: a table whose column has another type
    than the adapter declares (an older schema, a manual ALTER) is not copied as stored."""
    layout = Postgres(tmp_path)
    layout.connect()
    source, target = _pair(layout, ITEM)
    try:
        found = source.stored_layout(ITEM)
        assert found is not None
        assert found.startswith("postgresql")
        assert found == target.stored_layout(ITEM)
        schema = target.schema
        engine = target.engine
        with engine.begin() as connection:
            connection.exec_driver_sql(
                f'ALTER TABLE "{schema}"."{target._table_name(ITEM)}" ALTER COLUMN version TYPE numeric'
            )
        assert target.stored_layout(ITEM) not in (None, found)
    finally:
        source.close()
        target.close()
        layout.cleanup()


def _rebalance_with_damage(layout: Backend, tmp_path: Path, damage: bool) -> tuple[Any, list[str]]:
    """A range store grows from 2 to 3 shards (keys 300..800 move to s2); with ``damage``,
    between the copy and the verify one copied row is corrupted, one deleted and one added
    on s2, as a bug or an operator could. Returns the summary and the comparison."""
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    before = 'ranges = [{shard = "s0", upto = 500}, {shard = "s1"}]'
    after = 'ranges = [{shard = "s0", upto = 300}, {shard = "s2", upto = 800}, {shard = "s1"}]'
    rows = [item(i) for i in range(0, 1000, 2)]  # even keys: an odd one is an extra row
    options = layout.options()
    with Toolkit(load(tmp_path, config_text(layout.shards(2), router="range", router_options=before,
                                            catalog=catalog, options=options))) as toolkit:  # fmt: skip
        toolkit.repository(Item).put_many(rows)
        target = load(
            tmp_path,
            config_text(layout.shards(3), router="range", router_options=after, catalog=catalog, options=options),
        )
        (plan,) = plan_rebalance(toolkit, target)

        def corrupt(event: ProgressEvent) -> None:
            if not (damage and event.kind == "phase" and event.phase == "verify"):
                return
            s2 = RelationalAdapter(target.stores["items"].shard_urls["s2"], store="items", shard="s2", options=options)
            try:
                s2.ensure(ITEM, with_token=True)
                s2.put(ITEM, {**item(400), "name": "corrupted", TOKEN_FIELD: token(400)})
                s2.delete(ITEM, 600)
                s2.put(ITEM, {**item(701), TOKEN_FIELD: token(701)})
            finally:
                s2.close()

        rebalancer = Rebalancer(toolkit, options=RebalanceOptions(batch_size=64, settle=0.02), progress=corrupt)
        summary = rebalancer.run(rebalancer.start(plan))
        return summary, compare(toolkit, reference_of(rows))


def test_verify_repairs_a_damaged_copy_found_by_the_server_checksums(tmp_path: Path, layout: Backend) -> None:
    summary, problems = _rebalance_with_damage(layout, tmp_path, damage=True)
    assert summary.state == "done"
    assert problems == []
    assert summary.repaired == 3  # the corrupted, the missing and the extra row
    damaged = [move for move in summary.moves if move.target == "s2" and move.repaired]
    assert damaged
    assert all("/" not in move.checksum for move in damaged)  # compared row by row


def test_a_clean_copy_is_verified_by_server_checksums_alone(tmp_path: Path, layout: Backend) -> None:
    summary, problems = _rebalance_with_damage(layout, tmp_path, damage=False)
    assert summary.state == "done"
    assert problems == []
    assert summary.repaired == 0
    dialect = "sqlite" if layout.name == "sqlite" else "postgresql"
    assert summary.moves
    assert all(move.checksum.endswith(f"/{dialect}") for move in summary.moves)
    assert summary.copied == summary.deleted == 250
