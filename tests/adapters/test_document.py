"""The document adapter: error translation and encodings (no server), and its MongoDB-specific
behaviour on the stack's MongoDB-wire server (marker ``mongo``)."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import operator
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from bson.errors import BSONError, InvalidDocument
from hypothesis import given, settings
from hypothesis import strategies as st
from pymongo import errors as mongo_errors

from adapters.base import TOKEN_FIELD, Filter, Order, Query
from adapters.document import (
    ARRAY_WRAPPER,
    ERRORS,
    DocumentAdapter,
    DocumentOptions,
    decode_json,
    encode_json,
    escape_key,
    unescape_key,
)
from adapters.document._filters import safe_match
from adapters.document._scalars import decimal_from_key, decimal_key, decode, encode
from sharding.base import KeyRange, TokenRange
from sharding.keys import token
from tests.backends.mongo import mongo_urls, require_mongo, with_database
from toolkit import Entity
from toolkit.errors import (
    ConfigError,
    DuplicateKeyError,
    NotFoundError,
    QueryError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from toolkit.model import schema_of

# -- error translation (no server) --------------------------------------------------------


def _instance(cls: type[BaseException]) -> BaseException:
    """One instance of every driver exception class the adapter catches."""
    if cls is mongo_errors.BulkWriteError:
        return cls({"writeErrors": [{"code": 2, "errmsg": "bad"}]})
    if cls is mongo_errors.DuplicateKeyError:
        return cls("E11000 duplicate key", 11000)
    if issubclass(cls, mongo_errors.OperationFailure):
        return cls("failed", 2)
    return cls("failed")


EXPECTED: dict[type[BaseException], tuple[type[StoreError], bool]] = {
    mongo_errors.DuplicateKeyError: (DuplicateKeyError, False),
    mongo_errors.ExecutionTimeout: (StoreTimeout, True),
    mongo_errors.WTimeoutError: (StoreTimeout, True),
    mongo_errors.NetworkTimeout: (StoreTimeout, True),
    mongo_errors.WaitQueueTimeoutError: (StoreTimeout, True),
    mongo_errors.ServerSelectionTimeoutError: (StoreUnavailable, True),
    mongo_errors.NotPrimaryError: (StoreUnavailable, True),
    mongo_errors.AutoReconnect: (StoreUnavailable, True),
    mongo_errors.ConnectionFailure: (StoreUnavailable, True),
    mongo_errors.CursorNotFound: (StoreError, True),
    mongo_errors.BulkWriteError: (StoreError, False),
    mongo_errors.WriteConcernError: (StoreError, True),
    mongo_errors.WriteError: (StoreError, False),
    mongo_errors.OperationFailure: (StoreError, False),
    mongo_errors.DocumentTooLarge: (StoreError, False),
    mongo_errors.InvalidName: (StoreError, False),
    mongo_errors.InvalidOperation: (StoreError, False),
    mongo_errors.ConfigurationError: (StoreError, False),
    mongo_errors.ProtocolError: (StoreError, False),
    mongo_errors.PyMongoError: (StoreError, False),
    InvalidDocument: (StoreError, False),
    BSONError: (StoreError, False),
    OverflowError: (StoreError, False),
}


def translate_error(exc: BaseException, *, store: str, shard: str, key: Any = None) -> StoreError:
    return ERRORS.translate(exc, store=store, shard=shard, key=key)


def test_every_caught_driver_exception_is_listed_here() -> None:
    assert {cls for cls, _, _ in ERRORS.rules} == set(EXPECTED)


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda cls: cls.__name__)
def test_every_driver_exception_is_translated(cls: type[BaseException]) -> None:
    error = translate_error(_instance(cls), store="docs", shard="s1", key="k")
    expected, retryable = EXPECTED[cls]
    assert type(error) is expected
    assert error.retryable is retryable
    assert (error.store, error.shard, error.key) == ("docs", "s1", "k")
    assert str(error).startswith("docs/s1: ")


def test_operation_failures_are_refined_by_code_and_label() -> None:
    assert type(translate_error(mongo_errors.OperationFailure("slow", 50), store="d", shard="s")) is StoreTimeout
    stepped_down = translate_error(mongo_errors.OperationFailure("primary stepped down", 189), store="d", shard="s")
    assert stepped_down.retryable is True
    labelled = mongo_errors.OperationFailure("x", 1, {"errorLabels": ["RetryableWriteError"]})
    assert translate_error(labelled, store="d", shard="s").retryable is True
    duplicates = mongo_errors.BulkWriteError({"writeErrors": [{"code": 11000}, {"code": 11000}]})
    assert type(translate_error(duplicates, store="d", shard="s")) is DuplicateKeyError
    mixed = mongo_errors.BulkWriteError({"writeErrors": [{"code": 11000}, {"code": 2}]})
    assert type(translate_error(mixed, store="d", shard="s")) is StoreError


def test_replica_set_urls_and_bad_configuration() -> None:
    adapter = DocumentAdapter(
        "mongodb://127.0.0.1:1,127.0.0.1:2/shop?replicaSet=rs0", store="docs", shard="s0", options={"namespace": "x_"}
    )
    assert adapter.database.name == "shop"
    adapter.close()
    adapter.close()  # safe twice
    default = DocumentAdapter("mongodb://127.0.0.1:1", store="docs", shard="s0")
    assert default.database.name == "polystore"
    default.close()
    with pytest.raises(ConfigError):
        DocumentAdapter("mongodb://127.0.0.1:1/x", store="docs", shard="s0", options={"namespace": "bad-name"})
    with pytest.raises(ConfigError):
        DocumentAdapter("mongodb://127.0.0.1:notaport/x", store="docs", shard="s0")
    for bad in (0, -3, True, "8", 2.5):
        with pytest.raises(ConfigError, match="bulk_batch"):
            DocumentAdapter("mongodb://127.0.0.1:1/x", store="docs", shard="s0", options={"bulk_batch": bad})


def test_options_are_typed_with_the_documented_defaults() -> None:
    """A typo or a wrong type is refused when the adapter is built, naming the option."""
    defaults = DocumentOptions()
    assert DocumentAdapter.Options is DocumentOptions
    assert (defaults.connect_timeout, defaults.timeout, defaults.lock_timeout) == (10, 30.0, 10)
    assert (defaults.row_locks, defaults.bulk_batch, defaults.database, defaults.pool_size) == (
        "auto",
        "auto",
        "polystore",
        None,
    )
    assert (defaults.row_locks_forced, defaults.bulk_batch_size) == (None, None)
    forced = DocumentOptions(row_locks=False, bulk_batch=50)
    assert (forced.row_locks_forced, forced.bulk_batch_size) == (False, 50)
    with pytest.raises(ConfigError, match="did you mean 'namespace'"):
        DocumentAdapter("mongodb://127.0.0.1:1/x", store="docs", shard="s0", options={"namespce": "x_"})
    for bad in ("yes", 1, "auto "):
        with pytest.raises(ConfigError, match="row_locks"):
            DocumentAdapter("mongodb://127.0.0.1:1/x", store="docs", shard="s0", options={"row_locks": bad})
    with pytest.raises(ConfigError, match="timeout"):
        DocumentAdapter("mongodb://127.0.0.1:1/x", store="docs", shard="s0", options={"timeout": "soon"})


# -- encodings (no server) ----------------------------------------------------------------

json_keys = st.text(max_size=12) | st.sampled_from(["", "%", "%25", "%2E", ".", "$", "$gt", "a.b", "%[", "\x00"])
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_keys, inner, max_size=4),
    max_leaves=20,
)


def _names(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _names(item)
    elif isinstance(value, list):
        for item in value:
            yield from _names(item)


def _has_nested_array(value: Any, inside_array: bool = False) -> bool:
    if isinstance(value, list):
        return inside_array or any(_has_nested_array(item, True) for item in value)
    if isinstance(value, dict):
        return any(_has_nested_array(item) for item in value.values())
    return False


@given(json_values)
def test_json_values_round_trip_and_are_storable(value: Any) -> None:
    stored = encode_json(value)
    assert decode_json(stored) == value
    for name in _names(stored):
        assert name
        assert not {".", "$", "\x00"} & set(name)
    assert not _has_nested_array(stored)


@given(json_keys)
def test_key_escaping_is_reversible_and_never_makes_the_wrapper(key: str) -> None:
    assert unescape_key(escape_key(key)) == key
    assert escape_key(key) != ARRAY_WRAPPER


@settings(max_examples=300)
@given(
    st.decimals(allow_nan=False, places=None) | st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.decimals(allow_nan=False, places=None),
)
def test_decimal_keys_sort_like_the_numbers(a: decimal.Decimal, b: decimal.Decimal) -> None:
    assert (decimal_key(a) < decimal_key(b)) == (a < b)
    assert (decimal_key(a) == decimal_key(b)) == (a == b)
    assert decimal_from_key(decimal_key(a)) == a


@given(st.datetimes(timezones=st.just(dt.UTC)))
def test_datetimes_are_lossless_microseconds(value: dt.datetime) -> None:
    assert decode("datetime", encode("datetime", value)) == value


def test_scalar_encodings_keep_python_order() -> None:
    blobs = [b"", b"\x00", b"\x00\x00", b"\x01", b"\xff", b"\xff\x00"]
    assert sorted(blobs, key=lambda blob: encode("bytes", blob)) == sorted(blobs)
    uuids = [uuid.uuid4() for _ in range(50)]
    assert sorted(uuids, key=lambda value: encode("uuid", value)) == sorted(uuids)
    days = [dt.date(1, 1, 1), dt.date(999, 12, 31), dt.date(2024, 2, 29), dt.date(9999, 12, 31)]
    assert sorted(days, key=lambda day: encode("date", day)) == sorted(days)
    with pytest.raises(QueryError):
        decimal_key(decimal.Decimal("NaN"))


# -- on the server ------------------------------------------------------------------------


class Doc(Entity, store="items", key="id", indexes=["name", ("rank", "name")]):
    id: str
    name: str | None = None
    rank: int | None = None
    price: decimal.Decimal | None = None
    blob: bytes | None = None
    day: dt.date | None = None
    at: dt.datetime | None = None
    uid: uuid.UUID | None = None
    ok: bool | None = None
    info: dict[str, Any] | None = None


class Event(Entity, store="items", key=("tenant", "day", "seq"), shard_key=("tenant", "day")):
    tenant: str
    day: dt.date
    seq: int
    note: str = ""


DOC = schema_of(Doc)
EVENT = schema_of(Event)


def _row(schema: Any, **values: Any) -> dict[str, Any]:
    row = {spec.name: values.get(spec.name) for spec in schema.fields}
    row[TOKEN_FIELD] = token(schema.shard_key_of(row))
    return row


@pytest.fixture
def adapter() -> Iterator[DocumentAdapter]:
    url = mongo_urls()[0]
    require_mongo([url])
    prefix = f"a{uuid.uuid4().hex[:10]}_"
    built = DocumentAdapter(url, store="docs", shard="s0", options={"namespace": prefix})
    built.ensure(DOC, with_token=True)
    built.ensure(EVENT, with_token=True)
    yield built
    for name in built.database.list_collection_names():
        if name.startswith(prefix):
            built.database.drop_collection(name)
    built.close()


@pytest.mark.mongo
def test_stored_layout_is_documented_and_escaped(adapter: DocumentAdapter) -> None:
    at = dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)
    info = {"$gt": {"a.b": [[1, 2], []]}, "": 1}
    adapter.put(DOC, _row(DOC, id="k", at=at, blob=b"\x01\xff", info=info, price=decimal.Decimal("-1.50")))
    raw = adapter.database[f"{adapter.options.namespace}doc"].find_one({"_id": "k"})
    assert raw is not None
    assert raw["at"] == -1
    assert raw["blob"] == "01ff"
    assert raw["info"] == {"%24gt": {"a%2Eb": [{ARRAY_WRAPPER: [1, 2]}, {ARRAY_WRAPPER: []}]}, "%": 1}
    assert "id" not in raw
    got = adapter.get(DOC, "k")
    assert got is not None
    assert (got["at"], got["blob"], got["info"], got["price"]) == (at, b"\x01\xff", info, decimal.Decimal("-1.5"))


class Priced(Entity, store="items", key="price"):
    price: decimal.Decimal
    x: float | None = None
    info: Any = None


PRICED = schema_of(Priced)


@pytest.mark.mongo
def test_decimals_negative_zeros_and_int64s_read_back_as_written(adapter: DocumentAdapter) -> None:
    """Regression (issue 14): Decimals came back normalised (``1.10`` as ``1.1``, ``100``
    as ``1E+2``, ``-0.00`` as ``0``), key or not; FerretDB dropped the sign of ``-0.0``;
    JSON integers beyond int32 came back as ``bson.Int64``, not ``int``."""
    adapter.ensure(PRICED, with_token=True)
    written = [decimal.Decimal(text) for text in ("1.10", "-0.00", "100", "2.50E+3", "-7")]
    info = {"zero": -0.0, "big": 2**40, "nested": [[-0.0, 0]]}
    adapter.put_many(PRICED, [_row(PRICED, price=price, x=-0.0, info=info) for price in written])
    for price in written:
        got = adapter.get(PRICED, price.normalize())
        assert got is not None
        assert got["price"].as_tuple() == price.as_tuple()
        assert math.copysign(1.0, got["x"]) == -1.0
        assert got["info"] == info
        assert type(got["info"]["big"]) is int
        assert math.copysign(1.0, got["info"]["nested"][0][0]) == -1.0
    assert [row["price"] for row in adapter.find(PRICED, Query(order_by=(Order("price"),)))] == sorted(written)
    (found,) = adapter.find(PRICED, Query(filters=(Filter("price", "eq", decimal.Decimal("1.1")),)))
    assert str(found["price"]) == "1.10"
    adapter.put(DOC, _row(DOC, id="p", price=decimal.Decimal("-1.50")))
    assert adapter.update(DOC, "p", {"rank": 1})
    assert str(adapter.find(DOC, Query(filters=(Filter("price", "le", -1.5),)))[0]["price"]) == "-1.50"
    assert adapter.update(DOC, "p", {"price": decimal.Decimal("2.0")})
    assert str(adapter.get(DOC, "p")["price"]) == "2.0"  # type: ignore[index]
    assert adapter.update(DOC, "p", {"price": decimal.Decimal("3")})
    assert str(adapter.get(DOC, "p")["price"]) == "3"  # type: ignore[index]


@pytest.mark.mongo
def test_indexes_cover_tokens_shard_keys_and_declared_indexes(adapter: DocumentAdapter) -> None:
    prefix = adapter.options.namespace
    doc_indexes = [info["key"] for info in adapter.database[f"{prefix}doc"].index_information().values()]
    assert [(TOKEN_FIELD, 1), ("_id", 1)] in doc_indexes
    assert [("rank", 1), ("name", 1)] in doc_indexes
    event_indexes = [info["key"] for info in adapter.database[f"{prefix}event"].index_information().values()]
    assert [("_id.tenant", 1), ("_id.day", 1)] in event_indexes


@pytest.mark.mongo
def test_server_order_of_encoded_scalars_is_python_order(adapter: DocumentAdapter) -> None:
    prices = ["-10", "-1.5", "-1.25", "-0.001", "0", "0.001", "1", "1.25", "9.99", "10", "1E+3"]
    rows = [
        _row(
            DOC,
            id=f"r{index:02d}",
            price=decimal.Decimal(price),
            blob=bytes([index % 3] * (index % 4)),
            day=dt.date(2000 + index % 5, 1, 1),
            uid=uuid.uuid4(),
            name=["b", "B", "é", "\U0001f511", "\uff21", "a"][index % 6],
        )
        for index, price in enumerate(prices)
    ]
    adapter.put_many(DOC, rows)
    for field in ("price", "blob", "day", "uid", "name"):
        for descending in (False, True):
            found = adapter.find(DOC, Query(order_by=(Order(field, descending),)))
            expected = sorted(rows, key=lambda row: row["id"])
            expected.sort(key=operator.itemgetter(field), reverse=descending)
            assert [row["id"] for row in found] == [row["id"] for row in expected], field
    cheap = adapter.find(DOC, Query(filters=(Filter("price", "lt", 1), Filter("price", "ge", decimal.Decimal("-1.5")))))
    assert sorted(row["price"] for row in cheap) == [
        decimal.Decimal(p) for p in ["-1.5", "-1.25", "-0.001", "0", "0.001"]
    ]


@pytest.mark.mongo
def test_python_equality_of_bools_and_numbers_inside_json(adapter: DocumentAdapter) -> None:
    values: list[Any] = [True, False, 1, 0, 1.0, 2, None, "1", [1], {"v": 1}]
    adapter.put_many(DOC, [_row(DOC, id=f"b{index}", info={"v": value}) for index, value in enumerate(values)])
    for op, operand in [("eq", 1), ("eq", True), ("ne", 0), ("lt", 2), ("ge", True), ("gt", False), ("in", [0, "1"])]:
        item = Filter("info.v", op, operand)  # type: ignore[arg-type]
        # Python raises TypeError ordering "1" against 2; the adapter says "no match" there.
        expected = sorted(f"b{index}" for index, value in enumerate(values) if safe_match(item, {"info": {"v": value}}))
        assert sorted(row["id"] for row in adapter.find(DOC, Query(filters=(item,)))) == expected, item
        assert adapter.count(DOC, [item]) == len(expected)


@pytest.mark.mongo
def test_bool_fields_and_mistyped_operands(adapter: DocumentAdapter) -> None:
    adapter.put_many(DOC, [_row(DOC, id="t", ok=True, rank=1), _row(DOC, id="f", ok=False), _row(DOC, id="n")])

    def ids(*filters: Filter) -> list[str]:
        return sorted(row["id"] for row in adapter.find(DOC, Query(filters=filters)))

    assert ids(Filter("ok", "eq", 1)) == ["t"]
    assert ids(Filter("ok", "ne", True)) == ["f", "n"]
    assert ids(Filter("ok", "lt", 1)) == ["f"]
    assert ids(Filter("rank", "eq", "1")) == []
    assert ids(Filter("rank", "ne", "1")) == ["f", "n", "t"]
    assert ids(Filter("rank", "eq", True)) == ["t"]
    assert ids(Filter("name", "in", [1, None])) == ["f", "n", "t"]


@pytest.mark.mongo
def test_composite_keys_and_key_range_scans(adapter: DocumentAdapter) -> None:
    days = [dt.date(2024, 1, day) for day in (1, 2, 3)]
    rows = [_row(EVENT, tenant=t, day=d, seq=s) for t in ("a", "b") for d in days for s in range(4)]
    adapter.put_many(EVENT, rows)
    assert adapter.get(EVENT, ("b", days[1], 2)) is not None
    assert adapter.delete(EVENT, ("b", days[1], 3)) is True
    span = KeyRange(lower=("a", days[1]), upper=("b", days[1]))
    found = [row for batch in adapter.scan(EVENT, keys=span, batch_size=3) for row in batch]
    assert [(r["tenant"], r["day"], r["seq"]) for r in found] == [
        (r["tenant"], r["day"], r["seq"]) for r in rows if ("a", days[1]) <= (r["tenant"], r["day"]) < ("b", days[1])
    ]
    tokens = TokenRange(-(2**63), 2**63)
    everything = list(adapter.scan(EVENT, tokens=tokens, keys=KeyRange(lower=("b", days[0])), batch_size=5))
    assert sum(len(batch) for batch in everything) == 11
    with pytest.raises(QueryError):
        adapter.get(EVENT, ("a", days[0]))
    keys = [("a", days[0], 0), ("a", days[0], 0), ("b", days[2], 3), ("c", days[0], 0)]
    assert sorted(row["seq"] for row in adapter.get_many(EVENT, keys)) == [0, 3]
    assert adapter.delete_many(EVENT, keys) == 2
    assert adapter.count(EVENT, [Filter("tenant", "eq", "a"), Filter("day", "ge", days[0])]) == 11


@pytest.mark.mongo
def test_increment_and_update_edges(adapter: DocumentAdapter) -> None:
    adapter.put(DOC, _row(DOC, id="x", info={"list": [1], "n": 5}))
    with pytest.raises(NotFoundError):
        adapter.increment(DOC, "ghost", "rank", 1)
    assert adapter.increment(DOC, "x", "rank", 2) == 2  # null counts as 0
    with pytest.raises(QueryError, match=r"info\.list"):
        adapter.update(DOC, "x", {"info.list.a": 1})
    with pytest.raises(QueryError, match=r"info\.n"):
        adapter.update(DOC, "x", {"info.n.deep": 1})
    assert adapter.update(DOC, "x", {"info": {"a": 1}, "info.b.c": 2}) is True  # overlapping paths, in order
    got = adapter.get(DOC, "x")
    assert got is not None
    assert got["info"] == {"a": 1, "b": {"c": 2}}
    assert adapter.update(DOC, "x", {}) is True
    assert adapter.update(DOC, "ghost", {}) is False


@pytest.mark.mongo
def test_describe_and_unreachable_servers(adapter: DocumentAdapter) -> None:
    adapter.put(DOC, _row(DOC, id="one"))
    adapter.ping()
    info = adapter.describe()
    assert info.reachable
    assert info.tables.get("doc") == 1
    down = DocumentAdapter("mongodb://127.0.0.1:1/x", store="docs", shard="s9", options={"connect_timeout": 0.2})
    with pytest.raises(StoreUnavailable) as caught:
        down.ensure(schema_of(Doc), with_token=True)
    assert caught.value.retryable
    assert "Topology" not in str(caught.value)
    with pytest.raises(StoreUnavailable):
        down.ping()
    assert not down.describe().reachable
    down.close()


@pytest.mark.mongo
@settings(max_examples=30, deadline=None)
@given(info=st.dictionaries(json_keys, json_values, max_size=5), name=st.text(max_size=20))
def test_arbitrary_json_round_trips_through_the_server(info: dict[str, Any], name: str) -> None:
    url = mongo_urls()[0]
    # A namespace per example: FerretDB 1.24 may still hold a dropped collection's index
    # names for a moment ("index ... already exists" on the next create).
    namespace = f"hyp{uuid.uuid4().hex[:8]}_"
    adapter = DocumentAdapter(url, store="docs", shard="s0", options={"namespace": namespace})
    try:
        adapter.ensure(DOC, with_token=True)
        adapter.put(DOC, _row(DOC, id=name, name=name, info=info))
        got = adapter.get(DOC, name)
        assert got is not None
        assert (got["name"], got["info"]) == (name, info)
        assert [row["id"] for row in adapter.find(DOC, Query(filters=(Filter("name", "eq", name),)))] == [name]
    finally:
        adapter.drop(DOC)
        adapter.close()


@pytest.mark.mongo
def test_put_many_replaces_more_rows_than_ferretdbs_pool_without_wedging_it() -> None:
    """Regression (issue 4): one ``bulk_write`` replacing more than 100 existing documents
    deadlocked FerretDB 1.24 (each matched replacement holds one of its 100 SQLite
    connections until the command ends), and the next drop wedged the whole server.

    Runs in a database of its own with a socket timeout, so a regression fails here in
    seconds and leaves the stack's shard databases usable; the database is dropped only
    if the server still answers (a drop on the deadlocked database would wedge every
    database: then restart it, `stack/stack down mongo && stack/stack up mongo`).
    """
    base = mongo_urls()[0]
    require_mongo([base])
    url = with_database(base, f"ps_bulk_{uuid.uuid4().hex[:10]}")
    adapter = DocumentAdapter(url, store="docs", shard="s0", options={"namespace": "b_", "timeout": 20})
    answering = False
    try:
        adapter.ensure(DOC, with_token=True)
        rows = [_row(DOC, id=f"k{index:04d}", rank=index) for index in range(250)]
        assert adapter.put_many(DOC, rows) == 250  # inserts: FerretDB closes those cursors
        changed = [{**row, "name": "again"} for row in rows]
        assert adapter.put_many(DOC, changed) == 250  # replacements: the case that deadlocked

        errors: list[BaseException] = []

        def writer(offset: int) -> None:  # concurrent batches share the server's pool
            try:
                adapter.put_many(DOC, [{**row, "rank": offset} for row in changed[offset * 80 : offset * 80 + 80]])
            except BaseException as exc:  # reported below, with the others
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(offset,)) for offset in range(3)]  # 80 rows each
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert adapter.count(DOC) == 250
        got = adapter.get(DOC, "k0249")
        assert got is not None
        assert (got["name"], got["rank"]) == ("again", 249)
        ranks = {row["id"]: row["rank"] for row in adapter.get_many(DOC, ["k0000", "k0100", "k0239"])}
        assert ranks == {"k0000": 0, "k0100": 1, "k0239": 2}
        answering = True
    finally:
        if answering:
            adapter.client.drop_database(adapter.database.name)
        adapter.close()


@pytest.mark.parametrize(("options", "expected"), [({}, 30.0), ({"timeout": 5}, 5.0), ({"timeout": 0}, None)])
def test_every_operation_has_a_socket_timeout_by_default(options: dict[str, Any], expected: float | None) -> None:
    """A server that accepts but never answers (a wedged FerretDB) must fail the call, so
    that the breaker sees it, instead of hanging the caller: 30 s unless configured."""
    adapter = DocumentAdapter("mongodb://127.0.0.1:1/x", store="docs", shard="s0", options=options)
    try:
        assert adapter.client.options.pool_options.socket_timeout == expected
    finally:
        adapter.close()
