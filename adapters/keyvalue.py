"""The key-value adapter: redis-py over standalone Redis (``redis://``, ``rediss://``)
and Redis Cluster (``redis-cluster://[user:pass@]host:port[,host:port...][?ssl=true]``).

Layout (``NS`` is the store option ``namespace`` followed by the URL's ``?prefix=``,
which lets several logical shards share one server or cluster; ``E`` is the entity's
table name; ``B`` a bucket number; ``K`` the hex of ``sharding.keys.encode_key(key)``,
so a key containing ``{``, ``}``, ``:`` or ``*`` is never read as syntax)::

    {NS E:B}:r:K     one Redis hash per row: field name -> encoded value; absent = null
    {NS E:B}:idx     token index, one sorted set per bucket, all scores 0, members
                     TTTTTTTTTTTTTTTT K (T: the row's token + 2**63, 16 lowercase hex digits)
    {NS E:B}:kidx    shard-key index, likewise: members S K LLLLLLLL (S: the shard key in
                     an order-preserving, prefix-free byte encoding; L: the length of K)
    NS__ps_meta      a hash: entity -> its layout (the bucket count), fixed at first ensure

Why this shape:

* Hash tags. Everything between the first ``{`` and ``}`` picks the cluster slot, so a
  row and the index bucket that lists it always share a slot: every write is one Lua
  script that updates both atomically, which Redis Cluster allows only within a slot.
  A row's bucket is ``crc32(encoded key) % buckets``; standalone Redis uses one bucket,
  Redis Cluster 64 by default (option ``index_buckets``) so that one entity's rows are
  spread over the whole cluster (one sorted set would pin an entity's index to one
  slot, and every write to it). Reads that walk the index query all buckets, pipelined.
  The bucket count of an entity is stored in the meta hash on first use, so every
  process agrees on it. ``scan`` therefore returns rows in token order per bucket,
  not in key order.
* Values are typed by the schema, not tagged: str as UTF-8, int and float as decimal
  text (so HINCRBY and Lua arithmetic work on them), bool ``1``/``0``, bytes raw,
  datetime as int64 microseconds since the epoch (UTC, lossless), date ISO, Decimal as
  its exact string, UUID hex, json fields as compact JSON. A null field is an absent
  hash field. ``_ps_token`` is stored as the 16 hex digits the index uses. No pickle.
* Token ranges: token order is the lexicographic order of the token index, so
  ``scan(tokens=...)`` is one ``ZRANGEBYLEX`` per bucket (``[start`` .. ``(end``),
  paginated by the last member seen (keyset, never an offset): the cost follows the
  rows in the range, not the entity's size. Scores are not used because doubles
  cannot hold 64-bit tokens exactly.
* Key ranges (what a range-routed rebalance moves): ``scan(keys=KeyRange)`` is one
  ``ZRANGEBYLEX`` per bucket of the shard-key index, whose byte order is the shard
  key's Python order (str by code point, ints of any size, Decimal, UUID, date,
  datetime, bytes, tuples of them). A row's ordered shard key is also kept in its
  hash (``_ps_k``) so that writes can move its member.
* Redis has no secondary indexes without modules, so ``find`` and ``count`` filter,
  sort and limit in Python with ``Filter.matches`` semantics over the rows they read:
  the rows an eq/in filter on the key names (by key), else the shard-key index span
  their eq/lt/le/gt/ge filters on a one-field shard key allow, otherwise every row
  of the entity (all buckets at once, pipelined, in batches): honest, linear in what
  is read. ``count`` fetches only the fields its
  filters name. Because filtering is the reference code itself, dotted
  paths into json fields and ``contains`` come for free (NESTED_FILTERS); values that
  Python cannot compare (a string against a number) do not match.
* ``update`` (PARTIAL_UPDATE) writes top-level fields with HSET/HDEL in one script; a
  dotted path reads its json field, edits it in Python and writes it back with a
  compare-and-set script, retried if that field changed in between.
* TTL: ``put_ttl`` sets ``PEXPIRE`` on the row hash inside the write script. An index
  member cannot expire, so every read checks that the row still exists with the same
  token (or shard key); members whose row is gone are never returned and are removed
  lazily by a script that re-checks under the slot's atomicity.
* ``increment`` is a Lua script: ``HINCRBY`` for int fields (exact 64-bit), double
  arithmetic printed with ``%.17g`` for float fields (round-trips exactly); a missing
  row raises NotFoundError and is not created.
* Driver retries are off by default for standalone Redis (``retries`` option): the
  toolkit's resilience layer owns retrying, and a blind retry could apply an
  increment twice. The cluster client keeps its own handling of MOVED/ASK redirects.
* Every redis-py exception is translated into ``toolkit.errors`` (see ``ERROR_MAP``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import enum
import heapq
import json
import math
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.exceptions as rex
from pydantic import TypeAdapter
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from adapters.base import (
    EXPIRES_FIELD,
    TOKEN_FIELD,
    Capability,
    ExpiringScan,
    Filter,
    Query,
    Row,
    ShardInfo,
    sort_key,
)
from adapters.registry import redact_url
from sharding.base import KeyRange, TokenRange
from sharding.core.errors import (
    ConfigError,
    NotFoundError,
    QueryError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from sharding.core.model import EntitySchema, FieldSpec
from sharding.keys import encode_key
from sharding.keys import token as token_of

__all__ = ["ERROR_MAP", "KeyValueAdapter", "parse_url", "translate_errors"]

_BIAS: Final = 2**63
_TOKEN_WIDTH: Final = 16
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.:-]*$")
_CHUNK: Final = 500
"""Commands per pipeline round trip for writes and key lookups."""
_WALK_BATCH: Final = 2000
"""Index members fetched per round (over all buckets) by find/count."""
_CAS_ATTEMPTS: Final = 200
"""Compare-and-set rounds of one partial update before giving up (retryable)."""
_CLUSTER_BUCKETS: Final = 64
_MAX_BUCKETS: Final = 1024
_ANY: Final = TypeAdapter(Any)
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICRO: Final = dt.timedelta(microseconds=1)

# -- errors --------------------------------------------------------------------------

ERROR_MAP: Final[tuple[tuple[type[BaseException], type[StoreError], bool], ...]] = (
    # (driver exception, toolkit error, retryable); the first isinstance match wins,
    # so subclasses come before their bases.
    (rex.AuthenticationError, StoreError, False),
    (rex.AuthorizationError, StoreError, False),
    (rex.MaxConnectionsError, StoreTimeout, True),
    (rex.BusyLoadingError, StoreUnavailable, True),
    (rex.ConnectionError, StoreUnavailable, True),
    (rex.TimeoutError, StoreTimeout, True),
    (rex.MasterDownError, StoreUnavailable, True),
    (rex.ClusterDownError, StoreUnavailable, True),
    (rex.TryAgainError, StoreUnavailable, True),
    (rex.ReadOnlyError, StoreUnavailable, True),
    (rex.AskError, StoreUnavailable, True),  # MovedError too: the slot map is changing
    (rex.SlotNotCoveredError, StoreUnavailable, True),
    (rex.ClusterError, StoreUnavailable, True),
    (rex.ClusterCrossSlotError, StoreError, False),
    (rex.OutOfMemoryError, StoreError, True),  # memory may be freed by expiry/eviction
    (rex.NoPermissionError, StoreError, False),
    (rex.ExecAbortError, StoreError, False),
    (rex.NoScriptError, StoreError, True),
    (rex.ResponseError, StoreError, False),
    (rex.WatchError, StoreError, True),
    (rex.InvalidResponse, StoreUnavailable, True),
    (rex.DataError, StoreError, False),
    (rex.RedisClusterException, StoreUnavailable, True),  # "cannot be connected", no nodes
    (rex.RedisError, StoreError, False),
)
"""Every redis-py exception class the adapter catches, mapped to the toolkit's error."""

_CAUGHT: Final = tuple(entry[0] for entry in ERROR_MAP)


def _translate(exc: BaseException, store: str, shard: str, key: Any) -> StoreError:
    for kind, error, retryable in ERROR_MAP:
        if isinstance(exc, kind):
            text = _first_line(exc)
            if kind is rex.RedisClusterException and "connect" not in text.lower():
                return StoreError(text, store=store, shard=shard, key=key, retryable=False)
            return error(text, store=store, shard=shard, key=key, retryable=retryable)
    return StoreError(_first_line(exc), store=store, shard=shard, key=key, retryable=False)


@contextlib.contextmanager
def translate_errors(store: str, shard: str, key: Any = None) -> Iterator[None]:
    """Turn redis-py exceptions into the toolkit's hierarchy (see ``ERROR_MAP``)."""
    try:
        yield
    except _CAUGHT as exc:
        raise _translate(exc, store, shard, key) from exc


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


# -- URLs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """What a shard URL says: standalone or cluster, where, and the key prefix."""

    cluster: bool
    url: str
    """For standalone: the URL redis-py parses (without ``prefix``)."""
    nodes: tuple[tuple[str, int], ...] = ()
    """For a cluster: the startup nodes."""
    username: str | None = None
    password: str | None = None
    prefix: str = ""
    params: Mapping[str, str] = field(default_factory=dict)


def parse_url(url: str) -> RedisTarget:
    """Split a shard URL; ``?prefix=`` (letters, digits, ``_.:-``) is polystore's own.

    ``redis-cluster://[user:pass@]host:port[,host:port...]`` lists startup nodes.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    prefix = query.pop("prefix", "")
    if not _NAMESPACE.match(prefix):
        raise ConfigError(f"{redact_url(url)}: prefix may hold only letters, digits and _.:-")
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        rest = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
        return RedisTarget(cluster=False, url=rest, prefix=prefix, params=query)
    if scheme != "redis-cluster":
        raise ConfigError(f"{redact_url(url)}: expected redis://, rediss:// or redis-cluster://")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{redact_url(url)}: cluster nodes are host:port, separated by commas")
        nodes.append((host.strip("[]"), int(port)))
    return RedisTarget(
        cluster=True,
        url=url,
        nodes=tuple(nodes),
        username=unquote(username) or None,
        password=unquote(password) or None,
        prefix=prefix,
        params=query,
    )


# -- value encoding ------------------------------------------------------------------


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _enc_datetime(value: Any) -> bytes:
    return str((_utc(value) - _EPOCH) // _MICRO).encode()


def _dec_datetime(raw: bytes) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=int(raw))


def _enc_json(value: Any) -> bytes:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "surrogatepass")


def _dec_json(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8", "surrogatepass"))


# The encoders run once per field of every written row: the exact built-in type (what a
# validated entity holds) takes a direct path, anything else (an enum, a subclass) the
# general conversion.


def _enc_str(value: Any) -> bytes:
    # surrogatepass: a Python str with a lone surrogate still round-trips exactly.
    if type(value) is str:
        return value.encode("utf-8", "surrogatepass")
    return str(value.value if isinstance(value, enum.Enum) else value).encode("utf-8", "surrogatepass")


def _enc_int(value: Any) -> bytes:
    if type(value) is int:
        return b"%d" % value
    return str(int(value.value if isinstance(value, enum.Enum) else value)).encode()


def _enc_float(value: Any) -> bytes:
    return repr(value if type(value) is float else float(value)).encode()


_ENCODE: Final[dict[str, Callable[[Any], bytes]]] = {
    "str": _enc_str,
    "int": _enc_int,
    "float": _enc_float,
    "bool": lambda value: b"1" if value else b"0",
    "bytes": bytes,
    "datetime": _enc_datetime,
    "date": lambda value: value.isoformat().encode(),
    "decimal": lambda value: str(value).encode(),
    "uuid": lambda value: (value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))).hex.encode(),
    "json": _enc_json,
}

_DECODE: Final[dict[str, Callable[[bytes], Any]]] = {
    "str": lambda raw: raw.decode("utf-8", "surrogatepass"),
    "int": int,
    "float": float,
    "bool": lambda raw: raw == b"1",
    "bytes": bytes,
    "datetime": _dec_datetime,
    "date": lambda raw: dt.date.fromisoformat(raw.decode()),
    "decimal": lambda raw: decimal.Decimal(raw.decode()),
    "uuid": lambda raw: uuid.UUID(hex=raw.decode()),
    "json": _dec_json,
}


_TOKEN_NAME: Final = TOKEN_FIELD.encode()
"""The hash field of the row's token."""


def _token_hex(token: int) -> bytes:
    return b"%016x" % (token + _BIAS)


def _token_from_hex(raw: bytes) -> int:
    return int(raw, 16) - _BIAS


# -- order-preserving shard-key encoding -----------------------------------------------
# ``_ordered(a) < _ordered(b)`` (bytewise) exactly when ``a < b`` in Python, for values of
# one key type, and no encoding is a proper prefix of another: so a sorted set of
# ``_ordered(shard key) + suffix`` members answers shard-key ranges with ZRANGEBYLEX.


class _Unordered(Exception):
    """A value with no order-preserving encoding here (the caller walks everything)."""


def _escaped(raw: bytes) -> bytes:
    return raw.replace(b"\x00", b"\x00\xff") + b"\x00\x01"


def _ordered_int(value: int) -> bytes:
    magnitude = abs(value).to_bytes((abs(value).bit_length() + 7) // 8, "big")
    if len(magnitude) > 0xFFFF:
        raise _Unordered("integer too large for an ordered encoding")
    if value >= 0:
        return b"\x20\x01" + len(magnitude).to_bytes(2, "big") + magnitude
    inverted = bytes(0xFF - byte for byte in magnitude)
    return b"\x20\x00" + (0xFFFF - len(magnitude)).to_bytes(2, "big") + inverted


def _ordered_decimal(value: decimal.Decimal) -> bytes:
    if value.is_nan():
        return b"\x21\x05"
    if value.is_infinite():
        return b"\x21\x00" if value < 0 else b"\x21\x04"
    if value.is_zero():
        return b"\x21\x02"
    # value = 0.DIGITS x 10**(adjusted + 1): order by exponent, then by the digit string.
    digits = "".join(map(str, value.normalize().as_tuple().digits)).encode()
    exponent = value.adjusted() + 2**31
    if value > 0:
        return b"\x21\x03" + exponent.to_bytes(4, "big") + digits + b"\x00"
    inverted = bytes(0xFF - byte for byte in digits)
    return b"\x21\x01" + (2**32 - 1 - exponent).to_bytes(4, "big") + inverted + b"\xff"


def _ordered(value: Any) -> bytes:
    """The order-preserving, prefix-free encoding of a key value (tuples: concatenated)."""
    if isinstance(value, bool):
        raise _Unordered("bool is not a key type")
    if isinstance(value, str):
        return b"\x10" + _escaped(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, bytes):
        return b"\x11" + _escaped(value)
    if isinstance(value, int):
        return _ordered_int(value)
    if isinstance(value, decimal.Decimal):
        return _ordered_decimal(value)
    if isinstance(value, uuid.UUID):
        return b"\x30" + value.bytes
    if isinstance(value, dt.datetime):
        micros = (_utc(value) - _EPOCH) // _MICRO
        return b"\x41" + (micros + _BIAS).to_bytes(8, "big")
    if isinstance(value, dt.date):
        return b"\x40" + value.isoformat().encode()
    if isinstance(value, tuple):
        return b"".join(_ordered(part) for part in value)
    raise _Unordered(f"no ordered encoding for {type(value).__name__}")


_KEY_TYPE_CHECKS: Final[dict[str, Callable[[Any], bool]]] = {
    "str": lambda v: isinstance(v, str),
    "bytes": lambda v: isinstance(v, bytes),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "decimal": lambda v: isinstance(v, decimal.Decimal),
    "uuid": lambda v: isinstance(v, uuid.UUID),
    "date": lambda v: isinstance(v, dt.date) and not isinstance(v, dt.datetime),
    "datetime": lambda v: isinstance(v, dt.datetime),
}


def _ordered_bound(types: Sequence[str], value: Any) -> bytes:
    """``_ordered(value)`` for a bound on a shard key of ``types``; _Unordered unless the
    bound has exactly those types (Python may still compare e.g. an int with a Decimal,
    but their encodings are not comparable)."""
    parts = (value,) if len(types) == 1 else value
    if len(types) > 1 and (not isinstance(value, tuple) or len(value) > len(types)):
        raise _Unordered("bound does not match the composite shard key")
    for kind, part in zip(types, parts, strict=False):
        if not _KEY_TYPE_CHECKS.get(kind, lambda _: False)(part):
            raise _Unordered(f"bound {part!r} is not a {kind}")
    return _ordered(value)


def _utc_filter(item: Filter) -> Filter:
    """A datetime filter with naive values taken as UTC, as stored values are."""
    value = item.value
    if isinstance(value, dt.datetime):
        value = _utc(value)
    elif item.op == "in":
        value = [_utc(v) if isinstance(v, dt.datetime) else v for v in value]
    return Filter(item.field, item.op, value)


def _jsonable(value: Any) -> Any:
    """A JSON value for anything a json field may be given (models, datetimes...)."""
    return _ANY.dump_python(value, mode="json")


def _set_path(base: Any, steps: Sequence[str], value: Any, path: str) -> Any:
    """``base`` with ``value`` at ``steps``; missing or null objects on the way are created."""
    root = {} if base is None else base
    node = root
    for index, step in enumerate(steps):
        if not isinstance(node, dict):
            where = ".".join([path.split(".")[0], *steps[:index]])
            raise QueryError(f"{path}: {where} holds a {type(node).__name__}, not an object")
        if index == len(steps) - 1:
            node[step] = value
        else:
            child = node.get(step)
            if child is None:
                child = node[step] = {}
            node = child
    return root


def _utc_key(value: Any) -> Any:
    """A key value (or tuple) with naive datetimes taken as UTC, as stored ones are."""
    if isinstance(value, dt.datetime):
        return _utc(value)
    if isinstance(value, tuple):
        return tuple(_utc_key(part) for part in value)
    return value


def _safe_match(item: Filter, row: Row) -> bool:
    """``Filter.matches``; values Python cannot order (str vs int) do not match."""
    try:
        return item.matches(row)
    except TypeError:
        return False


# -- Lua scripts ---------------------------------------------------------------------
# KEYS[1] is the row hash, KEYS[2] its bucket's token index, KEYS[3] its bucket's
# shard-key index: all in one slot (hash tag). A token member is token hex .. ARGV[1]
# (key hex); a shard-key member is ordered shard key .. ARGV[2] (key hex, its length).

_PUT: Final = """
local old = redis.call('HMGET', KEYS[1], '_ps_token', '_ps_k')
if old[1] and old[1] ~= ARGV[3] then redis.call('ZREM', KEYS[2], old[1] .. ARGV[1]) end
if old[2] and old[2] ~= ARGV[4] then redis.call('ZREM', KEYS[3], old[2] .. ARGV[2]) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
redis.call('ZADD', KEYS[2], 0, ARGV[3] .. ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[4] .. ARGV[2])
return 1
"""

_DELETE: Final = """
local old = redis.call('HMGET', KEYS[1], '_ps_token', '_ps_k')
if not old[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], old[1] .. ARGV[1])
if old[2] then redis.call('ZREM', KEYS[3], old[2] .. ARGV[2]) end
return 1
"""

_CLEAN: Final = """
if redis.call('HGET', KEYS[1], ARGV[2]) ~= ARGV[3] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
return 0
"""
"""Remove an index member (ARGV[1]) unless the row's field ARGV[2] still says ARGV[3]."""

_INCREMENT: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[2] == 'int' then
  redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[3])
  return redis.call('HGET', KEYS[1], ARGV[1])
end
local current = redis.call('HGET', KEYS[1], ARGV[1])
local value = (current and tonumber(current) or 0) + tonumber(ARGV[3])
local text = string.format('%.17g', value)
redis.call('HSET', KEYS[1], ARGV[1], text)
return text
"""

_UPDATE: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local i = 2
for _ = 1, tonumber(ARGV[1]) do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if ARGV[i + 1] == '0' then
    if current then return 0 end
  elseif current ~= ARGV[i + 2] then
    return 0
  end
  i = i + 3
end
local sets = tonumber(ARGV[i])
i = i + 1
for _ = 1, sets do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
local deletes = tonumber(ARGV[i])
i = i + 1
for _ = 1, deletes do
  redis.call('HDEL', KEYS[1], ARGV[i])
  i = i + 1
end
return 1
"""
"""Compare-and-set of some hash fields: -1 no row, 0 a checked field changed, 1 done."""

_KEY_FIELD: Final = b"_ps_k"
"""Hidden hash field: the row's ordered shard key, as listed in the shard-key index."""

_SCRIPTS: Final = {
    "put": _PUT,
    "delete": _DELETE,
    "clean": _CLEAN,
    "increment": _INCREMENT,
    "update": _UPDATE,
}


# -- per-entity layout ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where one entity's rows live, and how its fields are encoded."""

    schema: EntitySchema
    buckets: int
    tags: tuple[bytes, ...]
    """``{NS E:B}`` per bucket."""
    with_token: bool
    fields: tuple[FieldSpec, ...]
    names: tuple[bytes, ...]
    shard_types: tuple[str, ...]
    encoders: tuple[tuple[str, bytes, Callable[[Any], bytes]], ...] = field(init=False)
    """(field, hash field, encoder) per field: resolved once, not per row and field."""
    decoders: tuple[tuple[bytes, str, Callable[[bytes], Any]], ...] = field(init=False)
    """(hash field, field, decoder) per field, likewise (every read decodes with them)."""

    def __post_init__(self) -> None:
        encoders = tuple(
            (spec.name, name, _ENCODE[spec.type]) for spec, name in zip(self.fields, self.names, strict=True)
        )
        decoders = tuple(
            (name, spec.name, _DECODE[spec.type]) for spec, name in zip(self.fields, self.names, strict=True)
        )
        object.__setattr__(self, "encoders", encoders)
        object.__setattr__(self, "decoders", decoders)

    def locate(self, key: Any) -> tuple[bytes, bytes, bytes]:
        """(row key, token index key, key hex) of a key."""
        encoded = encode_key(key)
        bucket = zlib.crc32(encoded) % self.buckets if self.buckets > 1 else 0
        keyhex = encoded.hex().encode()
        tag = self.tags[bucket]
        return tag + b":r:" + keyhex, tag + b":idx", keyhex

    def keys_of(self, key: Any) -> tuple[tuple[bytes, bytes, bytes], bytes, bytes]:
        """The (row, token index, shard-key index) keys of a key; key hex; member suffix."""
        row_key, index_key, keyhex = self.locate(key)
        suffix = keyhex + b"%08x" % len(keyhex)
        return (row_key, index_key, index_key[:-3] + b"kidx"), keyhex, suffix

    def row_key(self, bucket: int, keyhex: bytes) -> bytes:
        return self.tags[bucket] + b":r:" + keyhex

    def index_key(self, bucket: int) -> bytes:
        return self.tags[bucket] + b":idx"

    def key_index_key(self, bucket: int) -> bytes:
        return self.tags[bucket] + b":kidx"

    def ordered_shard_key(self, row: Row) -> bytes:
        try:
            return _ordered(self.schema.shard_key_of(row))
        except _Unordered as exc:
            raise QueryError(f"{self.schema.name}: shard key has no ordered encoding: {exc}") from None

    def encode(self, row: Row) -> tuple[list[bytes], bytes]:
        """Flat field/value pairs (nulls omitted) and the token hex of a row."""
        pairs: list[bytes] = []
        for name, stored, encode in self.encoders:
            try:
                value = row[name]
            except KeyError:
                raise QueryError(f"row for {self.schema.name} lacks field {name!r}") from None
            if value is not None:
                pairs += (stored, encode(value))
        token = row.get(TOKEN_FIELD)
        if token is None:
            token = token_of(self.schema.shard_key_of(row))
        tokenhex = _token_hex(int(token))
        pairs += (_TOKEN_NAME, tokenhex)
        return pairs, tokenhex

    def decode(self, raw: Mapping[bytes, bytes]) -> Row:
        row: Row = {}
        found = raw.get
        for stored, name, decode in self.decoders:
            value = found(stored)
            row[name] = None if value is None else decode(value)
        if self.with_token:
            token = found(_TOKEN_NAME)
            if token is not None:
                row[TOKEN_FIELD] = _token_from_hex(token)
        return row

    def decode_fields(self, specs: Sequence[FieldSpec], values: Sequence[bytes | None]) -> Row:
        return {
            spec.name: None if value is None else _DECODE[spec.type](value)
            for spec, value in zip(specs, values, strict=True)
        }


@dataclass(frozen=True, slots=True)
class _Span:
    """A ZRANGEBYLEX range (``[x``/``(x``/``-``/``+``) of the token or shard-key index."""

    low: bytes
    high: bytes
    by_key: bool = False


def _parse_member(member: bytes, by_key: bool) -> tuple[bytes, bytes]:
    """(key hex, what the row must still say) of an index member."""
    if not by_key:
        return member[_TOKEN_WIDTH:], member[:_TOKEN_WIDTH]
    length = int(member[-8:], 16)
    return member[-8 - length : -8], member[: -8 - length]


@dataclass(slots=True)
class _Cursor:
    """Keyset position of one bucket during a walk of the index."""

    bucket: int
    low: bytes
    done: bool = False


class KeyValueAdapter(ExpiringScan):
    """One shard on Redis or Redis Cluster. See the module docstring for the layout."""

    capabilities: ClassVar[Capability] = (
        Capability.TTL | Capability.ATOMIC_INCREMENT | Capability.NESTED_FILTERS | Capability.PARTIAL_UPDATE
    )

    def __init__(self, url: str, *, store: str, shard: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, store=store, shard=shard, options=options)
        namespace = str(self.options.get("namespace", ""))
        if not _NAMESPACE.match(namespace):
            raise ConfigError(f"store {store!r}: namespace may hold only letters, digits and _.:- for Redis")
        self.target = parse_url(url)
        self.prefix = namespace + self.target.prefix
        self.cluster = self.target.cluster
        self._meta_key = f"{self.prefix}__ps_meta".encode()
        self._client: redis.Redis | RedisCluster | None = None
        self._shas: dict[str, str] = {}
        self._layouts: dict[str, _Layout] = {}
        self._lock = threading.Lock()

    # -- connection ------------------------------------------------------------------
    def _connect(self) -> redis.Redis | RedisCluster:
        timeout = float(self.options.get("socket_timeout", 10))
        connect_timeout = float(self.options.get("connect_timeout", 5))
        common: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": connect_timeout,
            "decode_responses": False,
        }
        if "pool_size" in self.options:
            common["max_connections"] = int(self.options["pool_size"])
        if self.target.cluster:
            nodes = [ClusterNode(host, port) for host, port in self.target.nodes]  # type: ignore[no-untyped-call]
            if self.target.params.get("ssl", "").lower() in ("1", "true", "yes"):
                common["ssl"] = True
            return RedisCluster(
                startup_nodes=nodes,
                username=self.target.username,
                password=self.target.password,
                **common,
            )
        retry = Retry(NoBackoff(), int(self.options.get("retries", 0)))
        return redis.Redis.from_url(self.target.url, retry=retry, **common)

    @property
    def client(self) -> redis.Redis | RedisCluster:
        """The driver client, created on first use (a cluster client contacts its nodes)."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    with translate_errors(self.store, self.shard):
                        self._client = self._connect()
                client = self._client
        return client

    def _pipeline(self) -> Any:
        return self.client.pipeline(transaction=False)

    def _sha(self, name: str) -> str:
        sha = self._shas.get(name)
        if sha is None:
            sha = self._load_scripts()[name]
        return sha

    def _load_scripts(self) -> dict[str, str]:
        """SCRIPT LOAD every script (on every primary of a cluster)."""
        client = self.client
        shas = {name: str(client.script_load(source)) for name, source in _SCRIPTS.items()}
        self._shas = shas
        return shas

    def _script(self, name: str, keys: Sequence[bytes], args: Sequence[Any]) -> Any:
        """Run one script; reload it if the server lost its script cache."""
        try:
            return self.client.evalsha(self._sha(name), len(keys), *keys, *args)
        except rex.NoScriptError:
            self._load_scripts()
            return self.client.evalsha(self._sha(name), len(keys), *keys, *args)

    def _run_scripts(self, calls: Sequence[tuple[str, Sequence[bytes], Sequence[Any]]]) -> list[Any]:
        """Run many script calls pipelined, in chunks; retry those that met NOSCRIPT."""
        results: list[Any] = []
        for start in range(0, len(calls), _CHUNK):
            chunk = calls[start : start + _CHUNK]
            pending = list(range(len(chunk)))
            done: list[Any] = [None] * len(chunk)
            for attempt in range(2):
                pipe = self._pipeline()
                for index in pending:
                    name, keys, args = chunk[index]
                    # execute_command: redis-py's cluster pipeline blocks the evalsha helper
                    # (it cannot know the keys), but routes EVALSHA by its keys correctly.
                    pipe.execute_command("EVALSHA", self._sha(name), len(keys), *keys, *args)
                replies = pipe.execute(raise_on_error=False)
                retry = []
                for index, reply in zip(pending, replies, strict=True):
                    if isinstance(reply, rex.NoScriptError) and attempt == 0:
                        retry.append(index)
                    elif isinstance(reply, BaseException):
                        raise reply
                    else:
                        done[index] = reply
                if not retry:
                    break
                self._load_scripts()
                pending = retry
            results.extend(done)
        return results

    # -- schema ----------------------------------------------------------------------
    def ensure(self, schema: EntitySchema, *, with_token: bool) -> None:
        with self._lock:
            if schema.name in self._layouts:
                return
        default = int(self.options.get("index_buckets", _CLUSTER_BUCKETS if self.cluster else 1))
        if not 1 <= default <= _MAX_BUCKETS:
            raise ConfigError(f"store {self.store!r}: index_buckets must be 1..{_MAX_BUCKETS}, not {default}")
        name = schema.name.encode()
        with translate_errors(self.store, self.shard):
            self.client.hsetnx(self._meta_key, name, json.dumps({"buckets": default}))
            stored = self.client.hget(self._meta_key, name)
        buckets = int(json.loads(stored)["buckets"]) if stored else default
        layout = self._layout(schema, buckets, with_token)
        with self._lock:
            self._layouts.setdefault(schema.name, layout)

    def _layout(self, schema: EntitySchema, buckets: int, with_token: bool) -> _Layout:
        tags = tuple(f"{{{self.prefix}{schema.name}:{bucket}}}".encode() for bucket in range(buckets))
        return _Layout(
            schema=schema,
            buckets=buckets,
            tags=tags,
            with_token=with_token,
            fields=schema.fields,
            names=tuple(spec.name.encode() for spec in schema.fields),
            shard_types=tuple(schema.field(name).type for name in schema.shard_key),
        )

    def _get_layout(self, schema: EntitySchema) -> _Layout:
        layout = self._layouts.get(schema.name)
        if layout is None:
            raise StoreError(f"entity {schema.name!r} not ensured", store=self.store, shard=self.shard)
        if layout.schema is not schema and layout.schema != schema:
            # Another declaration with the same table name: same keys, its own fields.
            layout = self._layout(schema, layout.buckets, layout.with_token)
            self._layouts[schema.name] = layout
        return layout

    def drop(self, schema: EntitySchema) -> None:
        """Delete every row and index bucket of the entity, and its layout entry."""
        name = schema.name.encode()
        with translate_errors(self.store, self.shard):
            layout = self._layouts.get(schema.name)
            if layout is None:
                stored = self.client.hget(self._meta_key, name)
                if stored is None:
                    return
                layout = self._layout(schema, int(json.loads(stored)["buckets"]), True)
            for bucket in range(layout.buckets):
                index = layout.index_key(bucket)
                members = cast(list[bytes], self.client.zrange(index, 0, -1))
                keys = [layout.row_key(bucket, member[_TOKEN_WIDTH:]) for member in members]
                for start in range(0, len(keys), _CHUNK):
                    self.client.delete(*keys[start : start + _CHUNK])
                self.client.delete(index, layout.key_index_key(bucket))
            self.client.hdel(self._meta_key, name)
        with self._lock:
            self._layouts.pop(schema.name, None)

    # -- health ----------------------------------------------------------------------
    def ping(self) -> None:
        with translate_errors(self.store, self.shard):
            self.client.ping()

    def describe(self) -> ShardInfo:
        """Reachability and rows per entity (index sizes: may include expired rows)."""
        server = redact_url(self.url)
        try:
            with translate_errors(self.store, self.shard):
                meta = cast(dict[bytes, bytes], self.client.hgetall(self._meta_key))
                pipe = self._pipeline()
                names = sorted(meta)
                for name in names:
                    for bucket in range(int(json.loads(meta[name])["buckets"])):
                        tag = f"{{{self.prefix}{name.decode()}:{bucket}}}:idx"
                        pipe.zcard(tag)
                sizes = iter(pipe.execute()) if names else iter(())
                tables = {
                    name.decode(): sum(next(sizes) for _ in range(int(json.loads(meta[name])["buckets"])))
                    for name in names
                }
                kind = "redis cluster" if self.cluster else "redis"
                return ShardInfo(reachable=True, tables=tables, server=f"{kind} {server}")
        except StoreError as exc:
            return ShardInfo(reachable=False, error=str(exc), server=server)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    # -- writes ----------------------------------------------------------------------
    def _put_call(self, layout: _Layout, row: Row, ttl_ms: int) -> tuple[str, Sequence[bytes], Sequence[Any]]:
        keys, keyhex, suffix = layout.keys_of(layout.schema.key_of(row))
        pairs, tokenhex = layout.encode(row)
        ordered = layout.ordered_shard_key(row)
        args = (keyhex, suffix, tokenhex, ordered, b"%d" % ttl_ms, *pairs, _KEY_FIELD, ordered)
        return "put", keys, args

    def put(self, schema: EntitySchema, row: Row) -> None:
        layout = self._get_layout(schema)
        name, keys, args = self._put_call(layout, row, 0)
        try:
            self._script(name, keys, args)
        except _CAUGHT as exc:  # inline, like get: the hot single write
            raise _translate(exc, self.store, self.shard, schema.key_of(row)) from exc

    def put_many(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        return self._put_rows(schema, rows, 0)

    def _put_rows(self, schema: EntitySchema, rows: Sequence[Row], ttl_ms: int) -> int:
        if not rows:
            return 0
        layout = self._get_layout(schema)
        unique = {schema.key_of(row): row for row in rows}  # last write in a batch wins
        calls = [self._put_call(layout, row, ttl_ms) for row in unique.values()]
        with translate_errors(self.store, self.shard):
            self._run_scripts(calls)
        return len(unique)

    def put_ttl(self, schema: EntitySchema, rows: Sequence[Row], ttl: float) -> int:
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0 or math.isinf(ttl):
            raise QueryError(f"ttl must be a positive number of seconds, not {ttl!r}")
        return self._put_rows(schema, rows, max(1, round(ttl * 1000)))

    def delete(self, schema: EntitySchema, key: Any) -> bool:
        layout = self._get_layout(schema)
        keys, keyhex, suffix = layout.keys_of(key)
        with translate_errors(self.store, self.shard, key):
            return bool(self._script("delete", keys, (keyhex, suffix)))

    def delete_many(self, schema: EntitySchema, keys: Sequence[Any]) -> int:
        layout = self._get_layout(schema)
        calls = []
        for key in dict.fromkeys(keys):
            row_keys, keyhex, suffix = layout.keys_of(key)
            calls.append(("delete", row_keys, (keyhex, suffix)))
        if not calls:
            return 0
        with translate_errors(self.store, self.shard):
            return sum(int(reply) for reply in self._run_scripts(calls))

    # -- reads by key ----------------------------------------------------------------
    def get(self, schema: EntitySchema, key: Any) -> Row | None:
        # The hot read: one HGETALL. Errors are translated inline, not through the
        # translate_errors context manager (a generator per call).
        layout = self._get_layout(schema)
        row_key = layout.locate(key)[0]
        try:
            raw = cast(dict[bytes, bytes], self.client.hgetall(row_key))
        except _CAUGHT as exc:
            raise _translate(exc, self.store, self.shard, key) from exc
        return layout.decode(raw) if raw else None

    def get_many(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        layout = self._get_layout(schema)
        with translate_errors(self.store, self.shard):
            return self._rows_by_key(layout, keys)

    def _rows_by_key(self, layout: _Layout, keys: Sequence[Any]) -> list[Row]:
        row_keys = [layout.locate(key)[0] for key in dict.fromkeys(keys)]
        rows: list[Row] = []
        for start in range(0, len(row_keys), _CHUNK):
            pipe = self._pipeline()
            for row_key in row_keys[start : start + _CHUNK]:
                pipe.hgetall(row_key)
            rows.extend(layout.decode(raw) for raw in pipe.execute() if raw)
        return rows

    def ttl(self, schema: EntitySchema, key: Any) -> float | None:
        layout = self._get_layout(schema)
        row_key, _, _ = layout.locate(key)
        with translate_errors(self.store, self.shard, key):
            millis = int(self.client.pttl(row_key))
        return millis / 1000 if millis >= 0 else None  # -1: no expiry, -2: no row

    def get_many_expiring(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        """``get_many``, each row with its expiry (HGETALL and PTTL pipelined)."""
        layout = self._get_layout(schema)
        row_keys = [layout.locate(key)[0] for key in dict.fromkeys(keys)]
        rows: list[Row] = []
        with translate_errors(self.store, self.shard):
            for start in range(0, len(row_keys), _CHUNK):
                pipe = self._pipeline()
                for row_key in row_keys[start : start + _CHUNK]:
                    pipe.hgetall(row_key)
                    pipe.pttl(row_key)
                replies = pipe.execute()
                now = time.time()
                for raw, millis in zip(replies[0::2], replies[1::2], strict=True):
                    if raw and int(millis) != -2:
                        row = layout.decode(raw)
                        row[EXPIRES_FIELD] = None if int(millis) < 0 else now + int(millis) / 1000
                        rows.append(row)
        return rows

    def put_expiring(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        """One pipelined batch of write scripts, each row with its own remaining PEXPIRE
        (0: none); rows already past their instant are deleted instead."""
        if not rows:
            return 0
        layout = self._get_layout(schema)
        unique = {schema.key_of(row): row for row in rows}
        now = time.time()
        calls = []
        for key, row in unique.items():
            instant = row.pop(EXPIRES_FIELD, None)
            if instant is None:
                calls.append(self._put_call(layout, row, 0))
            elif instant > now:
                calls.append(self._put_call(layout, row, max(1, round((instant - now) * 1000))))
            else:
                row_keys, keyhex, suffix = layout.keys_of(key)
                calls.append(("delete", row_keys, (keyhex, suffix)))
        with translate_errors(self.store, self.shard):
            self._run_scripts(calls)
        return len(unique)

    def increment(self, schema: EntitySchema, key: Any, field: str, amount: int | float) -> int | float:
        layout = self._get_layout(schema)
        spec = self._numeric_field(schema, field, amount)
        row_key, index_key, _ = layout.locate(key)
        text = repr(amount) if spec.type == "int" else repr(float(amount))
        with translate_errors(self.store, self.shard, key):
            reply = self._script("increment", (row_key, index_key), (field, spec.type, text))
        if reply is None:
            raise NotFoundError(f"{schema.name}: no row to increment", store=self.store, shard=self.shard, key=key)
        return int(reply) if spec.type == "int" else float(reply)

    def _numeric_field(self, schema: EntitySchema, name: str, amount: int | float) -> FieldSpec:
        try:
            spec = schema.field(name)
        except KeyError:
            raise QueryError(f"{schema.name}: unknown field {name!r}") from None
        if spec.type not in ("int", "float") or name in schema.key or name in schema.shard_key:
            raise QueryError(f"{schema.name}.{name}: increment needs a non-key int or float field")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise QueryError(f"{schema.name}.{name}: increment by a number, not {amount!r}")
        if spec.type == "int" and not isinstance(amount, int):
            raise QueryError(f"{schema.name}.{name} is int; increment it by an int, not {amount!r}")
        return spec

    def update(self, schema: EntitySchema, key: Any, changes: Mapping[str, Any]) -> bool:
        """Set top-level fields (HSET/HDEL) and dotted paths inside json fields.

        Top-level changes are blind writes in one script. A dotted path needs the json
        field's current value: it is read, changed in Python and written back by a
        compare-and-set script that fails if that field changed meanwhile (then the
        read is retried), so concurrent updates of different paths are all kept.
        """
        layout = self._get_layout(schema)
        paths = self._update_paths(schema, changes)
        row_key, _, _ = layout.locate(key)
        nested = [head for head, steps in paths if steps]
        heads = list(dict.fromkeys(nested))
        with translate_errors(self.store, self.shard, key):
            for _ in range(_CAS_ATTEMPTS):
                current = cast(list[bytes | None], self.client.hmget(row_key, heads)) if heads else []
                values = self._apply(schema, paths, changes, dict(zip(heads, current, strict=True)))
                args = self._update_args(schema, heads, current, values)
                reply = int(self._script("update", (row_key,), args))
                if reply != 0:  # 0: a json field changed since it was read; read again
                    return reply == 1
        raise StoreError(
            "the row kept changing during a partial update", store=self.store, shard=self.shard, key=key, retryable=True
        )

    def _update_paths(self, schema: EntitySchema, changes: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
        paths: list[tuple[str, list[str]]] = []
        for path in changes:
            head, dot, rest = path.partition(".")
            spec = self._spec(schema, head)
            if head in schema.key or head in schema.shard_key:
                raise QueryError(f"{schema.name}.{head} is part of the key or shard key; it cannot change")
            if dot and spec.type != "json":
                raise QueryError(f"{schema.name}.{head} is {spec.type}, not a nested field: {path!r}")
            paths.append((head, rest.split(".") if dot else []))
        return paths

    @staticmethod
    def _apply(
        schema: EntitySchema,
        paths: Sequence[tuple[str, list[str]]],
        changes: Mapping[str, Any],
        current: Mapping[str, bytes | None],
    ) -> dict[str, Any]:
        """The new value of every top-level field the changes touch, in change order."""
        values: dict[str, Any] = {}
        for (head, steps), (path, value) in zip(paths, changes.items(), strict=True):
            if not steps:
                values[head] = _jsonable(value) if schema.field(head).type == "json" else value
                continue
            if head not in values:
                raw = current.get(head)
                values[head] = None if raw is None else _dec_json(raw)
            values[head] = _set_path(values[head], steps, _jsonable(value), path)
        return values

    @staticmethod
    def _update_args(
        schema: EntitySchema, heads: Sequence[str], current: Sequence[bytes | None], values: Mapping[str, Any]
    ) -> list[Any]:
        args: list[Any] = [len(heads)]
        for head, raw in zip(heads, current, strict=True):
            args += [head, b"0" if raw is None else b"1", b"" if raw is None else raw]
        sets = [(name, value) for name, value in values.items() if value is not None]
        deletes = [name for name, value in values.items() if value is None]
        args.append(len(sets))
        for name, value in sets:
            args += [name, _ENCODE[schema.field(name).type](value)]
        args.append(len(deletes))
        args += deletes
        return args

    # -- walking the indexes ---------------------------------------------------------
    def _walk(
        self,
        layout: _Layout,
        span: _Span,
        per_round: int,
        specs: Sequence[FieldSpec] | None = None,
        expiring: bool = False,
    ) -> Iterator[list[Row]]:
        """Rows listed in ``span`` of one of the indexes, over all buckets, a round at a time.

        Each round is two pipelined round trips: ZRANGEBYLEX on every unfinished bucket,
        then HGETALL (or HMGET of ``specs``) of the rows listed. Members whose row is
        gone (expired) or says otherwise (moved token or shard key) are skipped and
        cleaned up.
        """
        cursors = [_Cursor(bucket, span.low) for bucket in range(layout.buckets)]
        index_key = layout.key_index_key if span.by_key else layout.index_key
        while True:
            active = [cursor for cursor in cursors if not cursor.done]
            if not active:
                return
            limit = max(1, -(-per_round // len(active)))
            pipe = self._pipeline()
            for cursor in active:
                pipe.zrangebylex(index_key(cursor.bucket), cursor.low, span.high, 0, limit)
            pages: list[list[bytes]] = pipe.execute()
            listed: list[tuple[int, bytes]] = []
            for cursor, members in zip(active, pages, strict=True):
                if len(members) < limit:
                    cursor.done = True
                if members:
                    cursor.low = b"(" + members[-1]
                listed += [(cursor.bucket, member) for member in members]
            if listed:
                yield self._fetch(layout, span.by_key, listed, specs, expiring)

    def _fetch(
        self,
        layout: _Layout,
        by_key: bool,
        listed: list[tuple[int, bytes]],
        specs: Sequence[FieldSpec] | None,
        expiring: bool = False,
    ) -> list[Row]:
        """The rows ``listed`` names; with ``expiring``, each with its expiry instant (a
        PTTL pipelined right after its HGETALL)."""
        check = _KEY_FIELD if by_key else TOKEN_FIELD.encode()
        parsed = [(bucket, member, *_parse_member(member, by_key)) for bucket, member in listed]
        pipe = self._pipeline()
        for bucket, _, keyhex, _ in parsed:
            row_key = layout.row_key(bucket, keyhex)
            if specs is None:
                pipe.hgetall(row_key)
            else:
                pipe.hmget(row_key, [check, *(spec.name.encode() for spec in specs)])
            if expiring:
                pipe.pttl(row_key)
        replies = pipe.execute()
        now = time.time()
        if expiring:
            found_ttls = replies[1::2]
            replies = replies[0::2]
        rows: list[Row] = []
        stale: list[tuple[str, Sequence[bytes], Sequence[Any]]] = []
        for position, ((bucket, member, keyhex, expected), raw) in enumerate(zip(parsed, replies, strict=True)):
            found = raw.get(check) if isinstance(raw, dict) else raw[0]
            if found != expected:
                index = layout.key_index_key(bucket) if by_key else layout.index_key(bucket)
                stale.append(("clean", (layout.row_key(bucket, keyhex), index), (member, check, expected)))
                continue
            row = layout.decode(raw) if specs is None else layout.decode_fields(specs, raw[1:])
            if expiring:
                millis = int(found_ttls[position])
                if millis == -2:  # expired between the two commands: it is gone
                    continue
                row[EXPIRES_FIELD] = None if millis < 0 else now + millis / 1000
            rows.append(row)
        if stale:
            self._run_scripts(stale)
        return rows

    @staticmethod
    def _token_span(tokens: TokenRange | None) -> _Span:
        """The token index members of a token range: ``[start`` .. ``(end``."""
        if tokens is None:
            return _Span(b"-", b"+")
        start = max(tokens.start, -_BIAS)
        low = b"[" + _token_hex(start) if start < _BIAS else b"[g"  # "g" sorts after every hex digit
        high = b"(" + _token_hex(tokens.end) if tokens.end < _BIAS else b"+"
        return _Span(low, high)

    @staticmethod
    def _key_span(layout: _Layout, keys: KeyRange) -> _Span | None:
        """The shard-key index members of ``lower <= k < upper``; None if the bounds'
        types do not match the shard key (then everything is walked and filtered)."""
        try:
            low = b"-" if keys.lower is None else b"[" + _ordered_bound(layout.shard_types, keys.lower)
            high = b"+" if keys.upper is None else b"(" + _ordered_bound(layout.shard_types, keys.upper)
        except _Unordered:
            return None
        return _Span(low, high, by_key=True)

    def _candidates(
        self, layout: _Layout, filters: Sequence[Filter], specs: Sequence[FieldSpec] | None = None
    ) -> Iterator[Row]:
        """The rows ``filters`` may match, read the cheapest way: by key for eq/in on a
        one-field key, else the shard-key index span, else every row."""
        keys = self._key_lookup(layout.schema, filters)
        if keys is not None:
            yield from self._rows_by_key(layout, keys)
            return
        span = self._filter_span(layout, filters) or self._token_span(None)
        for batch in self._walk(layout, span, _WALK_BATCH, specs):
            yield from batch

    @staticmethod
    def _key_lookup(schema: EntitySchema, filters: Sequence[Filter]) -> list[Any] | None:
        """The keys an eq/in filter on a one-field key names (None: no such filter)."""
        if len(schema.key) != 1:
            return None
        name = schema.key[0]
        check = _KEY_TYPE_CHECKS[schema.field(name).type]
        for item in filters:
            if item.field == name and item.op in ("eq", "in"):
                values = [item.value] if item.op == "eq" else list(item.value)
                values = [value for value in values if value is not None]  # keys are never null
                if all(check(value) for value in values):
                    return values
        return None

    def _filter_span(self, layout: _Layout, filters: Sequence[Filter]) -> _Span | None:
        """The shard-key index span that eq/lt/le/gt/ge filters on a one-field shard key
        allow, or None (walk everything). Filters are still applied to every row."""
        if len(layout.shard_types) != 1:
            return None
        name = layout.schema.shard_key[0]
        lows: list[bytes] = []
        highs: list[bytes] = []
        for item in filters:
            if item.field != name or item.op not in ("eq", "lt", "le", "gt", "ge"):
                continue
            try:
                ordered = _ordered_bound(layout.shard_types, item.value)
            except _Unordered:
                continue
            # Every member of value v lies in [ordered, ordered + 0xFF): suffixes are hex.
            if item.op in ("eq", "ge"):
                lows.append(ordered)
            if item.op == "gt":
                lows.append(ordered + b"\xff")
            if item.op in ("eq", "le"):
                highs.append(ordered + b"\xff")
            if item.op == "lt":
                highs.append(ordered)
        if not lows and not highs:
            return None
        low = max(lows) if lows else None
        high = min(highs) if highs else None
        if low is not None and high is not None and low >= high:
            return _Span(b"+", b"-", by_key=True)  # nothing can match
        return _Span(
            b"-" if low is None else b"[" + low,
            b"+" if high is None else b"(" + high,
            by_key=True,
        )

    # -- queries ---------------------------------------------------------------------
    def _spec(self, schema: EntitySchema, name: str) -> FieldSpec:
        try:
            return schema.field(name)
        except KeyError:
            raise QueryError(
                f"{schema.name}: unknown field {name!r} (fields: {', '.join(schema.field_names)})"
            ) from None

    def _order_spec(self, schema: EntitySchema, name: str) -> FieldSpec:
        spec = self._spec(schema, name)
        if spec.type == "json":
            raise QueryError(f"{schema.name}.{name}: is a nested (JSON) field; it cannot be ordered by")
        return spec

    def _filters(self, schema: EntitySchema, filters: Sequence[Filter]) -> list[Filter]:
        """Validate filters; naive datetimes are taken as UTC, like stored values.

        A json field is filtered on a dotted path inside it (``info.city``) or with
        ``contains`` (an array holds the value); the whole field is not compared.
        """
        checked: list[Filter] = []
        for item in filters:
            head, dot, _ = item.field.partition(".")
            spec = self._spec(schema, head)
            if spec.type == "json":
                if not dot and item.op != "contains":
                    raise QueryError(
                        f"{schema.name}.{head}: is a nested (JSON) field; filter on a dotted path inside it "
                        f"({head}.<name>) or use 'contains' for an array"
                    )
            elif dot:
                raise QueryError(f"{schema.name}.{head} is {spec.type}, not a nested field: {item.field!r}")
            elif item.op == "contains":
                raise QueryError(f"{schema.name}.{head}: 'contains' needs a JSON array field, not {spec.type}")
            checked.append(_utc_filter(item) if spec.type == "datetime" else item)
        return checked

    @staticmethod
    def _matches(filters: Sequence[Filter], row: Row) -> bool:
        return all(_safe_match(item, row) for item in filters)

    def find(self, schema: EntitySchema, query: Query) -> list[Row]:
        layout = self._get_layout(schema)
        filters = self._filters(schema, query.filters)
        for item in query.order_by:
            self._order_spec(schema, item.field)
        if query.limit == 0:
            return []
        with translate_errors(self.store, self.shard):
            rows = [row for row in self._candidates(layout, filters) if self._matches(filters, row)]
        order = sort_key(schema, query.order_by)
        try:
            if query.limit is not None and query.limit < len(rows):
                return heapq.nsmallest(query.limit, rows, key=order)
            return sorted(rows, key=order)
        except TypeError as exc:
            raise QueryError(f"{schema.name}: cannot order by {query.order_by}: {exc}") from None

    def count(self, schema: EntitySchema, filters: Sequence[Filter] = ()) -> int:
        layout = self._get_layout(schema)
        checked = self._filters(schema, filters)
        heads = dict.fromkeys(item.field.partition(".")[0] for item in checked)
        specs = [schema.field(name) for name in heads]
        with translate_errors(self.store, self.shard):
            return sum(1 for row in self._candidates(layout, checked, specs) if self._matches(checked, row))

    @staticmethod
    def _in_range(schema: EntitySchema, rows: list[Row], keys: KeyRange | None) -> list[Row]:
        if keys is None:
            return rows
        try:
            return [row for row in rows if schema.shard_key_of(row) in keys]
        except TypeError as exc:
            raise QueryError(f"{schema.name}: key range bounds do not compare with the shard key: {exc}") from None

    def _scan_rows(
        self, schema: EntitySchema, tokens: TokenRange | None, keys: KeyRange | None, batch_size: int, *, expiring: bool
    ) -> Iterator[list[Row]]:
        layout = self._get_layout(schema)
        if batch_size < 1:
            raise QueryError(f"batch_size must be positive, not {batch_size}")
        if tokens is not None and not layout.with_token:
            raise QueryError(f"{schema.name}: a token range scan needs a hash-routed store")
        if keys is not None:
            keys = KeyRange(_utc_key(keys.lower), _utc_key(keys.upper))
        key_span = self._key_span(layout, keys) if keys is not None and tokens is None else None
        span = key_span or self._token_span(tokens)
        pending: list[Row] = []
        with translate_errors(self.store, self.shard):
            for batch in self._walk(layout, span, batch_size, expiring=expiring):
                pending += self._in_range(schema, batch, keys)
                while len(pending) >= batch_size:
                    yield pending[:batch_size]
                    pending = pending[batch_size:]
        if pending:
            yield pending
