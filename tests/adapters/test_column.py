"""The column adapter (Cassandra): error mapping and URL parsing (no server), then what
the contract suite does not reach: shared sessions, keyspaces, SAI-backed token and key
ranges, the find push-down against the reference semantics, and key encodings."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import typing
import uuid
from collections.abc import Iterator
from typing import Any

import cassandra
import cassandra.cluster
import cassandra.connection
import cassandra.protocol
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import TOKEN_FIELD, Filter, Order, Query, sort_key
from adapters.column import ERRORS, ColumnAdapter, ColumnOptions, parse_url, skey_prefix
from adapters.column._codecs import codecs_for
from adapters.column._options import ConsistencyName
from adapters.column._plan import plan
from sharding.base import KeyRange, TokenRange
from sharding.keys import token
from tests.backends.cassandra import cassandra_points
from toolkit import Entity
from toolkit.errors import ConfigError, QueryError, StoreError, StoreTimeout, StoreUnavailable
from toolkit.model import EntitySchema, schema_of

# -- errors (no server) --------------------------------------------------------------

CASES: list[tuple[BaseException, type[StoreError], bool]] = [
    (cassandra.cluster.NoHostAvailable("no host", {}), StoreUnavailable, True),
    (cassandra.UnresolvableContactPoints("nowhere"), StoreUnavailable, True),
    (cassandra.connection.ConnectionShutdown("closed"), StoreUnavailable, True),
    (cassandra.connection.ConnectionBusy("busy"), StoreUnavailable, True),
    (cassandra.connection.ConnectionException("reset"), StoreUnavailable, True),
    (cassandra.Unavailable("2 replicas needed"), StoreUnavailable, True),
    (cassandra.protocol.OverloadedErrorMessage(0x1001, "overloaded", None), StoreUnavailable, True),
    (cassandra.protocol.IsBootstrappingErrorMessage(0x1002, "bootstrapping", None), StoreUnavailable, True),
    (cassandra.OperationTimedOut("client timeout"), StoreTimeout, True),
    (cassandra.Timeout("timeout"), StoreTimeout, True),
    (cassandra.ReadTimeout("read timeout"), StoreTimeout, True),
    (cassandra.WriteTimeout("write timeout", write_type=cassandra.WriteType.SIMPLE), StoreTimeout, True),
    (cassandra.CoordinationFailure("failed"), StoreError, False),
    (cassandra.ReadFailure("tombstones"), StoreError, False),
    (cassandra.WriteFailure("failed", write_type=cassandra.WriteType.SIMPLE), StoreError, False),
    (cassandra.AuthenticationFailed("bad password"), StoreError, False),
    (cassandra.Unauthorized("no grant"), StoreError, False),
    (cassandra.InvalidRequest("bad query"), StoreError, False),
    (cassandra.AlreadyExists(keyspace="ks", table="t"), StoreError, False),
    (cassandra.ConfigurationException("bad ddl"), StoreError, False),
    (cassandra.FunctionFailure("udf failed", "ks", "f", []), StoreError, False),
    (cassandra.RequestValidationException("invalid"), StoreError, False),
    (cassandra.RequestExecutionException("failed"), StoreError, False),
    (cassandra.protocol.ErrorMessage(0x0000, "server error", None), StoreError, False),
    (cassandra.protocol.SyntaxException(0x2000, "syntax", None), StoreError, False),
    (cassandra.protocol.ServerError(0x0000, "boom", None), StoreError, False),
    (cassandra.DriverException("driver"), StoreError, False),
    (cassandra.connection.ProtocolError("framing"), StoreError, False),
    (ConnectionRefusedError(111, "refused"), StoreUnavailable, True),
]


@pytest.mark.parametrize(("exc", "expected", "retryable"), CASES, ids=lambda value: type(value).__name__)
def test_every_driver_error_is_translated(exc: BaseException, expected: type[StoreError], retryable: bool) -> None:
    with pytest.raises(StoreError) as caught, ERRORS.translating("items", "s1", key="k1"):
        raise exc
    error = caught.value
    assert type(error) is expected
    assert error.retryable is retryable
    assert (error.store, error.shard, error.key) == ("items", "s1", "k1")
    assert error.__cause__ is exc
    assert "items/s1" in str(error)


def test_the_mapping_is_fully_covered_by_the_cases() -> None:
    covered = {type(exc) for exc, _, _ in CASES}
    for driver_class, _, _ in ERRORS.rules:
        assert any(issubclass(case, driver_class) for case in covered), driver_class


def test_non_driver_errors_pass_through() -> None:
    with pytest.raises(KeyError), ERRORS.translating("items", "s1"):
        raise KeyError("mine")


# -- URLs (no server) ----------------------------------------------------------------


def test_urls_name_contact_points_credentials_and_keyspace() -> None:
    target = parse_url("cassandra://u%40x:p%3Aw@h1:9043,h2,[::1]:9044/My_Space?consistency=ONE")
    assert target.points == (("h1", 9043), ("h2", 9042), ("::1", 9044))
    assert (target.username, target.password) == ("u@x", "p:w")
    assert target.keyspace == "my_space"
    assert target.query == (("consistency", "ONE"),)


@pytest.mark.parametrize(
    "url",
    ["cassandra://h1/", "cassandra:///ks", "cassandra://h1/bad-name", "cassandra://h1:x/ks", "redis://h1/ks"],
)
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_url(url)


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="consistency"):
        ColumnAdapter("cassandra://h1/ks", store="s", shard="s0", options={"consistency": "MOST"})
    with pytest.raises(ConfigError, match="namespace"):
        ColumnAdapter("cassandra://h1/ks", store="s", shard="s0", options={"namespace": "a-b"})
    with pytest.raises(ConfigError, match="replication"):  # refused when built, not at the first ensure
        ColumnAdapter("cassandra://h1/ks", store="s", shard="s0", options={"replication": {"class": "x'}"}})


def test_typed_options_keep_the_old_defaults() -> None:
    options = ColumnAdapter("cassandra://h1/ks", store="s", shard="s0").options
    assert options == ColumnOptions()
    assert (options.namespace, options.consistency, options.local_dc) == ("", "LOCAL_QUORUM", None)
    assert (options.request_timeout, options.connect_timeout, options.protocol_version) == (12.0, 5.0, None)
    assert options.consistency_level == cassandra.ConsistencyLevel.LOCAL_QUORUM
    assert options.replication_cql == "{'class': 'SimpleStrategy', 'replication_factor': '1'}"


def test_typed_options_refuse_typos_wrong_types_and_unknown_values() -> None:
    with pytest.raises(ConfigError, match=r"stores\.s\.options\.consistensy.*did you mean 'consistency'"):
        ColumnAdapter("cassandra://h1/ks", store="s", shard="s0", options={"consistensy": "ONE"})
    with pytest.raises(ConfigError, match=r"options\.request_timeout"):
        ColumnAdapter("cassandra://h1/ks", store="s", shard="s0", options={"request_timeout": "soon"})
    with pytest.raises(ConfigError, match=r"options\.protocol_version"):
        ColumnAdapter("cassandra://h1/ks", store="s", shard="s0", options={"protocol_version": 7})
    with pytest.raises(ConfigError, match="'class'"):
        ColumnAdapter("cassandra://h1/ks", store="s", shard="s0", options={"replication": {"dc1": 3}})


def test_consistency_levels_are_the_drivers_in_any_case() -> None:
    assert set(typing.get_args(ConsistencyName)) == set(cassandra.ConsistencyLevel.name_to_value)
    options = ColumnOptions(consistency="local_one")
    assert options.consistency == "LOCAL_ONE"
    assert options.consistency_level == cassandra.ConsistencyLevel.LOCAL_ONE


def test_url_parameters_are_options_and_the_stores_own_win() -> None:
    url = "cassandra://h1/ks?consistency=ONE&request_timeout=3.5&connect_timeout=2"
    adapter = ColumnAdapter(url, store="s", shard="s0", options={"connect_timeout": 1})
    assert (adapter.options.consistency, adapter.options.request_timeout) == ("ONE", 3.5)
    assert adapter.options.connect_timeout == 1
    with pytest.raises(ConfigError, match="consistency"):
        ColumnAdapter("cassandra://h1/ks?consistency=MOST", store="s", shard="s0")
    replicated = ColumnOptions(replication={"class": "NetworkTopologyStrategy", "dc1": 3})
    assert replicated.replication_cql == "{'class': 'NetworkTopologyStrategy', 'dc1': '3'}"


# -- the shard-key prefix (no server) ------------------------------------------------

keys = st.one_of(
    st.lists(st.text(), min_size=2, max_size=2),
    st.lists(st.binary(), min_size=2, max_size=2),
    st.lists(st.integers(), min_size=2, max_size=2),
    st.lists(st.datetimes(timezones=st.just(dt.UTC)), min_size=2, max_size=2),
    st.lists(st.dates(), min_size=2, max_size=2),
    st.lists(st.uuids(), min_size=2, max_size=2),
    st.lists(st.decimals(allow_nan=False), min_size=2, max_size=2),
)


@given(keys)
def test_the_shard_key_prefix_preserves_order(pair: list[Any]) -> None:
    low, high = sorted(pair)
    assert -(2**63) <= skey_prefix(low) <= skey_prefix(high) <= 2**63 - 1


# -- against the server --------------------------------------------------------------


class Thing(Entity, store="items", key="id", indexes=["name", "n"]):
    id: str
    name: str | None = None
    n: int | None = None
    score: float | None = None
    price: decimal.Decimal | None = None
    uid: uuid.UUID | None = None
    at: dt.datetime | None = None
    day: dt.date | None = None
    flag: bool | None = None
    blob: bytes | None = None


class Cell(Entity, store="items", key=("grid", "ref", "sub"), shard_key="grid"):
    grid: bytes
    ref: uuid.UUID
    sub: str
    value: int = 0


class Odd(Entity, store="items", key="select"):
    select: int
    Order: str = ""
    from_: str = ""


@pytest.fixture
def url() -> str:
    return f"cassandra://{cassandra_points()}/polystore_c0"


@pytest.fixture
def adapter(url: str) -> Iterator[ColumnAdapter]:
    """An adapter with a table prefix of its own; drops the tables it ensured afterwards."""
    made = ColumnAdapter(url, store="items", shard="s0", options={"namespace": f"t{uuid.uuid4().hex[:10]}_"})
    try:
        made.ping()
    except StoreError as exc:
        pytest.fail(f"the cassandra server is not reachable ({exc}); start it with `stack/stack up cassandra`")
    yield made
    for table in list(made._tables.values()):
        made.drop(table.schema)
    made.close()


def _row(schema: EntitySchema, **values: Any) -> dict[str, Any]:
    row = {spec.name: values.get(spec.name) for spec in schema.fields}
    key = schema.shard_key_of(row)
    row[TOKEN_FIELD] = token(key)
    return row


@pytest.mark.cassandra
def test_adapters_on_one_cluster_share_one_session(url: str) -> None:
    mine = {"request_timeout": 11.25}  # settings no other test's adapters share
    first = ColumnAdapter(url, store="a", shard="s0", options=mine)
    second = ColumnAdapter(url.replace("polystore_c0", "polystore_c1"), store="b", shard="s1", options=mine)
    other = ColumnAdapter(url, store="a", shard="s0", options={**mine, "consistency": "ONE"})
    try:
        assert first.session is second.session
        assert other.session is not first.session
        cluster = first.session.cluster
        first.close()
        first.close()  # safe twice
        assert not cluster.is_shutdown
        second.close()
        assert cluster.is_shutdown
    finally:
        for adapter in (first, second, other):
            adapter.close()


@pytest.mark.cassandra
def test_a_missing_keyspace_is_created(url: str) -> None:
    name = f"polystore_k{uuid.uuid4().hex[:8]}"
    adapter = ColumnAdapter(url.replace("polystore_c0", name), store="items", shard="s9")
    schema = schema_of(Odd)
    try:
        adapter.ensure(schema, with_token=True)
        adapter.ensure(schema, with_token=True)  # idempotent
        adapter.put(schema, _row(schema, select=1, Order="o", from_="f"))
        assert adapter.get(schema, 1) == {**_row(schema, select=1, Order="o", from_="f")}
        info = adapter.describe()
        assert info.reachable
        assert info.tables == {"odd": 1}
        assert "cassandra 5" in (info.server or "")
    finally:
        adapter._execute(f"DROP KEYSPACE IF EXISTS {name}")
        adapter.close()


@pytest.mark.cassandra
def test_an_unreachable_cluster_is_unavailable() -> None:
    adapter = ColumnAdapter("cassandra://127.0.0.1:1/ks", store="items", shard="s0", options={"connect_timeout": 1})
    with pytest.raises(StoreUnavailable) as caught:
        adapter.ping()
    assert caught.value.retryable
    info = adapter.describe()
    assert not info.reachable
    adapter.close()


@pytest.mark.cassandra
def test_token_and_key_ranges_use_the_sai_indexes(adapter: ColumnAdapter) -> None:
    schema = schema_of(Thing)
    adapter.ensure(schema, with_token=True)
    rows = [_row(schema, id=f"k{i:03d}", n=i) for i in range(120)]
    adapter.put_many(schema, rows)
    indexes = adapter._execute(
        "SELECT options FROM system_schema.indexes WHERE keyspace_name = %s AND table_name = %s",
        (adapter.keyspace, adapter._table_name(schema)),
    )
    targets = {options["target"].strip('"') for (options,) in indexes}
    assert {TOKEN_FIELD, "_ps_skey", "name", "n"} <= targets
    span = TokenRange(-(2**61), 2**62)
    for batch_size in (1, 7, 1000):
        found = [row for batch in adapter.scan(schema, tokens=span, batch_size=batch_size) for row in batch]
        assert sorted(row["id"] for row in found) == sorted(r["id"] for r in rows if r[TOKEN_FIELD] in span)
        assert all(len(batch) <= batch_size for batch in adapter.scan(schema, tokens=span, batch_size=batch_size))
    everything = TokenRange(-(2**63), 2**63)
    assert sum(len(b) for b in adapter.scan(schema, tokens=everything)) == 120
    for lower, upper in (("k010", "k020"), (None, "k005"), ("k117", None), ("k0", "k0"), ("", "k001")):
        found = [row for batch in adapter.scan(schema, keys=KeyRange(lower, upper), batch_size=3) for row in batch]
        assert sorted(row["id"] for row in found) == [r["id"] for r in rows if r["id"] in KeyRange(lower, upper)]


@pytest.mark.cassandra
def test_odd_keys_roundtrip_and_cluster_in_python_order(adapter: ColumnAdapter) -> None:
    schema = schema_of(Cell)
    adapter.ensure(schema, with_token=True)
    refs = sorted(uuid.UUID(int=value) for value in (0, 1, 2**64, 2**127, 2**128 - 1, 12345678901234567890))
    rows = [
        _row(schema, grid=grid, ref=ref, sub=sub, value=i)
        for i, ref in enumerate(refs)
        for grid in (b"", b"\x00g")
        for sub in ("", "b")
    ]
    adapter.put_many(schema, rows)
    assert adapter.get(schema, (b"", refs[0], "")) == rows[0]
    got = adapter.partition(schema, b"")
    assert [(row["ref"], row["sub"]) for row in got] == [(ref, sub) for ref in refs for sub in ("", "b")]
    tail = adapter.partition(schema, b"\x00g", start=refs[2], end=refs[4], descending=True)
    assert [row["ref"] for row in tail] == [refs[3], refs[3], refs[2], refs[2]]
    assert adapter.delete(schema, (b"", refs[0], "")) is True
    assert adapter.delete(schema, (b"", refs[0], "")) is False
    assert adapter.delete_many(schema, [(b"", refs[1], ""), (b"", refs[1], ""), (b"x", refs[1], "")]) == 1
    keyed = [row for batch in adapter.scan(schema, keys=KeyRange(b"", b"\x00")) for row in batch]
    assert {row["grid"] for row in keyed} == {b""}
    assert len(keyed) == len(refs) * 2 - 2


class Priced(Entity, store="items", key="price"):
    price: decimal.Decimal
    label: str = ""


class Ledger(Entity, store="items", key=("account", "amount"), shard_key="account"):
    account: str
    amount: decimal.Decimal
    note: str = ""


@pytest.mark.cassandra
def test_decimal_keys_are_one_key_and_decimals_read_back_as_written(adapter: ColumnAdapter) -> None:
    """Regression (issue 14): Cassandra told ``1.1`` from ``1.10`` in a key (a get by the
    other form missed, and both could be stored), and ``-0.00`` read back as ``0.00``."""
    priced, ledger, thing = schema_of(Priced), schema_of(Ledger), schema_of(Thing)
    for schema in (priced, ledger, thing):
        adapter.ensure(schema, with_token=True)
    adapter.put(priced, _row(priced, price=decimal.Decimal("1.10"), label="a"))
    got = adapter.get(priced, decimal.Decimal("1.1"))
    assert got is not None
    assert (str(got["price"]), got["label"]) == ("1.10", "a")
    adapter.put(priced, _row(priced, price=decimal.Decimal("1.100"), label="b"))
    assert [(str(row["price"]), row["label"]) for row in adapter.find(priced, Query())] == [("1.100", "b")]
    amounts = [decimal.Decimal(text) for text in ("-0.00", "2.50", "10", "1E+1", "0.5")]
    adapter.put_many(ledger, [_row(ledger, account="x", amount=amount) for amount in amounts])
    assert [str(row["amount"]) for row in adapter.partition(ledger, "x")] == ["-0.00", "0.5", "2.50", "1E+1"]
    assert [str(row["amount"]) for row in adapter.partition(ledger, "x", start=decimal.Decimal("2.5"))] == [
        "2.50",
        "1E+1",
    ]
    adapter.put(thing, _row(thing, id="t", price=decimal.Decimal("-0.000")))
    assert str(adapter.get(thing, "t")["price"]) == "-0.000"  # type: ignore[index]


def _things() -> list[dict[str, Any]]:
    schema = schema_of(Thing)
    values: list[dict[str, Any]] = []
    names = [None, "", "a", "B", "b", "é", "日本", "'; DROP TABLE x; --"]
    for i in range(40):
        values.append(
            _row(
                schema,
                id=f"t{i:02d}",
                name=names[i % len(names)],
                n=None if i % 7 == 0 else i % 9 - 4,
                score=[None, 0.0, -0.0, 1.5, -2.5, math.inf][i % 6],
                price=[None, decimal.Decimal("1.50"), decimal.Decimal("1.5"), decimal.Decimal("-3")][i % 4],
                uid=[None, uuid.UUID(int=i), uuid.UUID(int=2**127 + i)][i % 3],
                at=None
                if i % 5 == 0
                else dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=i, microseconds=i),
                day=None if i % 4 == 0 else dt.date(2024, 1, 1 + i % 20),
                flag=[None, True, False][i % 3],
                blob=[None, b"", b"\x00", b"\xff", b"a"][i % 5],
            )
        )
    return values


FILTERS: list[list[Filter]] = [
    [Filter("name", "eq", "b")],
    [Filter("name", "eq", None)],
    [Filter("name", "ne", "b")],
    [Filter("name", "ge", "b"), Filter("name", "lt", "日")],
    [Filter("name", "in", ["", "é", None])],
    [Filter("name", "in", [])],
    [Filter("n", "eq", 3), Filter("n", "eq", 4)],
    [Filter("n", "gt", -2), Filter("n", "gt", 0), Filter("n", "le", 3)],
    [Filter("n", "eq", 2), Filter("n", "ge", 0)],
    [Filter("n", "in", [1, 2, 3]), Filter("name", "eq", "a")],
    [Filter("n", "lt", None)],
    [Filter("score", "eq", 0.0)],
    [Filter("score", "ge", 0.0)],
    [Filter("score", "gt", 1)],
    [Filter("score", "lt", math.nan)],
    [Filter("price", "eq", decimal.Decimal("1.5"))],
    [Filter("price", "lt", decimal.Decimal("2"))],
    [Filter("uid", "gt", uuid.UUID(int=2**126))],
    [Filter("uid", "eq", uuid.UUID(int=3))],
    [Filter("at", "ge", dt.datetime(2024, 1, 1, 10)), Filter("at", "lt", dt.datetime(2024, 1, 2, tzinfo=dt.UTC))],
    [Filter("day", "le", dt.date(2024, 1, 10))],
    [Filter("flag", "eq", False)],
    [Filter("flag", "ne", None)],
    [Filter("blob", "ge", b"\x00")],
    [Filter("id", "ge", "t10"), Filter("id", "lt", "t20"), Filter("n", "ne", 0)],
    [Filter("id", "in", ["t01", "t02", "zz"]), Filter("n", "ge", -10)],
    [Filter("id", "eq", "t05"), Filter("name", "eq", "a")],
]


@pytest.mark.cassandra
def test_find_and_count_match_the_reference_semantics(adapter: ColumnAdapter) -> None:
    schema = schema_of(Thing)
    adapter.ensure(schema, with_token=True)
    rows = _things()
    adapter.put_many(schema, rows)
    for filters in FILTERS:
        reference = [row for row in rows if all(f.matches(row) for f in _aware(filters))]
        for order, limit in (((), None), ((("n", True),), 5)):
            query = Query(tuple(filters), tuple(Order(name, desc) for name, desc in order), limit)
            expected = sorted(reference, key=sort_key(schema, query.order_by))[:limit]
            got = adapter.find(schema, query)
            assert [row["id"] for row in got] == [row["id"] for row in expected], filters
        assert adapter.count(schema, filters) == len(reference), filters


def _aware(filters: list[Filter]) -> list[Filter]:
    return [
        Filter(f.field, f.op, f.value.replace(tzinfo=dt.UTC))
        if isinstance(f.value, dt.datetime) and f.value.tzinfo is None
        else f
        for f in filters
    ]


def test_the_plan_pushes_only_what_cql_evaluates_like_python() -> None:
    class FakeTable:
        schema = schema_of(Thing)
        codecs = codecs_for(schema, (("id",), ()))
        partition = ("id",)
        indexed = frozenset({"name", "n", "_ps_token", "_ps_skey"})

    table: Any = FakeTable()
    planned = plan(table, [Filter("name", "ne", "x"), Filter("score", "eq", 0.0), Filter("uid", "gt", uuid.uuid4())])
    assert planned is not None
    assert planned.where == ""
    planned = plan(table, [Filter("n", "in", [1, 2]), Filter("n", "gt", 0), Filter("id", "ge", "a")])
    assert planned is not None
    assert planned.where == ' WHERE "n" IN ? AND "id" >= ? AND "_ps_skey" >= ? ALLOW FILTERING'
    assert planned.params[:2] == ([1, 2], "=a")
    assert plan(table, [Filter("n", "in", [])]) is None


@pytest.mark.cassandra
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)
    | st.sampled_from(["'; DROP TABLE items; --", "APPLY BATCH;", "$where", "{a}:*", "", "ALLOW FILTERING"]),
    value=st.text(st.characters(blacklist_categories=["Cs"]), max_size=60),
    blob=st.binary(max_size=32),
)
def test_arbitrary_keys_and_values_are_stored_literally(
    adapter: ColumnAdapter, key: str, value: str, blob: bytes
) -> None:
    schema = schema_of(Thing)
    adapter.ensure(schema, with_token=True)
    row = _row(schema, id=key, name=value, blob=blob)
    adapter.put(schema, row)
    assert adapter.get(schema, key) == row
    assert [
        found["id"] for found in adapter.find(schema, Query((Filter("name", "eq", value), Filter("id", "eq", key))))
    ] == [key]
    assert adapter.delete(schema, key) is True
    assert adapter.get(schema, key) is None


@pytest.mark.cassandra
def test_ttl_is_exact_through_get(adapter: ColumnAdapter) -> None:
    schema = schema_of(Thing)
    adapter.ensure(schema, with_token=True)
    adapter.put_ttl(schema, [_row(schema, id="brief")], 0.4)
    left = adapter.ttl(schema, "brief")
    assert left is not None
    assert 0 < left <= 0.4
    assert adapter.get(schema, "brief") is not None
    import time

    time.sleep(0.5)
    assert adapter.get(schema, "brief") is None  # gone at the instant, not at Cassandra's next second
    assert adapter.ttl(schema, "brief") is None


@pytest.mark.cassandra
def test_several_contact_points_and_a_pinned_protocol(url: str) -> None:
    points = f"127.0.0.1:1,{cassandra_points()}"
    adapter = ColumnAdapter(
        url.replace(cassandra_points(), points), store="items", shard="s0", options={"protocol_version": 5}
    )
    try:
        adapter.ping()
        assert adapter.session.cluster.protocol_version == 5
        assert len(adapter.session.cluster.contact_points) == 2
    finally:
        adapter.close()


@pytest.mark.cassandra
def test_partition_values_of_the_wrong_type_are_query_errors(adapter: ColumnAdapter) -> None:
    schema = schema_of(Cell)
    adapter.ensure(schema, with_token=True)
    with pytest.raises(QueryError, match="grid is bytes"):
        adapter.partition(schema, "not bytes")
    with pytest.raises(QueryError, match="ref is uuid"):
        adapter.partition(schema, b"g", start="not a uuid")
    assert adapter.partition(schema, b"g", limit=0) == []
