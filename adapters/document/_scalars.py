"""Scalar fields as stored: encoded so that the server's order is Python's order.

Nothing is lost, and comparing stored values compares the Python values:

* ``datetime`` as int64 microseconds since the epoch (BSON dates are milliseconds);
* ``date`` as ``YYYY-MM-DD``, ``uuid`` as its canonical string;
* ``bytes`` as lowercase hex (BSON binary sorts by length first);
* ``decimal`` as the number in an order-preserving string (``decimal_key``: the hex of
  ``sharding.keys.decimal_order_bytes``): BSON Decimal128 has only 34 digits, and
  FerretDB 1.24 does not support it (it drops the connection). That string is the
  number, so ``1.10`` and ``1.1`` are one value to filters, orders and keys; a Decimal
  whose exponent or sign it does not keep has its exact text beside it
  (``exact_decimal``, in the hidden field ``EXACT_PREFIX + name``), so it reads back
  as written;
* ``float`` as a double, except ``-0.0``: FerretDB stores a double zero without its
  sign, so a negative zero is stored as a 64-bit integer zero, which compares equal to
  ``0.0`` on the server and which pymongo never writes for a Python int (it writes
  int32 for small ints).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

from bson.int64 import Int64

from adapters.document._json import decode_json, encode_json
from sharding.core.errors import InvalidKeyError, QueryError
from sharding.core.model import ScalarType
from sharding.keys import canonical_decimal, decimal_from_order_bytes, decimal_order_bytes

__all__ = [
    "EXACT_PREFIX",
    "MISMATCH",
    "decimal_from_key",
    "decimal_key",
    "decode",
    "encode",
    "encode_operand",
    "exact_decimal",
]

EXACT_PREFIX: Final = "_ps_exact_"
"""Hidden field ``EXACT_PREFIX + name``: the exact text of a Decimal field whose stored
number does not keep its exponent or sign (absent otherwise)."""

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NEGATIVE_INFINITY: Final = "00"
_POSITIVE_INFINITY: Final = "04"
"""Below and above every finite number's string (which starts with 01, 02 or 03)."""
_NEGATIVE_ZERO: Final = Int64(0)


def _micros(value: dt.datetime) -> int:
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def decimal_key(value: decimal.Decimal) -> str:
    """A string whose code-point order is the numeric order of finite or infinite decimals.

    The lowercase hex of ``sharding.keys.decimal_order_bytes`` (the encoding Decimal keys
    route by), with the infinities below and above every finite number.
    """
    if value.is_nan():
        raise QueryError("a NaN decimal cannot be stored or compared")
    if value.is_infinite():
        return _POSITIVE_INFINITY if value > 0 else _NEGATIVE_INFINITY
    try:
        return decimal_order_bytes(value).hex()
    except InvalidKeyError:
        raise QueryError(f"decimal {value} is out of the storable range") from None


def decimal_from_key(text: str) -> decimal.Decimal:
    """The inverse of ``decimal_key``: the number, in its canonical form."""
    if text == _POSITIVE_INFINITY:
        return decimal.Decimal("Infinity")
    if text == _NEGATIVE_INFINITY:
        return decimal.Decimal("-Infinity")
    return decimal_from_order_bytes(bytes.fromhex(text))


def exact_decimal(value: decimal.Decimal | None) -> str | None:
    """The text of a Decimal that ``decimal_from_key(decimal_key(value))`` would not give
    back as written (``1.10``, ``-0``, ``1E+2`` as ``100``...), else None."""
    if value is None or not value.is_finite():
        return None
    return None if canonical_decimal(value).as_tuple() == value.as_tuple() else str(value)


def _float(value: Any) -> Any:
    as_float = float(value)
    return _NEGATIVE_ZERO if as_float == 0.0 and math.copysign(1.0, as_float) < 0 else as_float


def _from_float(value: Any) -> float:
    return -0.0 if type(value) is Int64 and value == 0 else float(value)


_ENCODERS: Final[Mapping[str, Callable[[Any], Any]]] = {
    "float": _float,
    "datetime": _micros,
    "date": lambda value: value.isoformat(),
    "bytes": lambda value: bytes(value).hex(),
    "uuid": str,
    "decimal": decimal_key,
    "json": encode_json,
}
"""Kinds stored in another form; the others (str, int, bool) are stored as they are."""

_DECODERS: Final[Mapping[str, Callable[[Any], Any]]] = {
    "datetime": lambda value: _EPOCH + dt.timedelta(microseconds=int(value)),
    "date": dt.date.fromisoformat,
    "bytes": bytes.fromhex,
    "uuid": uuid.UUID,
    "decimal": decimal_from_key,
    "json": decode_json,
    "int": int,
    "float": _from_float,
}
"""The inverses, plus int and float (a server may hand an int64 or a whole double back)."""


def encode(kind: ScalarType, value: Any) -> Any:
    """A row value as stored (see the module docstring)."""
    if value is None:
        return None
    convert = _ENCODERS.get(kind)
    return value if convert is None else convert(value)


def decode(kind: ScalarType, value: Any) -> Any:
    """A stored value as the row's Python value."""
    if value is None:
        return None
    convert = _DECODERS.get(kind)
    return value if convert is None else convert(value)


MISMATCH: Final = object()
"""A filter value of a type that can never equal (or be ordered against) the field's."""

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


def encode_operand(kind: ScalarType, value: Any) -> Any:
    """A filter value in the field's stored form, or ``MISMATCH`` if no row value can match."""
    if value is None:
        return None
    if not _FITS[kind](value):
        return MISMATCH
    if isinstance(value, bool):
        return int(value)
    if kind == "float" and not isinstance(value, float):
        return value  # an int compares with doubles as it is (and may not fit one)
    if kind == "decimal" and not isinstance(value, decimal.Decimal):
        value = decimal.Decimal(value)
    return encode(kind, value)
