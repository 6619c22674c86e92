"""``RelationalOptions``: what ``[stores.NAME.options]`` may say to a SQL shard.

Typed and frozen (see ``adapters._options``): a typo or a wrong type is a ``ConfigError``
naming the store, the shard and the option, never a silently ignored name.
"""

from __future__ import annotations

from adapters._options import AdapterOptions

__all__ = ["RelationalOptions"]


class RelationalOptions(AdapterOptions):
    """``[stores.NAME.options]`` of a SQL store (SQLite, PostgreSQL, MySQL/MariaDB).

    ``namespace`` (from ``AdapterOptions``) prefixes every table, so several
    applications or test runs share one database.
    """

    pool_size: int | None = None
    """Connections kept per shard (PostgreSQL/MySQL; SQLAlchemy's default when unset).
    SQLite ignores it: its connections are cheap and the file serialises writers anyway."""
    busy_timeout: float = 30
    """SQLite: seconds a writer waits for another connection's lock before failing with
    a retryable ``StoreTimeout``."""
    connect_timeout: int = 10
    """PostgreSQL: seconds to wait for a connection, so a down server fails a call
    (``StoreUnavailable``) instead of hanging it."""
