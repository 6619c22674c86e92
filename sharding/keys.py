"""Typed key encoding and 64-bit tokens.

Why explicit bytes: routing must never depend on ``str(key)`` or Python's ``hash``.
Every key is encoded with a one-byte type tag, so ``1``, ``"1"``, ``b"1"`` and
``True`` are four different keys with four different tokens, on every machine and in
every process. Composite keys (tuples) are length-prefixed so ``("ab", "c")`` and
``("a", "bc")`` never collide.

Decimal keys are encoded by value, in numeric byte order. ``Decimal("1.0")`` and
``Decimal("1.00")`` (and ``0`` and ``-0``) compare and hash equal in Python, so they are
one key, with one canonical form: trailing zeros dropped (the exponent of a Decimal
*value* is kept exactly by the stores; a *key* is its number). The bytes are the sign
class, the exponent of the leading digit, and the digits, inverted for negative numbers,
so that comparing two Decimal keys' bytes compares the numbers. A Decimal key must be a
number that IEEE 754 decimal128 holds exactly (at most 34 significant digits, from
``1E-6176`` to ``9.99...E+6144``), which every backend stores; NaN, infinities and
anything beyond raise ``InvalidKeyError``.

Tokens are signed 64-bit integers (the first half of MurmurHash3 x64/128), the same
domain Cassandra's Murmur3Partitioner uses, so they fit a BIGINT column in every SQL
database and can be compared and range-scanned there.
"""

from __future__ import annotations

import datetime as _dt
import decimal as _decimal
import math
import uuid as _uuid
from typing import Final, TypeAlias

import mmh3

from sharding.core.errors import InvalidKeyError
from sharding.core.limits import DECIMAL128_DIGITS, DECIMAL128_MAX_EXPONENT, DECIMAL128_MIN_EXPONENT

__all__ = [
    "MAX_TOKEN",
    "MIN_TOKEN",
    "KeyValue",
    "canonical_decimal",
    "check_decimal_key",
    "decimal_from_order_bytes",
    "decimal_order_bytes",
    "decode_key",
    "encode_key",
    "key_from_json",
    "key_to_json",
    "token",
    "token_of_bytes",
]

#: The Python values a key (or shard key) may have.
KeyValue: TypeAlias = (
    "str | int | bytes | _uuid.UUID | _dt.date | _dt.datetime | _decimal.Decimal | tuple[KeyValue, ...]"
)

MIN_TOKEN: Final = -(2**63)
"""The smallest token (inclusive)."""
MAX_TOKEN: Final = 2**63 - 1
"""The largest token (inclusive)."""


def _utf8(value: str) -> bytes:
    # A str with lone surrogates has no UTF-8 form: that is a bad key, not a crash.
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidKeyError(f"key {value!r} is not valid Unicode text: {exc.reason}") from exc


_DECIMAL_MAX_ADJUSTED: Final = DECIMAL128_MAX_EXPONENT + DECIMAL128_DIGITS - 1
"""The largest exponent of a Decimal key's leading digit (``9.99...E+6144``)."""
_EXPONENT_BIAS: Final = 2**31
"""Added to a leading digit's exponent to store it as 4 unsigned bytes that sort like it."""
_NEGATIVE, _ZERO, _POSITIVE = b"\x01", b"\x02", b"\x03"
"""A Decimal key's sign class (after its tag ``N``), in numeric order."""
_INVERTED: Final = bytes(0xFF - byte for byte in range(256))
"""A ``bytes.translate`` table that inverts every byte (its own inverse): a negative
key's digits are stored inverted, so that a larger magnitude sorts first."""


def _shown(value: _decimal.Decimal) -> str:
    text = str(value)
    return text if len(text) <= 60 else f"{text[:40]}...({len(text)} characters)"


def _decimal_number(value: _decimal.Decimal) -> tuple[int, bytes, int]:
    """(sign, digits without trailing zeros, exponent of the leading digit) of a finite
    Decimal, exactly (no rounding); ``b""`` digits (and sign 0) for any zero."""
    if not value.is_finite():
        raise InvalidKeyError(f"Decimal {value} is not a key: a key must be a finite number")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    text = bytes(0x30 + digit for digit in digits).rstrip(b"0")
    if not text:
        return 0, b"", 0
    exponent += len(digits) - len(text)
    return sign, text, exponent + len(text) - 1


def _decimal_parts(value: _decimal.Decimal) -> tuple[int, bytes, int]:
    """``_decimal_number`` of a Decimal key; InvalidKeyError outside the key domain."""
    sign, text, leading = _decimal_number(value)
    if not text:
        return sign, text, leading
    exponent = leading - len(text) + 1
    if len(text) > DECIMAL128_DIGITS:
        raise InvalidKeyError(
            f"Decimal key {_shown(value)} has {len(text)} significant digits: a key has at most {DECIMAL128_DIGITS}"
        )
    if exponent < DECIMAL128_MIN_EXPONENT or leading > _DECIMAL_MAX_ADJUSTED:
        raise InvalidKeyError(
            f"Decimal key {_shown(value)} is out of range: a key lies between "
            f"1E{DECIMAL128_MIN_EXPONENT} and 1E+{_DECIMAL_MAX_ADJUSTED + 1} in magnitude (decimal128)"
        )
    return sign, text, leading


def check_decimal_key(value: _decimal.Decimal) -> None:
    """Raise InvalidKeyError unless ``value`` is a Decimal key (see the module docstring)."""
    _decimal_parts(value)


def canonical_decimal(value: _decimal.Decimal) -> _decimal.Decimal:
    """The one form of a finite Decimal's number: trailing zeros dropped, every zero ``0``.

    ``Decimal("1.50")``, ``Decimal("1.5")`` and ``Decimal("15E-1")`` are one key; this is
    its form, what a store that looks keys up by equality keeps in its key column. Exact,
    unlike ``Decimal.normalize``, which rounds to the context's precision (28 digits) and
    keeps the sign of zero. Raises InvalidKeyError for NaN and infinities.
    """
    sign, text, leading = _decimal_number(value)
    if not text:
        return _decimal.Decimal(0)
    return _decimal.Decimal((sign, tuple(byte - 0x30 for byte in text), leading - len(text) + 1))


def _sortable(sign: int, text: bytes, leading: int) -> bytes:
    if not text:
        return _ZERO
    if sign == 0:
        return _POSITIVE + (leading + _EXPONENT_BIAS).to_bytes(4, "big") + text + b"\x00"
    return _NEGATIVE + (_EXPONENT_BIAS - 1 - leading).to_bytes(4, "big") + text.translate(_INVERTED) + b"\xff"


def decimal_order_bytes(value: _decimal.Decimal) -> bytes:
    """Bytes of a finite Decimal's number that sort like the numbers and are prefix-free:
    what ``encode_key`` writes after a Decimal key's tag ``N``, for any finite Decimal.

    For the stores that keep numbers in their order as bytes or text (an ordered index, a
    sortable string): one encoding, here, rather than one per adapter. Unlike a key it
    may have any number of digits (a filter's bound may be ``Decimal(0.1)``), but the
    exponent of its leading digit must fit 4 bytes (``|exponent| < 2**31``); NaN,
    infinities and anything beyond raise InvalidKeyError. Equal numbers (``1.5``,
    ``1.50``) have equal bytes.
    """
    sign, text, leading = _decimal_number(value)
    if text and not -_EXPONENT_BIAS <= leading < _EXPONENT_BIAS:
        raise InvalidKeyError(f"Decimal {_shown(value)} is out of range for an ordered encoding")
    return _sortable(sign, text, leading)


def _decimal_bytes(value: _decimal.Decimal) -> bytes:
    """The order-preserving, self-delimiting encoding of a Decimal key (after its tag)."""
    return _sortable(*_decimal_parts(value))


def _decode_decimal(encoded: bytes, offset: int) -> tuple[_decimal.Decimal, int]:
    """The Decimal whose ``_decimal_bytes`` start at ``offset`` (after the tag), and the end."""
    sign_class = encoded[offset : offset + 1]
    if sign_class == _ZERO:
        return _decimal.Decimal(0), offset + 1
    if sign_class not in (_NEGATIVE, _POSITIVE):
        raise _fail(encoded, offset, "a Decimal's sign class must be 1, 2 or 3")
    negative = sign_class == _NEGATIVE
    if offset + 5 > len(encoded):
        raise _fail(encoded, offset, "truncated Decimal exponent")
    biased = int.from_bytes(encoded[offset + 1 : offset + 5], "big")
    leading = _EXPONENT_BIAS - 1 - biased if negative else biased - _EXPONENT_BIAS
    end = encoded.find(b"\xff" if negative else b"\x00", offset + 5)
    if end < 0:
        raise _fail(encoded, offset, "truncated Decimal digits (no terminator)")
    raw = encoded[offset + 5 : end]
    text = raw.translate(_INVERTED) if negative else raw
    if not text or not text.isdigit() or not text.isascii():
        raise _fail(encoded, offset + 5, "a Decimal's digits must be one or more of 0-9")
    digits = tuple(byte - 0x30 for byte in text)
    return _decimal.Decimal((int(negative), digits, leading - len(digits) + 1)), end + 1


def decimal_from_order_bytes(encoded: bytes) -> _decimal.Decimal:
    """The number whose ``decimal_order_bytes`` are ``encoded`` (in its canonical form)."""
    value, end = _decode_decimal(encoded, 0)
    if end != len(encoded):
        raise _fail(encoded, end, f"{len(encoded) - end} trailing bytes")
    return value


def _encode_into(value: object, out: bytearray) -> None:
    # bool first: it is a subclass of int but a different key.
    if isinstance(value, bool):
        out += b"?1" if value else b"?0"
    elif isinstance(value, str):
        raw = _utf8(value)
        out += b"s" + len(raw).to_bytes(4, "big") + raw
    elif isinstance(value, int):
        # int(): an int-valued enum member is its value (str() would give "Tier.GOLD"),
        # as in the stored row, whose token is computed from the value.
        text = str(int(value)).encode("ascii")
        out += b"i" + len(text).to_bytes(4, "big") + text
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        out += b"b" + len(raw).to_bytes(4, "big") + raw
    elif isinstance(value, _uuid.UUID):
        out += b"u" + value.bytes
    elif isinstance(value, _dt.datetime):
        # An instant, not a wall-clock reading: adapters store datetimes as UTC and
        # return them aware, so the key must hash the same before and after a round
        # trip. Naive datetimes are taken as UTC.
        utc = value.replace(tzinfo=_dt.UTC) if value.tzinfo is None else value.astimezone(_dt.UTC)
        text = utc.isoformat().encode("ascii")
        out += b"T" + len(text).to_bytes(4, "big") + text
    elif isinstance(value, _dt.date):
        text = value.isoformat().encode("ascii")
        out += b"d" + len(text).to_bytes(4, "big") + text
    elif isinstance(value, _decimal.Decimal):
        out += b"N" + _decimal_bytes(value)
    elif isinstance(value, tuple):
        out += b"t" + len(value).to_bytes(4, "big")
        for part in value:
            _encode_into(part, out)
    else:
        raise InvalidKeyError(
            f"a key must be str, int, bytes, UUID, date, datetime, Decimal or a tuple of them, "
            f"not {type(value).__name__}"
        )


def encode_key(value: object) -> bytes:
    """Return the canonical, type-tagged byte encoding of a key.

    The single-``str`` case is the hot path of every lookup, so it skips the buffer.
    """
    if type(value) is str:
        raw = _utf8(value)
        return b"s" + len(raw).to_bytes(4, "big") + raw
    if type(value) is int:  # the other common key type
        text = str(value).encode("ascii")
        return b"i" + len(text).to_bytes(4, "big") + text
    out = bytearray()
    _encode_into(value, out)
    return bytes(out)


def token_of_bytes(encoded: bytes) -> int:
    """The signed 64-bit token of an already encoded key."""
    return mmh3.hash64(encoded, 0, True, True)[0]  # (key, seed, x64arch, signed)


_INT_HEADS: Final = tuple(b"i" + size.to_bytes(4, "big") for size in range(21))
"""``b"i"`` + the 4-byte length, for the decimal text of every int up to 20 characters
(all of int64): the header of an int key without building it per call."""


def token(value: object) -> int:
    """The signed 64-bit token of a key: ``MIN_TOKEN <= token <= MAX_TOKEN``.

    Every write computes one per row; an int key (the most common) skips ``encode_key``'s
    dispatch and length encoding, producing the very same bytes.
    """
    if type(value) is int:
        text = b"%d" % value
        if len(text) <= 20:
            return mmh3.hash64(_INT_HEADS[len(text)] + text, 0, True, True)[0]
    return mmh3.hash64(encode_key(value), 0, True, True)[0]


_LENGTH_TAGS: Final = frozenset(b"sibTd")


def _fail(encoded: bytes, offset: int, why: str) -> InvalidKeyError:
    return InvalidKeyError(f"malformed encoded key {encoded[:64]!r}: {why} at offset {offset}")


def _decode_at(encoded: bytes, offset: int) -> tuple[KeyValue, int]:
    """Decode one value starting at ``offset``; return it and the offset after it."""
    if offset >= len(encoded):
        raise _fail(encoded, offset, "truncated (expected a type tag)")
    tag = encoded[offset]
    offset += 1
    if tag == ord("?"):
        flag = encoded[offset : offset + 1]
        if flag not in (b"0", b"1"):
            raise _fail(encoded, offset, "a bool must be '?0' or '?1'")
        return flag == b"1", offset + 1
    if tag == ord("u"):
        raw = encoded[offset : offset + 16]
        if len(raw) != 16:
            raise _fail(encoded, offset, "truncated UUID (needs 16 bytes)")
        return _uuid.UUID(bytes=raw), offset + 16
    if tag == ord("N"):
        return _decode_decimal(encoded, offset)
    if tag == ord("n"):
        raise _fail(
            encoded, offset - 1, "tag 'n' is the retired Decimal encoding (not in numeric order); re-encode the key"
        )
    if tag == ord("t"):
        if offset + 4 > len(encoded):
            raise _fail(encoded, offset, "truncated tuple length")
        count = int.from_bytes(encoded[offset : offset + 4], "big")
        offset += 4
        parts: list[KeyValue] = []
        for _ in range(count):
            part, offset = _decode_at(encoded, offset)
            parts.append(part)
        return tuple(parts), offset
    if tag not in _LENGTH_TAGS:
        raise _fail(encoded, offset - 1, f"unknown type tag {bytes([tag])!r}")
    if offset + 4 > len(encoded):
        raise _fail(encoded, offset, "truncated length")
    size = int.from_bytes(encoded[offset : offset + 4], "big")
    offset += 4
    raw = encoded[offset : offset + size]
    if len(raw) != size:
        raise _fail(encoded, offset, f"truncated payload (needs {size} bytes, has {len(raw)})")
    end = offset + size
    if tag == ord("b"):
        return raw, end
    try:
        if tag == ord("s"):
            return raw.decode("utf-8"), end
        text = raw.decode("ascii")
        if tag == ord("i"):
            return int(text), end
        if tag == ord("T"):
            return _dt.datetime.fromisoformat(text), end
        return _dt.date.fromisoformat(text), end  # tag "d"
    except (ValueError, ArithmeticError) as exc:  # UnicodeDecodeError is a ValueError
        raise _fail(encoded, offset, f"bad {bytes([tag]).decode()!r} payload ({exc})") from exc


def decode_key(encoded: bytes) -> KeyValue:
    """The key whose ``encode_key`` is ``encoded``: its exact inverse.

    The rebalancer and the directory router keep keys as their encoded bytes (that is
    what the catalog stores and what is hashed); they decode them to name the keys that
    move and to query the stores. Only canonical encodings are accepted: anything that
    ``encode_key`` would not have produced (trailing bytes, ``i`` with leading zeros, a
    decimal with trailing zeros...) raises InvalidKeyError, so that one key never has two byte
    forms in the catalog.
    """
    if not isinstance(encoded, (bytes, bytearray, memoryview)):
        raise InvalidKeyError(f"an encoded key must be bytes, not {type(encoded).__name__}")
    data = bytes(encoded)
    value, offset = _decode_at(data, 0)
    if offset != len(data):
        raise _fail(data, offset, f"{len(data) - offset} trailing bytes")
    try:
        canonical = encode_key(value)
    except (InvalidKeyError, ValueError, ArithmeticError) as exc:
        raise _fail(data, 0, f"decodes to a value that cannot be re-encoded ({exc})") from exc
    if canonical != data:
        raise _fail(data, 0, f"not the canonical encoding of {value!r}")
    return value


_JSON_TAGS: Final = ("$bytes", "$uuid", "$date", "$datetime", "$decimal")


def key_to_json(value: object) -> object:
    """A key as a JSON value, for specs, plans and journals that people read.

    ``str``, ``int`` and ``bool`` stay themselves, tuples become lists, and the types
    JSON lacks become one-entry tagged objects: ``{"$bytes": hex}``, ``{"$uuid": ...}``,
    ``{"$date": iso}``, ``{"$datetime": iso}``, ``{"$decimal": text}``.
    ``key_from_json`` is the inverse.
    """
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, _uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, _dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, _dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, _decimal.Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, tuple):
        return [key_to_json(part) for part in value]
    raise InvalidKeyError(f"{value!r} is not a key ({type(value).__name__})")


def key_from_json(value: object) -> KeyValue:
    """A key from ``key_to_json`` output, or from a TOML value written by a person.

    Besides the JSON forms it accepts native key values unchanged (TOML has dates and
    datetimes) and turns lists into tuples. A TOML float becomes the Decimal of its
    shortest repr (``12.5`` -> ``Decimal("12.5")``): floats are not keys, but a split
    point written as a float means that decimal number. A Decimal outside the key
    domain (NaN, ``1e999999999``) raises InvalidKeyError here, not when first routed.
    """
    if isinstance(value, _decimal.Decimal):
        check_decimal_key(value)
        return value
    if isinstance(value, (bool, int, str, bytes, _uuid.UUID, _dt.date)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidKeyError(f"{value!r} is not a key (not a finite number)")
        return _decimal.Decimal(repr(value))
    if isinstance(value, (list, tuple)):
        return tuple(key_from_json(part) for part in value)
    if isinstance(value, dict) and len(value) == 1:
        ((tag, text),) = value.items()
        if tag in _JSON_TAGS and isinstance(text, str):
            try:
                if tag == "$bytes":
                    return bytes.fromhex(text)
                if tag == "$uuid":
                    return _uuid.UUID(text)
                if tag == "$datetime":
                    return _dt.datetime.fromisoformat(text)
                if tag == "$date":
                    return _dt.date.fromisoformat(text)
                return key_from_json(_decimal.Decimal(text))
            except (ValueError, ArithmeticError) as exc:
                raise InvalidKeyError(f"{value!r} is not a valid {tag[1:]} key: {exc}") from exc
    raise InvalidKeyError(
        f"{value!r} is not a key: expected str, int, a date, a list, or one of "
        f"{{{', '.join(repr(tag) + ': ...' for tag in _JSON_TAGS)}}}"
    )
