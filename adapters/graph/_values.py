"""Python values as Neo4j property values and back, by storage type.

Neo4j properties are scalars or homogeneous lists, and a null property is an absent
one. So ``json`` fields are stored as JSON text, ``uuid`` and ``decimal`` as strings
(a decimal *key* in its canonical form, so ``1.0`` and ``1.00`` are one key, as in
routing, with its exact text beside it when that differs: ``exact_key``),
``bytes`` as byte arrays, ``datetime`` as a zoned DateTime in UTC (nanosecond
precision, so microseconds survive) and ``date`` as a Date; ``decode`` gives back the
Python types written. Integers outside 64 bits are refused here, naming the value,
rather than by the driver's packer.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Mapping
from typing import Any, Final

import neo4j.time

from sharding.core.errors import QueryError
from sharding.keys import canonical_decimal

__all__ = [
    "EXACT_PREFIX",
    "INT64",
    "decode",
    "encode",
    "encode_key",
    "exact_key",
    "native",
    "native_map",
    "property_value",
]

INT64: Final = (-(2**63), 2**63 - 1)
"""The smallest and largest integer Neo4j stores."""

EXACT_PREFIX: Final = "_ps_exact_"
"""Hidden property ``EXACT_PREFIX + name``: the exact text of a Decimal key part whose
stored (canonical) form differs from it (``exact_key``)."""

_SCALARS: Final = (str, bool, int, float, bytes, dt.datetime, dt.date)
"""Relationship property values Neo4j stores natively (and lists of them)."""


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def encode(kind: str, value: Any) -> Any:
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
    if isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
        raise QueryError(f"integer {value} does not fit Neo4j's 64-bit integers")
    return value


def encode_key(kind: str, value: Any) -> Any:
    """A key part as stored: a decimal in its canonical form (``1.0`` and ``1.00`` are one
    key, as in routing; exact, where ``Decimal.normalize`` rounds to 28 digits)."""
    if kind == "decimal" and isinstance(value, decimal.Decimal) and value.is_finite():
        return str(canonical_decimal(value))
    return encode(kind, value)


def exact_key(value: Any) -> str | None:
    """The text of a Decimal key part that its canonical form does not keep (``1.10``,
    ``-0``), else None: stored beside the key so that the row reads back as written."""
    if not isinstance(value, decimal.Decimal) or not value.is_finite():
        return None
    return None if canonical_decimal(value).as_tuple() == value.as_tuple() else str(value)


def decode(kind: str, value: Any) -> Any:
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
    return native(value)


def native(value: Any) -> Any:
    """Neo4j temporal values as Python ones (datetimes in UTC); lists element-wise."""
    if isinstance(value, neo4j.time.DateTime):
        return _utc(value.to_native())
    if isinstance(value, neo4j.time.Date):
        return value.to_native()
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, list):
        return [native(item) for item in value]
    return value


def native_map(properties: Mapping[str, Any]) -> dict[str, Any]:
    """A relationship's properties as Python values (they carry no declared types)."""
    return {name: native(value) for name, value in properties.items()}


def property_value(name: str, value: Any) -> Any:
    """A relationship property value Neo4j can store, or a QueryError saying why not."""
    if isinstance(value, list):
        if not all(isinstance(item, _SCALARS) for item in value):
            raise QueryError(f"relationship property {name!r}: lists may hold scalars only")
        if len({type(item) for item in value}) > 1:
            raise QueryError(f"relationship property {name!r}: a list holds values of one type (Neo4j arrays)")
        return [_scalar(item) for item in value]
    if value is None or isinstance(value, _SCALARS):
        return _scalar(value)
    raise QueryError(
        f"relationship property {name!r}: {type(value).__name__} values cannot be stored "
        "(use str, int, float, bool, bytes, datetime, date or a list of them)"
    )


def _scalar(value: Any) -> Any:
    """An untyped scalar as stored: datetimes in UTC, big integers refused."""
    return encode("datetime" if isinstance(value, dt.datetime) else "", value)
