"""Finding 2 (keys): Decimal keys encode, sort and route exactly, and bad ones are refused by name.

Each test here fails on the old encoding (``"n"`` + the text of ``value.normalize()``):
normalize() rounded to 28 digits (distinct keys collided), kept ``-0`` apart from ``0``,
sorted by text length, and raised a raw ``decimal.Overflow`` for ``1e999999999`` while
encoding NaN and infinities as if they were keys.
"""

from __future__ import annotations

import decimal
from itertools import pairwise

import pytest

from sharding import HashRouter, RangeRouter, encode_key, token
from sharding.core.errors import InvalidKeyError, RoutingError, ToolkitError
from sharding.keys import decode_key, key_from_json

D = decimal.Decimal


def test_distinct_decimals_beyond_28_digits_never_share_a_key() -> None:
    a, b = D("1" * 30), D("1" * 29 + "2")
    assert encode_key(a) != encode_key(b)
    assert token(a) != token(b)
    assert decode_key(encode_key(b)) == b


def test_equal_decimals_are_one_key_including_zero_and_minus_zero() -> None:
    for forms in ((D("0"), D("-0"), D("0E+5"), D("-0.000")), (D("1.5"), D("1.50"), D("15E-1"), D("0.15E+1"))):
        assert len({encode_key(form) for form in forms}) == 1
        assert len({token(form) for form in forms}) == 1


def test_decimal_key_bytes_sort_like_the_numbers() -> None:
    numbers = [
        D(text) for text in ("-1E+300", "-10", "-2", "-1.5", "-1E-300", "0", "1E-300", "0.5", "2", "10", "1E+300")
    ]
    encoded = [encode_key(number) for number in numbers]
    assert encoded == sorted(encoded)
    for low, high in pairwise(encoded):
        assert low < high


@pytest.mark.parametrize(
    "text", ["1e999999999", "-1e999999999", "1e-999999999", "NaN", "sNaN", "Infinity", "-Infinity"]
)
def test_decimals_that_are_not_keys_raise_invalid_key_error(text: str) -> None:
    value = D(text)
    for attempt in (encode_key, token, HashRouter.create({"a": 1, "b": 1}).shard_for):
        with pytest.raises(InvalidKeyError, match="Decimal"):
            attempt(value)
    with pytest.raises(InvalidKeyError, match="Decimal"):
        key_from_json({"$decimal": text})
    with pytest.raises(RoutingError, match="cannot be routed"):  # one line, not a traceback
        RangeRouter([{"shard": "a", "upto": 0}, {"shard": "b"}]).shard_for(value)


def test_the_error_names_the_problem() -> None:
    with pytest.raises(ToolkitError, match=r"Decimal key 1E\+999999999 is out of range"):
        encode_key(D("1e999999999"))
    with pytest.raises(ToolkitError, match="Decimal Infinity is not a key: a key must be a finite number"):
        encode_key(D("Infinity"))
    with pytest.raises(ToolkitError, match="has 35 significant digits: a key has at most 34"):
        encode_key(D("1" * 35))
