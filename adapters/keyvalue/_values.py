"""Python values <-> the bytes in a row's Redis hash, typed by the schema (not tagged).

str as UTF-8, int and float as decimal text (so ``HINCRBY`` and Lua arithmetic work on
them), bool ``1``/``0``, bytes raw, datetime as int64 microseconds since the epoch (UTC,
lossless), date ISO, Decimal as its exact string, UUID hex, json fields as compact JSON.
A null field is an absent hash field; ``_ps_token`` is stored as the 16 hex digits the
token index uses. No pickle.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import uuid
from collections.abc import Callable
from typing import Any, Final

from pydantic import TypeAdapter

from adapters.base import Filter, Row

__all__ = [
    "BIAS",
    "DECODE",
    "ENCODE",
    "EPOCH",
    "MICRO",
    "TOKEN_WIDTH",
    "decode_json",
    "expiry",
    "jsonable",
    "number_text",
    "safe_match",
    "token_from_hex",
    "token_hex",
    "utc",
    "utc_filter",
    "utc_key",
]

BIAS: Final = 2**63
"""Added to a signed 64-bit token so that its hex digits sort like the token."""
TOKEN_WIDTH: Final = 16
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICRO: Final = dt.timedelta(microseconds=1)
_ANY: Final = TypeAdapter(Any)


def utc(value: dt.datetime) -> dt.datetime:
    """``value`` in UTC; a naive datetime is taken as UTC, as stored values are."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _enc_datetime(value: Any) -> bytes:
    return str((utc(value) - EPOCH) // MICRO).encode()


def _dec_datetime(raw: bytes) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=int(raw))


def _enc_json(value: Any) -> bytes:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "surrogatepass")


def decode_json(raw: bytes) -> Any:
    """A json field's value from its stored text."""
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


ENCODE: Final[dict[str, Callable[[Any], bytes]]] = {
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
"""Field type -> encoder of a non-null value."""

DECODE: Final[dict[str, Callable[[bytes], Any]]] = {
    "str": lambda raw: raw.decode("utf-8", "surrogatepass"),
    "int": int,
    "float": float,
    "bool": lambda raw: raw == b"1",
    "bytes": bytes,
    "datetime": _dec_datetime,
    "date": lambda raw: dt.date.fromisoformat(raw.decode()),
    "decimal": lambda raw: decimal.Decimal(raw.decode()),
    "uuid": lambda raw: uuid.UUID(hex=raw.decode()),
    "json": decode_json,
}
"""Field type -> decoder of a stored value."""


def number_text(amount: int | float, kind: str) -> str:
    """An increment's amount as Lua reads it: exact for int fields, a double for float."""
    return repr(amount) if kind == "int" else repr(float(amount))


def token_hex(token: int) -> bytes:
    """The 16 lowercase hex digits of ``token + 2**63``: sorts like the tokens."""
    return b"%016x" % (token + BIAS)


def token_from_hex(raw: bytes) -> int:
    return int(raw, 16) - BIAS


def expiry(millis: int, now: float) -> float | None:
    """The expiry instant of a row whose ``PTTL`` said ``millis`` at ``now`` (None: never)."""
    return None if millis < 0 else now + millis / 1000


def utc_filter(item: Filter) -> Filter:
    """A datetime filter with naive values taken as UTC, as stored values are."""
    value = item.value
    if isinstance(value, dt.datetime):
        value = utc(value)
    elif item.op == "in":
        value = [utc(v) if isinstance(v, dt.datetime) else v for v in value]
    return Filter(item.field, item.op, value)


def utc_key(value: Any) -> Any:
    """A key value (or tuple) with naive datetimes taken as UTC, as stored ones are."""
    if isinstance(value, dt.datetime):
        return utc(value)
    if isinstance(value, tuple):
        return tuple(utc_key(part) for part in value)
    return value


def jsonable(value: Any) -> Any:
    """A JSON value for anything a json field may be given (models, datetimes...)."""
    return _ANY.dump_python(value, mode="json")


def safe_match(item: Filter, row: Row) -> bool:
    """``Filter.matches``; values Python cannot order (str vs int) do not match."""
    try:
        return item.matches(row)
    except TypeError:
        return False
