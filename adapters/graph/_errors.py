"""The neo4j driver's exceptions as polystore's errors: one table (``ERRORS``).

Timeouts are told apart by the server's status code (a lock or transaction timeout) or
the driver's pool message, not by class: the driver raises them as ``TransientError``
or ``ClientError``, which otherwise mean something else. A value the driver cannot
encode (an integer over 64 bits, an object) fails inside its packer with a plain
``TypeError``/``ValueError``/``OverflowError``: ``translating`` turns only those into a
``QueryError``, so a bug of ours is never disguised as a bad value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Final

import neo4j.exceptions as nx

from adapters._errors import ErrorTable
from sharding.core.errors import (
    DuplicateKeyError,
    QueryError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)

__all__ = ["ERRORS", "message", "translating"]

_TIMEOUT_CODES: Final = ("TransactionTimedOut", "LockAcquisitionTimeout", "Timeout")


def message(exc: BaseException) -> str:
    """The server's or driver's message, first line only (no query text)."""
    # Only server errors carry a plain ``message``; on driver errors that name is a GQL preview.
    text = exc.message if isinstance(exc, nx.Neo4jError) else None
    text = text or " ".join(arg for arg in exc.args if isinstance(arg, str)) or str(exc)
    lines = str(text).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _timeout(exc: BaseException, text: str) -> tuple[type[StoreError], bool] | None:
    """A lock, transaction or pool timeout, whatever class the driver raised it as."""
    code = (exc.code if isinstance(exc, nx.Neo4jError) else None) or ""
    if any(marker in code for marker in _TIMEOUT_CODES) or "obtain a connection from the pool" in text:
        return StoreTimeout, True
    return None


ERRORS: Final = ErrorTable(
    "neo4j",
    # (driver exception, toolkit error, retryable). First match wins: subclasses first.
    (
        (nx.ConstraintError, DuplicateKeyError, False),
        (nx.AuthError, StoreError, False),
        (nx.Forbidden, StoreError, False),
        (nx.CypherSyntaxError, StoreError, False),
        (nx.CypherTypeError, StoreError, False),
        (nx.ClientError, StoreError, False),
        (nx.DatabaseUnavailable, StoreUnavailable, True),
        (nx.NotALeader, StoreUnavailable, True),
        (nx.ForbiddenOnReadOnlyDatabase, StoreUnavailable, True),
        (nx.TransientError, StoreError, True),
        (nx.DatabaseError, StoreError, False),
        (nx.Neo4jError, StoreError, False),
        (nx.IncompleteCommit, StoreError, False),  # the commit may or may not have happened
        (nx.SessionExpired, StoreUnavailable, True),
        (nx.ServiceUnavailable, StoreUnavailable, True),
        (nx.ConfigurationError, StoreError, False),
        (nx.ResultError, StoreError, False),
        (nx.SessionError, StoreError, False),
        (nx.TransactionError, StoreError, False),
        (nx.BrokenRecordError, StoreError, False),
        (nx.DriverError, StoreError, False),
        (nx.UnsupportedServerProduct, StoreError, False),
        (nx.GqlError, StoreError, False),
    ),
    refine=_timeout,
    message=message,
)
"""Every driver exception class the adapter catches, and what it becomes."""


@contextlib.contextmanager
def translating(store: str, shard: str, key: Any = None) -> Iterator[None]:
    """``ERRORS.translating``, plus a value the driver cannot send as a ``QueryError``."""
    try:
        with ERRORS.translating(store, shard, key):
            yield
    except (OverflowError, TypeError, ValueError) as exc:
        if not _raised_by_packer(exc):
            raise
        raise QueryError(f"{store}/{shard}: a value cannot be sent to Neo4j: {exc}") from exc


def _raised_by_packer(exc: BaseException) -> bool:
    """Whether the driver's parameter encoder raised ``exc`` (an unsendable value)."""
    frame = exc.__traceback__
    while frame is not None:
        if str(frame.tb_frame.f_globals.get("__name__", "")).startswith("neo4j._codec"):
            return True
        frame = frame.tb_next
    return False
