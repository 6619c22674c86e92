"""The document adapter: pymongo over MongoDB and MongoDB-wire servers (FerretDB 1.x).

Layout, and why:

* One collection per entity, named ``namespace + schema.name``; one adapter per shard,
  each shard its own database (the URL's path, e.g. ``mongodb://host/polystore_s0``).
  Replica-set and ``mongodb+srv`` URIs go to ``MongoClient`` unchanged.
* ``_id`` is the key: the encoded value for a simple key, a sub-document
  ``{field: value, ...}`` (in key order) for a composite key. Key fields are not repeated
  as top-level fields; filters and orders on them use ``_id`` / ``_id.<field>``. Embedded
  documents compare field by field, so ordering by a composite ``_id`` is tuple order.
* Scalar fields are top-level fields, encoded so that the server's order is Python's
  order and nothing is lost: ``datetime`` as int64 microseconds since the epoch (BSON
  dates are milliseconds), ``date`` as ``YYYY-MM-DD``, ``uuid`` as its canonical string,
  ``bytes`` as lowercase hex (BSON binary sorts by length first), ``decimal`` as an
  order-preserving string (``_decimal_key``; BSON Decimal128 has only 34 digits and
  FerretDB 1.24 does not support it: it drops the connection). Decimals come back
  numerically equal but normalised (``Decimal("1.10")`` reads back as ``Decimal("1.1")``).
* ``json`` fields are nested documents and arrays. Their keys are escaped reversibly so
  any JSON key round-trips, although MongoDB-wire servers reject ``$``-prefixed and
  dotted field names and BSON forbids NUL in names: ``%`` -> ``%25``, ``.`` -> ``%2E``,
  ``$`` -> ``%24``, NUL -> ``%00``, and the empty key becomes ``%``. FerretDB also
  rejects arrays directly inside arrays, so an inner array is stored as ``{"%[": [...]}``
  (a key no escaped name can equal). Dotted filter paths are escaped step by step.
* Hash-routed collections carry ``_ps_token`` with an index on ``(_ps_token, _id)``: a
  token-range scan is ``_ps_token >= start AND < end`` ordered by that index and paged
  by keyset (``(token, _id) > last``), an index range scan on MongoDB. FerretDB 1.24 on
  SQLite creates the index but does not push filters or sorts down to SQLite (its
  ``explain`` shows ``filterPushdown: false``), so there each batch reads the collection.
* Filters run on the server with Python's semantics (``Filter.matches``): MongoDB's
  ``null`` matches missing fields, ``$ne`` keeps them and ``$lt`` never matches null, as
  Python does. Inside json values the server's array traversal, type brackets and
  ``True != 1`` differ from Python, so each nested filter carries guards (no array on
  the way to the leaf, explicit bool/number sets) that make it exact. Filters whose
  value is itself a dict or list cannot be expressed exactly (embedded documents compare
  in key order); they send a superset to the server and are re-checked in Python on the
  shard's candidate rows, before the limit. Ordering is always on the server (code-point
  order for strings on MongoDB and FerretDB), nulls first ascending, ties by ``_id``.
  Ordering by a json field or path is refused.
  A ``bool`` field has three possible values, so its filters become ``$in`` over the
  ones Python's ``matches`` accepts (``flag == 1`` holds for True, as in Python).
* PARTIAL_UPDATE is one ``$set`` (guarded so that no array is on a path's way); when a
  path crosses a null object or an array, or two paths overlap, the adapter reads the
  fields, applies the changes in Python (a null object on the way becomes ``{}``; any
  other non-object is a QueryError) and writes them back with a compare-and-set on
  their old values (retried on a conflict).
  ATOMIC_INCREMENT is ``$inc`` (a null field first becomes 0). FerretDB 1.24 applies
  update operators as an unconditioned read-then-write, so concurrent updates of one
  document lose writes; on FerretDB (detected through ``buildInfo``; option
  ``row_locks``) every increment and partial update holds a per-row lock document in
  ``<namespace>_ps_locks`` (an insert with a unique ``_id``: a mutex across processes,
  taken over after 30 s if its writer died). A concurrent full ``put`` is not locked
  and may still interleave with an update there. No TTL: MongoDB's TTL
  monitor runs once a minute, too coarse for the contract's expiry through ``get``. No
  transactions: FerretDB has none.
* ``put_many`` is ``bulk_write`` of ``ReplaceOne(upsert)``; on FerretDB in batches of at
  most ``bulk_batch`` (option; default 8 there, unbounded on MongoDB). FerretDB 1.24 over
  SQLite keeps the SQLite cursor of every *matched* replacement of one ``update`` command
  open until the command ends, and its pool has 100 connections per database: a command
  replacing more than 100 existing documents waits forever for a 101st connection and
  holds the other 100, so every later read of that database hangs, and the next
  ``drop``/``create`` takes the server's catalog lock and wedges the whole server (only a
  restart cures it). Small batches keep each command far below the pool, with room for
  concurrent writers (the pool is shared by every client of the database); the server's
  time per row dwarfs the extra round trips.
* Every pymongo/bson exception is translated into ``toolkit.errors`` (``DRIVER_ERRORS``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import operator
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeAlias

import pymongo
from bson.errors import BSONError, InvalidDocument
from pymongo import ReplaceOne, ReturnDocument
from pymongo import errors as mongo_errors
from pymongo.collection import Collection
from pymongo.database import Database

from adapters._options import AdapterOptions
from adapters.base import TOKEN_FIELD, Adapter, Capability, Filter, Order, Query, Row, ShardInfo
from adapters.document._options import DocumentOptions
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
from sharding.core.model import EntitySchema, ScalarType

__all__ = [
    "ARRAY_WRAPPER",
    "DRIVER_ERRORS",
    "DocumentAdapter",
    "decode_json",
    "encode_json",
    "escape_key",
    "translate_error",
    "unescape_key",
]

Doc: TypeAlias = dict[str, Any]

_IN_CHUNK: Final = 500
_CAS_ATTEMPTS: Final = 20
_MAX_TOKEN: Final = 2**63 - 1
_LOCKS: Final = "_ps_locks"
_LOCK_LEASE: Final = 30.0
"""Seconds after which a row lock left by a crashed writer may be taken over."""
_FERRETDB_BULK_BATCH: Final = 8
"""Replacements per ``bulk_write`` on FerretDB (see the module docstring: more than 100
matched replacements in one command, summed over concurrent commands on one database,
deadlock FerretDB 1.24's SQLite pool)."""
_NOTHING: Final[Doc] = {"_id": {"$in": []}}
"""A filter no document matches (an impossible condition such as ``lt None``)."""

# -- json keys ---------------------------------------------------------------------------
ARRAY_WRAPPER: Final = "%["
"""The one key of the document that stands for an array inside an array."""
_EMPTY_KEY: Final = "%"
_ESCAPES: Final = {"%": "%25", ".": "%2E", "$": "%24", "\x00": "%00"}
_UNESCAPE: Final = re.compile(r"%([0-9A-F]{2})")


def escape_key(key: str) -> str:
    """A JSON object key as a field name every MongoDB-wire server accepts (reversible)."""
    if not key:
        return _EMPTY_KEY
    if not any(char in key for char in _ESCAPES):
        return key
    return "".join(_ESCAPES.get(char, char) for char in key)


def unescape_key(name: str) -> str:
    """The inverse of ``escape_key``."""
    if name == _EMPTY_KEY:
        return ""
    if "%" not in name:
        return name
    return _UNESCAPE.sub(lambda match: chr(int(match.group(1), 16)), name)


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value


def encode_json(value: Any) -> Any:
    """A JSON value as stored: keys escaped, arrays inside arrays wrapped."""
    if isinstance(value, Mapping):
        return {escape_key(str(key)): encode_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encode_element(item) for item in value]
    return _jsonable(value) if not isinstance(value, str | int | float | bool | None) else value


def _encode_element(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return {ARRAY_WRAPPER: [_encode_element(item) for item in value]}
    return encode_json(value)


def decode_json(value: Any) -> Any:
    """The inverse of ``encode_json``."""
    if isinstance(value, dict):
        if len(value) == 1 and ARRAY_WRAPPER in value:
            return [decode_json(item) for item in value[ARRAY_WRAPPER]]
        return {unescape_key(key): decode_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_json(item) for item in value]
    return value


# -- scalars -----------------------------------------------------------------------------
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EXP_OFFSET: Final = 10**18


def _micros(value: dt.datetime) -> int:
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _decimal_key(value: decimal.Decimal) -> str:
    """A string whose code-point order is the numeric order of finite or infinite decimals.

    ``0...`` negative, ``1`` zero, ``2...`` positive; after the sign class comes the
    exponent (fixed width, offset; inverted for negatives) and the significant digits
    (nines' complement plus a terminator for negatives, so shorter sorts after longer).
    """
    if value.is_nan():
        raise QueryError("a NaN decimal cannot be stored or compared")
    if value.is_infinite():
        return "3" if value > 0 else "0"
    if value.is_zero():
        return "1"
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits)).rstrip("0")
    magnitude = exponent + len(digits)
    if abs(magnitude) >= _EXP_OFFSET:
        raise QueryError(f"decimal {value} is out of the storable range")
    if not sign:
        return f"2{magnitude + _EXP_OFFSET:019d}{text}"
    complement = "".join(str(9 - int(char)) for char in text)
    return f"0{_EXP_OFFSET - magnitude:019d}{complement}~"


def _decimal_from_key(text: str) -> decimal.Decimal:
    if text == "1":
        return decimal.Decimal(0)
    if text == "3":
        return decimal.Decimal("Infinity")
    if text == "0":
        return decimal.Decimal("-Infinity")
    if text[0] == "2":
        magnitude, digits = int(text[1:20]) - _EXP_OFFSET, text[20:]
        return decimal.Decimal((0, tuple(int(char) for char in digits), magnitude - len(digits)))
    magnitude = _EXP_OFFSET - int(text[1:20])
    digits = "".join(str(9 - int(char)) for char in text[20:-1])
    return decimal.Decimal((1, tuple(int(char) for char in digits), magnitude - len(digits)))


_MISMATCH: Final = object()
"""A filter value of a type that can never equal (or be ordered against) the field's."""


def _encode(kind: ScalarType, value: Any) -> Any:
    """A row value as stored (see the module docstring)."""
    if value is None:
        return None
    if kind == "datetime":
        return _micros(value)
    if kind == "date":
        return value.isoformat()
    if kind == "bytes":
        return bytes(value).hex()
    if kind == "uuid":
        return str(value)
    if kind == "decimal":
        return _decimal_key(value)
    if kind == "json":
        return encode_json(value)
    return value


def _decode(kind: ScalarType, value: Any) -> Any:
    if value is None:
        return None
    if kind == "datetime":
        return _EPOCH + dt.timedelta(microseconds=int(value))
    if kind == "date":
        return dt.date.fromisoformat(value)
    if kind == "bytes":
        return bytes.fromhex(value)
    if kind == "uuid":
        return uuid.UUID(value)
    if kind == "decimal":
        return _decimal_from_key(value)
    if kind == "json":
        return decode_json(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    return value


_FITS: Final[dict[str, Callable[[Any], bool]]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int | float),
    "float": lambda v: isinstance(v, int | float),
    "bytes": lambda v: isinstance(v, bytes | bytearray),
    "uuid": lambda v: isinstance(v, uuid.UUID),
    "date": lambda v: isinstance(v, dt.date) and not isinstance(v, dt.datetime),
    "datetime": lambda v: isinstance(v, dt.datetime),
    "decimal": lambda v: isinstance(v, decimal.Decimal | int | float) and not isinstance(v, bool),
}


def _encode_operand(kind: ScalarType, value: Any) -> Any:
    """A filter value in the field's stored form, or ``_MISMATCH`` if no row value can match."""
    if value is None:
        return None
    if not _FITS[kind](value):
        return _MISMATCH
    if isinstance(value, bool):
        return int(value)
    if kind == "decimal" and not isinstance(value, decimal.Decimal):
        value = decimal.Decimal(value)
    return _encode(kind, value)


# -- errors ------------------------------------------------------------------------------
DRIVER_ERRORS: Final[tuple[tuple[type[BaseException], type[StoreError], bool], ...]] = (
    (mongo_errors.DuplicateKeyError, DuplicateKeyError, False),
    (mongo_errors.ExecutionTimeout, StoreTimeout, True),
    (mongo_errors.WTimeoutError, StoreTimeout, True),
    (mongo_errors.NetworkTimeout, StoreTimeout, True),
    (mongo_errors.WaitQueueTimeoutError, StoreTimeout, True),
    (mongo_errors.ServerSelectionTimeoutError, StoreUnavailable, True),
    (mongo_errors.NotPrimaryError, StoreUnavailable, True),
    (mongo_errors.AutoReconnect, StoreUnavailable, True),
    (mongo_errors.ConnectionFailure, StoreUnavailable, True),
    (mongo_errors.CursorNotFound, StoreError, True),
    (mongo_errors.BulkWriteError, StoreError, False),
    (mongo_errors.WriteConcernError, StoreError, True),
    (mongo_errors.WriteError, StoreError, False),
    (mongo_errors.OperationFailure, StoreError, False),
    (mongo_errors.DocumentTooLarge, StoreError, False),
    (mongo_errors.InvalidName, StoreError, False),
    (mongo_errors.InvalidOperation, StoreError, False),
    (mongo_errors.ConfigurationError, StoreError, False),
    (mongo_errors.ProtocolError, StoreError, False),
    (mongo_errors.PyMongoError, StoreError, False),
    (InvalidDocument, StoreError, False),
    (BSONError, StoreError, False),
    (OverflowError, StoreError, False),
)
"""Every exception the adapter catches, most specific first: (class, toolkit error, retryable).

``OperationFailure`` (and so ``WriteError``) is refined by its code and labels: a
``RetryableWriteError`` label or a transient code is retryable, a time limit is a
``StoreTimeout``. A ``BulkWriteError`` whose every error is a duplicate key is a
``DuplicateKeyError``.
"""

_TIMEOUT_CODES: Final = frozenset({50, 89, 262})
_TRANSIENT_CODES: Final = frozenset({6, 7, 91, 112, 189, 9001, 10107, 11600, 11602, 13435, 13436})
_CAUGHT: Final = tuple(cls for cls, _, _ in DRIVER_ERRORS)


def translate_error(exc: BaseException, *, store: str, shard: str, key: Any = None) -> StoreError:
    """The toolkit error for a driver exception (see ``DRIVER_ERRORS``)."""
    text = _first_line(exc)
    if isinstance(exc, mongo_errors.BulkWriteError):
        codes = {error.get("code") for error in exc.details.get("writeErrors", [])}
        if codes == {11000}:
            return DuplicateKeyError(text, store=store, shard=shard, key=key)
    if isinstance(exc, mongo_errors.OperationFailure) and not isinstance(
        exc, mongo_errors.DuplicateKeyError | mongo_errors.BulkWriteError
    ):
        if exc.code in _TIMEOUT_CODES:
            return StoreTimeout(text, store=store, shard=shard, key=key)
        if exc.code in _TRANSIENT_CODES or exc.has_error_label("RetryableWriteError"):
            return StoreError(text, store=store, shard=shard, key=key, retryable=True)
    for cls, error, retryable in DRIVER_ERRORS:
        if isinstance(exc, cls):
            return error(text, store=store, shard=shard, key=key, retryable=retryable)
    return StoreError(text, store=store, shard=shard, key=key, retryable=False)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    for tail in (", full error:", ", Topology Description:"):
        text = text.split(tail, 1)[0]
    return text[:500]


@contextlib.contextmanager
def _translated(store: str, shard: str, key: Any = None) -> Iterator[None]:
    try:
        yield
    except _CAUGHT as exc:
        raise translate_error(exc, store=store, shard=shard, key=key) from exc


# -- filters -----------------------------------------------------------------------------
_COMPARE: Final[dict[str, tuple[str, Callable[[Any, Any], bool]]]] = {
    "lt": ("$lt", operator.lt),
    "le": ("$lte", operator.le),
    "gt": ("$gt", operator.gt),
    "ge": ("$gte", operator.ge),
}


def _all(clauses: Sequence[Doc]) -> Doc:
    clauses = [clause for clause in clauses if clause]
    if not clauses:
        return {}
    return clauses[0] if len(clauses) == 1 else {"$and": list(clauses)}


def _any(clauses: Sequence[Doc]) -> Doc:
    return clauses[0] if len(clauses) == 1 else {"$or": list(clauses)}


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _equal_set(value: Any) -> list[Any]:
    """The stored scalars Python's ``==`` equates with ``value`` (``True == 1 == 1.0``)."""
    if isinstance(value, bool):
        return [value, int(value)]
    if isinstance(value, int | float) and value in (0, 1):
        return [value, bool(value)]
    return [value]


def _safe_match(item: Filter, row: Row) -> bool:
    try:
        return item.matches(row)
    except TypeError:  # Python cannot order these types: no match, as on the server
        return False


class _JsonPath:
    """Exact server conditions for a filter on a path inside a json field.

    ``guards`` say that no proper prefix of the path is an array: under them the server
    resolves the path exactly as ``resolve_path`` does (a scalar on the way gives
    "missing"); without them Python sees None.
    """

    def __init__(self, field: str, steps: Sequence[str]) -> None:
        names = [field, *(escape_key(step) for step in steps)]
        self.leaf = ".".join(names)
        prefixes = [".".join(names[:end]) for end in range(1, len(names))]
        self.guards: list[Doc] = [{prefix: {"$not": {"$type": "array"}}} for prefix in prefixes]
        self.breaks: list[Doc] = [{prefix: {"$type": "array"}} for prefix in prefixes]
        self.leaf_not_array: Doc = {self.leaf: {"$not": {"$type": "array"}}}

    def equal(self, value: Any) -> Doc:
        if value is None:
            return _any([*self.breaks, _all([{self.leaf: None}, self.leaf_not_array])])
        return self.one_of([value])

    def one_of(self, values: Sequence[Any]) -> Doc:
        wanted = [candidate for value in values if value is not None for candidate in _equal_set(value)]
        clauses = [_all([*self.guards, {self.leaf: {"$in": wanted}}, self.leaf_not_array])] if wanted else []
        if any(value is None for value in values):
            clauses.append(self.equal(None))
        return _any(clauses) if clauses else _NOTHING

    def compare(self, op: str, value: Any) -> Doc:
        if value is None:
            return _NOTHING
        mongo_op, python_op = _COMPARE[op]
        if isinstance(value, str):
            leaf: Doc = {self.leaf: {mongo_op: value}}
        else:
            leaf = {self.leaf: {mongo_op: int(value) if isinstance(value, bool) else value}}
            bools = [flag for flag in (False, True) if python_op(flag, value)]
            if bools:
                leaf = _any([leaf, {self.leaf: {"$in": bools}}])
        return _all([*self.guards, leaf, self.leaf_not_array])

    def contains(self, value: Any) -> Doc:
        return _all([*self.guards, {self.leaf: {"$type": "array"}}, {self.leaf: {"$in": _equal_set(value)}}])

    def superset(self, op: str) -> Doc:
        """A condition every match of an inexact filter (dict/list operand) satisfies."""
        if op == "eq":
            return _all(self.guards)
        if op == "contains":
            return _all([*self.guards, {self.leaf: {"$type": "array"}}])
        return {}

    def clause(self, item: Filter) -> tuple[Doc, bool]:
        """(server condition, exact?) for ``item``."""
        value = item.value
        if item.op == "in":
            if all(_is_scalar(v) for v in value):
                return self.one_of(list(value)), True
            return {}, False
        if not _is_scalar(value):
            return self.superset(item.op), False
        if item.op == "eq":
            return self.equal(value), True
        if item.op == "ne":
            return {"$nor": [self.equal(value)]}, True
        if item.op == "contains":
            return self.contains(value), True
        return self.compare(item.op, value), True


# -- entities ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Entity:
    """A collection and how the rows of one entity map onto its documents."""

    schema: EntitySchema
    collection: Collection[Doc]
    kinds: Mapping[str, ScalarType]
    with_token: bool

    @property
    def simple_key(self) -> bool:
        return len(self.schema.key) == 1

    def path(self, field: str) -> str:
        """The document path of a top-level field."""
        if field in self.schema.key:
            return "_id" if self.simple_key else f"_id.{field}"
        return field

    def key_id(self, key: Any) -> Any:
        if self.simple_key:
            return _encode(self.kinds[self.schema.key[0]], key)
        if not isinstance(key, tuple | list) or len(key) != len(self.schema.key):
            raise QueryError(f"{self.schema.name}: the key is a tuple of ({', '.join(self.schema.key)}), not {key!r}")
        return {name: _encode(self.kinds[name], part) for name, part in zip(self.schema.key, key, strict=True)}

    def document(self, row: Row) -> Doc:
        try:
            doc: Doc = {"_id": self.key_id(self.schema.key_of(row))}
            for name, kind in self.kinds.items():
                if name not in self.schema.key:
                    doc[name] = _encode(kind, row[name])
            if self.with_token:
                doc[TOKEN_FIELD] = int(row[TOKEN_FIELD])
        except KeyError as exc:
            raise QueryError(f"row for {self.schema.name} lacks field {exc.args[0]!r}") from None
        return doc

    def row(self, doc: Doc) -> Row:
        row: Row = {}
        ident = doc["_id"]
        for name, kind in self.kinds.items():
            if name in self.schema.key:
                row[name] = _decode(kind, ident if self.simple_key else ident[name])
            else:
                row[name] = _decode(kind, doc.get(name))
        if TOKEN_FIELD in doc:
            row[TOKEN_FIELD] = int(doc[TOKEN_FIELD])
        return row


@dataclass(frozen=True, slots=True)
class _Plan:
    """A server filter plus the filters Python must re-check on its candidates."""

    query: Doc
    residual: tuple[Filter, ...]

    def accepts(self, row: Row) -> bool:
        return all(_safe_match(item, row) for item in self.residual)


class DocumentAdapter(Adapter):
    """One shard in one MongoDB database. See the module docstring."""

    capabilities: ClassVar[Capability] = (
        Capability.NESTED_FILTERS | Capability.PARTIAL_UPDATE | Capability.ATOMIC_INCREMENT
    )

    Options: ClassVar[type[AdapterOptions]] = DocumentOptions
    options: DocumentOptions

    def __init__(
        self, url: str, *, store: str, shard: str, options: Mapping[str, Any] | AdapterOptions | None = None
    ) -> None:
        super().__init__(url, store=store, shard=shard, options=options)
        self._prefix = self.options.namespace
        self.client = self._connect()
        self._entities: dict[str, _Entity] = {}
        self._lock = threading.Lock()
        self._row_locks: bool | None = self.options.row_locks_forced
        self._bulk_batch: int | None = self.options.bulk_batch_size
        self._ferretdb: bool | None = None
        self._lock_timeout = self.options.lock_timeout
        # Threads of this process queue here instead of spinning on the lock document.
        self._stripes = tuple(threading.Lock() for _ in range(64))

    def _connect(self) -> pymongo.MongoClient[Doc]:
        timeout_ms = int(self.options.connect_timeout * 1000)
        kwargs: dict[str, Any] = {
            "serverSelectionTimeoutMS": timeout_ms,
            "connectTimeoutMS": timeout_ms,
            "appname": "polystore",
        }
        if self.options.timeout > 0:  # see DocumentOptions.timeout
            kwargs["socketTimeoutMS"] = int(self.options.timeout * 1000)
        if self.options.pool_size is not None:
            kwargs["maxPoolSize"] = self.options.pool_size
        try:
            client: pymongo.MongoClient[Doc] = pymongo.MongoClient(self.url, **kwargs)
            self.database: Database[Doc] = client.get_default_database(default=self.options.database)
        except (mongo_errors.PyMongoError, ValueError, TypeError) as exc:
            raise ConfigError(f"{redact_url(self.url)}: {_first_line(exc)}") from None
        return client

    # -- schema ----------------------------------------------------------------------
    def _collection_name(self, schema: EntitySchema) -> str:
        return f"{self._prefix}{schema.name}"

    def ensure(self, schema: EntitySchema, *, with_token: bool) -> None:
        name = self._collection_name(schema)
        with self._lock:
            if name in self._entities:
                return
            entity = _Entity(
                schema=schema,
                collection=self.database[name],
                kinds={spec.name: spec.type for spec in schema.fields},
                with_token=with_token,
            )
            indexes: list[list[str]] = []
            if with_token:
                indexes.append([TOKEN_FIELD, "_id"])
            if schema.shard_key != schema.key:
                indexes.append([entity.path(field) for field in schema.shard_key])
            indexes.extend([entity.path(field) for field in index] for index in schema.indexes)
            with _translated(self.store, self.shard):
                for paths in indexes:
                    if paths != ["_id"]:
                        entity.collection.create_index([(path, pymongo.ASCENDING) for path in paths])
            self._entities[name] = entity

    def _entity(self, schema: EntitySchema) -> _Entity:
        found = self._entities.get(self._collection_name(schema))
        if found is None:
            raise StoreError(f"collection for {schema.name!r} not ensured", store=self.store, shard=self.shard)
        return found

    def drop(self, schema: EntitySchema) -> None:
        name = self._collection_name(schema)
        with self._lock, _translated(self.store, self.shard):
            self._entities.pop(name, None)
            self.database.drop_collection(name)

    # -- health ----------------------------------------------------------------------
    def ping(self) -> None:
        with _translated(self.store, self.shard):
            self.client.admin.command("ping")

    def describe(self) -> ShardInfo:
        try:
            with _translated(self.store, self.shard):
                version = self.client.server_info().get("version", "?")
                counts = {
                    name.removeprefix(self._prefix): self.database[name].estimated_document_count()
                    for name in sorted(self.database.list_collection_names())
                    if name.startswith(self._prefix) and not name.startswith(f"{self._prefix}_ps_")
                }
            return ShardInfo(reachable=True, tables=counts, server=f"mongodb {version} {redact_url(self.url)}")
        except StoreError as exc:
            return ShardInfo(reachable=False, error=str(exc), server=redact_url(self.url))

    def close(self) -> None:
        self.client.close()

    # -- rows ------------------------------------------------------------------------
    def put(self, schema: EntitySchema, row: Row) -> None:
        entity = self._entity(schema)
        doc = entity.document(row)
        with _translated(self.store, self.shard, schema.key_of(row)):
            try:
                entity.collection.replace_one({"_id": doc["_id"]}, doc, upsert=True)
            except mongo_errors.DuplicateKeyError:  # two upserts of a new key raced: now it exists
                entity.collection.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    def put_many(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        if not rows:
            return 0
        entity = self._entity(schema)
        # Last write wins within one batch, as with a sequence of puts.
        unique = {schema.key_of(row): entity.document(row) for row in rows}
        requests = [ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in unique.values()]
        with _translated(self.store, self.shard):
            size = self._bulk_batch_size() or len(requests)
            for start in range(0, len(requests), size):
                self._bulk_write(entity, requests[start : start + size])
        return len(unique)

    def _bulk_write(self, entity: _Entity, requests: list[ReplaceOne[Doc]]) -> None:
        """One unordered ``bulk_write`` of upserts, retried once after an upsert race."""
        try:
            entity.collection.bulk_write(requests, ordered=False)
        except mongo_errors.BulkWriteError as exc:
            if {error.get("code") for error in exc.details.get("writeErrors", [])} != {11000}:
                raise
            entity.collection.bulk_write(requests, ordered=False)  # upsert races: idempotent retry
        except KeyError as exc:
            # pymongo reads fields of the server's reply that FerretDB omits when a
            # concurrent bulk write fails ("nModified"): the outcome is unknown, and
            # the whole batch is idempotent upserts, so retrying is safe.
            raise StoreError(
                f"incomplete bulk write reply from the server (missing {exc.args[0]!r}); retry the batch",
                store=self.store,
                shard=self.shard,
                retryable=True,
            ) from exc

    def _bulk_batch_size(self) -> int | None:
        """Requests per ``bulk_write``: the option, else a small batch on FerretDB, else
        None (unbounded: pymongo splits at the server's own limit)."""
        if self._bulk_batch is None and self._is_ferretdb():
            return _FERRETDB_BULK_BATCH
        return self._bulk_batch

    def get(self, schema: EntitySchema, key: Any) -> Row | None:
        entity = self._entity(schema)
        with _translated(self.store, self.shard, key):
            doc = entity.collection.find_one({"_id": entity.key_id(key)})
        return entity.row(doc) if doc is not None else None

    def get_many(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        entity = self._entity(schema)
        ids = _unique_ids(entity, keys)
        rows: list[Row] = []
        with _translated(self.store, self.shard):
            for start in range(0, len(ids), _IN_CHUNK):
                cursor = entity.collection.find({"_id": {"$in": ids[start : start + _IN_CHUNK]}})
                rows.extend(entity.row(doc) for doc in cursor)
        return rows

    def delete(self, schema: EntitySchema, key: Any) -> bool:
        entity = self._entity(schema)
        with _translated(self.store, self.shard, key):
            return entity.collection.delete_one({"_id": entity.key_id(key)}).deleted_count > 0

    def delete_many(self, schema: EntitySchema, keys: Sequence[Any]) -> int:
        entity = self._entity(schema)
        ids = _unique_ids(entity, keys)
        deleted = 0
        with _translated(self.store, self.shard):
            for start in range(0, len(ids), _IN_CHUNK):
                deleted += entity.collection.delete_many({"_id": {"$in": ids[start : start + _IN_CHUNK]}}).deleted_count
        return deleted

    # -- queries ---------------------------------------------------------------------
    def _unknown(self, schema: EntitySchema, field: str) -> QueryError:
        return QueryError(f"{schema.name}: unknown field {field!r} (fields: {', '.join(schema.field_names)})")

    def _clause(self, entity: _Entity, item: Filter) -> tuple[Doc, bool]:
        schema = entity.schema
        head, dot, rest = item.field.partition(".")
        kind = entity.kinds.get(head)
        if kind is None:
            raise self._unknown(schema, item.field)
        if kind == "json":
            if not dot and item.op != "contains":
                raise QueryError(
                    f"{schema.name}.{head}: is a nested (JSON) field; filter on a dotted path inside it "
                    f"({head}.<name>) or use 'contains' for an array"
                )
            return _JsonPath(head, rest.split(".") if dot else []).clause(item)
        if dot:
            raise QueryError(f"{schema.name}.{head} is {kind}, not a nested field: {item.field!r}")
        if item.op == "contains":
            raise QueryError(f"{schema.name}.{head}: 'contains' needs a JSON array field, not {kind}")
        return self._scalar_clause(entity.path(head), kind, item), True

    @staticmethod
    def _scalar_clause(path: str, kind: ScalarType, item: Filter) -> Doc:
        if kind == "bool":  # three possible values: ask Python which of them match
            values = [flag for flag in (None, False, True) if _safe_match(item, {item.field: flag})]
            return {path: {"$in": values}} if values else _NOTHING
        if item.op == "in":
            values = [_encode_operand(kind, value) for value in item.value]
            return {path: {"$in": [value for value in values if value is not _MISMATCH]}}
        value = _encode_operand(kind, item.value)
        if item.op == "eq":
            return _NOTHING if value is _MISMATCH else {path: value}
        if item.op == "ne":
            return {} if value is _MISMATCH else {path: {"$ne": value}}
        if value is None or value is _MISMATCH:
            return _NOTHING  # ordering comparisons never match null (nor another type)
        return {path: {_COMPARE[item.op][0]: value}}

    def _plan(self, entity: _Entity, filters: Sequence[Filter]) -> _Plan:
        clauses: list[Doc] = []
        residual: list[Filter] = []
        for item in filters:
            clause, exact = self._clause(entity, item)
            clauses.append(clause)
            if not exact:
                residual.append(item)
        return _Plan(_all(clauses), tuple(residual))

    def _sort(self, entity: _Entity, order_by: Sequence[Order]) -> list[tuple[str, int]]:
        schema = entity.schema
        sort: list[tuple[str, int]] = []
        for item in order_by:
            kind = entity.kinds.get(item.field)
            if kind is None:
                raise self._unknown(schema, item.field)
            if kind == "json":
                raise QueryError(f"{schema.name}.{item.field}: is a nested (JSON) field; it cannot be ordered by")
            path = entity.path(item.field)
            if all(path != seen for seen, _ in sort):
                sort.append((path, pymongo.DESCENDING if item.descending else pymongo.ASCENDING))
        if all(path != "_id" for path, _ in sort):
            sort.append(("_id", pymongo.ASCENDING))
        return sort

    def find(self, schema: EntitySchema, query: Query) -> list[Row]:
        entity = self._entity(schema)
        plan = self._plan(entity, query.filters)
        sort = self._sort(entity, query.order_by)
        if query.limit == 0:
            return []
        with _translated(self.store, self.shard):
            cursor = entity.collection.find(plan.query, sort=sort)
            if not plan.residual:
                if query.limit is not None:
                    cursor = cursor.limit(query.limit)
                return [entity.row(doc) for doc in cursor]
            rows: list[Row] = []
            for doc in cursor:
                row = entity.row(doc)
                if plan.accepts(row):
                    rows.append(row)
                    if query.limit is not None and len(rows) >= query.limit:
                        break
            cursor.close()
            return rows

    def count(self, schema: EntitySchema, filters: Sequence[Filter] = ()) -> int:
        entity = self._entity(schema)
        plan = self._plan(entity, filters)
        with _translated(self.store, self.shard):
            if not plan.residual:
                return entity.collection.count_documents(plan.query)
            return sum(1 for doc in entity.collection.find(plan.query) if plan.accepts(entity.row(doc)))

    def scan(
        self,
        schema: EntitySchema,
        *,
        tokens: TokenRange | None = None,
        keys: KeyRange | None = None,
        batch_size: int = 500,
    ) -> Iterator[list[Row]]:
        entity = self._entity(schema)
        if batch_size < 1:
            raise QueryError(f"batch_size must be positive, not {batch_size}")
        bounds: list[Doc] = []
        by_token = tokens is not None
        if tokens is not None:
            if not entity.with_token:
                raise QueryError(f"{schema.name}: a token range scan needs a hash-routed store")
            if tokens.end <= tokens.start:
                return
            span: Doc = {"$gte": max(tokens.start, -(2**63))}
            if tokens.end <= _MAX_TOKEN:
                span["$lt"] = tokens.end
            bounds.append({TOKEN_FIELD: span})
        if keys is not None:
            bounds.extend(self._key_bounds(entity, keys))
        sort = [(TOKEN_FIELD, pymongo.ASCENDING), ("_id", pymongo.ASCENDING)] if by_token else [("_id", 1)]
        after: Doc = {}
        while True:
            with _translated(self.store, self.shard):
                cursor = entity.collection.find(_all([*bounds, after]), sort=sort, limit=batch_size)
                docs = list(cursor)
            if not docs:
                return
            yield [entity.row(doc) for doc in docs]
            if len(docs) < batch_size:
                return
            last = docs[-1]
            if by_token:
                after = {
                    "$or": [
                        {TOKEN_FIELD: {"$gt": last[TOKEN_FIELD]}},
                        {TOKEN_FIELD: last[TOKEN_FIELD], "_id": {"$gt": last["_id"]}},
                    ]
                }
            else:
                after = {"_id": {"$gt": last["_id"]}}

    def _key_bounds(self, entity: _Entity, keys: KeyRange) -> list[Doc]:
        """``lower <= shard key < upper``; a composite shard key compares as a tuple."""
        names = entity.schema.shard_key
        paths = [entity.path(name) for name in names]

        def encoded(bound: Any) -> list[Any]:
            parts = (bound,) if len(names) == 1 else tuple(bound)
            return [_encode(entity.kinds[name], part) for name, part in zip(names, parts, strict=True)]

        bounds: list[Doc] = []
        if keys.lower is not None:
            bounds.append(_tuple_compare(paths, encoded(keys.lower), greater=True, inclusive=True))
        if keys.upper is not None:
            bounds.append(_tuple_compare(paths, encoded(keys.upper), greater=False, inclusive=False))
        return bounds

    # -- row locks (FerretDB) --------------------------------------------------------
    def _needs_row_locks(self) -> bool:
        """Whether read-modify-write updates must be serialised by polystore itself.

        MongoDB applies ``$inc``/``$set`` atomically per document. FerretDB 1.24 reads the
        document, applies the operator and writes it back without a condition, so two
        concurrent updates of one document lose one of them. There the adapter takes a
        lock document per row (an insert into ``<namespace>_ps_locks``: the unique
        ``_id`` makes it a mutex across processes) around every increment and update.
        """
        if self._row_locks is None:
            self._row_locks = self._is_ferretdb()
        return self._row_locks

    def _is_ferretdb(self) -> bool:
        """Whether the server is FerretDB (asked once: ``buildInfo`` names its version)."""
        if self._ferretdb is None:
            with _translated(self.store, self.shard):
                self._ferretdb = "ferretdbVersion" in self.client.admin.command("buildInfo")
        return self._ferretdb

    @contextlib.contextmanager
    def _row_lock(self, entity: _Entity, ident: Any, key: Any) -> Iterator[None]:
        if not self._needs_row_locks():
            yield
            return
        lock_id = {"c": entity.collection.name, "k": ident}
        with self._stripes[hash(repr(lock_id)) % len(self._stripes)], self._server_lock(lock_id, key):
            yield

    @contextlib.contextmanager
    def _server_lock(self, lock_id: Doc, key: Any) -> Iterator[None]:
        locks = self.database[f"{self._prefix}{_LOCKS}"]
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + self._lock_timeout
        delay = 0.001
        while True:
            try:
                locks.insert_one({"_id": lock_id, "owner": owner, "at": time.time()})
                break
            except mongo_errors.DuplicateKeyError:
                held = locks.find_one({"_id": lock_id})
                if held is not None and time.time() - float(held.get("at", 0)) > _LOCK_LEASE:
                    locks.delete_one({"_id": lock_id, "owner": held.get("owner")})  # its writer died
                    continue
                if time.monotonic() > deadline:
                    raise StoreTimeout(
                        "the row is locked by another writer", store=self.store, shard=self.shard, key=key
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            locks.delete_one({"_id": lock_id, "owner": owner})

    # -- capabilities ----------------------------------------------------------------
    def increment(self, schema: EntitySchema, key: Any, field: str, amount: int | float) -> int | float:
        entity = self._entity(schema)
        kind = entity.kinds.get(field)
        if kind not in ("int", "float") or field in schema.key:
            raise QueryError(f"{schema.name}.{field}: increment needs a numeric field that is not part of the key")
        ident = entity.key_id(key)
        with _translated(self.store, self.shard, key), self._row_lock(entity, ident, key):
            try:
                doc = self._inc(entity, ident, field, amount)
            except mongo_errors.OperationFailure as exc:
                if exc.code != 14:  # TypeMismatch: the field is null, which counts as 0
                    raise
                entity.collection.update_one({"_id": ident, field: None}, {"$set": {field: 0}})
                doc = self._inc(entity, ident, field, amount)
        if doc is None:
            raise NotFoundError(f"no {schema.name} to increment", store=self.store, shard=self.shard, key=key)
        value = doc[field]
        return int(value) if kind == "int" else float(value)

    @staticmethod
    def _inc(entity: _Entity, ident: Any, field: str, amount: int | float) -> Doc | None:
        # No projection: FerretDB 1.24's findAndModify does not implement ``fields``.
        return entity.collection.find_one_and_update(
            {"_id": ident},
            {"$inc": {field: amount}},
            return_document=ReturnDocument.AFTER,
        )

    def update(self, schema: EntitySchema, key: Any, changes: Mapping[str, Any]) -> bool:
        entity = self._entity(schema)
        ident = entity.key_id(key)
        sets: Doc = {}
        guards: list[Doc] = []
        for path, value in changes.items():
            head, dot, rest = path.partition(".")
            kind = entity.kinds.get(head)
            if kind is None:
                raise self._unknown(schema, head)
            if head in schema.key:
                raise QueryError(f"{schema.name}.{head} is part of the key; it cannot change")
            if dot and kind != "json":
                raise QueryError(f"{schema.name}.{head} is {kind}, not a nested field: {path!r}")
            if dot:
                json_path = _JsonPath(head, rest.split("."))
                guards.extend(json_path.guards)
                sets[json_path.leaf] = encode_json(value)
            else:
                sets[head] = _encode(kind, value)
        with _translated(self.store, self.shard, key), self._row_lock(entity, ident, key):
            if not sets:
                return entity.collection.count_documents({"_id": ident}, limit=1) > 0
            try:
                result = entity.collection.update_one(_all([{"_id": ident}, *guards]), {"$set": sets})
                if result.matched_count or not guards:
                    return result.matched_count > 0
            except mongo_errors.OperationFailure as exc:
                if exc.code not in (28, 40):  # PathNotViable, ConflictingUpdateOperators
                    raise
            return self._update_by_read(entity, ident, key, changes)

    def _update_by_read(self, entity: _Entity, ident: Any, key: Any, changes: Mapping[str, Any]) -> bool:
        """Apply ``changes`` in Python and write them back if nobody changed those fields meanwhile."""
        heads = list(dict.fromkeys(path.partition(".")[0] for path in changes))
        nested = [head for head in heads if any(path.startswith(f"{head}.") for path in changes)]
        for _ in range(_CAS_ATTEMPTS):
            doc = entity.collection.find_one({"_id": ident}, projection=dict.fromkeys(heads, True))
            if doc is None:
                return False
            values: dict[str, Any] = {}
            for path, value in changes.items():
                head, dot, rest = path.partition(".")
                if not dot:
                    values[head] = value
                    continue
                base = values[head] if head in values else decode_json(doc.get(head))
                values[head] = _set_path(base, rest.split("."), value, path)
            expected: list[Doc] = [{"_id": ident}]
            for head in nested:
                old = doc.get(head)
                expected.append({head: old})
                if not isinstance(old, list):
                    expected.append({head: {"$not": {"$type": "array"}}})
            sets = {head: _encode(entity.kinds[head], value) for head, value in values.items()}
            if entity.collection.update_one(_all(expected), {"$set": sets}).matched_count:
                return True
        raise StoreError(
            "the row kept changing during a partial update", store=self.store, shard=self.shard, key=key, retryable=True
        )


def _set_path(base: Any, steps: Sequence[str], value: Any, path: str) -> Any:
    """``base`` with ``value`` at ``steps``; missing or null objects on the way are created."""
    root = {} if base is None else base
    node = root
    for index, step in enumerate(steps):
        if not isinstance(node, dict):
            where = ".".join([path.split(".")[0], *steps[:index]])
            raise QueryError(f"{path}: {where} holds a {type(node).__name__}, not an object")
        if index == len(steps) - 1:
            node[step] = _jsonable(value)
        else:
            child = node.get(step)
            if child is None:
                child = node[step] = {}
            node = child
    return root


def _tuple_compare(paths: Sequence[str], values: Sequence[Any], *, greater: bool, inclusive: bool) -> Doc:
    """``(paths) > values`` (or ``>=``, ``<``, ``<=``) in lexicographic tuple order."""
    clauses: list[Doc] = []
    for index, path in enumerate(paths):
        last = index == len(paths) - 1
        op = ("$gt" if greater else "$lt") + ("e" if inclusive and last else "")
        clause: Doc = {paths[j]: values[j] for j in range(index)}
        clause[path] = {op: values[index]}
        clauses.append(clause)
    return _any(clauses)


def _unique_ids(entity: _Entity, keys: Sequence[Any]) -> list[Any]:
    return [entity.key_id(key) for key in dict.fromkeys(keys)]
