"""The document adapter: pymongo over MongoDB and MongoDB-wire servers (FerretDB 1.x).

The layout and its reasons are in ``adapters.document._adapter``'s docstring; the
typed options in ``_options``.
"""

from __future__ import annotations

from adapters.document._adapter import (
    ARRAY_WRAPPER,
    DRIVER_ERRORS,
    DocumentAdapter,
    decode_json,
    encode_json,
    escape_key,
    translate_error,
    unescape_key,
)
from adapters.document._options import DocumentOptions

__all__ = [
    "ARRAY_WRAPPER",
    "DRIVER_ERRORS",
    "DocumentAdapter",
    "DocumentOptions",
    "decode_json",
    "encode_json",
    "escape_key",
    "translate_error",
    "unescape_key",
]
