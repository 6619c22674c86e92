"""Typed key encoding: decode_key inverts encode_key, and typed keys never collide."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sharding import decode_key, encode_key, token
from sharding.keys import check_decimal_key, key_from_json, key_to_json, token_of_bytes
from tests.safety.strategies import bad_key_decimals, key_decimals
from tests.sharding.strategies import keys
from toolkit.errors import InvalidKeyError


@given(keys)
def test_decode_inverts_encode(key: object) -> None:
    encoded = encode_key(key)
    decoded = decode_key(encoded)
    assert decoded == key
    # == lets (True,) equal (1,); the bytes also pin the types.
    assert encode_key(decoded) == encoded


@given(st.binary(max_size=40))
def test_decode_accepts_only_canonical_bytes(data: bytes) -> None:
    """Random bytes either decode to the key that encodes back to them, or raise InvalidKeyError."""
    try:
        key = decode_key(data)
    except InvalidKeyError:
        return
    assert encode_key(key) == data


@given(keys, st.data())
def test_decode_rejects_truncated_and_extended_encodings(key: object, data: st.DataObject) -> None:
    encoded = encode_key(key)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(InvalidKeyError):
        decode_key(encoded[:cut])
    with pytest.raises(InvalidKeyError, match="trailing"):
        decode_key(encoded + b"x")


@pytest.mark.parametrize(
    ("encoded", "why"),
    [
        (b"", "truncated"),
        (b"x", "unknown type tag"),
        (b"?2", "bool"),
        (b"s\x00\x00\x00\x05ab", "truncated payload"),
        (b"s\x00\x00", "truncated length"),
        (b"s\x00\x00\x00\x01\xff", "bad 's' payload"),
        (b"i\x00\x00\x00\x03007", "not the canonical encoding"),
        (b"i\x00\x00\x00\x02-0", "not the canonical encoding"),
        (b"i\x00\x00\x00\x02xy", "bad 'i' payload"),
        (b"N\x03\x80\x00\x00\x0010\x00", "not the canonical encoding"),  # 1.0: a trailing zero
        (b"N\x03\x80\x00\x00\x0001\x00", "not the canonical encoding"),  # a leading zero
        (b"N\x01\x7f\xff\xff\xff\x00\xff", "digits must be"),
        (b"N\x03\x80\x00\x00\x00\x00", "digits must be"),
        (b"N\x03\x80\x00", "truncated Decimal exponent"),
        (b"N\x03\x80\x00\x00\x001", "no terminator"),
        (b"N\x04", "sign class"),
        (b"N\x03\xff\xff\xff\xff1\x00", "cannot be re-encoded"),  # 1E+2147483647
        (b"n\x00\x00\x00\x031.0", "retired Decimal encoding"),
        (b"d\x00\x00\x00\x0a2024-13-01", "bad 'd' payload"),
        (b"u\x00\x01", "truncated UUID"),
        (b"t\x00\x00\x00\x02s\x00\x00\x00\x00", "truncated"),
    ],
)
def test_malformed_encodings_raise_invalid_key_error(encoded: bytes, why: str) -> None:
    with pytest.raises(InvalidKeyError, match="malformed encoded key") as info:
        decode_key(encoded)
    assert why in str(info.value)


def test_decode_rejects_non_bytes() -> None:
    with pytest.raises(InvalidKeyError, match="must be bytes"):
        decode_key("s\x00\x00\x00\x01a")  # type: ignore[arg-type]


def test_typed_keys_get_independent_tokens() -> None:
    variants = [1, "1", b"1", True, decimal.Decimal(1), (1,), ("1",)]
    assert len({encode_key(key) for key in variants}) == len(variants)
    assert len({token(key) for key in variants}) == len(variants)
    assert token(0) != token(False)


@given(st.integers() | st.sampled_from([0, -1, 2**63 - 1, -(2**63), 10**19, -(10**19), 10**20, -(10**20)]))
def test_int_tokens_hash_the_encoded_key(key: int) -> None:
    """``token`` builds int keys' bytes itself (the write hot path): the very same bytes."""
    assert token(key) == token_of_bytes(encode_key(key))


def test_encoding_and_tokens_are_stable() -> None:
    """Golden values: tokens are stored beside every row, so they must never change."""
    assert encode_key("a") == b"s\x00\x00\x00\x01a"
    assert encode_key(1) == b"i\x00\x00\x00\x011"
    assert encode_key(True) == b"?1"
    assert encode_key(("a", 1)) == b"t\x00\x00\x00\x02s\x00\x00\x00\x01ai\x00\x00\x00\x011"
    assert token("a") == 4795981557499400508
    assert token(1) == -748288016905500110
    assert token(True) == -2196701642594402822
    assert token(b"1") == 3459045226682745226
    assert token("1") == -6780141028172513292
    assert token(dt.date(2024, 1, 2)) == -3452804545530001643
    assert (
        token(decimal.Decimal("1.50")) == -2664674931229125498
    )  # the numeric-order encoding (was 4526766194710699751)
    assert token(uuid.UUID(int=1)) == -5668089496535960589


def test_unencodable_keys_raise_invalid_key_error() -> None:
    with pytest.raises(InvalidKeyError, match="not valid Unicode"):
        encode_key("\ud800")
    with pytest.raises(InvalidKeyError, match="float"):
        encode_key(1.5)
    with pytest.raises(InvalidKeyError, match="list"):
        encode_key([1])


@given(keys)
def test_json_form_round_trips(key: object) -> None:
    assert key_from_json(json.loads(json.dumps(key_to_json(key)))) == key


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ({"$date": "2024-99-01"}, "2024-99-01"),
        ({"$nope": "x"}, "$nope"),
        (float("inf"), "inf"),
        (None, "None"),
        ({"$bytes": "zz"}, "zz"),
    ],
)
def test_bad_json_keys_name_the_value(value: object, shown: str) -> None:
    with pytest.raises(InvalidKeyError, match="is not"):
        key_from_json(value)
    with pytest.raises(InvalidKeyError) as info:
        key_from_json(value)
    assert shown in str(info.value)


def test_floats_in_config_mean_decimals() -> None:
    assert key_from_json(12.5) == decimal.Decimal("12.5")
    assert key_from_json([2024, "eu"]) == (2024, "eu")


def test_datetime_keys_are_instants() -> None:
    """Adapters return datetimes aware in UTC; the key must hash the same before and after."""
    naive = dt.datetime(2024, 5, 1, 12, 0)
    utc = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    plus_two = dt.datetime(2024, 5, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert encode_key(naive) == encode_key(utc) == encode_key(plus_two)
    assert token(naive) == token(plus_two)
    assert decode_key(encode_key(naive)) == utc


# -- Decimal keys: exact, canonical, in numeric byte order -------------------------------------


@given(key_decimals)
def test_decimal_keys_round_trip(key: decimal.Decimal) -> None:
    encoded = encode_key(key)
    decoded = decode_key(encoded)
    assert isinstance(decoded, decimal.Decimal)
    assert decoded == key
    assert encode_key(decoded) == encoded
    assert decode_key(encode_key((key, "x"))) == (key, "x")


@given(key_decimals, key_decimals)
def test_decimal_key_bytes_are_in_numeric_order_and_never_collide(a: decimal.Decimal, b: decimal.Decimal) -> None:
    """Equal numbers (``1.5`` and ``1.50``) are one key; different numbers never share bytes,
    and comparing the bytes compares the numbers, also as the first part of a tuple."""
    assert (encode_key(a) == encode_key(b)) == (a == b)
    assert (encode_key(a) < encode_key(b)) == (a < b)
    assert (encode_key((a, 1)) < encode_key((b, 0))) == (a < b)


@given(key_decimals, st.integers(1, 40))
def test_every_exponent_form_of_a_decimal_key_is_one_key(key: decimal.Decimal, zeros: int) -> None:
    sign, digits, exponent = key.as_tuple()
    assert isinstance(exponent, int)
    padded = decimal.Decimal((sign, (*digits, *(0,) * zeros), exponent - zeros))  # 1.5 -> 1.50...0
    assert padded == key
    assert encode_key(padded) == encode_key(key)
    assert token(padded) == token(key)


@given(bad_key_decimals)
def test_decimals_that_are_not_keys_raise_invalid_key_error(key: decimal.Decimal) -> None:
    for attempt in (encode_key, token, check_decimal_key, key_from_json, lambda k: key_from_json({"$decimal": str(k)})):
        with pytest.raises(InvalidKeyError, match="Decimal") as info:
            attempt(key)
        assert "not a key" in str(info.value) or "at most 34" in str(info.value) or "out of range" in str(info.value)


class Level(int, enum.Enum):
    LOW = 1


class Tag(str, enum.Enum):  # noqa: UP042 (the mixin form users write)
    RED = "red"


def test_enum_keys_are_their_values() -> None:
    """A row stores an enum as its value and its token is computed from that value, so a
    lookup by the member must encode the same; an ``(int, Enum)`` once encoded as ``Level.LOW``."""
    assert encode_key(Level.LOW) == encode_key(1)
    assert token(Level.LOW) == token(1)
    assert encode_key(Tag.RED) == encode_key("red")
    assert encode_key((Level.LOW, Tag.RED)) == encode_key((1, "red"))
