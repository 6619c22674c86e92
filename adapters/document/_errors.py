"""pymongo's and bson's exceptions as polystore's errors: one table (``ERRORS``).

``OperationFailure`` (and so ``WriteError``) is refined by its code and labels: a
``RetryableWriteError`` label or a transient code is retryable, a time limit is a
``StoreTimeout``. A ``BulkWriteError`` whose every error is a duplicate key is a
``DuplicateKeyError``. Messages keep their first line without pymongo's appended
server reply or topology description (which can be kilobytes long).
"""

from __future__ import annotations

from typing import Final

from bson.errors import BSONError, InvalidDocument
from pymongo import errors as mongo_errors

from adapters._errors import ErrorTable, first_line
from sharding.core.errors import DuplicateKeyError, StoreError, StoreTimeout, StoreUnavailable

__all__ = ["DUPLICATE_KEY", "ERRORS", "all_duplicates", "message"]

DUPLICATE_KEY: Final = 11000
"""The server's error code for a unique index violation."""
_TIMEOUT_CODES: Final = frozenset({50, 89, 262})
_TRANSIENT_CODES: Final = frozenset({6, 7, 91, 112, 189, 9001, 10107, 11600, 11602, 13435, 13436})


def message(exc: BaseException) -> str:
    """The first line of a driver message, without the reply or topology pymongo appends."""
    text = first_line(exc)
    for tail in (", full error:", ", Topology Description:"):
        text = text.split(tail, 1)[0]
    return text[:500]


def all_duplicates(exc: mongo_errors.BulkWriteError) -> bool:
    """Whether every write error of a bulk write is a duplicate key (an upsert race)."""
    return {error.get("code") for error in exc.details.get("writeErrors", [])} == {DUPLICATE_KEY}


def _refine(exc: BaseException, text: str) -> tuple[type[StoreError], bool] | None:
    """A better (error, retryable) than the table's row, from the server's codes and labels."""
    if isinstance(exc, mongo_errors.BulkWriteError):
        return (DuplicateKeyError, False) if all_duplicates(exc) else None
    if isinstance(exc, mongo_errors.OperationFailure) and not isinstance(exc, mongo_errors.DuplicateKeyError):
        if exc.code in _TIMEOUT_CODES:
            return StoreTimeout, True
        if exc.code in _TRANSIENT_CODES or exc.has_error_label("RetryableWriteError"):
            return StoreError, True
    return None


ERRORS: Final = ErrorTable(
    "pymongo",
    # (driver exception, toolkit error, retryable). First match wins: subclasses first.
    (
        (mongo_errors.DuplicateKeyError, DuplicateKeyError, False),
        (mongo_errors.ExecutionTimeout, StoreTimeout, True),
        (mongo_errors.WTimeoutError, StoreTimeout, True),
        (mongo_errors.NetworkTimeout, StoreTimeout, True),
        (mongo_errors.WaitQueueTimeoutError, StoreTimeout, True),
        (mongo_errors.ServerSelectionTimeoutError, StoreUnavailable, True),
        (mongo_errors.NotPrimaryError, StoreUnavailable, True),
        (mongo_errors.AutoReconnect, StoreUnavailable, True),
        (mongo_errors.ConnectionFailure, StoreUnavailable, True),
        (mongo_errors.CursorNotFound, StoreError, True),
        (mongo_errors.BulkWriteError, StoreError, False),
        (mongo_errors.WriteConcernError, StoreError, True),
        (mongo_errors.WriteError, StoreError, False),
        (mongo_errors.OperationFailure, StoreError, False),
        (mongo_errors.DocumentTooLarge, StoreError, False),
        (mongo_errors.InvalidName, StoreError, False),
        (mongo_errors.InvalidOperation, StoreError, False),
        (mongo_errors.ConfigurationError, StoreError, False),
        (mongo_errors.ProtocolError, StoreError, False),
        (mongo_errors.PyMongoError, StoreError, False),
        (InvalidDocument, StoreError, False),
        (BSONError, StoreError, False),
        (OverflowError, StoreError, False),
    ),
    refine=_refine,
    message=message,
)
"""Every exception the adapter catches, and what it becomes."""
