"""``DocumentOptions``: what ``[stores.NAME.options]`` may say to a MongoDB store.

Declared as a frozen model so that a typo (``bulk_bach``) or a wrong type (``row_locks =
"yes"``) is refused when the configuration is loaded, instead of being ignored or
surfacing later as a pymongo error. The FerretDB-specific knobs (``row_locks``,
``bulk_batch``) default to ``"auto"``: the adapter asks the server what it is.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import Field, StrictBool, StrictInt, field_validator

from adapters._options import AdapterOptions

__all__ = ["DEFAULT_TIMEOUT", "DocumentOptions"]

DEFAULT_TIMEOUT: Final = 30.0
"""Seconds per operation (pymongo's ``socketTimeoutMS``) unless ``timeout`` says otherwise."""


class DocumentOptions(AdapterOptions):
    """``[stores.NAME.options]`` of a MongoDB (or FerretDB) store."""

    connect_timeout: float = Field(default=10, ge=0)
    """Seconds to find a server and open a connection (``serverSelectionTimeoutMS`` and
    ``connectTimeoutMS``): past it, a call fails with ``StoreUnavailable``."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds per operation (``socketTimeoutMS``). A server that accepts but never
    answers (FerretDB 1.24 can wedge so) must fail the call, so the breaker sees it,
    instead of hanging the caller; 0 (or less) waits forever."""
    pool_size: int | None = Field(default=None, ge=0)
    """Connections per shard (``maxPoolSize``); pymongo's default when unset."""
    database: str = "polystore"
    """The database of a shard whose URL names none."""
    row_locks: Literal["auto"] | StrictBool | None = "auto"
    """Per-row lock documents around increments and partial updates: ``"auto"`` (or
    None) asks the server and locks on FerretDB only, whose update operators are an
    unconditioned read-then-write; ``true``/``false`` force it."""
    lock_timeout: float = 10
    """Seconds to wait for such a row lock before failing with ``StoreTimeout``."""
    bulk_batch: Literal["auto"] | StrictInt | None = "auto"
    """Replacements per ``bulk_write`` of ``put_many``: ``"auto"`` (or None) is 8 on
    FerretDB, where a larger replacing command can deadlock 1.24's connection pool, and
    unbounded on MongoDB; or a positive integer."""

    @field_validator("row_locks", mode="before")
    @classmethod
    def _auto_or_bool(cls, value: Any) -> Any:
        """One clear message instead of one per member of the union."""
        if value in ("auto", None) or isinstance(value, bool):
            return value
        raise ValueError("row_locks must be true, false or 'auto'")

    @field_validator("bulk_batch", mode="before")
    @classmethod
    def _auto_or_positive(cls, value: Any) -> Any:
        """One clear message instead of one per member of the union (bools are no sizes)."""
        if value in ("auto", None) or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            return value
        raise ValueError("bulk_batch must be a positive integer or 'auto'")

    @property
    def row_locks_forced(self) -> bool | None:
        """``row_locks`` as the adapter uses it: None where the server decides."""
        return None if self.row_locks in ("auto", None) else bool(self.row_locks)

    @property
    def bulk_batch_size(self) -> int | None:
        """``bulk_batch`` as the adapter uses it: None where the server decides."""
        return self.bulk_batch if isinstance(self.bulk_batch, int) else None
