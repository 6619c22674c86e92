"""The Redis adapter beyond the contract: layout, hash tags, index upkeep, errors, URLs.

Tests that need a server carry the ``redis`` marker and run on both the standalone
instance and the three-master cluster of the stack; the error-mapping and URL tests
need no server.
"""

from __future__ import annotations

import datetime as dt
import decimal
import inspect
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.exceptions as rex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import TOKEN_FIELD, Capability, Query
from adapters.keyvalue import ERRORS, KeyValueAdapter, KeyValueOptions, parse_url
from adapters.keyvalue._ordered import ordered as _ordered
from adapters.keyvalue._values import token_hex as _token_hex
from sharding.base import KeyRange, TokenRange
from sharding.keys import MAX_TOKEN, MIN_TOKEN, decimal_order_bytes, encode_key
from tests.backends.redis import redis_cluster_url, redis_urls
from tests.safety.order import assert_sorts_like_values_and_prefix_free
from tests.servers import require
from toolkit import Entity
from toolkit.errors import ConfigError, NotFoundError, QueryError, StoreError, StoreTimeout, StoreUnavailable
from toolkit.model import EntitySchema, schema_of


class Doc(Entity, store="items", key="id"):
    id: str
    body: dict[str, Any] | None = None
    n: int | None = None
    x: float | None = None


DOC = schema_of(Doc)


def _row(key: str, token: int, **fields: Any) -> dict[str, Any]:
    return {"id": key, "body": None, "n": None, "x": None, **fields, TOKEN_FIELD: token}


# -- no server -----------------------------------------------------------------------


def _instance(cls: type[BaseException]) -> BaseException:
    """An instance of a redis-py exception, whatever its constructor wants."""
    if issubclass(cls, rex.AskError):
        return cls("3999 127.0.0.1:6381")
    return cls("boom")


@pytest.mark.parametrize(("driver", "toolkit", "retryable"), ERRORS.rules, ids=[e[0].__name__ for e in ERRORS.rules])
def test_every_caught_driver_exception_is_mapped(
    driver: type[BaseException], toolkit: type[StoreError], retryable: bool
) -> None:
    with pytest.raises(StoreError) as caught, ERRORS.translating("kv", "s1", key="k"):
        raise _instance(driver)
    error = caught.value
    expected = toolkit if driver is not rex.RedisClusterException else StoreError
    assert isinstance(error, expected)
    assert (error.store, error.shard, error.key) == ("kv", "s1", "k")
    if driver is not rex.RedisClusterException:
        assert error.retryable is retryable
    assert isinstance(error.__cause__, driver)


def test_the_mapping_covers_every_redis_exception_class() -> None:
    mapped = ERRORS.caught
    for _, cls in inspect.getmembers(rex, inspect.isclass):
        if issubclass(cls, (rex.RedisError, rex.RedisClusterException)):
            assert issubclass(cls, mapped), cls


@pytest.mark.parametrize(
    ("driver", "toolkit", "retryable"),
    [
        (rex.ConnectionError, StoreUnavailable, True),
        (rex.BusyLoadingError, StoreUnavailable, True),
        (rex.TimeoutError, StoreTimeout, True),
        (rex.MaxConnectionsError, StoreTimeout, True),
        (rex.AuthenticationError, StoreError, False),
        (rex.ResponseError, StoreError, False),
        (rex.ClusterDownError, StoreUnavailable, True),
        (rex.MovedError, StoreUnavailable, True),
        (rex.ClusterCrossSlotError, StoreError, False),
    ],
)
def test_key_mappings(driver: type[BaseException], toolkit: type[StoreError], retryable: bool) -> None:
    with pytest.raises(toolkit) as caught, ERRORS.translating("kv", "s0"):
        raise _instance(driver)
    assert caught.value.retryable is retryable


def test_cluster_exceptions_are_unavailable_only_when_about_connecting() -> None:
    with pytest.raises(StoreUnavailable), ERRORS.translating("kv", "s0"):
        raise rex.RedisClusterException("Redis Cluster cannot be connected. Please provide at least one node")
    with pytest.raises(StoreError) as caught, ERRORS.translating("kv", "s0"):
        raise rex.RedisClusterException("No way to dispatch this command")
    assert not isinstance(caught.value, StoreUnavailable)
    assert caught.value.retryable is False


def test_cluster_urls_list_their_startup_nodes() -> None:
    target = parse_url("redis-cluster://user:p%40ss@10.0.0.1:7001,10.0.0.2:7002?prefix=s0_")
    assert target.cluster
    assert target.nodes == (("10.0.0.1", 7001), ("10.0.0.2", 7002))
    assert (target.username, target.password, target.prefix) == ("user", "p@ss", "s0_")


def test_standalone_urls_keep_their_options_but_not_the_prefix() -> None:
    target = parse_url("rediss://:secret@host:6380/2?prefix=a.b&socket_keepalive=true")
    assert not target.cluster
    assert target.prefix == "a.b"
    assert target.url == "rediss://:secret@host:6380/2?socket_keepalive=true"


@pytest.mark.parametrize(
    "url",
    ["redis://h:1/0?prefix={x}", "redis-cluster://h", "redis-cluster://h:p", "memcached://h:1"],
)
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_url(url)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"index_bucket": 4}, "did you mean 'index_buckets'"),
        ({"socket_timeout": "soon"}, "socket_timeout"),
        ({"index_buckets": 2000}, "index_buckets"),
        ({"retries": -1}, "retries"),
        ({"namespace": "a}{b"}, "namespace"),  # a brace would break the hash tags
    ],
)
def test_options_are_typed(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        KeyValueAdapter("redis://127.0.0.1:1/0", store="kv", shard="s0", options=options)
    assert "stores.kv.options." in str(caught.value)


def test_option_defaults_are_the_adapters() -> None:
    options = KeyValueOptions()
    assert (options.socket_timeout, options.connect_timeout, options.pool_size, options.retries) == (10, 5, None, 0)
    assert (options.buckets(cluster=False), options.buckets(cluster=True)) == (1, 64)
    assert KeyValueOptions(index_buckets=4).buckets(cluster=True) == 4
    adapter = KeyValueAdapter("redis-cluster://127.0.0.1:1", store="kv", shard="s0", options={"namespace": "ns"})
    assert isinstance(adapter.options, KeyValueOptions)
    assert Capability.APPLY_ONCE | Capability.SCRIPTS in adapter.capabilities


@given(st.integers(MIN_TOKEN, MAX_TOKEN), st.integers(MIN_TOKEN, MAX_TOKEN))
def test_token_hex_sorts_like_the_tokens(a: int, b: int) -> None:
    assert (a < b) == (_token_hex(a) < _token_hex(b))
    assert len(_token_hex(a)) == 16


_KEY_VALUES = {
    "str": st.text(),
    "bytes": st.binary(),
    "int": st.integers() | st.integers(-(2**200), 2**200),
    "decimal": st.decimals(allow_nan=False),
    "uuid": st.uuids(),
    "date": st.dates(),
    "datetime": st.datetimes(timezones=st.just(dt.UTC)),
    "pair": st.tuples(st.text(max_size=3), st.integers(-3, 3)),
}


@pytest.mark.parametrize("kind", sorted(_KEY_VALUES))
def test_ordered_encoding_sorts_like_python_and_is_prefix_free(kind: str) -> None:
    @settings(max_examples=300, deadline=None)
    @given(_KEY_VALUES[kind], _KEY_VALUES[kind])
    def check(a: Any, b: Any) -> None:
        assert_sorts_like_values_and_prefix_free(a, b, _ordered(a), _ordered(b))

    check()


def test_ordered_decimals_keep_every_digit() -> None:
    """Regression (issue 14): the shard-key index encoded Decimals through ``normalize()``,
    which rounds to 28 digits, so two 34-digit shard keys took one place; it is keys.py's
    encoding now (exact, and the same bytes as before for shorter numbers)."""
    a, b = decimal.Decimal("1" * 33 + "2"), decimal.Decimal("1" * 33 + "3")
    assert _ordered(a) < _ordered(b)
    assert _ordered(a) == b"\x21" + decimal_order_bytes(a)
    assert _ordered(decimal.Decimal("-12.50")) == b"\x21\x01\x7f\xff\xff\xfe\xce\xcd\xca\xff"


def test_decimal_infinities_and_nan_have_places() -> None:
    inf, nan = decimal.Decimal("Infinity"), decimal.Decimal("NaN")
    values = [-inf, decimal.Decimal("-1e999"), decimal.Decimal(0), decimal.Decimal("1e999"), inf]
    encoded = [_ordered(value) for value in values]
    assert encoded == sorted(encoded)
    assert _ordered(nan) > _ordered(inf)


# -- on the servers --------------------------------------------------------------------

MODES = [pytest.param("standalone", marks=pytest.mark.redis), pytest.param("cluster", marks=pytest.mark.redis)]


def _url(mode: str) -> str:
    return redis_urls()[0] if mode == "standalone" else redis_cluster_url()


Factory = Callable[..., KeyValueAdapter]


@pytest.fixture(params=MODES)
def make(request: pytest.FixtureRequest) -> Iterator[Factory]:
    """Adapters on one mode's server, under a fresh namespace; everything dropped after."""
    yield from _adapters(request.param)


@pytest.fixture
def make_cluster() -> Iterator[Factory]:
    """Adapters on the stack's Redis Cluster."""
    yield from _adapters("cluster")


def _adapters(mode: str) -> Iterator[Factory]:
    namespace = f"kvt{uuid.uuid4().hex[:8]}_"
    made: list[KeyValueAdapter] = []

    def factory(schema: EntitySchema = DOC, **options: Any) -> KeyValueAdapter:
        if made and not options and schema is DOC:
            return made[0]  # hypothesis runs a test body many times: reuse the connection
        adapter = KeyValueAdapter(_url(mode), store="kv", shard="s0", options={"namespace": namespace, **options})
        if not made:
            require("redis-cluster" if mode == "cluster" else "redis", adapter.ping)
        adapter.ensure(schema, with_token=True)
        made.append(adapter)
        return adapter

    yield factory
    if made:
        client: Any = made[0].client
        for key in client.scan_iter(match=f"*{namespace}*"):
            client.delete(key)
    for adapter in made:
        adapter.close()


def _slot(adapter: KeyValueAdapter, key: bytes) -> int:
    client: Any = adapter.client
    return int(client.execute_command("CLUSTER KEYSLOT", key)) if adapter.cluster else 0


def test_layout_is_a_hash_per_row_beside_its_index_bucket(make: Factory) -> None:
    adapter = make()
    key = "user:{42}:*"
    adapter.put(DOC, _row(key, 7, n=3))
    row_key, index_key, keyhex = adapter._get_layout(DOC).locate(key)
    assert keyhex == encode_key(key).hex().encode()
    assert row_key.startswith(b"{" + adapter.prefix.encode() + b"doc:")
    assert row_key.endswith(b":r:" + keyhex)
    assert _slot(adapter, row_key) == _slot(adapter, index_key)
    ordered = b"\x10" + key.encode() + b"\x00\x01"
    stored = adapter.client.hgetall(row_key)
    assert stored == {b"id": key.encode(), b"n": b"3", TOKEN_FIELD.encode(): _token_hex(7), b"_ps_k": ordered}
    assert adapter.client.zrange(index_key, 0, -1) == [_token_hex(7) + keyhex]
    key_index = index_key[:-3] + b"kidx"
    assert _slot(adapter, key_index) == _slot(adapter, row_key)
    assert adapter.client.zrange(key_index, 0, -1) == [ordered + keyhex + b"%08x" % len(keyhex)]


@pytest.mark.redis
def test_cluster_spreads_one_entity_over_every_master(make_cluster: Factory) -> None:
    adapter = make_cluster()
    adapter.put_many(DOC, [_row(f"k{i}", i) for i in range(200)])
    client: Any = adapter.client
    nodes = {client.get_node_from_key(adapter._get_layout(DOC).locate(f"k{i}")[0]).name for i in range(200)}
    assert len(nodes) == len(client.get_primaries()) == 3
    assert adapter.count(DOC) == 200


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.text(st.characters(codec="utf-8"), min_size=1, max_size=30)
    | st.sampled_from(["{user}", "}{", "*", "a:b:*", "{$gt: ''}", "'; DROP TABLE x; --", "MATCH (n) DELETE n"]),
    body=st.dictionaries(
        st.text(max_size=8) | st.sampled_from(["$where", "$gt", "a.b", "{k}", ""]),
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        max_size=5,
    ),
)
def test_arbitrary_keys_and_documents_are_literal(make: Factory, key: str, body: dict[str, Any]) -> None:
    adapter = make()
    adapter.put(DOC, _row("guard", 1))
    adapter.put(DOC, _row(key, 5, body=body))
    got = adapter.get(DOC, key)
    assert got == _row(key, 5, body=body)
    assert adapter.get(DOC, "guard") is not None
    assert adapter.delete(DOC, key) is True
    assert adapter.get(DOC, key) is None


def test_a_new_token_replaces_the_old_index_member(make: Factory) -> None:
    adapter = make()
    adapter.put(DOC, _row("moved", 5))
    adapter.put(DOC, _row("moved", 7))
    _, index_key, _ = adapter._get_layout(DOC).locate("moved")
    assert adapter.client.zcard(index_key) == 1
    assert list(adapter.scan(DOC, tokens=TokenRange(0, 6))) == []
    assert [row["id"] for batch in adapter.scan(DOC, tokens=TokenRange(6, 8)) for row in batch] == ["moved"]


def test_token_range_bounds(make: Factory) -> None:
    adapter = make()
    tokens = [MIN_TOKEN, -1, 0, 1, MAX_TOKEN]
    adapter.put_many(DOC, [_row(f"t{token}", token) for token in tokens])

    def found(span: TokenRange) -> list[int]:
        return sorted(row[TOKEN_FIELD] for batch in adapter.scan(DOC, tokens=span, batch_size=2) for row in batch)

    assert found(TokenRange(MIN_TOKEN, 2**63)) == tokens
    assert found(TokenRange(0, 1)) == [0]
    assert found(TokenRange(-1, 1)) == [-1, 0]
    assert found(TokenRange(MAX_TOKEN, 2**63)) == [MAX_TOKEN]
    assert found(TokenRange(MIN_TOKEN, MIN_TOKEN + 1)) == [MIN_TOKEN]
    assert found(TokenRange(2, MAX_TOKEN)) == []


def test_expired_rows_leave_the_index_lazily(make: Factory) -> None:
    adapter = make()
    adapter.put_ttl(DOC, [_row(f"e{i}", i) for i in range(5)], ttl=0.2)
    adapter.put(DOC, _row("kept", 99))
    deadline = time.monotonic() + 10
    while adapter.get(DOC, "e0") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    layout = adapter._get_layout(DOC)
    indexed = sum(adapter.client.zcard(layout.index_key(b)) for b in range(layout.buckets))
    assert indexed == 6  # members outlive their rows until a read meets them
    assert [row["id"] for row in adapter.find(DOC, Query())] == ["kept"]
    indexed = sum(adapter.client.zcard(layout.index_key(b)) for b in range(layout.buckets))
    assert indexed == 1


def test_an_expired_row_rewritten_with_another_token_is_listed_once(make: Factory) -> None:
    adapter = make()
    adapter.put_ttl(DOC, [_row("phoenix", 5)], ttl=0.1)
    deadline = time.monotonic() + 10
    while adapter.get(DOC, "phoenix") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    adapter.put(DOC, _row("phoenix", 9, n=1))
    assert list(adapter.scan(DOC, tokens=TokenRange(0, 6))) == []
    assert adapter.count(DOC) == 1
    assert [row[TOKEN_FIELD] for row in adapter.find(DOC, Query())] == [9]


def test_the_first_layout_wins(make: Factory) -> None:
    first = make(index_buckets=4)
    first.put_many(DOC, [_row(f"b{i}", i) for i in range(20)])
    second = make(index_buckets=32)
    assert second._get_layout(DOC).buckets == 4
    assert second.count(DOC) == 20
    assert second.describe().tables == {"doc": 20}


def test_scripts_survive_a_flushed_script_cache(make: Factory) -> None:
    adapter = make()
    adapter.put(DOC, _row("before", 1))
    adapter.client.script_flush()
    adapter.put(DOC, _row("after", 2))
    adapter.client.script_flush()
    assert adapter.put_many(DOC, [_row(f"m{i}", i) for i in range(3)]) == 3
    assert adapter.count(DOC) == 5


def test_increment_keeps_float_text_exact(make: Factory) -> None:
    adapter = make()
    adapter.put(DOC, _row("f", 1, x=0.1))
    assert adapter.increment(DOC, "f", "x", 0.2) == 0.1 + 0.2
    assert adapter.increment(DOC, "f", "x", 1e300) == 0.1 + 0.2 + 1e300
    with pytest.raises(QueryError, match="non-key"):
        adapter.increment(DOC, "f", "id", 1)


def test_an_unreachable_server_is_unavailable() -> None:
    adapter = KeyValueAdapter("redis://127.0.0.1:1/0", store="kv", shard="s0", options={"connect_timeout": 1})
    with pytest.raises(StoreUnavailable) as caught:
        adapter.ping()
    assert caught.value.retryable
    assert adapter.describe().reachable is False


def test_an_unreachable_cluster_is_unavailable() -> None:
    adapter = KeyValueAdapter("redis-cluster://127.0.0.1:1", store="kv", shard="s0", options={"connect_timeout": 1})
    with pytest.raises(StoreUnavailable):
        adapter.ping()


@pytest.mark.redis
def test_the_stack_urls_answer() -> None:
    for url in redis_urls():
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        require("redis", client.ping)
        client.close()


def test_lone_surrogates_and_enums_are_stored(make: Factory) -> None:
    import enum

    class Color(enum.Enum):
        RED = "red"

    adapter = make()
    adapter.put(DOC, _row("s", 1, body={"\ud800": "\udfff"}))
    assert adapter.get(DOC, "s") == _row("s", 1, body={"\ud800": "\udfff"})
    assert adapter.update(DOC, "s", {"body.c": Color.RED, "n": 4}) is True
    assert adapter.get(DOC, "s") == _row("s", 1, body={"\ud800": "\udfff", "c": "red"}, n=4)


def test_update_refuses_keys_and_paths_into_scalars(make: Factory) -> None:
    adapter = make()
    adapter.put(DOC, _row("u", 1, body={"list": [1]}))
    with pytest.raises(QueryError, match="key"):
        adapter.update(DOC, "u", {"id": "v"})
    with pytest.raises(QueryError, match="not a nested field"):
        adapter.update(DOC, "u", {"n.deep": 1})
    with pytest.raises(QueryError, match="not an object"):
        adapter.update(DOC, "u", {"body.list.x": 1})
    assert adapter.get(DOC, "u") == _row("u", 1, body={"list": [1]})


def _count_listed(adapter: KeyValueAdapter) -> list[int]:
    """Record how many index members each fetch round reads."""
    listed: list[int] = []
    original = adapter._fetch

    def fetch(layout: Any, by_key: bool, members: list[Any], *rest: Any) -> Any:
        listed.append(len(members))
        return original(layout, by_key, members, *rest)

    adapter._fetch = fetch  # type: ignore[method-assign,assignment]
    return listed


class Reading(Entity, store="items", key=("sensor", "at"), shard_key="sensor"):
    sensor: int
    at: dt.datetime
    value: float = 0.0


READING = schema_of(Reading)


def test_key_range_scans_read_the_shard_key_index(make: Factory) -> None:
    adapter = make(READING)
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    sensors = [-(2**70), -5, -1, 0, 1, 7, 255, 256, 2**70]
    rows = [
        {"sensor": sensor, "at": base + dt.timedelta(minutes=m), "value": 1.0, TOKEN_FIELD: 0}
        for sensor in sensors
        for m in range(3)
    ]
    adapter.put_many(READING, rows)

    def found(keys: KeyRange) -> list[int]:
        return sorted(row["sensor"] for batch in adapter.scan(READING, keys=keys, batch_size=2) for row in batch)

    assert found(KeyRange(-5, 7)) == [s for s in sensors if -5 <= s < 7 for _ in range(3)]
    assert found(KeyRange(None, 0)) == [s for s in sensors if s < 0 for _ in range(3)]
    assert found(KeyRange(256, None)) == [256] * 3 + [2**70] * 3
    assert found(KeyRange(8, 9)) == []
    assert found(KeyRange(decimal.Decimal("0.5"), 2)) == [1, 1, 1]  # other types: walked and filtered

    listed = _count_listed(adapter)
    assert found(KeyRange(0, 1)) == [0, 0, 0]
    assert sum(listed) == 3  # only the range was read


def test_range_filters_on_the_shard_key_walk_only_their_span(make: Factory) -> None:
    adapter = make(READING)
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    adapter.put_many(READING, [{"sensor": s, "at": base, "value": float(s), TOKEN_FIELD: 0} for s in range(-50, 50)])
    listed = _count_listed(adapter)
    from adapters.base import Filter

    def ids(*filters: Filter) -> list[int]:
        return [row["sensor"] for row in adapter.find(READING, Query(filters))]

    assert ids(Filter("sensor", "ge", 10), Filter("sensor", "lt", 13)) == [10, 11, 12]
    assert ids(Filter("sensor", "eq", -7)) == [-7]
    assert ids(Filter("sensor", "gt", 47)) == [48, 49]
    assert ids(Filter("sensor", "le", -49), Filter("value", "lt", 0)) == [-50, -49]
    assert ids(Filter("sensor", "gt", 5), Filter("sensor", "lt", 3)) == []
    assert sum(listed) == 3 + 1 + 2 + 2
    assert adapter.count(READING, [Filter("sensor", "ge", 40)]) == 10
    assert len(ids(Filter("sensor", "ge", 2.5))) == 47  # a float bound: everything is walked


class Account(Entity, store="items", key="id", shard_key="tenant"):
    id: str
    tenant: str


ACCOUNT = schema_of(Account)


def test_moving_a_shard_key_moves_its_index_member(make: Factory) -> None:
    adapter = make(ACCOUNT)
    adapter.put(ACCOUNT, {"id": "x", "tenant": "acme", TOKEN_FIELD: 1})
    adapter.put(ACCOUNT, {"id": "x", "tenant": "zeta", TOKEN_FIELD: 1})

    def ids(keys: KeyRange) -> list[str]:
        return [row["id"] for batch in adapter.scan(ACCOUNT, keys=keys) for row in batch]

    assert ids(KeyRange("a", "b")) == []
    assert ids(KeyRange("z", None)) == ["x"]
    layout = adapter._get_layout(ACCOUNT)
    members = sum(adapter.client.zcard(layout.key_index_key(b)) for b in range(layout.buckets))
    assert members == 1
    assert adapter.delete(ACCOUNT, "x") is True
    members = sum(adapter.client.zcard(layout.key_index_key(b)) for b in range(layout.buckets))
    assert members == 0


def test_eq_and_in_on_the_key_read_rows_by_key(make: Factory) -> None:
    from adapters.base import Filter

    adapter = make()
    adapter.put_many(DOC, [_row(f"k{i}", i, n=i) for i in range(30)])
    listed = _count_listed(adapter)
    found = adapter.find(DOC, Query((Filter("id", "in", ["k3", "k1", "nope", None]), Filter("n", "lt", 3))))
    assert [row["id"] for row in found] == ["k1"]
    assert adapter.count(DOC, [Filter("id", "eq", "k7")]) == 1
    assert adapter.count(DOC, [Filter("id", "in", [])]) == 0
    assert listed == []  # no index was walked
    assert adapter.count(DOC, [Filter("id", "eq", 7)]) == 0  # wrong type: walked, matches nothing
    assert sum(listed) == 30


# -- apply-once increments and scripts ------------------------------------------------


def test_increment_once_applies_each_marker_once(make: Factory) -> None:
    adapter = make()
    adapter.put(DOC, _row("c", 1, n=10, x=0.1))
    assert adapter.increment_once(DOC, "c", "n", 5, marker="saga-1:0") == 15
    assert adapter.increment_once(DOC, "c", "n", 5, marker="saga-1:0") == 15  # a replay: no effect
    assert adapter.increment_once(DOC, "c", "n", 5, marker="saga-2:0") == 20
    assert adapter.increment_once(DOC, "c", "n", 5, marker="saga-1:0", undo=True) == 15
    assert adapter.increment_once(DOC, "c", "n", 5, marker="saga-1:0", undo=True) == 15  # undone once
    assert adapter.increment_once(DOC, "c", "n", 5, marker="saga-1:0") == 15  # a zombie retry after the undo
    assert adapter.increment_once(DOC, "c", "x", 0.2, marker="saga-3:0") == 0.1 + 0.2
    assert adapter.get(DOC, "c") == _row("c", 1, n=15, x=0.1 + 0.2)


def test_an_undo_that_comes_first_leaves_a_tombstone(make: Factory) -> None:
    adapter = make()
    adapter.put(DOC, _row("t", 1, n=3))
    assert adapter.increment_once(DOC, "t", "n", 4, marker="m", undo=True) == 3
    assert adapter.increment_once(DOC, "t", "n", 4, marker="m") == 3
    assert adapter.increment_once(DOC, "t", "x", 1.5, marker="null field", undo=True) is None


def test_increment_once_needs_the_row_and_a_numeric_field(make: Factory) -> None:
    adapter = make()
    with pytest.raises(NotFoundError):
        adapter.increment_once(DOC, "absent", "n", 1, marker="m")
    adapter.put(DOC, _row("absent", 1, n=1))
    assert adapter.increment_once(DOC, "absent", "n", 1, marker="m") == 2  # the miss left no marker
    with pytest.raises(QueryError, match="int"):
        adapter.increment_once(DOC, "absent", "n", 1.5, marker="other")
    with pytest.raises(QueryError, match="non-key"):
        adapter.increment_once(DOC, "absent", "id", 1, marker="other")


def test_the_marker_lives_in_the_rows_slot_and_expires(make: Factory) -> None:
    adapter = make()
    adapter.put(DOC, _row("s", 1, n=0))
    adapter.increment_once(DOC, "s", "n", 1, marker="saga-9:1")
    layout = adapter._get_layout(DOC)
    marker_key = layout.marker_key("s", "saga-9:1")
    client: Any = adapter.client
    assert client.get(marker_key) == b"applied"
    assert int(client.pttl(marker_key)) > 0
    assert _slot(adapter, marker_key) == _slot(adapter, layout.locate("s")[0])


def test_run_script_runs_lua_on_the_shards_keys(make: Factory) -> None:
    adapter = make()
    tag = "{" + adapter.prefix + "script}"
    keys = [f"{tag}:a", f"{tag}:b"]  # one hash tag: one slot, as a cluster requires
    swap = "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[2]); return redis.call('MGET', KEYS[1], KEYS[2])"
    assert adapter.run_script(swap, keys, ["x", 1]) == [b"x", b"1"]
    adapter.client.script_flush()
    assert adapter.run_script("return redis.call('GET', KEYS[1])", keys[:1], []) == b"x"
    with pytest.raises(StoreError, match="ResponseError") as caught:
        adapter.run_script("return redis.call('NO_SUCH_COMMAND')", keys[:1], [])
    assert caught.value.retryable is False


def test_shards_on_one_server_share_a_client(make: Factory) -> None:
    first = make()
    url = _url("cluster" if first.cluster else "standalone")
    options = {"namespace": first.options.namespace}
    second = KeyValueAdapter(url, store="kv", shard="s1", options=options)
    third = KeyValueAdapter(url, store="kv", shard="s2", options=options)
    assert second.client is third.client
    second.close()
    third.ping()  # still open: the client closes with its last user
    third.close()
    assert second.describe().reachable  # a closed adapter opens a client again
    second.close()
