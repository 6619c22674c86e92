"""The graph adapter: error translation, URLs and encodings (no server), and its
Neo4j-specific behaviour on the stack's Neo4j servers (marker ``neo4j``)."""

from __future__ import annotations

import datetime as dt
import decimal
import inspect
import uuid
from collections.abc import Iterator
from typing import Any

import neo4j
import neo4j.exceptions as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import TOKEN_FIELD, Capability, Filter, Order, Query, Relationship
from adapters.graph import ERRORS, GraphAdapter, GraphOptions, translating
from adapters.graph._connection import parse_url
from adapters.graph._cypher import lex
from adapters.graph._label import Label
from adapters.graph._queries import scan_query
from adapters.graph._values import decode, encode
from sharding.base import KeyRange, TokenRange
from sharding.keys import token
from tests.backends.neo4j import neo4j_urls, require_neo4j, sweep
from toolkit import Entity, errors
from toolkit.model import EntitySchema, schema_of

# -- error translation (no server) --------------------------------------------------------

EXPECTED: dict[type[BaseException], tuple[type[errors.StoreError], bool]] = {
    nx.ConstraintError: (errors.DuplicateKeyError, False),
    nx.AuthError: (errors.StoreError, False),
    nx.Forbidden: (errors.StoreError, False),
    nx.CypherSyntaxError: (errors.StoreError, False),
    nx.CypherTypeError: (errors.StoreError, False),
    nx.ClientError: (errors.StoreError, False),
    nx.DatabaseUnavailable: (errors.StoreUnavailable, True),
    nx.NotALeader: (errors.StoreUnavailable, True),
    nx.ForbiddenOnReadOnlyDatabase: (errors.StoreUnavailable, True),
    nx.TransientError: (errors.StoreError, True),
    nx.DatabaseError: (errors.StoreError, False),
    nx.Neo4jError: (errors.StoreError, False),
    nx.IncompleteCommit: (errors.StoreError, False),
    nx.SessionExpired: (errors.StoreUnavailable, True),
    nx.ServiceUnavailable: (errors.StoreUnavailable, True),
    nx.ConfigurationError: (errors.StoreError, False),
    nx.ResultError: (errors.StoreError, False),
    nx.SessionError: (errors.StoreError, False),
    nx.TransactionError: (errors.StoreError, False),
    nx.BrokenRecordError: (errors.StoreError, False),
    nx.DriverError: (errors.StoreError, False),
    nx.UnsupportedServerProduct: (errors.StoreError, False),
    nx.GqlError: (errors.StoreError, False),
}


def _instance(cls: type[BaseException]) -> BaseException:
    """One instance of a driver exception class (some take their result/session/transaction first)."""
    if issubclass(cls, nx.ResultError | nx.SessionError | nx.TransactionError):
        return cls(None, "failed")
    return cls("failed")


def _translate(exc: BaseException, store: str, shard: str, key: Any) -> errors.StoreError:
    return ERRORS.translate(exc, store=store, shard=shard, key=key)


def test_the_error_map_is_the_expected_one() -> None:
    assert {cls for cls, _, _ in ERRORS.rules} == set(EXPECTED)


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda cls: cls.__name__)
def test_every_mapped_driver_exception_is_translated(cls: type[BaseException]) -> None:
    error = _translate(_instance(cls), "items", "s0", "k")
    expected, retryable = EXPECTED[cls]
    assert type(error) is expected
    assert error.retryable is retryable
    assert (error.store, error.shard, error.key) == ("items", "s0", "k")
    assert "failed" in str(error)


def _driver_exceptions() -> list[type[BaseException]]:
    return [
        cls
        for _, cls in inspect.getmembers(nx, inspect.isclass)
        if issubclass(cls, Exception) and cls.__module__.startswith("neo4j")
    ]


@pytest.mark.parametrize("cls", _driver_exceptions(), ids=lambda cls: cls.__name__)
def test_every_driver_exception_class_is_covered(cls: type[BaseException]) -> None:
    """Subclasses map through their nearest mapped ancestor; none falls through unmapped."""
    assert any(issubclass(cls, mapped) for mapped, _, _ in ERRORS.rules)
    instance = _instance(cls)
    with pytest.raises(errors.StoreError) as caught, translating("items", "s1", 7):
        raise instance
    assert caught.value.__cause__ is instance
    assert (caught.value.store, caught.value.shard, caught.value.key) == ("items", "s1", 7)


def _server_error(code: str) -> nx.Neo4jError:
    return nx.Neo4jError._hydrate_neo4j(code=code, message="from the server")


@pytest.mark.parametrize(
    ("code", "expected", "retryable"),
    [
        ("Neo.ClientError.Schema.ConstraintValidationFailed", errors.DuplicateKeyError, False),
        ("Neo.TransientError.Transaction.LockAcquisitionTimeout", errors.StoreTimeout, True),
        ("Neo.ClientError.Transaction.TransactionTimedOutClientConfiguration", errors.StoreTimeout, True),
        ("Neo.TransientError.Transaction.DeadlockDetected", errors.StoreError, True),
        ("Neo.TransientError.General.DatabaseUnavailable", errors.StoreUnavailable, True),
        ("Neo.ClientError.Statement.SyntaxError", errors.StoreError, False),
        ("Neo.ClientError.Security.Unauthorized", errors.StoreError, False),
        ("Neo.DatabaseError.General.UnknownError", errors.StoreError, False),
    ],
)
def test_server_errors_map_by_code(code: str, expected: type[errors.StoreError], retryable: bool) -> None:
    error = _translate(_server_error(code), "items", "s0", None)
    assert type(error) is expected
    assert error.retryable is retryable
    assert "from the server" in str(error)


def test_a_pool_acquisition_timeout_is_a_timeout() -> None:
    exc = nx.ClientError("failed to obtain a connection from the pool within 1.0s (timeout)")
    assert type(_translate(exc, "items", "s0", None)) is errors.StoreTimeout


# -- URLs, options and encodings (no server) ------------------------------------------------


def test_urls_carry_auth_prefix_and_database() -> None:
    assert parse_url("bolt://127.0.0.1:17687") == ("bolt://127.0.0.1:17687", None, "", None)
    assert parse_url("neo4j://neo:s%40cret@db.example:7687?prefix=s2_&database=graph&policy=eu") == (
        "neo4j://db.example:7687?policy=eu",
        ("neo", "s@cret"),
        "s2_",
        "graph",
    )
    with pytest.raises(errors.ConfigError, match="prefix"):
        parse_url("bolt://127.0.0.1:17687?prefix=x`y")


def test_a_bad_namespace_is_a_config_error() -> None:
    with pytest.raises(errors.ConfigError, match="namespace"):
        GraphAdapter("bolt://127.0.0.1:17687", store="items", shard="s0", options={"namespace": "a-b"})


def test_options_are_typed_with_the_old_defaults() -> None:
    assert GraphAdapter.Options is GraphOptions
    defaults = GraphOptions()
    assert (defaults.connect_timeout, defaults.acquire_timeout, defaults.retry_time) == (10, 30, 5)
    assert (defaults.pool_size, defaults.index_timeout, defaults.namespace) == (50, 300, "")
    with pytest.raises(errors.ConfigError, match="did you mean 'retry_time'"):
        GraphAdapter("bolt://127.0.0.1:17687", store="items", shard="s0", options={"retry_tim": 1})
    with pytest.raises(errors.ConfigError, match="pool_size"):
        GraphAdapter("bolt://127.0.0.1:17687", store="items", shard="s0", options={"pool_size": "eight"})


def test_capabilities() -> None:
    caps = GraphAdapter.capabilities
    assert Capability.GRAPH in caps
    assert Capability.ATOMIC_INCREMENT in caps
    assert Capability.PARTIAL_UPDATE in caps
    assert Capability.TTL not in caps
    assert Capability.NESTED_FILTERS not in caps


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("json", {"$where": "x", "a.b": [1, None, {"": "empty"}], "{k}": "ключ"}),
        ("json", ["$in", 1.5]),
        ("decimal", decimal.Decimal("-1234567890.000000001")),
        ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
        ("bytes", b"\x00\xff"),
        ("str", "MATCH (n) DETACH DELETE n"),
        ("int", -(2**63)),
        ("float", 2.5),
        ("bool", False),
        ("date", dt.date(1999, 12, 31)),
    ],
)
def test_values_encode_and_decode(kind: str, value: Any) -> None:
    assert decode(kind, encode(kind, value)) == value


def test_datetimes_are_stored_in_utc_and_big_ints_refused() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert encode("datetime", dt.datetime(2024, 1, 1, 12, tzinfo=plus_two)) == dt.datetime(
        2024, 1, 1, 10, tzinfo=dt.UTC
    )
    assert encode("datetime", dt.datetime(2024, 1, 1, 12)).tzinfo is dt.UTC  # naive is UTC
    with pytest.raises(errors.QueryError, match="64-bit"):
        encode("int", 2**63)


def test_lexicographic_bounds() -> None:
    assert lex(["n.a"], ["$p0"], ">") == "((n.a > $p0))"
    assert lex(["n.a", "n.b"], ["$p0", "$p1"], ">=") == (
        "((n.a > $p0) OR (n.a = $p0 AND n.b > $p1) OR (n.a = $p0 AND n.b = $p1))"
    )


# -- on the stack's Neo4j (marker neo4j) ----------------------------------------------------


class Node(Entity, store="items", key="id", table="a_node", indexes=["name"]):
    id: str
    name: str | None = None
    n: int | None = None
    score: float | None = None
    price: decimal.Decimal | None = None
    blob: bytes | None = None
    at: dt.datetime | None = None
    day: dt.date | None = None
    uid: uuid.UUID | None = None
    doc: dict[str, Any] | None = None


class Counter(Entity, store="items", key="id", table="a_counter"):
    id: int
    hits: int | None = None
    ratio: float = 0.0


class Priced(Entity, store="items", key="price", table="a_priced"):
    price: decimal.Decimal
    label: str = ""


class Pair(Entity, store="items", key=("left", "right"), table="a_pair"):
    left: str
    right: int
    note: str = ""


NODE = schema_of(Node)
COUNTER = schema_of(Counter)
PAIR = schema_of(Pair)
PRICED = schema_of(Priced)


def _row(schema: EntitySchema, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {spec.name: None for spec in schema.fields}
    row.update(values)
    row[TOKEN_FIELD] = token(schema.key_of(row))
    return row


@pytest.fixture
def urls() -> list[str]:
    found = neo4j_urls()
    require_neo4j(found)
    return found


@pytest.fixture
def namespace(urls: list[str]) -> Iterator[str]:
    prefix = f"a{uuid.uuid4().hex[:10]}_"
    yield prefix
    for url in dict.fromkeys(urls):
        sweep(url, prefix)


@pytest.fixture
def adapter(urls: list[str], namespace: str) -> Iterator[GraphAdapter]:
    built = GraphAdapter(f"{urls[0]}?prefix=s0_", store="items", shard="s0", options={"namespace": namespace})
    for schema in (NODE, COUNTER, PAIR, PRICED):
        built.ensure(schema, with_token=True)
    yield built
    built.close()


def _label(schema: EntitySchema, namespace: str) -> Label:
    """The label the ``adapter`` fixture gives ``schema`` (namespace, then its shard prefix)."""
    return Label.of(schema, f"{namespace}s0_")


FULL_SCANS = {"NodeByLabelScan", "NodeIndexScan", "AllNodesScan"}


def _operators(plan: Any) -> set[str]:
    """Every operator name in an EXPLAIN plan (``NodeIndexSeekByRange@neo4j`` -> the name)."""
    found = {str(plan["operatorType"]).split("@")[0]}
    for child in plan.get("children", []):
        found |= _operators(child)
    return found


def _explain(adapter: GraphAdapter, text: str, params: dict[str, Any]) -> set[str]:
    with adapter.driver.session(database=adapter.database) as session:
        plan = session.run("EXPLAIN " + text, params).consume().plan
    assert plan is not None
    return _operators(plan)


@pytest.mark.neo4j
def test_token_range_scans_seek_the_token_index(adapter: GraphAdapter, namespace: str) -> None:
    adapter.put_many(NODE, [_row(NODE, id=f"t{i:03d}") for i in range(300)])
    span = TokenRange(-(2**62), 2**62)
    label = _label(NODE, namespace)
    first, params = scan_query(label, span, None, None, 50)
    later, later_params = scan_query(label, span, None, [0, "t100"], 50)
    for operators in (_explain(adapter, first, params), _explain(adapter, later, later_params)):
        assert "NodeIndexSeekByRange" in operators
        assert not operators & FULL_SCANS
    found = [row for batch in adapter.scan(NODE, tokens=span, batch_size=7) for row in batch]
    assert sorted(row["id"] for row in found) == sorted(f"t{i:03d}" for i in range(300) if token(f"t{i:03d}") in span)
    tokens = [row[TOKEN_FIELD] for row in found]
    assert tokens == sorted(tokens)
    everything = TokenRange(-(2**63), 2**63)  # the end is one past the last token
    assert sum(len(batch) for batch in adapter.scan(NODE, tokens=everything, batch_size=64)) == 300


@pytest.mark.neo4j
def test_key_range_scans_seek_the_key_index(adapter: GraphAdapter, namespace: str) -> None:
    adapter.put_many(COUNTER, [_row(COUNTER, id=i, ratio=0.0) for i in range(100)])
    label = _label(COUNTER, namespace)
    text, params = scan_query(label, None, KeyRange(10, 20), None, 5)
    operators = _explain(adapter, text, params)
    assert any("IndexSeek" in operator for operator in operators), operators
    assert not operators & FULL_SCANS
    found = [row["id"] for batch in adapter.scan(COUNTER, keys=KeyRange(10, 20), batch_size=3) for row in batch]
    assert found == list(range(10, 20))
    assert [r["id"] for b in adapter.scan(COUNTER, keys=KeyRange(None, 3)) for r in b] == [0, 1, 2]
    assert len([r for b in adapter.scan(COUNTER, keys=KeyRange(97, None)) for r in b]) == 3


@pytest.mark.neo4j
def test_every_type_round_trips_and_is_stored_natively(adapter: GraphAdapter, namespace: str) -> None:
    row = _row(
        NODE,
        id="full",
        name="Ada",
        n=-(2**62),
        score=3.25,
        price=decimal.Decimal("19.990"),
        blob=b"\x00\xff",
        at=dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=dt.UTC),
        day=dt.date(1999, 12, 31),
        uid=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        doc={"$gt": "", "a.b": {"": [1, None]}},
    )
    adapter.put(NODE, row)
    assert adapter.get(NODE, "full") == row
    with adapter.driver.session() as session:
        stored = session.run(
            f"MATCH (n:`{_label(NODE, namespace).name}` {{id: 'full'}}) RETURN properties(n) AS p"
        ).single(strict=True)["p"]
    assert isinstance(stored["at"], neo4j.time.DateTime)
    assert stored["at"].nanosecond == 123456000
    assert isinstance(stored["day"], neo4j.time.Date)
    assert stored["price"] == "19.990"
    assert stored["uid"] == "12345678-1234-5678-1234-567812345678"
    assert isinstance(stored["doc"], str)
    assert "blob" in stored
    empty = _row(NODE, id="empty")
    adapter.put(NODE, empty)
    assert adapter.get(NODE, "empty") == empty  # absent properties come back as None


@pytest.mark.neo4j
def test_decimal_filters_and_order_are_numeric(adapter: GraphAdapter) -> None:
    prices = {"a": "10", "b": "9", "c": "1.5", "d": None, "e": "100.25"}
    adapter.put_many(
        NODE, [_row(NODE, id=k, price=None if v is None else decimal.Decimal(v)) for k, v in prices.items()]
    )
    query = Query((Filter("price", "gt", decimal.Decimal("2")),), (Order("price"),))
    assert [row["id"] for row in adapter.find(NODE, query)] == ["b", "a", "e"]
    ordered = adapter.find(NODE, Query(order_by=(Order("price", descending=True),), limit=4))
    assert [row["id"] for row in ordered] == ["e", "a", "b", "c"]
    assert adapter.count(NODE, [Filter("price", "ne", decimal.Decimal("10.0"))]) == 4  # 10.0 == 10; null kept
    assert adapter.count(NODE, [Filter("price", "in", [decimal.Decimal("9"), None])]) == 2


@pytest.mark.neo4j
def test_decimal_keys_are_one_key_whatever_their_scale(adapter: GraphAdapter) -> None:
    adapter.put(PRICED, _row(PRICED, price=decimal.Decimal("1.50"), label="first"))
    adapter.put(PRICED, _row(PRICED, price=decimal.Decimal("1.5"), label="second"))
    assert adapter.count(PRICED) == 1
    got = adapter.get(PRICED, decimal.Decimal("1.500"))
    assert got is not None
    assert (got["price"], got["label"]) == (decimal.Decimal("1.5"), "second")
    adapter.put_many(PRICED, [_row(PRICED, price=decimal.Decimal(v)) for v in ("10", "9", "100.25", "-3")])
    assert [r["price"] for r in adapter.find(PRICED, Query(order_by=(Order("price"),)))] == [
        decimal.Decimal(v) for v in ("-3", "1.5", "9", "10", "100.25")
    ]
    inside = [
        r["price"] for b in adapter.scan(PRICED, keys=KeyRange(decimal.Decimal(2), decimal.Decimal(50))) for r in b
    ]
    assert sorted(inside) == [decimal.Decimal(9), decimal.Decimal(10)]
    assert adapter.delete(PRICED, decimal.Decimal("10.00")) is True


@pytest.mark.neo4j
def test_decimal_keys_keep_every_digit_and_read_back_as_written(adapter: GraphAdapter) -> None:
    """Regression (issue 14): keys were stored as ``normalize()``'s text, which rounds to 28
    digits (two 34-digit keys were one node) and keeps ``-0`` apart from ``0``; a key read
    back normalised (``1.10`` as ``1.1``)."""
    long_a, long_b = decimal.Decimal("1" * 33 + "2"), decimal.Decimal("1" * 33 + "3")
    written = [long_a, long_b, decimal.Decimal("-0.00"), decimal.Decimal("1.10"), decimal.Decimal("2.5E+3")]
    adapter.put_many(PRICED, [_row(PRICED, price=price) for price in written])
    assert adapter.count(PRICED) == len(written)
    other_forms = [long_a, long_b, decimal.Decimal(0), decimal.Decimal("1.1"), decimal.Decimal(2500)]
    for price, other in zip(written, other_forms, strict=True):
        got = adapter.get(PRICED, other)
        assert got is not None
        assert got["price"].as_tuple() == price.as_tuple()
    scanned = [row["price"] for batch in adapter.scan(PRICED, batch_size=2) for row in batch]
    assert sorted(value.as_tuple() for value in scanned) == sorted(value.as_tuple() for value in written)


@pytest.mark.neo4j
def test_find_is_pushed_down_with_python_semantics(adapter: GraphAdapter) -> None:
    adapter.put_many(NODE, [_row(NODE, id="x", n=1), _row(NODE, id="y"), _row(NODE, id="z", n=3, name="b")])
    assert [r["id"] for r in adapter.find(NODE, Query((Filter("n", "ne", 1),)))] == ["y", "z"]
    assert [r["id"] for r in adapter.find(NODE, Query((Filter("n", "lt", 5),)))] == ["x", "z"]
    assert [r["id"] for r in adapter.find(NODE, Query(order_by=(Order("n"),)))] == ["y", "x", "z"]
    assert [r["id"] for r in adapter.find(NODE, Query(order_by=(Order("n", True),)))] == ["z", "x", "y"]
    with pytest.raises(errors.QueryError, match="nested"):
        adapter.find(NODE, Query((Filter("doc", "eq", {}),)))
    with pytest.raises(errors.QueryError, match="unknown field"):
        adapter.count(NODE, [Filter(TOKEN_FIELD, "eq", 1)])
    with pytest.raises(errors.QueryError, match="cannot be sent"):
        adapter.find(NODE, Query((Filter("name", "eq", object()),)))


@pytest.mark.neo4j
def test_namespaces_and_shard_prefixes_isolate(urls: list[str], namespace: str) -> None:
    first = GraphAdapter(f"{urls[0]}?prefix=s0_", store="items", shard="s0", options={"namespace": namespace})
    second = GraphAdapter(f"{urls[0]}?prefix=s2_", store="items", shard="s2", options={"namespace": namespace})
    try:
        for one in (first, second):
            one.ensure(NODE, with_token=True)
        first.put(NODE, _row(NODE, id="only-here"))
        assert second.get(NODE, "only-here") is None
        assert second.count(NODE) == 0
        assert first.describe().tables == {"a_node": 1}
        assert second.describe().reachable
        first.drop(NODE)
        assert first.describe().tables == {}
        with first.driver.session() as session:
            names = [r["name"] for r in session.run("SHOW INDEXES YIELD name RETURN name")]
        assert not [name for name in names if name.startswith(f"{namespace}s0_a_node")]
    finally:
        first.close()
        second.close()


@pytest.mark.neo4j
def test_shards_on_one_server_share_its_driver(urls: list[str], namespace: str) -> None:
    options = {"namespace": namespace}
    first = GraphAdapter(f"{urls[0]}?prefix=s0_", store="items", shard="s0", options=options)
    second = GraphAdapter(f"{urls[0]}?prefix=s2_", store="items", shard="s2", options=options)
    assert first.driver is second.driver
    first.close()
    first.close()  # safe twice, and the other shard keeps its driver
    second.ensure(NODE, with_token=True)
    second.put(NODE, _row(NODE, id="still"))
    assert second.get(NODE, "still") is not None
    second.close()
    third = GraphAdapter(f"{urls[0]}?prefix=s0_", store="items", shard="s0", options=options)
    assert third.driver is not first.driver  # the last close closed it; a new one is made
    third.close()


@pytest.mark.neo4j
def test_the_routing_scheme_works_too(urls: list[str], namespace: str) -> None:
    routed = urls[0].replace("bolt://", "neo4j://", 1)
    adapter = GraphAdapter(f"{routed}?prefix=s0_", store="items", shard="s0", options={"namespace": namespace})
    try:
        adapter.ping()
        adapter.ensure(NODE, with_token=True)
        adapter.put(NODE, _row(NODE, id="routed"))
        assert adapter.get(NODE, "routed") is not None
        assert adapter.describe().tables == {"a_node": 1}
    finally:
        adapter.close()


@pytest.mark.neo4j
def test_increment(adapter: GraphAdapter) -> None:
    adapter.put(COUNTER, _row(COUNTER, id=1, ratio=0.5))
    assert adapter.increment(COUNTER, 1, "hits", 3) == 3  # null counts as 0
    assert adapter.increment(COUNTER, 1, "hits", -1) == 2
    assert adapter.increment(COUNTER, 1, "ratio", 0.25) == 0.75
    with pytest.raises(errors.NotFoundError):
        adapter.increment(COUNTER, 2, "hits", 1)
    with pytest.raises(errors.QueryError):
        adapter.increment(NODE, "x", "name", 1)


@pytest.mark.neo4j
def test_partial_update(adapter: GraphAdapter) -> None:
    adapter.put(NODE, _row(NODE, id="u", name="old", n=1, doc={"keep": 1, "a": "not an object"}))
    assert adapter.update(NODE, "u", {"name": "new", "doc.a.b": "$set", "doc.c": [1]}) is True
    got = adapter.get(NODE, "u")
    assert got is not None
    assert (got["name"], got["n"]) == ("new", 1)
    assert got["doc"] == {"keep": 1, "a": {"b": "$set"}, "c": [1]}
    assert adapter.update(NODE, "u", {"name": None}) is True
    assert adapter.get(NODE, "u")["name"] is None  # type: ignore[index]
    assert adapter.update(NODE, "missing", {"name": "x"}) is False
    assert adapter.get(NODE, "missing") is None
    with pytest.raises(errors.QueryError, match="key"):
        adapter.update(NODE, "u", {"id": "other"})
    with pytest.raises(errors.QueryError, match="nested"):
        adapter.update(NODE, "u", {"name.x": 1})


@pytest.mark.neo4j
def test_relationship_properties_keep_their_types(adapter: GraphAdapter) -> None:
    adapter.put_many(NODE, [_row(NODE, id="a"), _row(NODE, id="b")])
    at = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
    properties = {"at": at, "day": dt.date(2024, 1, 2), "tags": ["x", "y"], "raw": b"\x01", "w": 0.5, "on": True}
    adapter.relate(NODE, Relationship("SEEN", "a", "b", {**properties, "gone": None}), NODE)
    [found] = adapter.neighbors(NODE, "a")
    assert found.relationship == Relationship("SEEN", "a", "b", properties)
    with pytest.raises(errors.QueryError, match="cannot be stored"):
        adapter.relate(NODE, Relationship("SEEN", "a", "b", {"doc": {"a": 1}}), NODE)
    with pytest.raises(errors.QueryError, match="one type"):
        adapter.relate(NODE, Relationship("SEEN", "a", "b", {"mixed": [1, "a"]}), NODE)
    assert adapter.neighbors(NODE, "a")[0].relationship.properties == properties  # unchanged
    with pytest.raises(errors.QueryError, match="relationship type"):
        adapter.neighbors(NODE, "a", type="SEEN]-() DETACH DELETE n //")


@pytest.mark.neo4j
def test_composite_keys_in_graphs_and_scans(adapter: GraphAdapter) -> None:
    adapter.put_many(PAIR, [_row(PAIR, left=left, right=right) for left in "ab" for right in range(3)])
    adapter.relate(PAIR, Relationship("NEXT", ("a", 0), ("b", 2)), PAIR)
    [found] = adapter.neighbors(PAIR, ("a", 0))
    assert found.relationship == Relationship("NEXT", ("a", 0), ("b", 2), {})
    assert [row["right"] for _, row in adapter.traverse(PAIR, ("a", 0))] == [2]
    path = adapter.shortest_path(PAIR, ("a", 0), ("b", 2))
    assert path is not None
    assert [(row["left"], row["right"]) for row in path] == [("a", 0), ("b", 2)]
    batches = list(adapter.scan(PAIR, batch_size=2))
    assert [(r["left"], r["right"]) for b in batches for r in b] == [(x, y) for x in "ab" for y in range(3)]


@pytest.mark.neo4j
def test_deleting_a_node_deletes_its_relationships(adapter: GraphAdapter) -> None:
    adapter.put_many(NODE, [_row(NODE, id="a"), _row(NODE, id="b")])
    adapter.relate(NODE, Relationship("KNOWS", "a", "b"), NODE)
    assert adapter.delete(NODE, "b") is True
    assert adapter.neighbors(NODE, "a") == []
    adapter.put(NODE, _row(NODE, id="b"))
    assert adapter.neighbors(NODE, "a") == []  # a new node, no old edges


def test_an_unreachable_server_is_unavailable() -> None:
    down = GraphAdapter(
        "bolt://127.0.0.1:9", store="items", shard="s0", options={"retry_time": 0, "connect_timeout": 1}
    )
    try:
        with pytest.raises(errors.StoreUnavailable) as caught:
            down.ping()
        assert caught.value.retryable
        info = down.describe()
        assert not info.reachable
        assert info.error
    finally:
        down.close()


FRAGMENTS = [
    "'}) MATCH (n) DETACH DELETE n //",
    "` RETURN 1 //",
    "$where",
    "{$gt: ''}",
    "'; DROP TABLE items; --",
    "APPLY BATCH; TRUNCATE items;",
    "{user}:{*}",
    "*",
    ":",
]

_text = st.text(st.characters(codec="utf-8"), max_size=30)
_nasty = st.one_of(_text, st.sampled_from(FRAGMENTS), st.builds("".join, st.lists(st.sampled_from(FRAGMENTS))))


@pytest.mark.neo4j
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=_nasty.filter(bool),
    value=_nasty,
    doc=st.dictionaries(_nasty, st.one_of(_nasty, st.none(), st.integers(-5, 5)), max_size=4),
)
def test_cypher_and_operator_looking_keys_and_values_are_literal(
    adapter: GraphAdapter, key: str, value: str, doc: dict[str, Any]
) -> None:
    row = _row(NODE, id=key, name=value, doc=doc)
    adapter.put(NODE, row)
    assert adapter.get(NODE, key) == row
    assert [r["id"] for r in adapter.find(NODE, Query((Filter("name", "eq", value), Filter("id", "eq", key))))] == [key]
    adapter.put(NODE, _row(NODE, id=key + "→", name=value))
    adapter.relate(NODE, Relationship("LINK", key, key + "→", {"v": value}), NODE)
    [found] = adapter.neighbors(NODE, key)
    assert found.relationship.properties == {"v": value}
    assert adapter.delete_many(NODE, [key, key + "→"]) == 2
    assert adapter.count(NODE) == 0
