"""What a backend can store exactly, and the check that refuses the rest before any write.

polystore's first promise is that a value ``put`` accepts reads back equal. Every
backend has edges where that breaks: an int64 column overflows, SQLite turns a float NaN
into NULL, a datetime before year 1000 is written in a form that cannot be read back, a
lone surrogate has no UTF-8 form, PostgreSQL refuses a NUL character in text... Past such
an edge a write either fails with a driver's exception or, worse, succeeds and poisons
every later read. So the repository checks each row against the ``ValueLimits`` of the
store's backend first, and a value past an edge is a ``ValidationError`` naming the
entity and the dotted field, with nothing written.

Declaring a backend's own limits: an adapter class says what it stores exactly with a
class attribute, starting from the defaults and widening only what it really keeps::

    class KeyValueAdapter(Adapter):
        value_limits: ClassVar[ValueLimits] = replace(
            DEFAULT_LIMITS, int_min=None, int_max=None, decimal_digits=None, ...
        )

``DEFAULT_LIMITS`` are the most conservative limits, what every supported backend
stores exactly; an adapter that declares nothing gets them. docs/types.md is the table
of these defaults and is checked against them by the tests.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from sharding.core.errors import ValidationError

if TYPE_CHECKING:
    from sharding.core.model import EntitySchema, ScalarType

__all__ = [
    "DECIMAL128_DIGITS",
    "DECIMAL128_MAX_EXPONENT",
    "DECIMAL128_MIN_EXPONENT",
    "DEFAULT_LIMITS",
    "ValueLimits",
    "check_row",
    "check_value",
]

DECIMAL128_DIGITS: Final = 34
"""Significant digits of IEEE 754 decimal128 (MongoDB's Decimal128)."""
DECIMAL128_MIN_EXPONENT: Final = -6176
"""The smallest exponent of a decimal128 value (``coefficient * 10**exponent``)."""
DECIMAL128_MAX_EXPONENT: Final = 6111
"""The largest exponent a decimal128 value keeps as written."""

_MIB: Final = 2**20


@dataclass(frozen=True, slots=True)
class ValueLimits:
    """What one backend stores exactly. ``None`` for a bound means "no limit".

    The defaults are ``DEFAULT_LIMITS``: what every supported backend stores exactly
    (see the module docstring for how an adapter declares wider ones).
    """

    int_min: int | None = -(2**63)
    """The smallest int (int64: SQL BIGINT, CQL bigint, BSON and Neo4j integers)."""
    int_max: int | None = 2**63 - 1
    """The largest int; also bounds ints inside JSON values (BSON int64)."""
    float_nan: bool = False
    """Whether a float NaN is stored (SQLite stores NaN as NULL)."""
    float_infinity: bool = False
    """Whether float infinities are stored."""
    decimal_digits: int | None = DECIMAL128_DIGITS
    """Most significant digits of a Decimal, as written (``Decimal("1.00")`` has 3).
    ``None`` with both exponents ``None``: stored as text, any finite Decimal."""
    decimal_min_exponent: int | None = DECIMAL128_MIN_EXPONENT
    """The smallest exponent of a Decimal (``Decimal("1.00")`` has -2)."""
    decimal_max_exponent: int | None = DECIMAL128_MAX_EXPONENT
    """The largest exponent of a Decimal (``Decimal("1E+5")`` has 5): kept, not expanded."""
    decimal_nan: bool = False
    """Whether a quiet Decimal NaN is stored (a signaling NaN never is)."""
    decimal_infinity: bool = False
    """Whether Decimal infinities are stored."""
    datetime_min: dt.datetime = dt.datetime(1000, 1, 1, tzinfo=dt.UTC)
    """The earliest instant (aware, UTC); naive datetimes are taken as UTC."""
    datetime_max: dt.datetime = dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)
    """The latest instant (aware, UTC)."""
    date_min: dt.date = dt.date(1000, 1, 1)
    """The earliest date."""
    date_max: dt.date = dt.date(9999, 12, 31)
    """The latest date."""
    str_nul: bool = False
    """Whether text may contain U+0000 (PostgreSQL text and JSONB refuse it)."""
    str_max_bytes: int | None = 8 * _MIB
    """Longest text, in UTF-8 bytes: half of the smallest row limit (MongoDB's 16 MiB
    document, Cassandra's 16 MiB mutation), so a row with one large value still fits."""
    bytes_max_length: int | None = 4 * _MIB
    """Longest bytes value: a quarter of that row limit (the document store writes hex)."""
    json_max_depth: int = 64
    """Most nested containers (arrays and objects) in one JSON value; ``[[1]]`` is 2."""

    def __post_init__(self) -> None:
        # A declaration is code, not input: a wrong one is a programming error.
        for low, high, what in (
            (self.int_min, self.int_max, "int"),
            (self.decimal_min_exponent, self.decimal_max_exponent, "decimal exponent"),
            (self.date_min, self.date_max, "date"),
        ):
            if low is not None and high is not None and low > high:  # type: ignore[operator]
                raise ValueError(f"ValueLimits: the {what} range is empty ({low} > {high})")
        for bound in (self.datetime_min, self.datetime_max):
            if bound.utcoffset() != dt.timedelta(0):
                raise ValueError(f"ValueLimits: datetime bounds must be aware UTC instants, not {bound!r}")
        if self.datetime_min > self.datetime_max:
            raise ValueError("ValueLimits: the datetime range is empty")


DEFAULT_LIMITS: Final = ValueLimits()
"""The most conservative limits: what every supported backend stores exactly."""


class _Refused(Exception):
    """One value past a limit: the message, and the path below the field (if any)."""

    def __init__(self, message: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


def _short(value: object) -> str:
    """A value for a message: a huge Decimal or string is not repeated whole."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1000:
        return f"an int of {value.bit_length()} bits"  # repr() refuses ints past 4,300 digits
    text = value.isoformat() if isinstance(value, dt.date) else repr(value)
    return text if len(text) <= 80 else f"{text[:60]}...({len(text)} characters)"


def _within(value: Any, low: Any, high: Any, what: str) -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        shown = " .. ".join("(any)" if bound is None else str(bound) for bound in (low, high))
        raise _Refused(f"{what} {_short(value)} is outside the storable range {shown}")


def _check_text(value: str, limits: ValueLimits, what: str = "text") -> None:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        code = ord(value[exc.start])
        where = f"U+{code:04X} at position {exc.start}"
        raise _Refused(
            f"{what} has a lone surrogate ({where}): it has no UTF-8 form, so no backend can store it"
        ) from None
    if not limits.str_nul and "\x00" in value:
        raise _Refused(f"{what} contains U+0000 (NUL) at position {value.index(chr(0))}, which is not storable")
    if limits.str_max_bytes is not None and size > limits.str_max_bytes:
        raise _Refused(f"{what} is {size} UTF-8 bytes long; the most storable is {limits.str_max_bytes}")


def _check_int(value: int, limits: ValueLimits) -> None:
    _within(value, limits.int_min, limits.int_max, "integer")


def _check_float(value: float, limits: ValueLimits) -> None:
    if isinstance(value, int):  # an int in a float field is stored as a double: if it is one exactly
        try:
            exact = float(value) == value
        except OverflowError:
            exact = False
        if not exact:
            raise _Refused(f"integer {_short(value)} has no exact float form")
        return
    if math.isnan(value) and not limits.float_nan:
        raise _Refused("a float NaN is not storable here")
    if math.isinf(value) and not limits.float_infinity:
        raise _Refused(f"a float {value} is not storable here")


def _check_decimal(value: decimal.Decimal, limits: ValueLimits) -> None:
    if value.is_snan():
        raise _Refused("a signaling Decimal NaN is never storable")
    if value.is_nan() and not limits.decimal_nan:
        raise _Refused("a Decimal NaN is not storable here")
    if value.is_infinite() and not limits.decimal_infinity:
        raise _Refused(f"Decimal {value} is not storable here")
    if not value.is_finite():
        return
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    if limits.decimal_digits is not None and len(digits) > limits.decimal_digits:
        raise _Refused(
            f"Decimal {_short(value)} has {len(digits)} significant digits; "
            f"at most {limits.decimal_digits} are stored exactly"
        )
    _within(exponent, limits.decimal_min_exponent, limits.decimal_max_exponent, f"the exponent of {_short(value)}:")


def _check_datetime(value: dt.datetime, limits: ValueLimits) -> None:
    try:
        instant = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    except (OverflowError, ValueError):  # e.g. year 1 at +01:00 is before year 1 in UTC
        raise _Refused(f"datetime {value.isoformat()} has no UTC instant within years 1..9999") from None
    if not limits.datetime_min <= instant <= limits.datetime_max:
        raise _Refused(
            f"datetime {value.isoformat()} is outside the storable instants "
            f"{limits.datetime_min.isoformat()} .. {limits.datetime_max.isoformat()}"
        )


def _check_date(value: dt.date, limits: ValueLimits) -> None:
    _within(value, limits.date_min, limits.date_max, "date")


def _check_bytes(value: bytes | bytearray, limits: ValueLimits) -> None:
    if limits.bytes_max_length is not None and len(value) > limits.bytes_max_length:
        raise _Refused(f"bytes value is {len(value)} bytes long; the most storable is {limits.bytes_max_length}")


def _check_json(value: Any, limits: ValueLimits) -> None:
    """Walk a JSON value without recursion (so depth 100,000 is refused, not a crash)."""
    stack: list[tuple[Any, tuple[str, ...], int]] = [(value, (), 0)]
    while stack:
        item, path, depth = stack.pop()
        try:
            if isinstance(item, (dict, list)):
                if depth >= limits.json_max_depth:
                    raise _Refused(f"JSON nests deeper than {limits.json_max_depth} arrays and objects")
                if isinstance(item, list):
                    stack.extend((part, (*path, str(index)), depth + 1) for index, part in enumerate(item))
                    continue
                for name, part in item.items():
                    _check_json_key(name, limits)
                    stack.append((part, (*path, name), depth + 1))
            elif isinstance(item, str):
                _check_text(item, limits)
            elif isinstance(item, bool) or item is None:
                pass
            elif isinstance(item, int):
                _check_int(item, limits)
            elif isinstance(item, float):
                if not math.isfinite(item):
                    raise _Refused(f"JSON has no {item}: a float inside a JSON value must be finite")
            else:
                kind = type(item).__name__
                raise _Refused(f"a JSON value holds str, int, float, bool, None, lists and dicts, not {kind}")
        except _Refused as refused:
            raise _Refused(str(refused), path) from None


def _check_json_key(name: object, limits: ValueLimits) -> None:
    # Any text is a storable key ('$' and '.' too: the document store escapes them); a
    # non-str key would come back as a str (JSON has only string keys).
    if not isinstance(name, str):
        raise _Refused(f"JSON object keys are strings, not {type(name).__name__} ({_short(name)})")
    _check_text(name, limits, f"JSON key {_short(name)}")


def _nothing(value: object, limits: ValueLimits) -> None:
    """bool and UUID: every value of the type is storable everywhere."""


_SCALARS: Final[Mapping[str, tuple[tuple[type, ...], Callable[[Any, ValueLimits], None]]]] = {
    "str": ((str,), _check_text),
    "int": ((int,), _check_int),
    "float": ((float, int), _check_float),
    "bool": ((bool,), _nothing),
    "bytes": ((bytes, bytearray), _check_bytes),
    "datetime": ((dt.datetime,), _check_datetime),
    "date": ((dt.date,), _check_date),
    "decimal": ((decimal.Decimal,), _check_decimal),
    "uuid": ((uuid.UUID,), _nothing),
}
"""Each scalar type: the Python types its values may have (a float field also takes an
int, as pydantic does), and the check of their limits."""


def _check_scalar(kind: ScalarType, value: Any, limits: ValueLimits) -> None:
    types, check = _SCALARS[kind]
    if not isinstance(value, types) or (kind == "date" and isinstance(value, dt.datetime)):
        raise _Refused(f"a {kind} field cannot hold a {type(value).__name__} ({_short(value)})")
    check(value, limits)


def _check(kind: ScalarType, value: Any, limits: ValueLimits) -> None:
    """Raise ``_Refused`` unless ``value`` is storable as a ``kind`` field (null always is)."""
    if isinstance(value, enum.Enum):  # stored as its value
        value = value.value
    if value is None:
        return
    if kind == "json":
        _check_json(value, limits)
    else:
        _check_scalar(kind, value, limits)


def check_value(kind: ScalarType, value: Any, limits: ValueLimits = DEFAULT_LIMITS) -> str | None:
    """Why ``value`` cannot be stored as a ``kind`` field under ``limits`` (None: it can).

    The reason for a value inside a JSON field starts with its dotted path below the
    field (``"address.city: ..."``).
    """
    try:
        _check(kind, value, limits)
    except _Refused as refused:
        return f"{'.'.join(refused.path)}: {refused}" if refused.path else str(refused)
    return None


def check_row(
    schema: EntitySchema, row: Mapping[str, Any], limits: ValueLimits = DEFAULT_LIMITS, *, entity: str | None = None
) -> None:
    """Raise ``ValidationError`` for the first value of ``row`` that a backend with
    ``limits`` cannot store exactly, naming ``entity`` (default: the schema's name) and
    the dotted field. Columns polystore adds itself (``_ps_*``) are not checked."""
    name = entity or schema.name
    for field_name, value in row.items():
        if field_name.startswith("_ps_"):
            continue
        try:
            kind = schema.field(field_name).type
        except KeyError:
            raise ValidationError(
                f"not a field of the entity (fields: {', '.join(schema.field_names)})", entity=name, field=field_name
            ) from None
        try:
            _check(kind, value, limits)
        except _Refused as refused:
            raise ValidationError(str(refused), entity=name, field=".".join((field_name, *refused.path))) from None
