"""The order-preserving, prefix-free encoding of shard keys (the shard-key index).

``ordered(a) < ordered(b)`` (bytewise) exactly when ``a < b`` in Python, for values of
one key type, and no encoding is a proper prefix of another: so a sorted set of
``ordered(shard key) + suffix`` members answers shard-key ranges with ``ZRANGEBYLEX``
(str by code point, ints of any size, Decimal, UUID, date, datetime, bytes, tuples).
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final

from adapters.keyvalue._values import BIAS, EPOCH, MICRO, utc
from sharding.core.errors import InvalidKeyError
from sharding.keys import decimal_order_bytes

__all__ = ["KEY_TYPE_CHECKS", "Unordered", "ordered", "ordered_bound"]


class Unordered(Exception):
    """A value with no order-preserving encoding here (the caller walks everything)."""


def _escaped(raw: bytes) -> bytes:
    return raw.replace(b"\x00", b"\x00\xff") + b"\x00\x01"


def _ordered_int(value: int) -> bytes:
    magnitude = abs(value).to_bytes((abs(value).bit_length() + 7) // 8, "big")
    if len(magnitude) > 0xFFFF:
        raise Unordered("integer too large for an ordered encoding")
    if value >= 0:
        return b"\x20\x01" + len(magnitude).to_bytes(2, "big") + magnitude
    inverted = bytes(0xFF - byte for byte in magnitude)
    return b"\x20\x00" + (0xFFFF - len(magnitude)).to_bytes(2, "big") + inverted


def _ordered_decimal(value: decimal.Decimal) -> bytes:
    # A finite number: sharding.keys' order-preserving bytes (sign class, exponent of the
    # leading digit, digits), exact for any number of digits; infinities and NaN around them.
    if value.is_nan():
        return b"\x21\x05"
    if value.is_infinite():
        return b"\x21\x00" if value < 0 else b"\x21\x04"
    try:
        return b"\x21" + decimal_order_bytes(value)
    except InvalidKeyError as exc:
        raise Unordered(str(exc)) from None


def ordered(value: Any) -> bytes:
    """The order-preserving, prefix-free encoding of a key value (tuples: concatenated)."""
    if isinstance(value, bool):
        raise Unordered("bool is not a key type")
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
        micros = (utc(value) - EPOCH) // MICRO
        return b"\x41" + (micros + BIAS).to_bytes(8, "big")
    if isinstance(value, dt.date):
        return b"\x40" + value.isoformat().encode()
    if isinstance(value, tuple):
        return b"".join(ordered(part) for part in value)
    raise Unordered(f"no ordered encoding for {type(value).__name__}")


KEY_TYPE_CHECKS: Final[dict[str, Callable[[Any], bool]]] = {
    "str": lambda v: isinstance(v, str),
    "bytes": lambda v: isinstance(v, bytes),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "decimal": lambda v: isinstance(v, decimal.Decimal),
    "uuid": lambda v: isinstance(v, uuid.UUID),
    "date": lambda v: isinstance(v, dt.date) and not isinstance(v, dt.datetime),
    "datetime": lambda v: isinstance(v, dt.datetime),
}
"""Key field type -> whether a value is of it (bools are not ints here)."""


def ordered_bound(types: Sequence[str], value: Any) -> bytes:
    """``ordered(value)`` for a bound on a shard key of ``types``; Unordered unless the
    bound has exactly those types (Python may still compare e.g. an int with a Decimal,
    but their encodings are not comparable)."""
    parts = (value,) if len(types) == 1 else value
    if len(types) > 1 and (not isinstance(value, tuple) or len(value) > len(types)):
        raise Unordered("bound does not match the composite shard key")
    for kind, part in zip(types, parts, strict=False):
        if not KEY_TYPE_CHECKS.get(kind, lambda _: False)(part):
            raise Unordered(f"bound {part!r} is not a {kind}")
    return ordered(value)
