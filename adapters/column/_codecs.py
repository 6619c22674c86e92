"""How each field type is stored in CQL, losslessly, and the shard-key prefix.

* datetimes as ``bigint`` microseconds since the epoch in UTC (CQL ``timestamp`` keeps
  milliseconds only), json as ``text``, uuid as ``uuid`` (``blob`` in clustering columns,
  whose byte order is Python's UUID order), bytes as ``blob``;
* decimal as ``decimal`` (Java's BigDecimal: any digits, exponent as written, but no
  negative zero), and in a key column as its canonical form (``sharding.keys``), because
  Cassandra tells ``1.1`` from ``1.10`` in a partition key and they are one key; where
  the stored form would read back otherwise (a key's ``1.10``, a ``-0``) the exact text
  goes in the hidden text column ``EXACT_PREFIX + name`` (``exact_text``);
* a partition key made of one str/bytes column is stored with a constant ``=`` prefix,
  because Cassandra rejects an empty partition key and ``""`` is a valid key;
* ``skey_prefix`` is the order-preserving 64-bit image of a shard key that the hidden,
  SAI-indexed ``_ps_skey`` column holds (SAI does no range queries on text).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from cassandra.util import Date as CassandraDate

from sharding.core.errors import QueryError
from sharding.core.model import EntitySchema, FieldSpec
from sharding.keys import canonical_decimal

__all__ = [
    "CODECS",
    "EXACT_PREFIX",
    "MAX_TOKEN",
    "MIN_TOKEN",
    "PYTHON_TYPES",
    "Codec",
    "Layout",
    "codecs_for",
    "exact_text",
    "micros",
    "pushable_value",
    "same",
    "skey_prefix",
]

MIN_TOKEN: Final = -(2**63)
MAX_TOKEN: Final = 2**63 - 1
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICRO: Final = dt.timedelta(microseconds=1)
EXACT_PREFIX: Final = "_ps_exact_"
"""Hidden text column ``EXACT_PREFIX + name`` of a decimal field: its exact text where the
decimal column would read back another form of the number (``exact_text``), else null."""
_PK_PREFIX_STR: Final = "="
_PK_PREFIX_BYTES: Final = b"="

Layout: TypeAlias = tuple[tuple[str, ...], tuple[str, ...]]
"""(partition columns, clustering columns) of an entity's table."""


@dataclass(frozen=True, slots=True)
class Codec:
    """How one field is stored: its CQL type, and the conversions both ways."""

    cql: str
    to_db: Callable[[Any], Any]
    from_db: Callable[[Any], Any]
    ordered: bool
    """Whether CQL compares stored values in Python's order (range filters may be pushed)."""


def same(value: Any) -> Any:
    """The conversion of a type stored as it is (writers skip it)."""
    return value


def micros(value: dt.datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC (as it is stored)."""
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


CODECS: Final[dict[str, Codec]] = {
    "str": Codec("text", same, same, True),
    "int": Codec("bigint", same, same, True),
    "float": Codec("double", same, same, True),
    "bool": Codec("boolean", same, same, True),
    "bytes": Codec("blob", _none_safe(bytes), _none_safe(bytes), True),
    "datetime": Codec("bigint", _none_safe(micros), _none_safe(_datetime_from), True),
    "date": Codec("date", same, _none_safe(_date_from), True),
    "decimal": Codec("decimal", same, same, False),
    "uuid": Codec("uuid", same, same, False),
    "json": Codec("text", _none_safe(_json_to), _none_safe(json.loads), False),
}
_UUID_CLUSTERING: Final = Codec(
    "blob", _none_safe(lambda value: value.bytes), _none_safe(lambda value: uuid.UUID(bytes=bytes(value))), True
)
_PK_STR: Final = Codec(
    "text", _none_safe(lambda value: _PK_PREFIX_STR + value), _none_safe(lambda value: value[1:]), True
)
_PK_BYTES: Final = Codec(
    "blob", _none_safe(lambda value: _PK_PREFIX_BYTES + bytes(value)), _none_safe(lambda value: bytes(value)[1:]), True
)
_DECIMAL_KEY: Final = Codec("decimal", _none_safe(canonical_decimal), same, False)
PYTHON_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "str": (str,),
    "int": (int,),
    "float": (float,),
    "bool": (bool,),
    "bytes": (bytes,),
    "datetime": (dt.datetime,),
    "date": (dt.date,),
    "uuid": (uuid.UUID,),
}
"""The Python types a key or filter value of each field type may have (decimal: any)."""


def codecs_for(schema: EntitySchema, layout: Layout) -> dict[str, Codec]:
    """Each field's codec in a table of this layout (key columns may differ from values)."""
    partition, clustering = layout
    codecs = {spec.name: CODECS[spec.type] for spec in schema.fields}
    if len(partition) == 1:
        kind = schema.field(partition[0]).type
        if kind == "str":
            codecs[partition[0]] = _PK_STR
        elif kind == "bytes":
            codecs[partition[0]] = _PK_BYTES
    for name in clustering:
        if schema.field(name).type == "uuid":
            codecs[name] = _UUID_CLUSTERING
    for name in (*partition, *clustering):
        if schema.field(name).type == "decimal":
            codecs[name] = _DECIMAL_KEY
    return codecs


def exact_text(value: decimal.Decimal | None, *, key: bool) -> str | None:
    """The text of a decimal that its column (a ``key`` column: canonical) would not give
    back as written, else None: ``1.10`` in a key column, ``-0`` (BigDecimal has no
    negative zero) in any."""
    if value is None or not value.is_finite():
        return None
    stored = canonical_decimal(value) if key else value.copy_abs() if value.is_zero() else value
    return None if stored.as_tuple() == value.as_tuple() else str(value)


def pushable_value(spec: FieldSpec, value: Any) -> bool:
    """Whether CQL compares ``value`` with this field exactly as Python would."""
    types = PYTHON_TYPES.get(spec.type)
    if types is None or not isinstance(value, types):
        return False
    number: Any = value  # the tuple isinstance above narrows to object
    if spec.type == "int":
        return not isinstance(number, bool) and MIN_TOKEN <= number <= MAX_TOKEN
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
        return max(MIN_TOKEN, min(MAX_TOKEN, value))
    if isinstance(value, dt.datetime):
        return micros(value)
    if isinstance(value, dt.date):
        return value.toordinal()
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return MAX_TOKEN if value > 0 else MIN_TOKEN
        return max(MIN_TOKEN, min(MAX_TOKEN, int(value.to_integral_value(rounding=decimal.ROUND_FLOOR))))
    if isinstance(value, uuid.UUID):
        return (value.int >> 64) - 2**63
    if isinstance(value, str):
        value = value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return int.from_bytes(bytes(value)[:8].ljust(8, b"\0"), "big") - 2**63
    raise QueryError(f"cannot range-index a shard key of type {type(value).__name__}")
