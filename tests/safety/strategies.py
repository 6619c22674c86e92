"""Hypothesis strategies for exact values: Decimal keys and the values a row may hold."""

from __future__ import annotations

import datetime as dt
import decimal

from hypothesis import strategies as st

from sharding.core.limits import DECIMAL128_DIGITS, DECIMAL128_MAX_EXPONENT, DECIMAL128_MIN_EXPONENT


def _decimal(sign: int, coefficient: int, exponent: int) -> decimal.Decimal:
    return decimal.Decimal((sign, tuple(int(digit) for digit in str(coefficient)), exponent))


_coefficients = st.integers(0, 10**DECIMAL128_DIGITS - 1) | st.integers(0, 1000) | st.sampled_from([1, 10, 100, 9, 99])

key_decimals = st.one_of(
    # anywhere in the key domain: tiny and huge exponents, 1 to 34 digits
    st.builds(
        _decimal, st.integers(0, 1), _coefficients, st.integers(DECIMAL128_MIN_EXPONENT, DECIMAL128_MAX_EXPONENT)
    ),
    # near one another, where collisions and order mistakes would show: 1.5, 1.50, 15E-1...
    st.builds(_decimal, st.integers(0, 1), _coefficients, st.integers(-40, 40)),
)
"""Decimals that are keys (IEEE 754 decimal128 holds them exactly), with every exponent form."""

bad_key_decimals = st.one_of(
    st.sampled_from([decimal.Decimal(text) for text in ("NaN", "-NaN", "sNaN", "Infinity", "-Infinity")]),
    st.builds(_decimal, st.integers(0, 1), st.integers(1, 9), st.integers(DECIMAL128_MAX_EXPONENT + 34, 10**9)),
    st.builds(_decimal, st.integers(0, 1), st.integers(1, 9), st.integers(-(10**9), DECIMAL128_MIN_EXPONENT - 1)),
    st.builds(
        _decimal,
        st.integers(0, 1),
        st.integers(10**DECIMAL128_DIGITS + 1, 10**60).filter(lambda c: c % 10),
        st.integers(-50, 50),
    ),
)
"""Decimals that are not keys: not finite, or beyond decimal128."""

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=16,
)
"""JSON-shaped values, out-of-range numbers and non-finite floats included."""

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.binary(),
    st.decimals(),
    st.dates(),
    st.datetimes(),
    st.datetimes(timezones=st.timezones()),
    st.uuids(),
    json_values,
    st.just(dt.timedelta(seconds=1)),
)
"""Any value at all, to check that the limits never raise anything but ValidationError."""
