"""The relational adapter: error translation (no server), and what the capability
contract tests cannot see from outside, on SQLite and on the stack's PostgreSQL (marker
``postgres``): JSON filters against the reference semantics, the hidden expiry column,
index use of partition reads, edges cleaned up with their nodes."""

from __future__ import annotations

import copy
import importlib
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import exc as sx

import adapters.relational
from adapters.base import TOKEN_FIELD, Filter, Order, Query, Relationship, Row
from adapters.relational import ERRORS, EXPIRES_FIELD, RelationalAdapter
from adapters.relational._markers import MarkerTable
from sharding.keys import token
from tests.servers import postgres_urls
from toolkit import Entity, errors
from toolkit.config import sqlite_url
from toolkit.model import EntitySchema, schema_of

# -- error translation (no server) --------------------------------------------------------

_CASES: list[tuple[Exception, type[errors.StoreError], bool]] = [
    (sx.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")), errors.DuplicateKeyError, False),
    (sx.TimeoutError("QueuePool limit reached"), errors.StoreTimeout, True),
    (sx.OperationalError("SELECT", {}, Exception("database is locked")), errors.StoreTimeout, True),
    (sx.OperationalError("SELECT", {}, Exception("could not connect to server")), errors.StoreUnavailable, True),
    (sx.OperationalError("SELECT", {}, Exception("near 'x': syntax error")), errors.StoreError, False),
    (sx.InterfaceError("SELECT", {}, Exception("connection already closed")), errors.StoreUnavailable, True),
    (sx.NoSuchTableError("items"), errors.StoreError, False),
    (sx.DBAPIError("SELECT", {}, Exception("server closed"), connection_invalidated=True), errors.StoreError, True),
    (sx.DBAPIError("SELECT", {}, Exception("division by zero")), errors.StoreError, False),
    (sx.SQLAlchemyError("something else"), errors.StoreError, False),
]


def test_every_caught_exception_class_has_a_case() -> None:
    assert {type(error) for error, _, _ in _CASES} == set(ERRORS.caught)


@pytest.mark.parametrize(("error", "expected", "retryable"), _CASES, ids=lambda value: repr(value)[:40])
def test_every_caught_exception_is_translated(
    error: Exception, expected: type[errors.StoreError], retryable: bool
) -> None:
    with pytest.raises(errors.StoreError) as raised, ERRORS.translating("items", "s0", key="k"):
        raise error
    assert type(raised.value) is expected
    assert raised.value.retryable is retryable
    assert (raised.value.store, raised.value.shard, raised.value.key) == ("items", "s0", "k")
    assert raised.value.__cause__ is error


# -- entities and the adapter on each dialect -----------------------------------------------


class Doc(Entity, store="items", key="id"):
    id: str
    n: int | None = None
    x: float | None = None
    doc: dict[str, Any] | None = None
    tags: list[Any] = []


class Visit(Entity, store="items", key=("day", "seq", "customer"), shard_key="customer"):
    customer: str
    day: int
    seq: int
    note: str = ""


class Node(Entity, store="items", key="id"):
    id: int
    name: str


DOC, VISIT, NODE = schema_of(Doc), schema_of(Visit), schema_of(Node)


def _row(schema: EntitySchema, **values: Any) -> Row:
    row: Row = {spec.name: values.get(spec.name) for spec in schema.fields}
    if "tags" in row and row["tags"] is None:
        row["tags"] = []
    row[TOKEN_FIELD] = token(schema.shard_key_of(row))
    return row


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def adapter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RelationalAdapter]:
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "shard.db")
    else:
        url = f"{postgres_urls()[1][0]}?schema={prefix}s0"
    built = RelationalAdapter(url, store="items", shard="s0", options={"namespace": prefix, "pool_size": 2})
    try:
        for schema in (DOC, VISIT, NODE):
            built.ensure(schema, with_token=True)
        yield built
    finally:
        if built.dialect == "postgresql":
            with built.engine.begin() as connection:
                connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{built.schema}" CASCADE')
        built.close()


# -- nested filters against the reference semantics ---------------------------------------

ODD = {'q"t': 1, "$": "dollar", "": 0, "ключ": "v", "x[y": 3, "a b": {"c": 1}, "back\\slash": 2}
DOCS: dict[str, dict[str, Any]] = {
    "a": {
        "doc": {
            "k": 1,
            "s": "x",
            "b": True,
            "nested": {"v": 2.5, "w": [1, 2]},
            "arr": [1, "x", {"p": 1}, [1, 2], None, True],
            "n": None,
            **ODD,
        },
        "tags": ["red", "blue"],
    },
    "b": {"doc": {"k": 1.0, "s": "y", "b": False, "nested": {"v": 3, "w": []}, "arr": [], "ключ": "w", "$": 5}},
    "c": {"doc": {"k": "1", "s": 2, "nested": [1], "arr": {"0": 1}, "b": 1}, "tags": ["red"]},
    "d": {"doc": None, "tags": ["x", "y"]},
    "e": {"doc": {"k": None, "nested": {"v": None, "w": [1, 2.0]}, "s": "é", "b": 0}, "tags": [1, True]},
    "f": {"doc": {}},
    "g": {"doc": {"k": True, "s": "", "nested": {"v": "2.5"}, "arr": [[1, 2], {"p": 1, "q": 2}], "n": {"a": 1}}},
    "h": {"doc": {"k": -2, "s": "xy", "nested": {"v": 2.5, "w": [2, 1]}, "arr": [{"p": 1.0}], "": None}},
}
PATHS = [
    "doc",
    "doc.k",
    "doc.s",
    "doc.b",
    "doc.n",
    "doc.nested",
    "doc.nested.v",
    "doc.nested.w",
    "doc.arr",
    "doc.arr.0",
    "doc.missing.deeper",
    "tags",
    *(f"doc.{key}" for key in ODD),
    "doc.a b.c",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([1.0, 2.5, 0.5, -2.0]),
    st.sampled_from(["x", "y", "1", "", "é", "red", "dollar", "2.5", "v", "xy"]),
)
CONTAINERS = st.sampled_from(
    [[1, 2], [1, 2.0], [], [1], [True, 2], {"v": 2.5, "w": [1, 2]}, {"p": 1}, {}, {"a": 1}, {"a": True}, [[1, 2]]]
)
VALUES = st.one_of(SCALARS, CONTAINERS)


def _reference(item: Filter, row: Row) -> bool:
    try:
        return item.matches(row)
    except TypeError:  # Python cannot order these two types: nothing matches
        return False


@st.composite
def _filters(draw: Callable[..., Any]) -> Filter:
    path = draw(st.sampled_from(PATHS))
    op = draw(st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge", "in", "contains"]))
    if op in ("lt", "le", "gt", "ge"):
        return Filter(path, op, draw(SCALARS))
    if op == "in":
        return Filter(path, op, draw(st.lists(VALUES, max_size=3)))
    return Filter(path, op, draw(VALUES))


def _load_docs(adapter: RelationalAdapter) -> list[Row]:
    rows = [_row(DOC, id=key, **copy.deepcopy(values)) for key, values in DOCS.items()]
    adapter.put_many(DOC, rows)
    return rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_nested_filters_match_the_reference_semantics(adapter: RelationalAdapter, data: st.DataObject) -> None:
    if adapter.count(DOC) == 0:
        _load_docs(adapter)
    rows = [_row(DOC, id=key, **copy.deepcopy(values)) for key, values in DOCS.items()]
    filters = data.draw(st.lists(_filters(), min_size=1, max_size=2))
    expected = sorted(row["id"] for row in rows if all(_reference(item, row) for item in filters))
    found = [row["id"] for row in adapter.find(DOC, Query(tuple(filters)))]
    assert found == expected, filters
    assert adapter.count(DOC, filters) == len(expected)


def test_nested_paths_refuse_what_has_no_meaning(adapter: RelationalAdapter) -> None:
    _load_docs(adapter)
    with pytest.raises(errors.QueryError, match="not a nested field"):
        adapter.find(DOC, Query((Filter("n.x", "eq", 1),)))
    with pytest.raises(errors.QueryError, match="contains"):
        adapter.find(DOC, Query((Filter("n", "contains", 1),)))
    with pytest.raises(errors.QueryError, match="number or a string"):
        adapter.find(DOC, Query((Filter("doc.k", "lt", [1]),)))
    with pytest.raises(errors.QueryError, match="unknown field"):
        adapter.find(DOC, Query((Filter(EXPIRES_FIELD, "eq", None),)))
    with pytest.raises(errors.QueryError, match="nested path"):
        adapter.find(DOC, Query(order_by=(Order("doc.k"),)))


# -- partial updates ------------------------------------------------------------------------


def test_updates_of_odd_keys_and_non_object_intermediates(adapter: RelationalAdapter) -> None:
    adapter.put(DOC, _row(DOC, id="u", n=1, doc={"k": 5, "keep": [1], **ODD}))
    token_before = adapter.get(DOC, "u")[TOKEN_FIELD]  # type: ignore[index]
    changes = {f"doc.{key}": f"new {key}" for key in ODD} | {"doc.k.deeper.still": {"x": None}, "doc.new.one": 1}
    assert adapter.update(DOC, "u", changes)
    row = adapter.get(DOC, "u")
    assert row is not None
    assert row["doc"] == {
        "k": {"deeper": {"still": {"x": None}}},
        "keep": [1],
        **{key: f"new {key}" for key in ODD},
        "new": {"one": 1},
    }
    assert row[TOKEN_FIELD] == token_before
    assert row["n"] == 1
    # Applied in order: a whole value first, then a path inside it.
    assert adapter.update(DOC, "u", {"doc": {"z": 1}, "doc.y": [2], "x": 1.5, "tags": ["t"]})
    assert adapter.get(DOC, "u") == {**row, "doc": {"z": 1, "y": [2]}, "x": 1.5, "tags": ["t"]}
    assert adapter.update(DOC, "u", {"doc": None, "doc.a.b": True})
    assert adapter.get(DOC, "u")["doc"] == {"a": {"b": True}}  # type: ignore[index]
    assert not adapter.update(DOC, "missing", {"n": 2})
    assert adapter.get(DOC, "missing") is None
    with pytest.raises(errors.QueryError, match="key"):
        adapter.update(DOC, "u", {"id": "v"})
    with pytest.raises(errors.QueryError, match="not a nested field"):
        adapter.update(DOC, "u", {"n.x": 1})


def test_increments_keep_the_column_type(adapter: RelationalAdapter) -> None:
    adapter.put(DOC, _row(DOC, id="i"))
    assert adapter.increment(DOC, "i", "n", 2) == 2
    assert adapter.increment(DOC, "i", "n", -5) == -3
    value = adapter.increment(DOC, "i", "x", 1)
    assert value == 1.0
    assert isinstance(value, float)
    with pytest.raises(errors.NotFoundError):
        adapter.increment(DOC, "nope", "n", 1)
    with pytest.raises(errors.QueryError, match="int or float"):
        adapter.increment(DOC, "i", "doc", 1)


# -- apply-once increments: the marker commits with the counter ----------------------------


def test_increment_once_applies_each_marker_once(adapter: RelationalAdapter) -> None:
    adapter.put(DOC, _row(DOC, id="c", n=10, x=0.5))
    steps = [  # (marker, undo, the counter after the call)
        ("saga-1:0", False, 15),
        ("saga-1:0", False, 15),  # a replay: no effect
        ("saga-2:0", False, 20),
        ("saga-1:0", True, 15),
        ("saga-1:0", True, 15),  # undone once
        ("saga-1:0", False, 15),  # a zombie retry after the undo
    ]
    assert [adapter.increment_once(DOC, "c", "n", 5, marker=m, undo=undo) for m, undo, _ in steps] == [
        after for _, _, after in steps
    ]
    value = adapter.increment_once(DOC, "c", "x", 0.25, marker="saga-3:0")
    assert value == 0.75
    assert isinstance(value, float)
    row = adapter.get(DOC, "c")
    assert row is not None
    assert (row["n"], row["x"]) == (15, 0.75)


def test_an_undo_that_comes_first_leaves_a_tombstone(adapter: RelationalAdapter) -> None:
    adapter.put(DOC, _row(DOC, id="t", n=3))
    assert adapter.increment_once(DOC, "t", "n", 4, marker="m", undo=True) == 3
    assert adapter.increment_once(DOC, "t", "n", 4, marker="m") == 3  # the late action does nothing
    assert adapter.increment_once(DOC, "t", "x", 1.5, marker="null field", undo=True) is None
    assert adapter.increment_once(DOC, "t", "n", 1, marker="gone") == 4
    assert adapter.delete(DOC, "t")
    assert adapter.increment_once(DOC, "t", "n", 1, marker="gone", undo=True) is None  # nothing left to reverse


def test_increment_once_needs_the_row_and_a_numeric_field(adapter: RelationalAdapter) -> None:
    with pytest.raises(errors.NotFoundError):
        adapter.increment_once(DOC, "absent", "n", 1, marker="m")
    adapter.put(DOC, _row(DOC, id="absent", n=1))
    assert adapter.increment_once(DOC, "absent", "n", 1, marker="m") == 2  # the miss rolled its marker back
    with pytest.raises(errors.QueryError, match="int"):
        adapter.increment_once(DOC, "absent", "n", 1.5, marker="other")
    with pytest.raises(errors.QueryError, match="key"):
        adapter.increment_once(DOC, "absent", "id", 1, marker="other")
    with pytest.raises(errors.QueryError, match="int or float"):
        adapter.increment_once(DOC, "absent", "doc", 1, marker="other")
    assert adapter.increment_once(DOC, "absent", "n", 1, marker="other") == 3  # refused calls left no marker


def test_concurrent_attempts_of_one_marker_apply_once(adapter: RelationalAdapter) -> None:
    adapter.put(DOC, _row(DOC, id="r", n=10))
    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(lambda _: adapter.increment_once(DOC, "r", "n", 1, marker="race"), range(8)))
    assert values == [11] * 8
    assert adapter.get(DOC, "r")["n"] == 11  # type: ignore[index]


def test_the_marker_table_is_the_shards_and_made_once(adapter: RelationalAdapter) -> None:
    adapter.put(DOC, _row(DOC, id="s", n=0))
    adapter.increment_once(DOC, "s", "n", 1, marker="saga-9:1")
    name = f"{adapter.options.namespace}ps_saga_marker"
    assert sa.inspect(adapter.engine).has_table(name, schema=adapter.schema)
    created: list[str] = []
    sa.event.listen(adapter.engine, "before_cursor_execute", lambda *args: created.append(args[2]))
    adapter.increment_once(DOC, "s", "n", 1, marker="saga-9:2")
    assert any("INSERT" in statement for statement in created)  # the listener sees the marker's write
    catalog_reads = ("CREATE", "sqlite_master", "pg_catalog")  # a table check or creation
    assert not [statement for statement in created if any(word in statement for word in catalog_reads)]
    other = RelationalAdapter(adapter.url, store="items", shard="s0", options=adapter.options)
    try:  # another adapter (or process) of the shard finds the table and the markers in it
        other.ensure(DOC, with_token=True)
        assert other.increment_once(DOC, "s", "n", 1, marker="saga-9:1") == 2
    finally:
        other.close()


def test_creating_the_marker_table_tolerates_a_concurrent_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process may create the table between our check and our CREATE: its
    "already exists" is success. Any other failure is still raised (negative control)."""
    engine = sa.create_engine(sqlite_url(tmp_path / "markers.db"))
    try:
        ours = MarkerTable("ps_saga_marker", None)
        real_create = ours.table.create

        def racing_create(bind: Any, checkfirst: bool = False) -> None:
            MarkerTable("ps_saga_marker", None).table.create(bind)  # the other process wins
            real_create(bind, checkfirst=False)  # "table ps_saga_marker already exists"

        monkeypatch.setattr(ours.table, "create", racing_create)
        ours.create(engine)
        assert sa.inspect(engine).has_table("ps_saga_marker")
        broken = MarkerTable("ps_other_marker", None)

        def failing_create(bind: Any, checkfirst: bool = False) -> None:
            raise sx.OperationalError("CREATE TABLE", {}, Exception("disk I/O error"))

        monkeypatch.setattr(broken.table, "create", failing_create)
        with pytest.raises(sx.OperationalError):
            broken.create(engine)
    finally:
        engine.dispose()


# -- TTL: the hidden column, on a fake clock ------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now


def _set_clock(monkeypatch: pytest.MonkeyPatch, clock: _Clock) -> None:
    """``clock`` as the ``time`` of every module of the adapter that reads the time."""
    package = Path(adapters.relational.__file__).parent
    for path in sorted(package.glob("_*.py")):
        module = importlib.import_module(f"adapters.relational.{path.stem}")
        if getattr(module, "time", None) is time:
            monkeypatch.setattr(module, "time", clock)


def _stored(adapter: RelationalAdapter, schema: EntitySchema) -> int:
    table = adapter._tableset(schema).table
    with adapter.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_expiry_is_hidden_everywhere_and_purged(adapter: RelationalAdapter, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    _set_clock(monkeypatch, clock)
    assert adapter.put_ttl(DOC, [_row(DOC, id="t", n=1), _row(DOC, id="t", n=2), _row(DOC, id="s", n=3)], 10) == 2
    adapter.put(DOC, _row(DOC, id="p", n=4))
    row = adapter.get(DOC, "t")
    assert row is not None
    assert row["n"] == 2
    assert EXPIRES_FIELD not in row
    assert adapter.ttl(DOC, "t") == pytest.approx(10)
    assert adapter.ttl(DOC, "p") is None
    assert adapter.ttl(DOC, "nope") is None
    adapter.put(DOC, _row(DOC, id="s", n=5))  # a plain put clears the expiry
    clock.now += 10
    assert adapter.get(DOC, "t") is None
    assert adapter.ttl(DOC, "t") is None
    assert sorted(row["id"] for row in adapter.get_many(DOC, ["t", "s", "p"])) == ["p", "s"]
    assert [row["id"] for row in adapter.find(DOC, Query())] == ["p", "s"]
    assert adapter.count(DOC) == 2
    assert [row["id"] for batch in adapter.scan(DOC) for row in batch] == ["p", "s"]
    assert not adapter.delete(DOC, "t")
    assert adapter.delete_many(DOC, ["t"]) == 0
    assert not adapter.update(DOC, "t", {"n": 9})
    with pytest.raises(errors.NotFoundError):
        adapter.increment(DOC, "t", "n", 1)
    assert _stored(adapter, DOC) == 3  # invisible, not yet purged
    assert adapter.purge_expired(DOC) == 1
    assert _stored(adapter, DOC) == 2
    adapter.put_ttl(DOC, [_row(DOC, id="u")], 1)
    clock.now += 2
    adapter.put_ttl(DOC, [_row(DOC, id="v")], 1)  # purges "u" on the way
    assert _stored(adapter, DOC) == 3
    adapter.put_ttl(DOC, [_row(DOC, id="v")], 5)  # an expired key can be written again
    assert adapter.get(DOC, "v") is not None


def test_tables_from_before_ttl_get_the_column(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "old.db")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE node (id BIGINT PRIMARY KEY, name TEXT NOT NULL, _ps_token BIGINT)")
        connection.exec_driver_sql("INSERT INTO node VALUES (1, 'old', 5)")
    engine.dispose()
    adapter = RelationalAdapter(url, store="items", shard="s0")
    try:
        adapter.ensure(NODE, with_token=True)
        assert adapter.get(NODE, 1) == {"id": 1, "name": "old", TOKEN_FIELD: 5}
        adapter.put_ttl(NODE, [_row(NODE, id=2, name="new")], 60)
        assert adapter.ttl(NODE, 2) == pytest.approx(60, abs=5)
    finally:
        adapter.close()


# -- partition reads use an index -----------------------------------------------------------


def test_partition_reads_are_index_range_scans(adapter: RelationalAdapter) -> None:
    rows = [_row(VISIT, customer=c, day=d, seq=s, note=f"{c}{d}{s}") for c in "ab" for d in range(5) for s in (1, 0)]
    adapter.put_many(VISIT, rows)
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        captured.append((statement, parameters))

    sa.event.listen(adapter.engine, "before_cursor_execute", capture)
    try:
        found = adapter.partition(VISIT, "a", start=1, end=4, descending=True, limit=4)
    finally:
        sa.event.remove(adapter.engine, "before_cursor_execute", capture)
    assert [(row["day"], row["seq"]) for row in found] == [(3, 1), (3, 0), (2, 1), (2, 0)]
    statement, parameters = captured[-1]
    with adapter.engine.connect() as connection:
        if adapter.dialect == "sqlite":
            plan = " ".join(
                str(row) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            )
            assert "USING INDEX ix_" in plan, plan
            assert "_ps_shard" in plan, plan
        else:
            connection.exec_driver_sql("SET enable_seqscan = off")
            plan = " ".join(str(row) for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters))
            assert "_ps_shard" in plan, plan


# -- graph: edges follow their nodes ----------------------------------------------------------


def _edges(adapter: RelationalAdapter) -> int:
    assert adapter._edges is not None
    with adapter.engine.connect() as connection:
        table = adapter._edges.table
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_deleting_nodes_deletes_their_edges(adapter: RelationalAdapter) -> None:
    adapter.put_many(NODE, [_row(NODE, id=i, name=f"n{i}") for i in range(1, 6)])
    for source, target in ((1, 2), (2, 3), (3, 1), (3, 4), (4, 5), (5, 5)):
        adapter.relate(NODE, Relationship("NEXT", source, target, {"w": source}), NODE)
    assert [(d, row["id"]) for d, row in adapter.traverse(NODE, 1, depth=9)] == [(1, 2), (2, 3), (3, 4), (4, 5)]
    assert [(d, row["id"]) for d, row in adapter.traverse(NODE, 1, direction="both", depth=2)] == [
        (1, 2),
        (1, 3),
        (2, 4),
    ]
    path = adapter.shortest_path(NODE, 1, 5)
    assert path is not None
    assert [row["id"] for row in path] == [1, 2, 3, 4, 5]
    assert adapter.shortest_path(NODE, 1, 5, max_depth=3) is None
    path = adapter.shortest_path(NODE, 5, 1, direction="in")
    assert path is not None
    assert [row["id"] for row in path] == [5, 4, 3, 2, 1]
    assert adapter.delete(NODE, 3)
    assert _edges(adapter) == 3
    assert [row["id"] for row in (n.row for n in adapter.neighbors(NODE, 2, direction="both"))] == [1]
    assert adapter.delete_many(NODE, [4, 5]) == 2
    assert _edges(adapter) == 1
    with pytest.raises(errors.NotFoundError, match="target"):
        adapter.relate(NODE, Relationship("NEXT", 1, 3), NODE)
    adapter.drop(NODE)
    assert _edges(adapter) == 0


def test_a_second_adapter_sees_the_edge_table(adapter: RelationalAdapter) -> None:
    adapter.put_many(NODE, [_row(NODE, id=1, name="a"), _row(NODE, id=2, name="b")])
    adapter.relate(NODE, Relationship("KNOWS", 1, 2), NODE)
    other = RelationalAdapter(adapter.url, store="items", shard="s0", options=adapter.options)
    try:
        other.ensure(NODE, with_token=True)
        assert other.delete(NODE, 2)
    finally:
        other.close()
    assert _edges(adapter) == 0


def test_purging_expired_nodes_deletes_their_edges(adapter: RelationalAdapter, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    _set_clock(monkeypatch, clock)
    adapter.put_many(NODE, [_row(NODE, id=1, name="a"), _row(NODE, id=2, name="b")])
    adapter.put_ttl(NODE, [_row(NODE, id=3, name="c")], 5)
    adapter.relate(NODE, Relationship("KNOWS", 1, 3), NODE)
    adapter.relate(NODE, Relationship("KNOWS", 3, 2), NODE)
    adapter.relate(NODE, Relationship("KNOWS", 1, 2), NODE)
    clock.now += 5
    assert [n.row["id"] for n in adapter.neighbors(NODE, 1)] == [2]  # the expired node is not a neighbour
    assert adapter.purge_expired(NODE) == 1
    assert _edges(adapter) == 1


def test_rows_missing_a_field_are_query_errors(adapter: RelationalAdapter) -> None:
    for call in (lambda: adapter.put(NODE, {"id": 1}), lambda: adapter.put_many(NODE, [{"id": 1}])):
        with pytest.raises(errors.QueryError, match="lacks field 'name'"):
            call()
    with pytest.raises(errors.QueryError, match="lacks field 'name'"):
        adapter.put_ttl(NODE, [{"id": 1}], 5)


def test_ensure_against_an_unreachable_server_can_be_retried() -> None:
    """A failed ensure must not leave its table in the metadata: the retry would find it
    "already defined" (an SQLAlchemy error) instead of reporting the server as down."""
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://nobody:x@127.0.0.1:{port}/none"
    adapter = RelationalAdapter(url, store="items", shard="s0", options={"connect_timeout": 1})
    try:
        for _ in range(2):
            with pytest.raises(errors.StoreUnavailable, match="items/s0"):
                adapter.ensure(schema_of(Doc), with_token=True)
    finally:
        adapter.close()


def test_single_statements_leave_pooled_connections_transactional(adapter: RelationalAdapter) -> None:
    """On PostgreSQL a lone get/put runs in autocommit (one round trip); the pooled
    connection must come back in transactional mode, also after a failed statement, or
    a later ``engine.begin()`` on it would commit statement by statement."""
    for index in range(6):  # pool_size=2: every pooled connection serves several of them
        adapter.put(NODE, _row(NODE, id=index, name=f"n{index}"))
        found = adapter.get(NODE, index)
        assert found is not None
        assert found["name"] == f"n{index}"
    with pytest.raises(errors.StoreError):
        adapter.put(NODE, _row(NODE, id=99, name=None))  # NOT NULL violation, raised by the server
    with adapter.engine.connect() as first, adapter.engine.connect() as second:
        for connection in (first, second):
            if adapter.dialect == "postgresql":
                assert connection.connection.dbapi_connection.autocommit is False  # type: ignore[union-attr]
            with connection.begin() as transaction:
                connection.execute(adapter._tableset(NODE).table.delete())
                transaction.rollback()
    assert sorted(row["id"] for row in adapter.find(NODE, Query())) == list(range(6))
    assert adapter.get(NODE, 99) is None
