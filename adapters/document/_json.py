"""JSON values inside documents: keys escaped and inner arrays wrapped, reversibly.

MongoDB-wire servers reject ``$``-prefixed and dotted field names and BSON forbids NUL
in names, yet any JSON key must round-trip: ``%`` -> ``%25``, ``.`` -> ``%2E``, ``$`` ->
``%24``, NUL -> ``%00``, and the empty key becomes ``%``. FerretDB also rejects arrays
directly inside arrays, so an inner array is stored as ``{"%[": [...]}`` (a key no
escaped name can equal). FerretDB drops the sign of a double zero, so ``-0.0`` is stored
as a 64-bit integer zero, which pymongo never writes for an int (it reads back as
``-0.0``; every other 64-bit integer reads back as a plain ``int``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final, TypeAlias

from bson.int64 import Int64

__all__ = ["ARRAY_WRAPPER", "Doc", "decode_json", "encode_json", "escape_key", "jsonable", "unescape_key"]

Doc: TypeAlias = dict[str, Any]
"""A document as pymongo reads and writes it (also a filter or an update)."""

ARRAY_WRAPPER: Final = "%["
"""The one key of the document that stands for an array inside an array."""
_EMPTY_KEY: Final = "%"
_ESCAPES: Final = {"%": "%25", ".": "%2E", "$": "%24", "\x00": "%00"}
_UNESCAPE: Final = re.compile(r"%([0-9A-F]{2})")


def escape_key(key: str) -> str:
    """A JSON object key as a field name every MongoDB-wire server accepts (reversible)."""
    if not key:
        return _EMPTY_KEY
    if not any(char in key for char in _ESCAPES):
        return key
    return "".join(_ESCAPES.get(char, char) for char in key)


def unescape_key(name: str) -> str:
    """The inverse of ``escape_key``."""
    if name == _EMPTY_KEY:
        return ""
    if "%" not in name:
        return name
    return _UNESCAPE.sub(lambda match: chr(int(match.group(1), 16)), name)


def jsonable(value: Any) -> Any:
    """A pydantic model inside a json value as its JSON form; anything else unchanged."""
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value


def encode_json(value: Any) -> Any:
    """A JSON value as stored: keys escaped, arrays inside arrays wrapped."""
    if isinstance(value, Mapping):
        return {escape_key(str(key)): encode_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encode_element(item) for item in value]
    if isinstance(value, float) and value == 0.0 and math.copysign(1.0, value) < 0:
        return Int64(0)
    return jsonable(value) if not isinstance(value, str | int | float | bool | None) else value


def _encode_element(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return {ARRAY_WRAPPER: [_encode_element(item) for item in value]}
    return encode_json(value)


def decode_json(value: Any) -> Any:
    """The inverse of ``encode_json``."""
    if isinstance(value, dict):
        if len(value) == 1 and ARRAY_WRAPPER in value:
            return [decode_json(item) for item in value[ARRAY_WRAPPER]]
        return {unescape_key(key): decode_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_json(item) for item in value]
    if type(value) is Int64:
        return int(value) if value else -0.0
    return value
