"""Findings 3, 4 and 5: values a backend cannot store exactly are refused, by field, before any write.

Before: a datetime before year 1000 or a Decimal past a backend's range was written and
then broke every read (poison rows); NaN became None; an int >= 2**63, a lone surrogate
or deep nesting raised a raw OverflowError, UnicodeEncodeError or ValueError. Now
``check_row`` refuses each with a ``ValidationError`` naming the entity and the dotted
field (``sharding.core.limits`` did not exist before: these tests fail on the old main).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import math
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sharding.core.errors import EntityError, ValidationError
from sharding.core.limits import DEFAULT_LIMITS, ValueLimits, check_row, check_value
from sharding.core.model import Entity, ScalarType, schema_of
from tests.safety.strategies import anything, json_values

UTC = dt.UTC


class Color(enum.Enum):
    RED = "red"


class Thing(Entity, store="things", key="id"):
    id: int
    name: str = ""
    count: int = 0
    ratio: float = 0.0
    flag: bool = False
    blob: bytes = b""
    at: dt.datetime | None = None
    day: dt.date | None = None
    price: decimal.Decimal | None = None
    ref: uuid.UUID | None = None
    color: Color = Color.RED
    doc: dict[str, Any] | None = None


SCHEMA = schema_of(Thing)
KINDS: dict[str, ScalarType] = {spec.name: spec.type for spec in SCHEMA.fields}
WIDE = ValueLimits(
    int_min=None,
    int_max=None,
    float_nan=True,
    float_infinity=True,
    decimal_digits=None,
    decimal_min_exponent=None,
    decimal_max_exponent=None,
    decimal_nan=True,
    decimal_infinity=True,
    datetime_min=dt.datetime.min.replace(tzinfo=UTC),
    datetime_max=dt.datetime.max.replace(tzinfo=UTC),
    date_min=dt.date.min,
    date_max=dt.date.max,
    str_nul=True,
    str_max_bytes=None,
    bytes_max_length=None,
    json_max_depth=1000,
)
"""The widest limits there are: what a store of plain text would declare."""


def refusal(field: str, value: Any, limits: ValueLimits = DEFAULT_LIMITS) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        check_row(SCHEMA, {"id": 1, field: value}, limits, entity="Thing")
    return caught.value


@pytest.mark.parametrize(
    ("field", "value", "path", "words"),
    [
        ("count", 2**63, "count", "integer 9223372036854775808 is outside the storable range"),
        ("count", -(2**63) - 1, "count", "outside the storable range -9223372036854775808 .. 9223372036854775807"),
        ("ratio", float("nan"), "ratio", "float NaN"),
        ("ratio", float("-inf"), "ratio", "float -inf"),
        ("ratio", 2**53 + 1, "ratio", "no exact float form"),
        ("ratio", 10**400, "ratio", "no exact float form"),
        ("price", decimal.Decimal("1e6112"), "price", "the exponent of Decimal('1E+6112'): 6112 is outside"),
        ("price", decimal.Decimal("1e-6177"), "price", "outside the storable range -6176 .. 6111"),
        ("price", decimal.Decimal("1" * 35), "price", "35 significant digits; at most 34"),
        ("price", decimal.Decimal("1.0000000000000000000000000000000000"), "price", "35 significant digits"),
        ("price", decimal.Decimal("NaN"), "price", "Decimal NaN"),
        ("price", decimal.Decimal("-Infinity"), "price", "Decimal -Infinity"),
        ("price", decimal.Decimal("sNaN"), "price", "signaling"),
        ("at", dt.datetime(999, 12, 31, 23, 59, tzinfo=UTC), "at", "outside the storable instants"),
        ("at", dt.datetime(1000, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))), "at", "storable instants"),
        ("at", dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))), "at", "no UTC instant"),
        ("at", dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-2))), "at", "no UTC instant"),
        ("day", dt.date(999, 1, 1), "day", "date 0999-01-01 is outside"),
        ("name", "ok\ud800", "name", "lone surrogate (U+D800 at position 2)"),
        ("name", "a\x00b", "name", "U+0000 (NUL) at position 1"),
        ("name", "x" * (8 * 2**20 + 1), "name", "8388609 UTF-8 bytes long"),
        ("blob", b"x" * (4 * 2**20 + 1), "blob", "4194305 bytes long"),
        ("name", 5, "name", "a str field cannot hold a int"),
        ("day", dt.datetime(2024, 1, 1), "day", "a date field cannot hold a datetime"),
        ("doc", {"a": [{"b": 2**63}]}, "doc.a.0.b", "integer"),
        ("doc", {"a": float("nan")}, "doc.a", "JSON has no nan"),
        ("doc", {"a": ["\udfff"]}, "doc.a.0", "lone surrogate"),
        ("doc", {"a": "\x00"}, "doc.a", "NUL"),
        ("doc", {"a": {"b\x00": 1}}, "doc.a", "JSON key 'b\\x00' contains U+0000"),
        ("doc", {"a": {1: 1}}, "doc.a", "JSON object keys are strings, not int"),
        ("doc", {"a\ud800": 1}, "doc", "JSON key 'a\\ud800' has a lone surrogate"),
        ("doc", {"a": decimal.Decimal(1)}, "doc.a", "not Decimal"),
        ("ghost", 1, "ghost", "not a field of the entity"),
    ],
)
def test_unstorable_values_name_the_entity_and_the_dotted_field(field: str, value: Any, path: str, words: str) -> None:
    error = refusal(field, value)
    assert isinstance(error, EntityError)
    assert (error.entity, error.field) == ("Thing", path)
    assert str(error).startswith(f"Thing.{path}: "), str(error)
    assert words in str(error), str(error)


def test_json_nesting_is_limited_without_recursion() -> None:
    nested: Any = 1
    for _ in range(64):
        nested = [nested]
    check_row(SCHEMA, {"id": 1, "doc": {"a": nested[0]}})  # 64 containers deep: the limit
    assert "deeper than 64" in str(refusal("doc", {"a": nested}))
    deep: Any = {}
    for _ in range(100_000):  # far past Python's recursion limit: still one clear error
        deep = {"k": deep}
    assert refusal("doc", deep).field == "doc." + ".".join(["k"] * 64)  # the 65th object
    loop: list[Any] = []
    loop.append(loop)
    assert "deeper than 64" in str(refusal("doc", {"loop": loop}))


def test_storable_values_pass_and_polystore_columns_are_not_checked() -> None:
    row = {
        "id": 2**63 - 1,
        "name": "naïve ☃ \U0001f600",
        "count": -(2**63),
        "ratio": -0.0,
        "flag": True,
        "blob": b"\x00\xff",
        "at": dt.datetime(1000, 1, 1),  # naive: taken as UTC
        "day": dt.date(9999, 12, 31),
        "price": decimal.Decimal("-1.000000000000000000000000000000000E+6144"),
        "ref": uuid.uuid4(),
        "color": Color.RED,
        "doc": {"a": [1, 2.5, None, True, {"b": "c"}], "": -(2**63), "$x.y": {"%": "\u00e9"}},
        "_ps_token": 2**70,
        "_ps_expires": "anything",
    }
    check_row(SCHEMA, row)
    check_row(SCHEMA, dict.fromkeys(KINDS))
    check_row(SCHEMA, {"at": dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "ratio": 3})


def test_the_entity_defaults_to_the_schema_name() -> None:
    with pytest.raises(ValidationError, match=r"^thing\.count: "):
        check_row(SCHEMA, {"count": 2**64})


def test_a_backend_declares_what_it_stores_beyond_the_defaults() -> None:
    limits = dataclasses.replace(DEFAULT_LIMITS, float_nan=True, float_infinity=True, str_nul=True)
    check_row(SCHEMA, {"ratio": float("nan"), "name": "a\x00b"}, limits)
    check_row(SCHEMA, {"ratio": float("inf")}, limits)
    check_row(SCHEMA, {"price": decimal.Decimal("1e999999999"), "at": dt.datetime(1, 1, 1), "count": 2**200}, WIDE)
    check_row(SCHEMA, {"price": decimal.Decimal("NaN"), "doc": {"a\x00b": "\x00"}}, WIDE)
    narrow = dataclasses.replace(DEFAULT_LIMITS, str_max_bytes=3, int_max=10)
    assert "4 UTF-8 bytes" in str(refusal("name", "ab\u00e9", narrow))
    assert "outside the storable range -9223372036854775808 .. 10" in str(refusal("count", 11, narrow))


def test_never_storable_anywhere() -> None:
    """A lone surrogate, a signaling NaN and a non-finite float inside JSON have no stored form."""
    for field, value in (("name", "\ud800"), ("price", decimal.Decimal("sNaN")), ("doc", [float("inf")])):
        refusal(field, value, WIDE)


def test_check_value_says_why() -> None:
    assert check_value("int", 5) is None
    assert check_value("int", None) is None
    assert check_value("int", 2**63) == (
        "integer 9223372036854775808 is outside the storable range -9223372036854775808 .. 9223372036854775807"
    )
    assert (
        check_value("json", {"a": [None, float("nan")]})
        == "a.1: JSON has no nan: a float inside a JSON value must be finite"
    )
    assert "(any) .. 5" in str(check_value("int", 6, dataclasses.replace(DEFAULT_LIMITS, int_min=None, int_max=5)))


@pytest.mark.parametrize(
    "changes",
    [
        {"int_min": 5, "int_max": 4},
        {"decimal_min_exponent": 1, "decimal_max_exponent": 0},
        {"date_min": dt.date(2000, 1, 1), "date_max": dt.date(1999, 1, 1)},
        {"datetime_min": dt.datetime(1000, 1, 1)},
        {"datetime_max": dt.datetime(2000, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))},
        {"datetime_min": dt.datetime(2001, 1, 1, tzinfo=UTC), "datetime_max": dt.datetime(2000, 1, 1, tzinfo=UTC)},
    ],
)
def test_a_nonsense_declaration_fails_when_made(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="ValueLimits"):
        ValueLimits(**changes)


@given(st.sampled_from(sorted(KINDS)), anything)
def test_any_value_is_accepted_or_refused_by_name(field: str, value: Any) -> None:
    """Whatever the value, the check never raises anything but a ValidationError naming the field."""
    for limits in (DEFAULT_LIMITS, WIDE):
        reason = check_value(KINDS[field], value, limits)
        if reason is None:
            check_row(SCHEMA, {field: value}, limits, entity="Thing")
            continue
        with pytest.raises(ValidationError) as caught:
            check_row(SCHEMA, {field: value}, limits, entity="Thing")
        assert caught.value.field is not None
        assert caught.value.field == field or caught.value.field.startswith(f"{field}.")
        assert str(caught.value).startswith(f"Thing.{caught.value.field}: ")


@given(st.sampled_from(sorted(KINDS)), anything)
def test_the_defaults_are_the_narrowest(field: str, value: Any) -> None:
    """What the conservative defaults accept, every wider declaration accepts too."""
    if check_value(KINDS[field], value) is None:
        assert check_value(KINDS[field], value, WIDE) is None


@given(json_values)
def test_accepted_json_holds_only_storable_numbers(value: Any) -> None:
    if check_value("json", value) is not None:
        return
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            assert all(isinstance(key, str) and "\x00" not in key for key in item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            assert math.isfinite(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            assert -(2**63) <= item < 2**63
        elif isinstance(item, str):
            item.encode("utf-8")
            assert "\x00" not in item
