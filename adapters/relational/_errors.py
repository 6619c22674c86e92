"""SQLAlchemy's and the DBAPI drivers' exceptions as polystore's errors: one table (``ERRORS``).

DBAPI errors (sqlite3, psycopg, pymysql) arrive wrapped in SQLAlchemy's classes, so one
table serves every dialect. A constraint violation is a ``DuplicateKeyError``; a pool
with no free connection a ``StoreTimeout``. ``OperationalError``/``InterfaceError`` mean
anything from "database is locked" to a syntax error, so the table's ``refine`` reads
the message: a lock or timeout is a retryable ``StoreTimeout``, a lost or refused
connection a retryable ``StoreUnavailable``, the rest final. Any other DBAPI error is
retryable only when SQLAlchemy saw the connection drop (``connection_invalidated``).
Messages are the driver's first line, without the SQL and parameters SQLAlchemy
appends (they may hold values a log must not show).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    NoSuchTableError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from adapters._errors import ErrorRule, ErrorTable, first_line
from sharding.core.errors import DuplicateKeyError, StoreError, StoreTimeout, StoreUnavailable

__all__ = ["ERRORS", "RULES"]

RULES: Final[tuple[ErrorRule, ...]] = (
    # (SQLAlchemy exception, toolkit error, retryable); the first isinstance match wins,
    # so subclasses come before their bases.
    (IntegrityError, DuplicateKeyError, False),
    (PoolTimeoutError, StoreTimeout, True),
    (OperationalError, StoreError, False),  # refined by its message
    (InterfaceError, StoreError, False),  # refined by its message
    (NoSuchTableError, StoreError, False),
    (DBAPIError, StoreError, False),  # retryable if the connection was invalidated
    (SQLAlchemyError, StoreError, False),
)
"""Every SQLAlchemy exception class the adapter catches, mapped to the toolkit's error."""

_TIMEOUT_WORDS: Final = ("locked", "timeout", "timed out")
_UNAVAILABLE_WORDS: Final = ("connect", "closed", "unable to open")


def _message(exc: BaseException) -> str:
    """The driver's first line (``orig``, not SQLAlchemy's text with the SQL appended)."""
    if isinstance(exc, PoolTimeoutError):
        return f"no connection free in time: {first_line(exc)}"
    if isinstance(exc, NoSuchTableError):
        return f"no such table {exc}"
    return first_line(getattr(exc, "orig", None) or exc)


def _refine(exc: BaseException, text: str) -> tuple[type[StoreError], bool] | None:
    """Locks and timeouts, lost connections: told apart by message, whatever the class."""
    if not isinstance(exc, DBAPIError) or isinstance(exc, IntegrityError):
        return None
    lowered = text.lower()
    if isinstance(exc, OperationalError | InterfaceError):
        if any(word in lowered for word in _TIMEOUT_WORDS):
            return StoreTimeout, True
        if exc.connection_invalidated or any(word in lowered for word in _UNAVAILABLE_WORDS):
            return StoreUnavailable, True
        return None
    return (StoreError, True) if exc.connection_invalidated else None


ERRORS: Final = ErrorTable("sqlalchemy", RULES, refine=_refine, message=_message)
"""How the adapter translates every SQLAlchemy/DBAPI exception (``ERRORS.translating``)."""
