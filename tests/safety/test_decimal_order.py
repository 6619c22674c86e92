"""sharding.keys' public Decimal helpers, which the adapters store numbers with:
``decimal_order_bytes`` sorts like the numbers for any finite Decimal (not only keys) and
is a Decimal key's encoding; ``canonical_decimal`` is exact where ``normalize`` rounds."""

from __future__ import annotations

import decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharding.core.errors import InvalidKeyError
from sharding.keys import canonical_decimal, decimal_from_order_bytes, decimal_order_bytes, encode_key
from tests.safety.order import assert_sorts_like_values_and_prefix_free
from tests.safety.strategies import key_decimals

_finite = st.decimals(allow_nan=False, allow_infinity=False) | key_decimals
_long = st.builds(
    lambda sign, coefficient, exponent: decimal.Decimal(f"{'-' if sign else ''}{coefficient}E{exponent}"),
    st.booleans(),
    st.integers(0, 10**80),
    st.integers(-100, 100),
)


@settings(max_examples=400)
@given(_finite | _long, _finite | _long)
def test_order_bytes_sort_like_the_numbers_and_are_prefix_free(a: decimal.Decimal, b: decimal.Decimal) -> None:
    ea, eb = decimal_order_bytes(a), decimal_order_bytes(b)
    assert_sorts_like_values_and_prefix_free(a, b, ea, eb)
    assert decimal_from_order_bytes(ea) == a


@given(key_decimals)
def test_a_decimal_key_is_its_order_bytes_after_the_tag(value: decimal.Decimal) -> None:
    assert encode_key(value) == b"N" + decimal_order_bytes(value)


@given(_finite | _long)
def test_the_canonical_form_is_the_same_number_without_trailing_zeros(value: decimal.Decimal) -> None:
    canonical = canonical_decimal(value)
    assert canonical == value
    _, digits, _ = canonical.as_tuple()
    assert digits == (0,) or digits[-1] != 0
    assert canonical_decimal(canonical).as_tuple() == canonical.as_tuple()
    assert decimal_order_bytes(canonical) == decimal_order_bytes(value)


def test_the_canonical_form_never_rounds_and_zero_has_no_sign() -> None:
    """Regression: ``Decimal.normalize`` (which the graph adapter keyed by) rounds to 28
    digits, so two 34-digit keys collided; and it kept ``-0`` apart from ``0``."""
    a, b = decimal.Decimal("1" * 33 + "2"), decimal.Decimal("1" * 33 + "3")
    assert a.normalize() == b.normalize()  # the old key form: one key for two numbers
    assert canonical_decimal(a) != canonical_decimal(b)
    assert canonical_decimal(decimal.Decimal("-0.00")).as_tuple() == decimal.Decimal(0).as_tuple()
    assert canonical_decimal(decimal.Decimal("1.500E+3")).as_tuple() == decimal.Decimal("15E+2").as_tuple()


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1E+2147483648", "-1E-2147483649"])
def test_what_has_no_order_bytes_is_an_invalid_key(value: str) -> None:
    with pytest.raises(InvalidKeyError):
        decimal_order_bytes(decimal.Decimal(value))
