"""The graph adapter: the neo4j driver (Bolt) over Neo4j 5 (Community or Enterprise).

Design choices, and why:

* One driver per server per process, shared (reference-counted) by the adapters of
  every shard on it; every call opens a session and runs a *managed* transaction
  (``execute_read``/``execute_write``), so the driver retries transient failures (for
  at most the ``retry_time`` option, 5 s) and no connection is shared between threads.
  Constraints and indexes are created once per server and label per process.
* Every value is a query parameter; only validated identifiers (labels, property
  names, relationship types) and validated integers (traversal depths, which Cypher
  cannot parameterise) are written into query text, always backticked.
* An entity is a node whose label is ``namespace + shard prefix + entity name``. The
  store option ``namespace`` isolates applications (and tests); the URL parameter
  ``?prefix=NAME`` isolates shards that share one server (Community Edition has a
  single user database), and ``?database=NAME`` picks a database on Enterprise.
* The key has a node property uniqueness constraint (composite keys too), so ``MERGE``
  on it is an indexed, race-free upsert; ``put_many`` is one ``UNWIND ... MERGE``.
* Token ranges: ``_ps_token`` has a RANGE index, and a token-range scan is a
  ``NodeIndexSeekByRange`` on ``start <= token < end`` (forced with ``USING INDEX
  SEEK``: on a wide range the planner would otherwise scan the whole index in order),
  paged by keyset on ``(token, key)``: never a label or full index scan. Key-range
  scans seek the key's constraint index (or a RANGE index on the shard key when it
  differs from the key); a ``decimal`` shard key is the exception: its bounds are
  checked in Python over a keyset scan of the shard.
* Neo4j properties are scalars or homogeneous lists: ``json`` fields are stored as JSON
  text, ``uuid`` and ``decimal`` as strings (a decimal *key* normalised, so ``1.0`` and
  ``1.00`` are one key, as in routing), ``bytes`` as byte arrays, ``datetime`` as a
  zoned DateTime in UTC (nanosecond precision, so microseconds survive) and ``date`` as
  a Date. Rows come back with the Python types written.
* Neo4j does not store nulls (a null property is an absent one), so filters spell out
  Python's semantics: ``ne`` keeps nulls, ordering comparisons never match null, ``in``
  may hold None; ``ORDER BY (f IS NULL) DESC, f`` puts nulls first ascending (last
  descending), then the key breaks ties. Filters and order run on the server, except
  on ``decimal`` fields (stored as text, so text order is not numeric order): a query
  that filters or orders on one fetches the shard's rows matching the other filters
  and finishes in Python. Strings compare by UTF-16 code unit on the server, which
  agrees with Python's code-point order except between U+E000..U+FFFF and characters
  outside the BMP.
* GRAPH: relationship types are validated identifiers (not prefixed: node labels
  already isolate namespaces and shards); ``MERGE`` keeps one edge of a type per
  direction between two nodes. Traversal and shortest paths use Neo4j 5's quantified
  path patterns with ``ANY SHORTEST`` (a breadth-first search per reachable node,
  Neo4j 5.21 or later) and require every node on the path to carry the entity's
  label. Deleting a node deletes its relationships.
* ATOMIC_INCREMENT is ``SET n.f = coalesce(n.f, 0) + $amount`` in one write
  transaction. PARTIAL_UPDATE sets top-level fields with ``SET n += $changes``; dotted
  paths into JSON fields are read, changed and written back inside one write
  transaction that first takes the node's write lock, so concurrent updates serialise.
* Every driver exception is translated into ``toolkit.errors`` here (``ERROR_MAP``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import neo4j
import neo4j.exceptions as nx
import neo4j.time

from adapters.base import (
    TOKEN_FIELD,
    Adapter,
    Capability,
    Direction,
    Filter,
    Neighbor,
    Order,
    Query,
    Relationship,
    Row,
    ShardInfo,
    sort_key,
)
from adapters.registry import redact_url
from sharding.base import KeyRange, TokenRange
from sharding.core.errors import (
    ConfigError,
    DuplicateKeyError,
    NotFoundError,
    QueryError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from sharding.core.model import EntitySchema, FieldSpec

__all__ = ["ERROR_MAP", "GraphAdapter", "translate_errors"]

T = TypeVar("T")

_IDENT: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""Labels, property names and relationship types that go into query text."""

_PREFIX: Final = re.compile(r"^[A-Za-z0-9_]*$")
"""A namespace or shard prefix: it becomes the start of a label."""

_INT64: Final = (-(2**63), 2**63 - 1)

_SCALARS: Final = (str, bool, int, float, bytes, dt.datetime, dt.date)
"""Relationship property values Neo4j stores natively (and lists of them)."""

ERROR_MAP: Final[tuple[tuple[type[BaseException], type[StoreError], bool], ...]] = (
    # (driver exception, toolkit error, retryable). First match wins: subclasses first.
    (nx.ConstraintError, DuplicateKeyError, False),
    (nx.AuthError, StoreError, False),
    (nx.Forbidden, StoreError, False),
    (nx.CypherSyntaxError, StoreError, False),
    (nx.CypherTypeError, StoreError, False),
    (nx.ClientError, StoreError, False),
    (nx.DatabaseUnavailable, StoreUnavailable, True),
    (nx.NotALeader, StoreUnavailable, True),
    (nx.ForbiddenOnReadOnlyDatabase, StoreUnavailable, True),
    (nx.TransientError, StoreError, True),
    (nx.DatabaseError, StoreError, False),
    (nx.Neo4jError, StoreError, False),
    (nx.IncompleteCommit, StoreError, False),  # the commit may or may not have happened
    (nx.SessionExpired, StoreUnavailable, True),
    (nx.ServiceUnavailable, StoreUnavailable, True),
    (nx.ConfigurationError, StoreError, False),
    (nx.ResultError, StoreError, False),
    (nx.SessionError, StoreError, False),
    (nx.TransactionError, StoreError, False),
    (nx.BrokenRecordError, StoreError, False),
    (nx.DriverError, StoreError, False),
    (nx.UnsupportedServerProduct, StoreError, False),
    (nx.GqlError, StoreError, False),
)
"""Every driver exception class the adapter catches, and what it becomes."""

_ENSURED: set[tuple[str, str | None, str]] = set()
"""(server, database, label) whose constraints and indexes this process created or found."""
_ENSURED_LOCK: Final = threading.Lock()

_TIMEOUT_CODES: Final = ("TransactionTimedOut", "LockAcquisitionTimeout", "Timeout")


def _translate(exc: BaseException, store: str, shard: str, key: Any) -> StoreError:
    """The toolkit error for a driver exception (see ``ERROR_MAP``)."""
    code = (exc.code if isinstance(exc, nx.Neo4jError) else None) or ""
    text = _message(exc)
    if any(marker in code for marker in _TIMEOUT_CODES) or "obtain a connection from the pool" in text:
        return StoreTimeout(text, store=store, shard=shard, key=key)
    for driver_class, error_class, retryable in ERROR_MAP:
        if isinstance(exc, driver_class):
            return error_class(text, store=store, shard=shard, key=key, retryable=retryable)
    return StoreError(text, store=store, shard=shard, key=key, retryable=False)


def _message(exc: BaseException) -> str:
    """The server's or driver's message, first line only (no query text)."""
    # Only server errors carry a plain ``message``; on driver errors that name is a GQL preview.
    text = exc.message if isinstance(exc, nx.Neo4jError) else None
    text = text or " ".join(arg for arg in exc.args if isinstance(arg, str)) or str(exc)
    lines = str(text).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@contextlib.contextmanager
def translate_errors(store: str, shard: str, key: Any = None) -> Iterator[None]:
    """Turn neo4j driver exceptions into the toolkit's hierarchy (see errors.py)."""
    try:
        yield
    except nx.GqlError as exc:
        raise _translate(exc, store, shard, key) from exc
    except nx.UnsupportedServerProduct as exc:
        raise _translate(exc, store, shard, key) from exc
    except (OverflowError, TypeError, ValueError) as exc:
        if not _raised_by_packer(exc):
            raise
        raise QueryError(f"{store}/{shard}: a value cannot be sent to Neo4j: {exc}") from exc


def _raised_by_packer(exc: BaseException) -> bool:
    """Whether the driver's parameter encoder raised ``exc`` (an unsendable value)."""
    frame = exc.__traceback__
    while frame is not None:
        if str(frame.tb_frame.f_globals.get("__name__", "")).startswith("neo4j._codec"):
            return True
        frame = frame.tb_next
    return False


def _tick(name: str) -> str:
    """Backtick an identifier (already validated; doubled backticks for safety)."""
    return "`" + name.replace("`", "``") + "`"


def _ident(name: str, what: str) -> str:
    if not isinstance(name, str) or not _IDENT.match(name):
        raise QueryError(f"{what} {name!r} must be letters, digits and _ (not starting with a digit)")
    return name


# -- values ----------------------------------------------------------------------------
def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _encode(kind: str, value: Any) -> Any:
    """A Python value of storage type ``kind`` as a Neo4j property value."""
    if value is None:
        return None
    if kind == "json":
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if kind in ("decimal", "uuid") and isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if kind == "datetime" and isinstance(value, dt.datetime):
        return _utc(value)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64[0] <= value <= _INT64[1]:
        raise QueryError(f"integer {value} does not fit Neo4j's 64-bit integers")
    return value


def _encode_key(kind: str, value: Any) -> Any:
    """A key part as stored: decimals normalised (``1.0`` and ``1.00`` are one key, as in routing)."""
    if kind == "decimal" and isinstance(value, decimal.Decimal):
        return str(value.normalize())
    return _encode(kind, value)


def _decode(kind: str, value: Any) -> Any:
    """A Neo4j property value back as the Python type of storage type ``kind``."""
    if value is None:
        return None
    if kind == "json":
        return json.loads(value)
    if kind == "decimal":
        return decimal.Decimal(value)
    if kind == "uuid":
        return uuid.UUID(value)
    if kind == "bytes":
        return bytes(value)
    if kind == "float":
        return float(value)
    return _native(value)


def _native(value: Any) -> Any:
    """Neo4j temporal values as Python ones (datetimes in UTC); lists element-wise."""
    if isinstance(value, neo4j.time.DateTime):
        native = value.to_native()
        return native.replace(tzinfo=dt.UTC) if native.tzinfo is None else native.astimezone(dt.UTC)
    if isinstance(value, neo4j.time.Date):
        return value.to_native()
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, list):
        return [_native(item) for item in value]
    return value


def _property_value(name: str, value: Any) -> Any:
    """A relationship property value Neo4j can store, or a QueryError saying why not."""
    if isinstance(value, list):
        if not all(isinstance(item, _SCALARS) for item in value):
            raise QueryError(f"relationship property {name!r}: lists may hold scalars only")
        if len({type(item) for item in value}) > 1:
            raise QueryError(f"relationship property {name!r}: a list holds values of one type (Neo4j arrays)")
        return [_encode("datetime" if isinstance(item, dt.datetime) else "", item) for item in value]
    if value is None or isinstance(value, _SCALARS):
        return _encode("datetime" if isinstance(value, dt.datetime) else "", value)
    raise QueryError(
        f"relationship property {name!r}: {type(value).__name__} values cannot be stored "
        "(use str, int, float, bool, bytes, datetime, date or a list of them)"
    )


# -- per-entity query text ---------------------------------------------------------------
TOKEN_FIELD_KIND: Final = "int"


@dataclass(frozen=True, slots=True)
class _Label:
    """An entity's label and the query fragments built from it."""

    schema: EntitySchema
    name: str
    specs: Mapping[str, FieldSpec]
    plan: tuple[tuple[str, str, Callable[[str, Any], Any], bool], ...] = field(init=False)
    """(field, storage type, encoder, native) per field, for ``encode_row``: resolved once
    per label, since a batch encodes every field of every row."""
    upsert: str = field(init=False)
    """The ``UNWIND ... MERGE`` of put and put_many (built once, not per call)."""
    read: str = field(init=False)
    """The ``MATCH`` of get."""

    def __post_init__(self) -> None:
        plan = tuple(
            (spec.name, spec.type, _encode_key if spec.name in self.schema.key else _encode, spec.type != "json")
            for spec in self.schema.fields
        )
        object.__setattr__(self, "plan", plan)
        object.__setattr__(self, "upsert", f"UNWIND $rows AS row MERGE (n:{self.q} {self.key_map('row')}) SET n = row")
        object.__setattr__(self, "read", f"MATCH (n:{self.q} {self.key_map('$key')}) RETURN properties(n) AS p")

    @property
    def q(self) -> str:
        return _tick(self.name)

    @property
    def key(self) -> tuple[str, ...]:
        return self.schema.key

    def kind(self, field: str) -> str:
        return TOKEN_FIELD_KIND if field == TOKEN_FIELD else self.specs[field].type

    def key_map(self, source: str) -> str:
        """``{`a`: <source>.`a`, ...}``: a key pattern reading from a map variable."""
        return "{" + ", ".join(f"{_tick(f)}: {source}.{_tick(f)}" for f in self.key) + "}"

    def key_params(self, key: Any) -> dict[str, Any]:
        """The key as a map of encoded field values (the parameter ``key_map`` reads)."""
        parts = (key,) if len(self.key) == 1 else tuple(key)
        if len(parts) != len(self.key):
            raise QueryError(f"{self.schema.name}: the key is a tuple of {len(self.key)}, not {key!r}")
        return {f: _encode_key(self.kind(f), part) for f, part in zip(self.key, parts, strict=True)}

    def encode_row(self, row: Mapping[str, Any], with_token: bool) -> dict[str, Any]:
        props: dict[str, Any] = {}
        for name, kind, encode, native in self.plan:
            try:
                value = row[name]
            except KeyError:
                raise QueryError(f"row for {self.schema.name} lacks field {name!r}") from None
            if value is None:
                continue
            # What a validated entity mostly holds, and Neo4j stores as is (``_encode``
            # returns these unchanged for every type but json): no call per field.
            cls = type(value)
            if native and (
                cls is str or cls is float or cls is bool or (cls is int and _INT64[0] <= value <= _INT64[1])
            ):
                props[name] = value
                continue
            value = encode(kind, value)
            if value is not None:
                props[name] = value
        if with_token and row.get(TOKEN_FIELD) is not None:
            props[TOKEN_FIELD] = int(row[TOKEN_FIELD])
        return props

    def decode(self, props: Mapping[str, Any]) -> Row:
        row: Row = {spec.name: _decode(spec.type, props.get(spec.name)) for spec in self.schema.fields}
        if TOKEN_FIELD in props:
            row[TOKEN_FIELD] = int(props[TOKEN_FIELD])
        return row

    def key_of(self, row: Mapping[str, Any]) -> Any:
        return self.schema.key_of(row)

    def order_key(self, variable: str = "n") -> str:
        return ", ".join(f"{variable}.{_tick(f)}" for f in self.key)


class _Params:
    """Collects query parameters under fresh names (``p0``, ``p1``...)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"${name}"


def _lex(columns: Sequence[str], params: Sequence[str], op: str) -> str:
    """``(c1, c2...) op (p1, p2...)`` in lexicographic order; ``op`` is >, >=, < or <=."""
    strict = op[0]
    parts = []
    for index, (column, param) in enumerate(zip(columns, params, strict=True)):
        equal = [f"{c} = {p}" for c, p in zip(columns[:index], params[:index], strict=True)]
        parts.append(" AND ".join([*equal, f"{column} {strict} {param}"]))
    if op.endswith("="):
        parts.append(" AND ".join(f"{c} = {p}" for c, p in zip(columns, params, strict=True)))
    return "(" + " OR ".join(f"({part})" for part in parts) + ")"


def _arrow(direction: Direction, rel: str) -> tuple[str, str]:
    """The two halves of a relationship pattern in ``direction``."""
    if direction == "out":
        return f"-[{rel}]-", ">"
    if direction == "in":
        return f"<-[{rel}]-", ""
    return f"-[{rel}]-", ""


def _pattern(direction: Direction, rel: str) -> str:
    left, right = _arrow(direction, rel)
    return f"{left}{right}"


class _Drivers:
    """One driver per server (and auth and settings) per process, shared by the adapters on it.

    Shards that share a server through ``?prefix=`` share its connection pool; the driver
    closes when the last adapter using it does.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[Any, ...], tuple[neo4j.Driver, int]] = {}

    def acquire(self, key: tuple[Any, ...], factory: Callable[[], neo4j.Driver]) -> neo4j.Driver:
        with self._lock:
            driver, users = self._open.get(key) or (factory(), 0)
            self._open[key] = (driver, users + 1)
            return driver

    def release(self, key: tuple[Any, ...]) -> None:
        with self._lock:
            found = self._open.pop(key, None)
            if found is None:
                return
            driver, users = found
            if users > 1:
                self._open[key] = (driver, users - 1)
                return
        with contextlib.suppress(Exception):
            driver.close()


_DRIVERS: Final = _Drivers()


def _parse_url(url: str) -> tuple[str, tuple[str, str] | None, str, str | None]:
    """(driver URL, auth, shard prefix, database) from a shard URL."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    prefix = query.pop("prefix", "")
    database = query.pop("database", None) or None
    if not _PREFIX.match(prefix):
        raise ConfigError(f"{redact_url(url)}: prefix= must be letters, digits and _")
    auth = None
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        auth = (unquote(user), unquote(password))
    driver_url = urlunsplit((parts.scheme, netloc, "", urlencode(query), ""))
    return driver_url, auth, prefix, database


class GraphAdapter(Adapter):
    """One shard on one Neo4j server (or one label prefix of it). See the module docstring."""

    capabilities: ClassVar[Capability] = Capability.GRAPH | Capability.ATOMIC_INCREMENT | Capability.PARTIAL_UPDATE

    def __init__(self, url: str, *, store: str, shard: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, store=store, shard=shard, options=options)
        namespace = str(self.options.get("namespace", ""))
        if not _PREFIX.match(namespace):
            raise ConfigError(f"store {store!r}: option namespace must be letters, digits and _, not {namespace!r}")
        self._server, auth, shard_prefix, self.database = _parse_url(url)
        self._prefix = namespace + shard_prefix
        self._with_token: dict[str, bool] = {}
        self._labels: dict[str, _Label] = {}
        self._lock = threading.Lock()
        settings: dict[str, Any] = {
            "connection_timeout": float(self.options.get("connect_timeout", 10)),
            "connection_acquisition_timeout": float(self.options.get("acquire_timeout", 30)),
            "max_transaction_retry_time": float(self.options.get("retry_time", 5)),
            "max_connection_pool_size": int(self.options.get("pool_size", 50)),
        }
        self._driver_key: tuple[Any, ...] | None = (self._server, auth, tuple(sorted(settings.items())))
        try:
            self.driver = _DRIVERS.acquire(
                self._driver_key, lambda: neo4j.GraphDatabase.driver(self._server, auth=auth, **settings)
            )
        except nx.ConfigurationError as exc:
            raise ConfigError(f"{redact_url(url)}: {_message(exc)}") from exc
        except (ValueError, nx.GqlError) as exc:
            raise ConfigError(f"{redact_url(url)}: {exc}") from exc

    # -- plumbing --------------------------------------------------------------------
    def _label(self, schema: EntitySchema) -> _Label:
        """The entity's label, built once per declaration (every call needs it)."""
        found = self._labels.get(schema.name)
        if found is not None and found.schema is schema:
            return found
        name = f"{self._prefix}{schema.name}"
        if not _IDENT.match(name):
            raise QueryError(f"label {name!r} is not a valid identifier")
        found = _Label(schema, name, {spec.name: spec for spec in schema.fields})
        self._labels[schema.name] = found
        return found

    def _read(self, work: Callable[[neo4j.ManagedTransaction], T], key: Any = None) -> T:
        with translate_errors(self.store, self.shard, key), self.driver.session(database=self.database) as session:
            return session.execute_read(work)

    def _write(self, work: Callable[[neo4j.ManagedTransaction], T], key: Any = None) -> T:
        with translate_errors(self.store, self.shard, key), self.driver.session(database=self.database) as session:
            return session.execute_write(work)

    def _records(self, query: str, params: Mapping[str, Any], *, write: bool = False, key: Any = None) -> list[Any]:
        def work(tx: neo4j.ManagedTransaction) -> list[Any]:
            return list(tx.run(query, dict(params)))

        return self._write(work, key) if write else self._read(work, key)

    def _auto(self, query: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """An auto-commit statement: schema changes and ``CALL {} IN TRANSACTIONS``."""
        with translate_errors(self.store, self.shard), self.driver.session(database=self.database) as session:
            return list(session.run(query, dict(params or {})))

    # -- lifecycle -------------------------------------------------------------------
    def ensure(self, schema: EntitySchema, *, with_token: bool) -> None:
        label = self._label(schema)
        memo = (self._server, self.database, label.name)
        with self._lock:
            if label.name in self._with_token:
                return
            if memo in _ENSURED:  # another adapter of this process did the work
                self._with_token[label.name] = with_token
                return
            fields = ", ".join(f"n.{_tick(f)}" for f in schema.key)
            statements = {
                f"{label.name}__key": f"CREATE CONSTRAINT {_tick(label.name + '__key')} IF NOT EXISTS "
                f"FOR (n:{label.q}) REQUIRE ({fields}) IS UNIQUE"
            }
            indexes: list[tuple[str, tuple[str, ...]]] = []
            if with_token:
                indexes.append(("token", (TOKEN_FIELD,)))
            if schema.shard_key != schema.key:
                indexes.append(("shard", schema.shard_key))
            indexes += [("ix_" + "_".join(index), index) for index in schema.indexes]
            for suffix, names in indexes:
                on = ", ".join(f"n.{_tick(name)}" for name in names)
                name = f"{label.name}__{suffix}"
                statements[name] = f"CREATE INDEX {_tick(name)} IF NOT EXISTS FOR (n:{label.q}) ON ({on})"
            # One parameterised look-up first: re-ensuring an existing label costs one cached query.
            existing = {record["name"] for record in self._schema_of(label.name, "INDEXES")}
            missing = [name for name in statements if name not in existing]
            for name in missing:
                self._auto(statements[name])
            self._await_online(missing)
            self._with_token[label.name] = with_token
            with _ENSURED_LOCK:
                _ENSURED.add(memo)

    def _await_online(self, names: Sequence[str]) -> None:
        """Wait until new indexes are ONLINE (scans force their use), polling without locks.

        Not ``db.awaitIndexes``: it waits for every index of the database inside a
        transaction, and deadlocks with another process's constraint being created.
        """
        deadline = time.monotonic() + float(self.options.get("index_timeout", 300))
        delay = 0.01
        query = "SHOW INDEXES YIELD name, state WHERE name IN $names RETURN name, state"
        while names:
            states = {record["name"]: record["state"] for record in self._auto(query, {"names": list(names)})}
            failed = [name for name, state in states.items() if state == "FAILED"]
            if failed:
                raise StoreError(f"index {failed[0]} failed to build", store=self.store, shard=self.shard)
            if all(states.get(name) == "ONLINE" for name in names):
                return
            if time.monotonic() > deadline:
                raise StoreTimeout(f"indexes {', '.join(names)} not online in time", store=self.store, shard=self.shard)
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _schema_of(self, label: str, kind: str) -> list[Any]:
        """The constraints or indexes (``kind``) on ``label``, by name."""
        query = f"SHOW {kind} YIELD name, labelsOrTypes WHERE $label IN labelsOrTypes RETURN name"
        return self._auto(query, {"label": label})

    def drop(self, schema: EntitySchema) -> None:
        label = self._label(schema)
        with self._lock:
            self._with_token.pop(label.name, None)
            with _ENSURED_LOCK:
                _ENSURED.discard((self._server, self.database, label.name))
            self._drop_label(label.name)

    def _drop_label(self, name: str) -> None:
        """Delete every node of a label (in bounded transactions), then its constraints and indexes."""
        batch = f"MATCH (n:{_tick(name)}) WITH n LIMIT 5000 DETACH DELETE n RETURN count(*) AS c"
        while self._records(batch, {}, write=True)[0]["c"]:
            pass
        for record in self._schema_of(name, "CONSTRAINTS"):
            self._auto(f"DROP CONSTRAINT {_tick(record['name'])} IF EXISTS")
        for record in self._schema_of(name, "INDEXES"):
            self._auto(f"DROP INDEX {_tick(record['name'])} IF EXISTS")

    def ping(self) -> None:
        self._records("RETURN 1 AS ok", {})

    def describe(self) -> ShardInfo:
        server = f"neo4j {redact_url(self.url)}"
        try:
            labels = [record["label"] for record in self._records("CALL db.labels() YIELD label RETURN label", {})]
            counts: dict[str, int] = {}
            for name in sorted(labels):
                if not name.startswith(self._prefix) or not _IDENT.match(name):
                    continue
                found = self._records(f"MATCH (n:{_tick(name)}) RETURN count(n) AS c", {})
                counts[name.removeprefix(self._prefix)] = int(found[0]["c"])
            return ShardInfo(reachable=True, tables=counts, server=server)
        except StoreError as exc:
            return ShardInfo(reachable=False, error=str(exc), server=server)

    def close(self) -> None:
        with self._lock:
            key, self._driver_key = self._driver_key, None
        if key is not None:
            _DRIVERS.release(key)

    # -- rows ------------------------------------------------------------------------
    def put(self, schema: EntitySchema, row: Row) -> None:
        self.put_many(schema, [row])

    def put_many(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        if not rows:
            return 0
        label = self._label(schema)
        with_token = self._with_token.get(label.name, True)
        # Last write wins within one batch, as with a sequence of puts.
        key_of, encode = schema.key_of, label.encode_row
        unique = {key_of(row): encode(row, with_token) for row in rows}
        key = next(iter(unique)) if len(unique) == 1 else None
        self._records(label.upsert, {"rows": list(unique.values())}, write=True, key=key)
        return len(unique)

    def get(self, schema: EntitySchema, key: Any) -> Row | None:
        label = self._label(schema)
        found = self._records(label.read, {"key": label.key_params(key)}, key=key)
        return label.decode(found[0]["p"]) if found else None

    def get_many(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        if not keys:
            return []
        label = self._label(schema)
        query = f"UNWIND $keys AS k MATCH (n:{label.q} {label.key_map('k')}) RETURN DISTINCT properties(n) AS p"
        found = self._records(query, {"keys": [label.key_params(key) for key in keys]})
        return [label.decode(record["p"]) for record in found]

    def delete(self, schema: EntitySchema, key: Any) -> bool:
        return self._delete(schema, [key], key) > 0

    def delete_many(self, schema: EntitySchema, keys: Sequence[Any]) -> int:
        return self._delete(schema, list(dict.fromkeys(keys)), None) if keys else 0

    def _delete(self, schema: EntitySchema, keys: Sequence[Any], key: Any) -> int:
        label = self._label(schema)
        query = (
            f"UNWIND $keys AS k MATCH (n:{label.q} {label.key_map('k')}) "
            "WITH DISTINCT n DETACH DELETE n RETURN count(*) AS c"
        )
        found = self._records(query, {"keys": [label.key_params(k) for k in keys]}, write=True, key=key)
        return int(found[0]["c"]) if found else 0

    # -- queries ---------------------------------------------------------------------
    def _field(self, label: _Label, field: str) -> FieldSpec:
        spec = label.specs.get(field)
        if spec is None:
            raise QueryError(
                f"{label.schema.name}: unknown field {field!r} (fields: {', '.join(label.schema.field_names)})"
            )
        if spec.type == "json":
            raise QueryError(
                f"{label.schema.name}.{field}: is a nested (JSON) field; filtering and ordering on it needs the "
                "document kind's nested filters"
            )
        return spec

    def _condition(self, label: _Label, item: Filter, params: _Params) -> str:
        """One filter as Cypher with Python's null semantics (see the module docstring)."""
        spec = self._field(label, item.field)
        column = f"n.{_tick(spec.name)}"
        value = item.value
        if item.op == "contains":
            raise QueryError(f"{label.schema.name}.{item.field}: 'contains' needs NESTED_FILTERS (a JSON array)")
        if item.op == "eq":
            return f"{column} IS NULL" if value is None else f"{column} = {params.add(_encode(spec.type, value))}"
        if item.op == "ne":
            if value is None:
                return f"{column} IS NOT NULL"
            return f"({column} IS NULL OR {column} <> {params.add(_encode(spec.type, value))})"
        if item.op == "in":
            values = [_encode(spec.type, v) for v in value if v is not None]
            clause = f"{column} IN {params.add(values)}"
            return f"({clause} OR {column} IS NULL)" if None in list(value) else clause
        if value is None:
            return "false"
        symbol = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}[item.op]
        return f"{column} {symbol} {params.add(_encode(spec.type, value))}"

    @staticmethod
    def _client_side(label: _Label, field: str) -> bool:
        """Fields the server cannot compare like Python does (decimal text)."""
        spec = label.specs.get(field)
        return spec is not None and spec.type == "decimal"

    def _split(self, label: _Label, filters: Sequence[Filter]) -> tuple[list[Filter], list[Filter]]:
        server: list[Filter] = []
        client: list[Filter] = []
        for item in filters:
            self._field(label, item.field)
            if item.op == "contains":
                raise QueryError(f"{label.schema.name}.{item.field}: 'contains' needs NESTED_FILTERS (a JSON array)")
            (client if self._client_side(label, item.field) else server).append(item)
        return server, client

    def _where(self, label: _Label, filters: Sequence[Filter], params: _Params) -> str:
        conditions = [self._condition(label, item, params) for item in filters]
        return f"WHERE {' AND '.join(conditions)} " if conditions else ""

    def _order(self, label: _Label, order: Sequence[Order]) -> str:
        parts: list[str] = []
        seen: set[str] = set()
        for item in order:
            column = f"n.{_tick(self._field(label, item.field).name)}"
            seen.add(item.field)
            if item.descending:
                parts += [f"({column} IS NULL)", f"{column} DESC"]
            else:
                parts += [f"({column} IS NULL) DESC", column]
        parts += [f"n.{_tick(f)}" for f in label.key if f not in seen]
        return ", ".join(parts)

    def find(self, schema: EntitySchema, query: Query) -> list[Row]:
        label = self._label(schema)
        server, client = self._split(label, query.filters)
        for item in query.order_by:
            self._field(label, item.field)
        params = _Params()
        where = self._where(label, server, params)
        if client or any(self._client_side(label, item.field) for item in query.order_by):
            found = self._records(f"MATCH (n:{label.q}) {where}RETURN properties(n) AS p", params.values)
            rows = [row for row in (label.decode(r["p"]) for r in found) if all(f.matches(row) for f in client)]
            rows.sort(key=sort_key(schema, query.order_by))
            return rows if query.limit is None else rows[: query.limit]
        text = f"MATCH (n:{label.q}) {where}WITH n ORDER BY {self._order(label, query.order_by)} "
        if query.limit is not None:
            text += f"LIMIT {params.add(int(query.limit))} "
        found = self._records(text + "RETURN properties(n) AS p", params.values)
        return [label.decode(record["p"]) for record in found]

    def count(self, schema: EntitySchema, filters: Sequence[Filter] = ()) -> int:
        label = self._label(schema)
        server, client = self._split(label, filters)
        params = _Params()
        where = self._where(label, server, params)
        if client:
            found = self._records(f"MATCH (n:{label.q}) {where}RETURN properties(n) AS p", params.values)
            return sum(1 for r in found if all(f.matches(label.decode(r["p"])) for f in client))
        found = self._records(f"MATCH (n:{label.q}) {where}RETURN count(n) AS c", params.values)
        return int(found[0]["c"])

    def scan(
        self,
        schema: EntitySchema,
        *,
        tokens: TokenRange | None = None,
        keys: KeyRange | None = None,
        batch_size: int = 500,
    ) -> Iterator[list[Row]]:
        label = self._label(schema)
        if batch_size < 1:
            raise QueryError(f"batch_size must be positive, not {batch_size}")
        if tokens is not None and not self._with_token.get(label.name, True):
            raise QueryError(f"{schema.name}: a token range scan needs a hash-routed store")
        keys_in_python = keys is not None and any(self._client_side(label, f) for f in schema.shard_key)
        server_keys = None if keys_in_python else keys
        order = self._scan_order(schema, tokens)
        position: list[Any] | None = None
        while True:
            text, params = self._scan_query(label, tokens, server_keys, position, batch_size)
            batch = [label.decode(record["p"]) for record in self._records(text, params)]
            if not batch:
                return
            position = [batch[-1][f] for f in order]
            selected = [r for r in batch if keys is None or server_keys is not None or schema.shard_key_of(r) in keys]
            if selected:
                yield selected
            if len(batch) < batch_size:
                return

    @staticmethod
    def _scan_order(schema: EntitySchema, tokens: TokenRange | None) -> list[str]:
        return ([TOKEN_FIELD] if tokens is not None else []) + list(schema.key)

    def _scan_query(
        self,
        label: _Label,
        tokens: TokenRange | None,
        keys: KeyRange | None,
        position: list[Any] | None,
        batch_size: int,
    ) -> tuple[str, dict[str, Any]]:
        """One page of a scan: index-seekable bounds, keyset after ``position``, ordered, limited."""
        order = self._scan_order(label.schema, tokens)
        columns = [f"n.{_tick(f)}" for f in order]
        params = _Params()
        conditions = self._scan_bounds(label, tokens, keys, position, params)
        if position is not None:
            encoded = [params.add(_encode_key(label.kind(f), v)) for f, v in zip(order, position, strict=True)]
            conditions.append(_lex(columns, encoded, ">"))
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        text = (
            f"MATCH (n:{label.q}) {self._scan_hint(label, tokens, keys)}{where}WITH n ORDER BY {', '.join(columns)} "
            f"LIMIT {params.add(batch_size)} RETURN properties(n) AS p"
        )
        return text, params.values

    @staticmethod
    def _scan_hint(label: _Label, tokens: TokenRange | None, keys: KeyRange | None) -> str:
        """Force the index seek: on a wide range the planner may prefer scanning a whole index
        in order, which reads every entry below the page's start."""
        if tokens is not None:
            return f"USING INDEX SEEK n:{label.q}({_tick(TOKEN_FIELD)}) "
        shard_key = label.schema.shard_key
        if keys is not None and len(shard_key) == 1 and (keys.lower is not None or keys.upper is not None):
            return f"USING INDEX SEEK n:{label.q}({_tick(shard_key[0])}) "
        return ""

    def _scan_bounds(
        self,
        label: _Label,
        tokens: TokenRange | None,
        keys: KeyRange | None,
        position: list[Any] | None,
        params: _Params,
    ) -> list[str]:
        """Index-seekable bounds: the token range (raised to the last page's token) and the key range."""
        conditions: list[str] = []
        token = f"n.{_tick(TOKEN_FIELD)}"
        if tokens is not None:
            start = tokens.start if position is None else max(tokens.start, int(position[0]))
            # Token ranges may end at 2**63 (one past the last token), which Bolt cannot send.
            conditions.append(f"{token} >= {params.add(max(start, _INT64[0]))}")
            if tokens.end <= _INT64[1]:
                conditions.append(f"{token} < {params.add(tokens.end)}")
        if keys is not None:
            shard_columns = [f"n.{_tick(f)}" for f in label.schema.shard_key]
            for bound, op in ((keys.lower, ">="), (keys.upper, "<")):
                if bound is None:
                    continue
                values = (bound,) if len(shard_columns) == 1 else tuple(bound)
                encoded = [
                    params.add(_encode(label.kind(f), v)) for f, v in zip(label.schema.shard_key, values, strict=True)
                ]
                conditions.append(_lex(shard_columns, encoded, op))
        return conditions

    # -- ATOMIC_INCREMENT / PARTIAL_UPDATE ---------------------------------------------
    def increment(self, schema: EntitySchema, key: Any, field: str, amount: int | float) -> int | float:
        label = self._label(schema)
        spec = self._field(label, field)
        if spec.type not in ("int", "float") or field in schema.key:
            raise QueryError(f"{schema.name}.{field} is {spec.type}; increment needs a non-key int or float field")
        column = f"n.{_tick(field)}"
        query = (
            f"MATCH (n:{label.q} {label.key_map('$key')}) "
            f"SET {column} = coalesce({column}, 0) + $amount RETURN {column} AS v"
        )
        amount = float(amount) if spec.type == "float" else amount
        found = self._records(query, {"key": label.key_params(key), "amount": amount}, write=True, key=key)
        if not found:
            raise NotFoundError(f"{schema.name} does not exist", store=self.store, shard=self.shard, key=key)
        value = found[0]["v"]
        return float(value) if spec.type == "float" else int(value)

    def update(self, schema: EntitySchema, key: Any, changes: Mapping[str, Any]) -> bool:
        label = self._label(schema)
        top: dict[str, Any] = {}
        paths: dict[str, list[tuple[list[str], Any]]] = {}
        for path, value in changes.items():
            name, _, rest = path.partition(".")
            spec = label.specs.get(name)
            if spec is None:
                raise QueryError(f"{schema.name}: unknown field {name!r} (fields: {', '.join(schema.field_names)})")
            if name in schema.key or name in schema.shard_key:
                raise QueryError(f"{schema.name}.{name} is part of the key or shard key; it cannot change")
            if rest and spec.type != "json":
                raise QueryError(f"{schema.name}.{name} is {spec.type}, not a nested field: {path!r}")
            if rest:
                paths.setdefault(name, []).append((rest.split("."), value))
            else:
                top[name] = value
        params = {"key": label.key_params(key)}
        lock = f"n.{_tick(schema.key[0])}"
        match = f"MATCH (n:{label.q} {label.key_map('$key')}) "

        def work(tx: neo4j.ManagedTransaction) -> bool:
            # Writing the key to itself takes the node's write lock before anything is read.
            found = list(tx.run(match + f"SET {lock} = {lock} RETURN properties(n) AS p", params))
            if not found:
                return False
            current = label.decode(found[0]["p"])
            values = dict(top)
            for name, steps in paths.items():
                values[name] = _set_paths(values.get(name, current.get(name)), steps)
            encoded = {name: _encode(label.specs[name].type, value) for name, value in values.items()}
            tx.run(match + "SET n += $changes", {**params, "changes": encoded}).consume()
            return True

        if not changes:
            return self.get(schema, key) is not None
        return self._write(work, key)

    # -- GRAPH -------------------------------------------------------------------------
    def relate(self, schema: EntitySchema, relationship: Relationship, target: EntitySchema) -> None:
        source, other = self._label(schema), self._label(target)
        rel = _tick(_ident(relationship.type, "relationship type"))
        props: dict[str, Any] = {}
        for name, value in relationship.properties.items():
            if not isinstance(name, str):
                raise QueryError(f"relationship property names are strings, not {name!r}")
            stored = _property_value(name, value)
            if stored is not None:
                props[name] = stored
        query = (
            f"OPTIONAL MATCH (a:{source.q} {source.key_map('$source')}) "
            f"OPTIONAL MATCH (b:{other.q} {other.key_map('$target')}) "
            "FOREACH (_ IN CASE WHEN a IS NOT NULL AND b IS NOT NULL THEN [1] ELSE [] END | "
            f"MERGE (a)-[r:{rel}]->(b) SET r = $props) "
            "RETURN a IS NOT NULL AS has_source, b IS NOT NULL AS has_target"
        )
        params = {
            "source": source.key_params(relationship.source),
            "target": other.key_params(relationship.target),
            "props": props,
        }
        found = self._records(query, params, write=True, key=relationship.source)
        record = found[0]
        if not record["has_source"]:
            raise NotFoundError(
                f"{schema.name} does not exist", store=self.store, shard=self.shard, key=relationship.source
            )
        if not record["has_target"]:
            raise NotFoundError(
                f"{target.name} does not exist", store=self.store, shard=self.shard, key=relationship.target
            )

    def edges_of(
        self, schema: EntitySchema, keys: Sequence[Any], other: EntitySchema, *, incoming: bool = False
    ) -> list[Relationship]:
        """Edges from these ``schema`` nodes to ``other`` nodes (or into them with
        ``incoming``), any type: one UNWIND per 500 keys."""
        mine, theirs = self._label(schema), self._label(other)
        arrow = "<-[r]-" if incoming else "-[r]->"
        query = (
            f"UNWIND $keys AS k MATCH (a:{mine.q} {mine.key_map('k')}){arrow}(b:{theirs.q}) "
            "RETURN properties(a) AS a, type(r) AS t, properties(r) AS rp, properties(b) AS b"
        )
        found: list[Relationship] = []
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            params = {"keys": [mine.key_params(key) for key in unique[start : start + 500]]}
            for record in self._records(query, params):
                properties = {name: _native(value) for name, value in record["rp"].items()}
                here, there = mine.key_of(mine.decode(record["a"])), theirs.key_of(theirs.decode(record["b"]))
                ends = (there, here) if incoming else (here, there)
                found.append(Relationship(record["t"], ends[0], ends[1], properties))
        return found

    def unrelate(self, schema: EntitySchema, relationship: Relationship, target: EntitySchema) -> bool:
        source, other = self._label(schema), self._label(target)
        rel = _tick(_ident(relationship.type, "relationship type"))
        query = (
            f"MATCH (a:{source.q} {source.key_map('$source')})-[r:{rel}]->(b:{other.q} {other.key_map('$target')}) "
            "DELETE r RETURN count(*) AS c"
        )
        params = {"source": source.key_params(relationship.source), "target": other.key_params(relationship.target)}
        found = self._records(query, params, write=True, key=relationship.source)
        return bool(found and found[0]["c"])

    @staticmethod
    def _rel(type: str | None, variable: str = "") -> str:
        return f"{variable}:{_tick(_ident(type, 'relationship type'))}" if type else variable

    def neighbors(
        self,
        schema: EntitySchema,
        key: Any,
        *,
        type: str | None = None,
        direction: Direction = "out",
        target: EntitySchema | None = None,
    ) -> list[Neighbor]:
        source = self._label(schema)
        other = self._label(target or schema)
        pattern = _pattern(_check_direction(direction), self._rel(type, "r"))
        query = (
            f"MATCH (a:{source.q} {source.key_map('$key')}){pattern}(b:{other.q}) "
            "WITH DISTINCT a, r, b "
            f"ORDER BY {other.order_key('b')}, type(r), startNode(r) = a DESC "
            "RETURN properties(b) AS p, type(r) AS t, properties(r) AS rp, startNode(r) = a AS outgoing"
        )
        found = self._records(query, {"key": source.key_params(key)}, key=key)
        result: list[Neighbor] = []
        for record in found:
            row = other.decode(record["p"])
            node_key = other.key_of(row)
            ends = (key, node_key) if record["outgoing"] else (node_key, key)
            properties = {name: _native(value) for name, value in record["rp"].items()}
            result.append(Neighbor(row, Relationship(record["t"], ends[0], ends[1], properties)))
        return result

    def _steps(self, label: _Label, type: str | None, direction: Direction, low: int, high: int) -> str:
        """A quantified path pattern of ``low..high`` hops whose every node has ``label``."""
        hop = _pattern(_check_direction(direction), self._rel(type))
        return "(()" + hop + f"(:{label.q})){{{int(low)},{int(high)}}}"

    def traverse(
        self,
        schema: EntitySchema,
        key: Any,
        *,
        type: str | None = None,
        direction: Direction = "out",
        depth: int = 1,
    ) -> list[tuple[int, Row]]:
        label = self._label(schema)
        depth = _check_depth(depth, "depth", minimum=1)
        query = (
            f"MATCH (a:{label.q} {label.key_map('$key')}) "
            f"MATCH p = ANY SHORTEST (a){self._steps(label, type, direction, 1, depth)}(b) "
            "WHERE b <> a "
            f"WITH length(p) AS d, b ORDER BY d, {label.order_key('b')} "
            "RETURN d, properties(b) AS p"
        )
        found = self._records(query, {"key": label.key_params(key)}, key=key)
        return [(int(record["d"]), label.decode(record["p"])) for record in found]

    def shortest_path(
        self,
        schema: EntitySchema,
        source: Any,
        target: Any,
        *,
        type: str | None = None,
        direction: Direction = "out",
        max_depth: int = 6,
    ) -> list[Row] | None:
        label = self._label(schema)
        max_depth = _check_depth(max_depth, "max_depth", minimum=0)
        steps = self._steps(label, type, direction, 1, max(max_depth, 1))
        if label.key_params(source) == label.key_params(target):
            row = self.get(schema, source)
            return None if row is None else [row]
        if max_depth == 0:
            return None
        query = (
            f"MATCH (a:{label.q} {label.key_map('$source')}) MATCH (b:{label.q} {label.key_map('$target')}) "
            f"MATCH p = ANY SHORTEST (a){steps}(b) "
            "RETURN [x IN nodes(p) | properties(x)] AS nodes LIMIT 1"
        )
        params = {"source": label.key_params(source), "target": label.key_params(target)}
        found = self._records(query, params, key=source)
        return [label.decode(props) for props in found[0]["nodes"]] if found else None


def _check_direction(direction: str) -> Direction:
    if direction not in ("out", "in", "both"):
        raise QueryError(f"direction must be 'out', 'in' or 'both', not {direction!r}")
    return direction  # type: ignore[return-value]


def _check_depth(value: Any, what: str, *, minimum: int) -> int:
    """Depths go into query text (Cypher cannot parameterise them): plain ints only."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise QueryError(f"{what} must be an integer >= {minimum}, not {value!r}")
    return value


def _set_paths(document: Any, steps: Sequence[tuple[list[str], Any]]) -> Any:
    """``document`` with each dotted path set, creating (or replacing) intermediate objects."""
    root: dict[str, Any] = dict(document) if isinstance(document, Mapping) else {}
    for path, value in steps:
        node = root
        for step in path[:-1]:
            child = node.get(step)
            child = dict(child) if isinstance(child, Mapping) else {}
            node[step] = child
            node = child
        node[path[-1]] = value
    return root
