"""Scalar fields as stored: encoded so that the server's order is Python's order.

Nothing is lost, and comparing stored values compares the Python values:

* ``datetime`` as int64 microseconds since the epoch (BSON dates are milliseconds);
* ``date`` as ``YYYY-MM-DD``, ``uuid`` as its canonical string;
* ``bytes`` as lowercase hex (BSON binary sorts by length first);
* ``decimal`` as an order-preserving string (``decimal_key``): BSON Decimal128 has only
  34 digits, and FerretDB 1.24 does not support it (it drops the connection). Decimals
  come back numerically equal but normalised (``Decimal("1.10")`` reads back as
  ``Decimal("1.1")``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

from adapters.document._json import decode_json, encode_json
from sharding.core.errors import QueryError
from sharding.core.model import ScalarType

__all__ = ["MISMATCH", "decimal_from_key", "decimal_key", "decode", "encode", "encode_operand"]

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EXP_OFFSET: Final = 10**18


def _micros(value: dt.datetime) -> int:
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def decimal_key(value: decimal.Decimal) -> str:
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


def decimal_from_key(text: str) -> decimal.Decimal:
    """The inverse of ``decimal_key`` (up to normalisation)."""
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


_ENCODERS: Final[Mapping[str, Callable[[Any], Any]]] = {
    "datetime": _micros,
    "date": lambda value: value.isoformat(),
    "bytes": lambda value: bytes(value).hex(),
    "uuid": str,
    "decimal": decimal_key,
    "json": encode_json,
}
"""Kinds stored in another form; the others (str, int, float, bool) are stored as they are."""

_DECODERS: Final[Mapping[str, Callable[[Any], Any]]] = {
    "datetime": lambda value: _EPOCH + dt.timedelta(microseconds=int(value)),
    "date": dt.date.fromisoformat,
    "bytes": bytes.fromhex,
    "uuid": uuid.UUID,
    "decimal": decimal_from_key,
    "json": decode_json,
    "int": int,
    "float": float,
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
    if kind == "decimal" and not isinstance(value, decimal.Decimal):
        value = decimal.Decimal(value)
    return encode(kind, value)
