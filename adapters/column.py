"""The column adapter: cassandra-driver over Apache Cassandra (5.0+) and ScyllaDB.

URL: ``cassandra://[user:password@]HOST[:PORT][,HOST[:PORT]...]/KEYSPACE`` (port 9042 by
default). One keyspace per shard, created on first ``ensure`` if missing with
``SimpleStrategy`` RF 1, or with the store option ``replication`` (a mapping such as
``{"class": "NetworkTopologyStrategy", "dc1": 3}``). Other options: ``namespace`` (a
prefix of every table name), ``consistency`` (default ``LOCAL_QUORUM``),
``request_timeout`` and ``connect_timeout`` (seconds), ``local_dc``, ``protocol_version``
(default: negotiated with the server, highest first).

Design choices, and why:

* One ``Cluster``/``Session`` per contact-point set (and credentials and settings),
  shared by every adapter in the process and reference counted: many shards on one
  cluster are many keyspaces, not many connection pools. The protocol version is
  negotiated by the driver. Every statement is prepared once (per table, or per query
  shape for ``find``) and executed with bound values, so keys and values that look like
  CQL are data.
* Tables: ``PRIMARY KEY ((shard key), clustering)`` when the shard key is a proper part
  of the key (the clustering columns are the other key fields, in key order: that is what
  ``partition`` reads natively, in clustering order); otherwise ``PRIMARY KEY ((key))``.
  Three hidden regular columns: ``_ps_token`` (our 64-bit token), ``_ps_skey`` (an
  order-preserving 64-bit prefix of the first shard-key field) and ``_ps_expires``
  (the exact expiry instant of a TTL row, in microseconds).
* Types are stored losslessly: datetimes as ``bigint`` microseconds since the epoch in
  UTC (CQL ``timestamp`` keeps milliseconds only), json as ``text``, uuid as ``uuid``
  (``blob`` in clustering columns, whose byte order is Python's UUID order), decimal as
  ``decimal`` (``-0`` comes back as ``0``, which compares equal), bytes as ``blob``. A
  partition key made of one str/bytes column is stored with a constant ``=`` prefix,
  because Cassandra rejects an empty partition key and ``""`` is a valid key.
* Token ranges (what a rebalance moves): Cassandra partitions by Murmur3 of the partition
  key bytes, not by our token, so ``token()`` cannot select our ranges. ``_ps_token``
  carries a Storage-Attached Index (SAI, Cassandra 5.0) and ``scan(tokens=...)`` is the
  SAI range query ``_ps_token >= ? AND _ps_token < ?``: an index range read, not a full
  scan. Shard-key ranges (range routing) likewise use the SAI index on ``_ps_skey``: the
  prefix is monotone (ints, datetimes and dates exactly; strings, bytes and UUIDs by
  their first 8 bytes; decimals by their floor), so the index returns a superset that
  the exact bound then trims. (SAI cannot index a sole partition-key column, and does not
  do range queries on text, hence the numeric prefix column.)
* Scans page with the driver's paging state (``fetch_size`` = batch size). A paging
  state resumes after the last row returned, in (partition token, clustering) order: it
  is keyset pagination, never an offset, so each page costs the same and a row written
  during a scan is seen at most once.
* ``find``/``count``: filters are pushed to the server where CQL's semantics are exactly
  Python's (``eq``/``in`` without null, range comparisons on str, bytes, int, bool,
  date, datetime, non-zero floats), with ``ALLOW FILTERING``. Cassandra then drives
  the read from an SAI index (declared ``indexes`` get one, and a range on the first
  shard-key field uses ``_ps_skey``), or from the partition key when every partition
  column is fixed; otherwise it FILTERS DURING A FULL SCAN of the shard's table on the
  server: correct, but its cost grows with the table, so declare ``indexes`` for fields
  you filter on. ``ne``, ``eq None``, ``in`` with None, every decimal filter and uuid
  ranges are evaluated client-side only. Every returned row is re-checked with ``Filter.matches``
  (exact semantics whatever was pushed), then ordered (nulls first, ties by key) and
  limited client-side: CQL orders only by clustering within a partition. ``count``
  reads only the filtered columns, never whole rows.
* Upserts are native (``INSERT`` is an upsert; null fields are written as nulls, so a
  put replaces the row). ``delete`` must say whether the row existed: it reads the row
  (one single-partition read) and then deletes it, instead of ``DELETE ... IF EXISTS``,
  which is a Paxos round (about four times the latency) and buys no linearizability
  while the writes are not LWTs too. Two concurrent deletes of one row may both
  answer True.
* TTL: ``INSERT ... USING TTL`` with the TTL rounded so that Cassandra's second-granular
  expiry happens at most one second late, never early, and ``_ps_expires`` holds the
  exact instant: reads drop rows past it, so expiry observed through get is exact.
  ``ttl()`` reads ``_ps_expires``.
* Every driver exception is translated into ``toolkit.errors`` (see ``DRIVER_ERRORS``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import hashlib
import heapq
import json
import math
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final
from urllib.parse import parse_qsl, unquote

import cassandra
import cassandra.connection
import cassandra.protocol
from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import BoundStatement, PreparedStatement, tuple_factory
from cassandra.util import Date as CassandraDate

from adapters import base
from adapters.base import TOKEN_FIELD, Capability, ExpiringScan, Filter, Query, Row, ShardInfo, sort_key
from adapters.registry import redact_url
from sharding.base import KeyRange, TokenRange
from sharding.core.errors import ConfigError, QueryError, StoreError, StoreTimeout, StoreUnavailable
from sharding.core.model import EntitySchema, FieldSpec

__all__ = ["DRIVER_ERRORS", "ColumnAdapter", "parse_url", "translate_errors"]

SKEY_FIELD: Final = "_ps_skey"
"""Hidden, SAI-indexed, order-preserving 64-bit prefix of the first shard-key field."""
EXPIRES_FIELD: Final = base.EXPIRES_FIELD
"""Hidden: the exact expiry instant of a TTL row (microseconds since the epoch), or null.
(The column shares the contract's name; ``*_expiring`` rows carry it in seconds.)"""

_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
_PLAIN: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICRO: Final = dt.timedelta(microseconds=1)
_MIN_TOKEN: Final = -(2**63)
_MAX_TOKEN: Final = 2**63 - 1
_CONCURRENCY: Final = 64
_PK_PREFIX_STR: Final = "="
_PK_PREFIX_BYTES: Final = b"="
_FIND_CACHE: Final = 256
_CQL_OPS: Final = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}

# -- errors --------------------------------------------------------------------------

DRIVER_ERRORS: Final[tuple[tuple[type[BaseException], type[StoreError], bool], ...]] = (
    # (driver exception, toolkit error, retryable); the first matching row wins, so
    # subclasses come before their bases.
    (NoHostAvailable, StoreUnavailable, True),
    (cassandra.UnresolvableContactPoints, StoreUnavailable, True),
    (cassandra.connection.ConnectionShutdown, StoreUnavailable, True),
    (cassandra.connection.ConnectionBusy, StoreUnavailable, True),
    (cassandra.connection.ConnectionException, StoreUnavailable, True),
    (cassandra.Unavailable, StoreUnavailable, True),
    (cassandra.protocol.OverloadedErrorMessage, StoreUnavailable, True),
    (cassandra.protocol.IsBootstrappingErrorMessage, StoreUnavailable, True),
    (cassandra.OperationTimedOut, StoreTimeout, True),
    (cassandra.Timeout, StoreTimeout, True),  # ReadTimeout, WriteTimeout
    (cassandra.CoordinationFailure, StoreError, False),  # ReadFailure, WriteFailure: replica errors
    (cassandra.AuthenticationFailed, StoreError, False),
    (cassandra.Unauthorized, StoreError, False),
    (cassandra.InvalidRequest, StoreError, False),
    (cassandra.AlreadyExists, StoreError, False),
    (cassandra.ConfigurationException, StoreError, False),
    (cassandra.FunctionFailure, StoreError, False),
    (cassandra.RequestValidationException, StoreError, False),
    (cassandra.RequestExecutionException, StoreError, False),
    (cassandra.protocol.ErrorMessage, StoreError, False),  # SyntaxException, ServerError, ...
    (cassandra.DriverException, StoreError, False),
    (cassandra.connection.ProtocolError, StoreError, False),
    (OSError, StoreUnavailable, True),  # socket errors the driver lets through
)
"""Every driver exception class the adapter catches, with the error it becomes."""

_CAUGHT: Final = tuple(row[0] for row in DRIVER_ERRORS)


def translate(exc: BaseException, store: str, shard: str, key: Any = None) -> StoreError:
    """The toolkit error for a driver exception (see ``DRIVER_ERRORS``)."""
    for driver_class, error_class, retryable in DRIVER_ERRORS:
        if isinstance(exc, driver_class):
            return error_class(_message(exc), store=store, shard=shard, key=key, retryable=retryable)
    return StoreError(_message(exc), store=store, shard=shard, key=key, retryable=False)


@contextlib.contextmanager
def translate_errors(store: str, shard: str, key: Any = None) -> Iterator[None]:
    """Turn driver exceptions into the toolkit's hierarchy, with store, shard and key."""
    try:
        yield
    except _CAUGHT as exc:
        raise translate(exc, store, shard, key) from exc


def _message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


# -- URLs and shared sessions --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target:
    """What a URL names: contact points, credentials and the keyspace."""

    points: tuple[tuple[str, int], ...]
    keyspace: str
    username: str | None = None
    password: str | None = None
    query: tuple[tuple[str, str], ...] = ()


def parse_url(url: str) -> _Target:
    """``cassandra://[user:pw@]h1[:p1][,h2[:p2]...]/keyspace[?k=v]`` -> its parts."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0].lower() != "cassandra":
        raise ConfigError(f"not a cassandra:// URL: {redact_url(url)!r}")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, _, secret = userinfo.partition(":")
        username, password = unquote(user), unquote(secret)
    points = tuple(_point(part, url) for part in netloc.split(",") if part)
    keyspace = path.strip("/")
    if not points:
        raise ConfigError(f"{redact_url(url)}: no contact point (cassandra://HOST:PORT/KEYSPACE)")
    if not _NAME.match(keyspace):
        raise ConfigError(
            f"{redact_url(url)}: the keyspace must be letters, digits and _ (at most 48), not {keyspace!r}"
        )
    return _Target(points, keyspace.lower(), username, password, tuple(parse_qsl(query)))


def _point(text: str, url: str) -> tuple[str, int]:
    host, port = text, "9042"
    if text.startswith("["):  # [IPv6]:port
        host, _, tail = text[1:].partition("]")
        port = tail.removeprefix(":") or port
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{redact_url(url)}: bad contact point {text!r} (HOST:PORT)")
    return host, int(port)


@dataclass
class _Shared:
    cluster: Cluster
    session: Session
    users: int = 0
    keyspaces: set[str] = field(default_factory=set)


_SHARED: dict[tuple[Any, ...], _Shared] = {}
_SHARED_LOCK = threading.Lock()


def _consistency(name: str) -> int:
    try:
        return int(getattr(ConsistencyLevel, name.upper()))
    except AttributeError:
        raise ConfigError(f"unknown Cassandra consistency level {name!r}") from None


def _acquire(key: tuple[Any, ...], target: _Target, settings: Mapping[str, Any]) -> _Shared:
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        if shared is None:
            shared = _connect(target, settings)
            _SHARED[key] = shared
        shared.users += 1
        return shared


def _connect(target: _Target, settings: Mapping[str, Any]) -> _Shared:
    policy = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings["local_dc"]))
    profile = ExecutionProfile(
        load_balancing_policy=policy,
        consistency_level=settings["consistency"],
        request_timeout=settings["request_timeout"],
        row_factory=tuple_factory,
    )
    auth = PlainTextAuthProvider(target.username, target.password or "") if target.username is not None else None
    pinned = {"protocol_version": settings["protocol_version"]} if settings["protocol_version"] else {}
    cluster = Cluster(
        **pinned,
        contact_points=list(target.points),
        auth_provider=auth,
        connect_timeout=settings["connect_timeout"],
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    try:
        session = cluster.connect()
    except BaseException:
        cluster.shutdown()
        raise
    return _Shared(cluster, session)


def _release(key: tuple[Any, ...]) -> None:
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        if shared is None:
            return
        shared.users -= 1
        if shared.users > 0:
            return
        del _SHARED[key]
    shared.cluster.shutdown()


# -- codecs --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Codec:
    """How one field is stored: its CQL type, and the conversions both ways."""

    cql: str
    to_db: Callable[[Any], Any]
    from_db: Callable[[Any], Any]
    ordered: bool
    """Whether CQL compares stored values in Python's order (range filters may be pushed)."""


def _same(value: Any) -> Any:
    return value


def _micros(value: dt.datetime) -> int:
    aware = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
    return (aware - _EPOCH) // _MICRO


def _datetime_from(value: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=value)


def _date_from(value: Any) -> dt.date:
    return value.date() if isinstance(value, CassandraDate) else value  # type: ignore[no-any-return]


def _json_to(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _none_safe(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def wrapped(value: Any) -> Any:
        return None if value is None else convert(value)

    return wrapped


_CODECS: Final[dict[str, _Codec]] = {
    "str": _Codec("text", _same, _same, True),
    "int": _Codec("bigint", _same, _same, True),
    "float": _Codec("double", _same, _same, True),
    "bool": _Codec("boolean", _same, _same, True),
    "bytes": _Codec("blob", _none_safe(bytes), _none_safe(bytes), True),
    "datetime": _Codec("bigint", _none_safe(_micros), _none_safe(_datetime_from), True),
    "date": _Codec("date", _same, _none_safe(_date_from), True),
    "decimal": _Codec("decimal", _same, _same, False),
    "uuid": _Codec("uuid", _same, _same, False),
    "json": _Codec("text", _none_safe(_json_to), _none_safe(json.loads), False),
}
_UUID_CLUSTERING: Final = _Codec(
    "blob", _none_safe(lambda value: value.bytes), _none_safe(lambda value: uuid.UUID(bytes=bytes(value))), True
)
_PK_STR: Final = _Codec(
    "text", _none_safe(lambda value: _PK_PREFIX_STR + value), _none_safe(lambda value: value[1:]), True
)
_PK_BYTES: Final = _Codec(
    "blob", _none_safe(lambda value: _PK_PREFIX_BYTES + bytes(value)), _none_safe(lambda value: bytes(value)[1:]), True
)
_PYTHON_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "str": (str,),
    "int": (int,),
    "float": (float,),
    "bool": (bool,),
    "bytes": (bytes,),
    "datetime": (dt.datetime,),
    "date": (dt.date,),
    "uuid": (uuid.UUID,),
}


def _pushable_value(spec: FieldSpec, value: Any) -> bool:
    """Whether CQL compares ``value`` with this field exactly as Python would."""
    types = _PYTHON_TYPES.get(spec.type)
    if types is None or not isinstance(value, types):
        return False
    number: Any = value  # the tuple isinstance above narrows to object
    if spec.type == "int":
        return not isinstance(number, bool) and _MIN_TOKEN <= number <= _MAX_TOKEN
    if spec.type == "float":
        return not (math.isnan(number) or number == 0.0)  # -0.0 == 0.0 in Python, not in CQL
    return not (spec.type == "date" and isinstance(value, dt.datetime))


def skey_prefix(value: Any) -> int:
    """An order-preserving (monotone non-decreasing) signed 64-bit image of a key value."""
    if isinstance(value, tuple):
        value = value[0]
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return max(_MIN_TOKEN, min(_MAX_TOKEN, value))
    if isinstance(value, dt.datetime):
        return _micros(value)
    if isinstance(value, dt.date):
        return value.toordinal()
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return _MAX_TOKEN if value > 0 else _MIN_TOKEN
        return max(_MIN_TOKEN, min(_MAX_TOKEN, int(value.to_integral_value(rounding=decimal.ROUND_FLOOR))))
    if isinstance(value, uuid.UUID):
        return (value.int >> 64) - 2**63
    if isinstance(value, str):
        value = value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return int.from_bytes(bytes(value)[:8].ljust(8, b"\0"), "big") - 2**63
    raise QueryError(f"cannot range-index a shard key of type {type(value).__name__}")


# -- tables --------------------------------------------------------------------------


@dataclass(slots=True)
class _Table:
    """One entity's table in one keyspace, and the statements prepared for it."""

    schema: EntitySchema
    qualified: str
    partition: tuple[str, ...]
    clustering: tuple[str, ...]
    codecs: dict[str, _Codec]
    columns: tuple[str, ...]
    """Every stored column, in SELECT order: fields, then the hidden ones."""
    with_token: bool
    indexed: frozenset[str]
    insert: PreparedStatement
    insert_ttl: PreparedStatement
    get: PreparedStatement
    exists: PreparedStatement
    delete: PreparedStatement
    cache: OrderedDict[str, PreparedStatement] = field(default_factory=OrderedDict)
    writers: tuple[tuple[str, Callable[[Any], Any] | None], ...] = ()
    """(field, conversion or None when stored as is) in INSERT order: every write row
    goes through it, so the codecs are looked up once per table, not per field."""

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self.partition + self.clustering

    def key_params(self, key: Any) -> tuple[Any, ...]:
        """Bound values of ``WHERE`` over the primary key, in its column order."""
        names = self.schema.key
        if len(names) == 1:  # one key field: it is the whole primary key
            return (self.codecs[names[0]].to_db(key),)
        parts = dict(zip(names, key if len(names) > 1 else (key,), strict=True))
        return tuple(self.codecs[name].to_db(parts[name]) for name in self.key_columns)

    def decode(self, values: Sequence[Any], now: int) -> Row | None:
        """A row from a full SELECT, or None if it has expired (see ``_ps_expires``)."""
        expires = values[-1]
        if expires is not None and expires <= now:
            return None
        row: Row = {}
        for name, value in zip(self.columns[:-2], values, strict=False):
            codec = self.codecs.get(name)
            row[name] = codec.from_db(value) if codec is not None else value
        return row


def _with_expiry(table: _Table, values: Sequence[Any], now: int) -> Row | None:
    """``_Table.decode`` plus the row's expiry instant in seconds (None: never)."""
    row = table.decode(values, now)
    if row is not None:
        row[EXPIRES_FIELD] = None if values[-1] is None else values[-1] / 1_000_000
    return row


def _now_micros() -> int:
    return time.time_ns() // 1000


class ColumnAdapter(ExpiringScan):
    """One shard: one keyspace on a Cassandra cluster. See the module docstring."""

    capabilities: ClassVar[Capability] = Capability.PARTITION_RANGE | Capability.TTL

    def __init__(self, url: str, *, store: str, shard: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, store=store, shard=shard, options=options)
        self._target = parse_url(url)
        settings = {**dict(self._target.query), **self.options}
        self._prefix = str(settings.get("namespace", ""))
        if self._prefix and not re.fullmatch(r"[A-Za-z0-9_]*", self._prefix):
            raise ConfigError(f"{store}: namespace must be letters, digits and _, not {self._prefix!r}")
        self.keyspace = self._target.keyspace
        self._replication = settings.get("replication")
        self._settings = {
            "consistency": _consistency(str(settings.get("consistency", "LOCAL_QUORUM"))),
            "request_timeout": float(settings.get("request_timeout", 12.0)),
            "connect_timeout": float(settings.get("connect_timeout", 5.0)),
            "local_dc": settings.get("local_dc"),
            "protocol_version": int(settings["protocol_version"]) if "protocol_version" in settings else None,
        }
        self._key = (
            self._target.points,
            self._target.username,
            self._target.password,
            *sorted(self._settings.items(), key=lambda item: item[0]),
        )
        self._shared: _Shared | None = None
        self._tables: dict[str, _Table] = {}
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- connection ------------------------------------------------------------------
    @property
    def session(self) -> Session:
        """The shared session, connected on first use (so building adapters is cheap)."""
        shared = self._shared
        if shared is None:
            with self._lock:
                if self._shared is None:
                    with translate_errors(self.store, self.shard):
                        self._shared = _acquire(self._key, self._target, self._settings)
                shared = self._shared
        return shared.session

    def close(self) -> None:
        with self._lock:
            shared, self._shared = self._shared, None
            self._tables.clear()
        if shared is not None:
            with contextlib.suppress(*_CAUGHT):
                _release(self._key)

    def _execute(self, statement: Any, params: Sequence[Any] = (), key: Any = None, **kwargs: Any) -> Any:
        with translate_errors(self.store, self.shard, key):
            return self.session.execute(statement, params, **kwargs)

    # -- schema ----------------------------------------------------------------------
    def _table_name(self, schema: EntitySchema) -> str:
        """The entity's table name, checked once per entity name (every call looks it up)."""
        name = self._names.get(schema.name)
        if name is None:
            name = f"{self._prefix}{schema.name}".lower()
            if not _NAME.match(name):
                raise ConfigError(f"{self.store}: table name {name!r} is not a valid Cassandra name (at most 48)")
            self._names[schema.name] = name
        return name

    def _ensure_keyspace(self) -> None:
        session = self.session
        shared = self._shared
        if shared is None or self.keyspace in shared.keyspaces:
            return
        cql = (
            f"CREATE KEYSPACE IF NOT EXISTS {self.keyspace} WITH replication = {self._replication_literal()}"
            " AND durable_writes = true"
        )
        with translate_errors(self.store, self.shard):
            if self.keyspace not in session.cluster.metadata.keyspaces:
                session.execute(cql)
        shared.keyspaces.add(self.keyspace)

    def _replication_literal(self) -> str:
        """The replication map as a CQL literal; every part is checked to be plain text."""
        replication = self._replication or {"class": "SimpleStrategy", "replication_factor": 1}
        if not isinstance(replication, Mapping) or "class" not in replication:
            raise ConfigError(f"{self.store}: options.replication must be a table with a 'class'")
        parts = []
        for name, value in replication.items():
            if not _PLAIN.match(str(name)) or not _PLAIN.match(str(value)):
                raise ConfigError(f"{self.store}: options.replication: {name!r} = {value!r} is not a plain value")
            parts.append(f"'{name}': '{value}'")
        return "{" + ", ".join(parts) + "}"

    def ensure(self, schema: EntitySchema, *, with_token: bool) -> None:
        name = self._table_name(schema)
        if name in self._tables:
            return
        self._ensure_keyspace()
        layout = _layout(schema)
        codecs = _codecs(schema, layout)
        qualified = f"{self.keyspace}.{name}"
        columns = [f"{_q(spec.name)} {codecs[spec.name].cql}" for spec in schema.fields]
        hidden = ([TOKEN_FIELD] if with_token else []) + [SKEY_FIELD, EXPIRES_FIELD]
        columns += [f"{_q(column)} bigint" for column in hidden]
        partition, clustering = layout
        key = f"(({_cols(partition)}){''.join(f', {_q(column)}' for column in clustering)})"
        indexed = _indexed(schema, partition, with_token)
        with translate_errors(self.store, self.shard):
            self.session.execute(f"CREATE TABLE IF NOT EXISTS {qualified} ({', '.join(columns)}, PRIMARY KEY {key})")
            # The indexes are independent schema changes: send them together, then wait.
            pending = [
                self.session.execute_async(
                    f"CREATE CUSTOM INDEX IF NOT EXISTS {_index_name(name, column)} ON {qualified} ({_q(column)}) "
                    "USING 'StorageAttachedIndex'"
                )
                for column in sorted(indexed)
            ]
            for future in pending:
                future.result()
            table = self._prepare_table(schema, qualified, layout, codecs, with_token, indexed)
        with self._lock:
            self._tables[name] = table

    def _prepare_table(
        self,
        schema: EntitySchema,
        qualified: str,
        layout: tuple[tuple[str, ...], tuple[str, ...]],
        codecs: dict[str, _Codec],
        with_token: bool,
        indexed: frozenset[str],
    ) -> _Table:
        partition, clustering = layout
        stored = (*schema.field_names, *([TOKEN_FIELD] if with_token else []), SKEY_FIELD, EXPIRES_FIELD)
        marks = ", ".join("?" for _ in stored)
        where = " AND ".join(f"{_q(column)} = ?" for column in (*partition, *clustering))
        insert = f"INSERT INTO {qualified} ({_cols(stored)}) VALUES ({marks})"
        prepare = self.session.prepare
        return _Table(
            schema=schema,
            qualified=qualified,
            partition=partition,
            clustering=clustering,
            codecs=codecs,
            columns=stored,
            with_token=with_token,
            indexed=indexed,
            insert=prepare(insert),
            insert_ttl=prepare(f"{insert} USING TTL ?"),
            get=prepare(f"SELECT {_cols(stored)} FROM {qualified} WHERE {where}"),
            exists=prepare(f"SELECT {_q(EXPIRES_FIELD)} FROM {qualified} WHERE {where}"),
            delete=prepare(f"DELETE FROM {qualified} WHERE {where}"),
            writers=tuple(
                (name, None if codecs[name].to_db is _same else codecs[name].to_db) for name in schema.field_names
            ),
        )

    def _table(self, schema: EntitySchema) -> _Table:
        found = self._tables.get(self._table_name(schema))
        if found is None:
            raise StoreError(f"table for {schema.name!r} not ensured", store=self.store, shard=self.shard)
        return found

    def _prepared(self, table: _Table, cql: str) -> PreparedStatement:
        """A prepared statement for a query shape, from a small per-table LRU cache."""
        with self._lock:
            found = table.cache.get(cql)
            if found is not None:
                table.cache.move_to_end(cql)
                return found
        with translate_errors(self.store, self.shard):
            prepared = self.session.prepare(cql)
        with self._lock:
            table.cache[cql] = prepared
            while len(table.cache) > _FIND_CACHE:
                table.cache.popitem(last=False)
        return prepared

    def _bound(self, table: _Table, cql: str, params: Sequence[Any], fetch_size: int) -> BoundStatement:
        """The cached statement bound to ``params``, with its own page size (thread-safe)."""
        statement = self._prepared(table, cql)
        with translate_errors(self.store, self.shard):
            bound = statement.bind(params)
        bound.fetch_size = fetch_size
        return bound

    def drop(self, schema: EntitySchema) -> None:
        name = self._table_name(schema)
        with self._lock:
            self._tables.pop(name, None)
        self._execute(f"DROP TABLE IF EXISTS {self.keyspace}.{name}")

    # -- health ----------------------------------------------------------------------
    def ping(self) -> None:
        self._execute("SELECT release_version FROM system.local")

    def describe(self) -> ShardInfo:
        server = f"cassandra {redact_url(self.url)}"
        try:
            release = self._execute("SELECT release_version FROM system.local").one()
            server = f"cassandra {release[0]} {redact_url(self.url)}"
            names = self._execute(
                "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (self.keyspace,)
            )
            counts: dict[str, int] = {}
            for (name,) in names:
                if self._prefix and not name.startswith(self._prefix.lower()):
                    continue
                found = self._execute(f"SELECT COUNT(*) FROM {self.keyspace}.{name}").one()
                counts[name.removeprefix(self._prefix.lower())] = int(found[0])
            return ShardInfo(reachable=True, tables=counts, server=server)
        except (StoreError, ConfigError) as exc:
            return ShardInfo(reachable=False, error=str(exc), server=server)

    # -- writes ----------------------------------------------------------------------
    def _values(self, table: _Table, row: Row, expires: int | None) -> list[Any]:
        schema = table.schema
        try:
            values = [row[name] if to_db is None else to_db(row[name]) for name, to_db in table.writers]
            if table.with_token:
                values.append(row[TOKEN_FIELD])
        except KeyError as exc:
            raise QueryError(f"row for {schema.name} lacks field {exc.args[0]!r}") from None
        values.append(skey_prefix(schema.shard_key_of(row)))
        values.append(expires)
        return values

    def put(self, schema: EntitySchema, row: Row) -> None:
        table = self._table(schema)
        values = self._values(table, row, None)
        try:  # inline rather than translate_errors: the hot single write
            self.session.execute(table.insert, values)
        except _CAUGHT as exc:
            raise translate(exc, self.store, self.shard, schema.key_of(row)) from exc

    def put_many(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        table = self._table(schema)
        unique = {schema.key_of(row): self._values(table, row, None) for row in rows}
        self._concurrent(table.insert, list(unique.values()))
        return len(unique)

    def put_ttl(self, schema: EntitySchema, rows: Sequence[Row], ttl: float) -> int:
        table = self._table(schema)
        if ttl <= 0:
            raise QueryError(f"ttl must be positive, not {ttl!r}")
        now = time.time()
        # Cassandra expires at (whole second of the write) + TTL: round so that is the
        # first whole second at or after now + ttl; _ps_expires keeps the exact instant.
        seconds = max(1, math.ceil(now + ttl) - math.floor(now))
        expires = int((now + ttl) * 1_000_000)
        unique = {schema.key_of(row): [*self._values(table, row, expires), seconds] for row in rows}
        self._concurrent(table.insert_ttl, list(unique.values()))
        return len(unique)

    def _concurrent(self, statement: PreparedStatement, params: Sequence[Sequence[Any]]) -> list[Any]:
        """Run one prepared statement for many parameter lists, ``_CONCURRENCY`` at a time."""
        if not params:
            return []
        with translate_errors(self.store, self.shard):
            results = execute_concurrent_with_args(self.session, statement, params, concurrency=_CONCURRENCY)
        return [result for _, result in results]

    def delete(self, schema: EntitySchema, key: Any) -> bool:
        table = self._table(schema)
        params = table.key_params(key)
        found = self._execute(table.exists, params, key=key).one()
        if found is None:
            return False
        self._execute(table.delete, params, key=key)
        return found[0] is None or found[0] > _now_micros()

    def delete_many(self, schema: EntitySchema, keys: Sequence[Any]) -> int:
        table = self._table(schema)
        params = list(dict.fromkeys(table.key_params(key) for key in keys))
        now = _now_micros()
        found = [
            (values, result.one())
            for values, result in zip(params, self._concurrent(table.exists, params), strict=True)
        ]
        present = [(values, first[0] is None or first[0] > now) for values, first in found if first is not None]
        self._concurrent(table.delete, [values for values, _ in present])
        return sum(1 for _, live in present if live)

    # -- reads -----------------------------------------------------------------------
    def get(self, schema: EntitySchema, key: Any) -> Row | None:
        table = self._table(schema)
        params = table.key_params(key)
        try:  # inline rather than translate_errors: the hot read
            found = self.session.execute(table.get, params).one()
        except _CAUGHT as exc:
            raise translate(exc, self.store, self.shard, key) from exc
        return None if found is None else table.decode(found, _now_micros())

    def get_many(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        table = self._table(schema)
        params = list(dict.fromkeys(table.key_params(key) for key in keys))
        now = _now_micros()
        rows = (table.decode(values, now) for result in self._concurrent(table.get, params) for values in result)
        return [row for row in rows if row is not None]

    def get_many_expiring(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        table = self._table(schema)
        params = list(dict.fromkeys(table.key_params(key) for key in keys))
        now = _now_micros()
        rows = (_with_expiry(table, values, now) for result in self._concurrent(table.get, params) for values in result)
        return [row for row in rows if row is not None]

    def put_expiring(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        """Each row with its own ``USING TTL`` (rounded as ``put_ttl`` does) and exact
        ``_ps_expires``; rows without an instant plainly; rows past it are deleted."""
        table = self._table(schema)
        now = time.time()
        plain: dict[Any, list[Any]] = {}
        timed: dict[Any, list[Any]] = {}
        gone: list[Any] = []
        for row in rows:
            key = schema.key_of(row)
            instant = row.pop(EXPIRES_FIELD, None)
            if instant is None:
                plain[key] = self._values(table, row, None)
            elif instant > now:
                seconds = max(1, math.ceil(instant) - math.floor(now))
                timed[key] = [*self._values(table, row, int(instant * 1_000_000)), seconds]
            else:
                gone.append(key)
        self._concurrent(table.insert, list(plain.values()))
        self._concurrent(table.insert_ttl, list(timed.values()))
        if gone:
            self.delete_many(schema, gone)
        return len(plain) + len(timed) + len(gone)

    def ttl(self, schema: EntitySchema, key: Any) -> float | None:
        table = self._table(schema)
        found = self._execute(table.exists, table.key_params(key), key=key).one()
        if found is None or found[0] is None:
            return None
        remaining = (found[0] - _now_micros()) / 1_000_000
        return remaining if remaining > 0 else None

    def _rows(self, table: _Table, cql: str, params: Sequence[Any], fetch_size: int = 1000) -> Iterator[Row]:
        """Every live row a full-column SELECT returns, page by page."""
        statement = self._bound(table, cql, params, fetch_size)
        with translate_errors(self.store, self.shard):
            result = self.session.execute(statement)
            while True:
                now = _now_micros()
                for values in result.current_rows:
                    row = table.decode(values, now)
                    if row is not None:
                        yield row
                if not result.has_more_pages:
                    return
                result.fetch_next_page()

    def find(self, schema: EntitySchema, query: Query) -> list[Row]:
        table = self._table(schema)
        filters = _normalise(schema, query.filters)
        plan = _plan(table, filters)
        if plan is None or query.limit == 0:
            return []
        select = f"SELECT {_cols(table.columns)} FROM {table.qualified}{plan.where}"
        rows = (row for row in self._rows(table, select, plan.params) if all(f.matches(row) for f in filters))
        sort_key = _sort_key(schema, query)
        if query.limit is not None:
            return heapq.nsmallest(query.limit, rows, key=sort_key)
        return sorted(rows, key=sort_key)

    def count(self, schema: EntitySchema, filters: Sequence[Filter] = ()) -> int:
        table = self._table(schema)
        checks = _normalise(schema, filters)
        plan = _plan(table, checks)
        if plan is None:
            return 0
        names = list(dict.fromkeys([f.field for f in checks] or [table.key_columns[0]]))
        select = f"SELECT {_cols([*names, EXPIRES_FIELD])} FROM {table.qualified}{plan.where}"
        statement = self._bound(table, select, plan.params, 5000)
        total = 0
        with translate_errors(self.store, self.shard):
            result = self.session.execute(statement)
            while True:
                now = _now_micros()
                for values in result.current_rows:
                    if values[-1] is not None and values[-1] <= now:
                        continue
                    row = {name: table.codecs[name].from_db(value) for name, value in zip(names, values, strict=False)}
                    total += all(f.matches(row) for f in checks)
                if not result.has_more_pages:
                    return total
                result.fetch_next_page()

    def _scan_rows(
        self, schema: EntitySchema, tokens: TokenRange | None, keys: KeyRange | None, batch_size: int, *, expiring: bool
    ) -> Iterator[list[Row]]:
        table = self._table(schema)
        if batch_size < 1:
            raise QueryError(f"batch_size must be positive, not {batch_size}")
        clauses: list[str] = []
        params: list[Any] = []
        if tokens is not None:
            if not table.with_token:
                raise QueryError(f"{schema.name}: a token range scan needs a hash-routed store")
            if tokens.start >= tokens.end:
                return
            _bound(clauses, params, TOKEN_FIELD, tokens.start, tokens.end - 1)
        if keys is not None:
            _bound(
                clauses,
                params,
                SKEY_FIELD,
                None if keys.lower is None else skey_prefix(keys.lower),
                None if keys.upper is None else skey_prefix(keys.upper),
            )
        where = f" WHERE {' AND '.join(clauses)} ALLOW FILTERING" if clauses else ""
        select = f"SELECT {_cols(table.columns)} FROM {table.qualified}{where}"
        yield from self._pages(table, select, params, batch_size, keys, expiring)

    def _pages(
        self,
        table: _Table,
        cql: str,
        params: Sequence[Any],
        batch_size: int,
        keys: KeyRange | None,
        expiring: bool = False,
    ) -> Iterator[list[Row]]:
        """One batch per server page; resumes from the paging state (keyset, no offset)."""
        statement = self._bound(table, cql, params, batch_size)
        paging_state: bytes | None = None
        schema = table.schema
        while True:
            with translate_errors(self.store, self.shard):
                result = self.session.execute(statement, paging_state=paging_state)
                page = list(result.current_rows)
            now = _now_micros()
            if expiring:
                rows = [row for row in (_with_expiry(table, values, now) for values in page) if row is not None]
            else:
                rows = [row for row in (table.decode(values, now) for values in page) if row is not None]
            if keys is not None:
                rows = [row for row in rows if schema.shard_key_of(row) in keys]
            if rows:
                yield rows
            paging_state = result.paging_state
            if paging_state is None:
                return

    # -- partitions ------------------------------------------------------------------
    def partition(
        self,
        schema: EntitySchema,
        partition: Any,
        *,
        start: Any = None,
        end: Any = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[Row]:
        table = self._table(schema)
        if not table.clustering:
            raise QueryError(
                f"{schema.name}: a partition read needs key=(partition, clustering...) with shard_key=partition"
            )
        if limit is not None and limit <= 0:
            return []
        values = partition if len(table.partition) > 1 else (partition,)
        if not isinstance(values, tuple) or len(values) != len(table.partition):
            raise QueryError(f"{schema.name}: the partition is a value of {', '.join(table.partition)}")
        clauses = [f"{_q(column)} = ?" for column in table.partition]
        params = [_encode(table, column, value) for column, value in zip(table.partition, values, strict=True)]
        first = table.clustering[0]
        if start is not None:
            clauses.append(f"{_q(first)} >= ?")
            params.append(_encode(table, first, start))
        if end is not None:
            clauses.append(f"{_q(first)} < ?")
            params.append(_encode(table, first, end))
        order = ", ".join(f"{_q(column)} {'DESC' if descending else 'ASC'}" for column in table.clustering)
        select = f"SELECT {_cols(table.columns)} FROM {table.qualified} WHERE {' AND '.join(clauses)}"
        rows = self._rows(table, f"{select} ORDER BY {order}", params, fetch_size=min(limit or 1000, 1000))
        if limit is None:
            return list(rows)
        return [row for _, row in zip(range(limit), rows, strict=False)]


# -- schema helpers ------------------------------------------------------------------


def _encode(table: _Table, name: str, value: Any) -> Any:
    """A caller's key value for ``name``, stored form; QueryError for a value of the wrong type."""
    spec = table.schema.field(name)
    types = _PYTHON_TYPES.get(spec.type, (decimal.Decimal,))
    wrong = (spec.type == "int" and isinstance(value, bool)) or (spec.type == "date" and isinstance(value, dt.datetime))
    if wrong or not isinstance(value, types):
        raise QueryError(f"{table.schema.name}.{name} is {spec.type}, not {type(value).__name__} {value!r}")
    return table.codecs[name].to_db(value)


def _q(name: str) -> str:
    """A quoted CQL identifier: keeps case, allows a leading _ and reserved words.

    Names are already checked (letters, digits, _), so quoting cannot be escaped.
    """
    return f'"{name}"'


def _cols(names: Iterable[str]) -> str:
    return ", ".join(_q(name) for name in names)


def _layout(schema: EntitySchema) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(partition columns, clustering columns) of an entity's table."""
    shard, key = schema.shard_key, schema.key
    if set(shard) < set(key) and len(set(shard)) == len(shard):
        return shard, tuple(name for name in key if name not in shard)
    return key, ()


def _codecs(schema: EntitySchema, layout: tuple[tuple[str, ...], tuple[str, ...]]) -> dict[str, _Codec]:
    partition, clustering = layout
    codecs = {spec.name: _CODECS[spec.type] for spec in schema.fields}
    if len(partition) == 1:
        kind = schema.field(partition[0]).type
        if kind == "str":
            codecs[partition[0]] = _PK_STR
        elif kind == "bytes":
            codecs[partition[0]] = _PK_BYTES
    for name in clustering:
        if schema.field(name).type == "uuid":
            codecs[name] = _UUID_CLUSTERING
    return codecs


def _indexed(schema: EntitySchema, partition: tuple[str, ...], with_token: bool) -> frozenset[str]:
    """Columns with an SAI index: the token, the shard-key prefix and declared indexes."""
    names = {SKEY_FIELD, *([TOKEN_FIELD] if with_token else [])}
    for index in schema.indexes:
        for name in index:
            if schema.field(name).type == "json" or (len(partition) == 1 and name == partition[0]):
                continue
            names.add(name)
    return frozenset(names)


def _index_name(table: str, column: str) -> str:
    name = f"{table}_{column}_idx"
    if len(name) <= 48:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{table[:30]}_{digest}_idx"


def _bound(clauses: list[str], params: list[Any], column: str, low: int | None, high: int | None) -> None:
    """``low <= column <= high`` within the signed 64-bit range (None: unbounded)."""
    if low is not None and low > _MIN_TOKEN:
        clauses.append(f"{_q(column)} >= ?")
        params.append(low)
    if high is not None and high < _MAX_TOKEN:
        clauses.append(f"{_q(column)} <= ?")
        params.append(high)


# -- query planning ------------------------------------------------------------------


def _normalise(schema: EntitySchema, filters: Iterable[Filter]) -> list[Filter]:
    """Check fields; naive datetimes in filters are taken as UTC (as they are stored)."""
    result: list[Filter] = []
    for item in filters:
        if item.field not in schema.field_names:
            raise QueryError(f"{schema.name}: unknown field {item.field!r} (fields: {', '.join(schema.field_names)})")
        spec = schema.field(item.field)
        if spec.type == "json":
            raise QueryError(
                f"{schema.name}.{item.field}: is a nested (JSON) field; filtering and ordering on it needs the "
                "document kind's nested filters"
            )
        if spec.type == "datetime":
            item = Filter(item.field, item.op, _aware(item.value))
        result.append(item)
    return result


def _aware(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(_aware(part) for part in value)
    return value


def _sort_key(schema: EntitySchema, query: Query) -> Callable[[Row], tuple[Any, ...]]:
    for item in query.order_by:
        if item.field not in schema.field_names:
            raise QueryError(f"{schema.name}: unknown field {item.field!r} (fields: {', '.join(schema.field_names)})")
        if schema.field(item.field).type == "json":
            raise QueryError(f"{schema.name}.{item.field}: is a nested (JSON) field; ordering on it is not supported")
    return sort_key(schema, query.order_by)


@dataclass(frozen=True, slots=True)
class _Plan:
    where: str
    params: tuple[Any, ...]


def _plan(table: _Table, filters: Sequence[Filter]) -> _Plan | None:
    """The CQL WHERE for the filters CQL evaluates exactly as Python; None if nothing matches.

    The result is a superset of the matching rows (filters not pushed are checked by the
    caller). Per column CQL allows one ``=``/``IN`` or one lower and one upper bound.
    """
    schema = table.schema
    eq: dict[str, list[Any]] = {}
    lower: dict[str, tuple[str, Any]] = {}
    upper: dict[str, tuple[str, Any]] = {}
    for item in filters:
        spec = schema.field(item.field)
        codec = table.codecs[item.field]
        if item.op == "in":
            values = [value for value in item.value if value is not None]
            if not values and None not in item.value:
                return None  # x in [] is never true
            if None in item.value or not all(_pushable_value(spec, value) for value in values):
                continue
            eq.setdefault(item.field, [codec.to_db(value) for value in dict.fromkeys(values)])
        elif item.op == "eq" and item.value is not None and _pushable_value(spec, item.value):
            eq.setdefault(item.field, [codec.to_db(item.value)])
        elif item.op in ("lt", "le", "gt", "ge"):
            if item.value is None:
                return None  # ordering comparisons never match null
            if not codec.ordered or not _pushable_value(spec, item.value):
                continue
            side = lower if item.op in ("gt", "ge") else upper
            side.setdefault(item.field, (_CQL_OPS[item.op], codec.to_db(item.value)))
    return _where(table, eq, lower, upper)


def _where(
    table: _Table,
    eq: dict[str, list[Any]],
    lower: dict[str, tuple[str, Any]],
    upper: dict[str, tuple[str, Any]],
) -> _Plan:
    clauses: list[str] = []
    params: list[Any] = []
    partition_fixed = all(column in eq for column in table.partition)
    partition_in = partition_fixed and any(len(eq[column]) > 1 for column in table.partition)
    for column, values in eq.items():
        if partition_in and column in table.indexed:
            continue  # CQL: no indexed column beside an IN on the partition key
        if len(values) == 1:
            clauses.append(f"{_q(column)} = ?")
            params.append(values[0])
        else:
            clauses.append(f"{_q(column)} IN ?")
            params.append(values)
    for bounds in (lower, upper):
        for column, (op, value) in bounds.items():
            if column in eq or (partition_in and column in table.indexed):
                continue
            clauses.append(f"{_q(column)} {op} ?")
            params.append(value)
    first = table.schema.shard_key[0]
    if not partition_fixed and not partition_in and first in table.partition and (first in lower or first in upper):
        # a range on the first shard-key field: let the SAI index on its prefix drive the read
        decode = table.codecs[first].from_db
        if first in lower:
            clauses.append(f"{_q(SKEY_FIELD)} >= ?")
            params.append(skey_prefix(decode(lower[first][1])))
        if first in upper:
            clauses.append(f"{_q(SKEY_FIELD)} <= ?")
            params.append(skey_prefix(decode(upper[first][1])))
    if not clauses:
        return _Plan("", ())
    return _Plan(f" WHERE {' AND '.join(clauses)} ALLOW FILTERING", tuple(params))
