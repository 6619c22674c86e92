"""Hypothesis strategies drawn from a backend's declared ``ValueLimits``: values just
inside them (which must round-trip exactly), and values just past them (which
``check_row`` must refuse). Edges are drawn often: the limits themselves, -0.0, the
longest Decimal, the deepest JSON, the first and last instants."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Callable
from typing import Any, Final, Literal

from hypothesis import strategies as st

from sharding.core.limits import ValueLimits
from sharding.core.model import ScalarType

__all__ = ["beyond", "characters", "nested", "same", "within"]

Strategy = st.SearchStrategy[Any]

_WIDE_INT = 10**40
"""How far an unbounded int is drawn (its edges are drawn too)."""
_WIDE_DIGITS = 60
_WIDE_EXPONENT = 10**6


_SURROGATES: Final[tuple[Literal["Cs"]]] = ("Cs",)


def characters(*, nul: bool) -> st.SearchStrategy[str]:
    """Any code point but a lone surrogate (no UTF-8 form: refused everywhere), and NUL
    only if ``nul``."""
    return st.characters(exclude_categories=_SURROGATES, exclude_characters="" if nul else "\x00")


def _text(limits: ValueLimits, max_size: int = 24) -> Strategy:
    alphabet = characters(nul=limits.str_nul)
    edges = ["", "\U0010ffff", "\ufeff", "é", "$x.y", "%00"] + (["a\x00b"] if limits.str_nul else [])
    return st.text(alphabet, max_size=max_size) | st.sampled_from(edges)


def _ints(limits: ValueLimits) -> Strategy:
    low = -_WIDE_INT if limits.int_min is None else limits.int_min
    high = _WIDE_INT if limits.int_max is None else limits.int_max
    return st.integers(low, high) | st.sampled_from([low, high, 0, -1, 2**31, 2**63 - 1, -(2**63)]).filter(
        lambda value: low <= value <= high
    )


def _floats(limits: ValueLimits) -> Strategy:
    drawn = st.floats(allow_nan=limits.float_nan, allow_infinity=limits.float_infinity)
    return drawn | st.sampled_from([-0.0, 0.0, 5e-324, -1.7976931348623157e308, 0.1])


def _decimal(sign: int, digits: tuple[int, ...], exponent: int) -> decimal.Decimal:
    return decimal.Decimal((sign, digits, exponent))


def _digits(coefficient: int) -> tuple[int, ...]:
    return tuple(int(digit) for digit in str(coefficient))


def _decimals(limits: ValueLimits) -> Strategy:
    digits = limits.decimal_digits or _WIDE_DIGITS
    low = -_WIDE_EXPONENT if limits.decimal_min_exponent is None else limits.decimal_min_exponent
    high = _WIDE_EXPONENT if limits.decimal_max_exponent is None else limits.decimal_max_exponent
    signs = st.integers(0, 1)
    edges = [(0,), (1,), (1, 0), (1, 1, 0), (9,) * digits]  # the longest: as many nines as allowed
    coefficients = st.integers(0, 10 ** min(digits, 40) - 1).map(_digits) | st.sampled_from(edges)
    exponents = st.integers(max(low, -40), min(high, 40)) | st.integers(low, high) | st.sampled_from([low, high])
    drawn = st.builds(_decimal, signs, coefficients, exponents)
    if limits.decimal_infinity:
        drawn |= st.sampled_from([decimal.Decimal("Infinity"), decimal.Decimal("-Infinity")])
    return drawn


def _datetimes(limits: ValueLimits) -> Strategy:
    low, high = (bound.replace(tzinfo=None) for bound in (limits.datetime_min, limits.datetime_max))
    aware = st.datetimes(low, high, timezones=st.just(dt.UTC))
    return aware | st.datetimes(low, high) | st.sampled_from([limits.datetime_min, limits.datetime_max])


def nested(depth: int, leaf: Any = 1) -> Any:
    """A JSON value ``depth`` containers deep, lists and objects alternating."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def _json(limits: ValueLimits) -> Strategy:
    scalars = (
        st.none() | st.booleans() | _ints(limits) | st.floats(allow_nan=False, allow_infinity=False) | _text(limits)
    )
    tree = st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=3) | st.dictionaries(_text(limits, 8), children, max_size=3),
        max_leaves=12,
    )
    deep = st.integers(1, limits.json_max_depth).map(nested)
    return tree | deep


def within(kind: str, limits: ValueLimits) -> Strategy:
    """Values of a field of storage type ``kind`` that ``limits`` allow (None included)."""
    drawn: dict[str, Callable[[ValueLimits], Strategy]] = {
        "str": _text,
        "int": _ints,
        "float": _floats,
        "bool": lambda _: st.booleans(),
        "bytes": lambda _: st.binary(max_size=40) | st.sampled_from([b"", b"\x00", bytes(range(256))]),
        "datetime": _datetimes,
        "date": lambda limits: (
            st.dates(limits.date_min, limits.date_max) | st.sampled_from([limits.date_min, limits.date_max])
        ),
        "decimal": _decimals,
        "uuid": lambda _: st.uuids(),
        "json": _json,
    }
    return st.none() | drawn[kind](limits)


def beyond(limits: ValueLimits) -> list[tuple[ScalarType, Any]]:
    """(storage type, value) just past each limit that ``limits`` set."""
    cases: list[tuple[ScalarType, Any]] = [("str", "a\ud800"), ("json", {"k": [math.inf]}), ("json", {1: "a"})]
    if limits.int_min is not None:
        cases += [("int", limits.int_min - 1), ("json", [limits.int_min - 1])]
    if limits.int_max is not None:
        cases += [("int", limits.int_max + 1), ("json", {"n": limits.int_max + 1})]
    if not limits.float_nan:
        cases.append(("float", math.nan))
    if not limits.float_infinity:
        cases.append(("float", -math.inf))
    if limits.decimal_digits is not None:
        cases.append(("decimal", _decimal(0, (1,) + (0,) * limits.decimal_digits, 0)))
    if limits.decimal_min_exponent is not None:
        cases.append(("decimal", _decimal(1, (5,), limits.decimal_min_exponent - 1)))
    if limits.decimal_max_exponent is not None:
        cases.append(("decimal", _decimal(0, (5,), limits.decimal_max_exponent + 1)))
    cases += [("decimal", decimal.Decimal("NaN")), ("decimal", decimal.Decimal("sNaN"))]
    if not limits.decimal_infinity:
        cases.append(("decimal", decimal.Decimal("-Infinity")))
    if limits.datetime_min > dt.datetime.min.replace(tzinfo=dt.UTC):
        cases.append(("datetime", limits.datetime_min - dt.timedelta(microseconds=1)))
    if limits.date_min > dt.date.min:
        cases.append(("date", limits.date_min - dt.timedelta(days=1)))
    if not limits.str_nul:
        cases += [("str", "a\x00"), ("json", {"a\x00": 1})]
    if limits.str_max_bytes is not None:
        cases.append(("str", "é" * (limits.str_max_bytes // 2 + 1)))
    if limits.bytes_max_length is not None:
        cases.append(("bytes", bytes(limits.bytes_max_length + 1)))
    cases.append(("json", nested(limits.json_max_depth + 1)))
    return cases


def same(expected: Any, got: Any, path: str = "") -> list[str]:
    """Where ``got`` is not exactly ``expected``: the same type and value, floats with
    their sign and NaN, Decimals with their exponent, datetimes as aware UTC instants
    (a naive one is taken as UTC). Empty if they are the same."""
    where = path or "value"
    if isinstance(expected, dt.datetime):
        instant = expected.replace(tzinfo=dt.UTC) if expected.tzinfo is None else expected.astimezone(dt.UTC)
        aware_utc = isinstance(got, dt.datetime) and got.utcoffset() == dt.timedelta(0)
        return [] if aware_utc and got == instant else [f"{where}: {got!r} is not {instant!r}"]
    if type(expected) is not type(got):
        return [f"{where}: {type(got).__name__} {got!r} is not {type(expected).__name__} {expected!r}"]
    if isinstance(expected, dict):
        if set(expected) != set(got):
            return [f"{where}: keys {sorted(got)!r} are not {sorted(expected)!r}"]
        return [problem for name in expected for problem in same(expected[name], got[name], f"{path}.{name}")]
    if isinstance(expected, list):
        if len(expected) != len(got):
            return [f"{where}: {len(got)} items, not {len(expected)}"]
        return [
            problem for i, (a, b) in enumerate(zip(expected, got, strict=True)) for problem in same(a, b, f"{path}.{i}")
        ]
    if isinstance(expected, float):
        equal = (math.isnan(expected) and math.isnan(got)) or (
            expected == got and math.copysign(1.0, expected) == math.copysign(1.0, got)
        )
        return [] if equal else [f"{where}: {got!r} is not {expected!r}"]
    if isinstance(expected, decimal.Decimal):
        return [] if expected.as_tuple() == got.as_tuple() else [f"{where}: Decimal {got} is not {expected}"]
    return [] if expected == got else [f"{where}: {got!r} is not {expected!r}"]
