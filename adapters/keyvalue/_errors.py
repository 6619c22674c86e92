"""redis-py's exceptions as polystore's errors: one table (``ERRORS``).

Connection trouble, timeouts, a cluster whose slot map is changing and a server that
is loading are retryable; protocol, permission and script errors are not. A plain
``RedisClusterException`` means "cannot connect" only when it says so (redis-py also
raises it for commands it cannot dispatch): the table's ``refine`` tells them apart.
Messages keep the driver's class name (``ResponseError: WRONGTYPE ...``), since the
text alone often does not say what went wrong.
"""

from __future__ import annotations

from typing import Final

import redis.exceptions as rex

from adapters._errors import ErrorRule, ErrorTable
from sharding.core.errors import StoreError, StoreTimeout, StoreUnavailable

__all__ = ["ERRORS", "RULES"]

RULES: Final[tuple[ErrorRule, ...]] = (
    # (driver exception, toolkit error, retryable); the first isinstance match wins,
    # so subclasses come before their bases.
    (rex.AuthenticationError, StoreError, False),
    (rex.AuthorizationError, StoreError, False),
    (rex.MaxConnectionsError, StoreTimeout, True),
    (rex.BusyLoadingError, StoreUnavailable, True),
    (rex.ConnectionError, StoreUnavailable, True),
    (rex.TimeoutError, StoreTimeout, True),
    (rex.MasterDownError, StoreUnavailable, True),
    (rex.ClusterDownError, StoreUnavailable, True),
    (rex.TryAgainError, StoreUnavailable, True),
    (rex.ReadOnlyError, StoreUnavailable, True),
    (rex.AskError, StoreUnavailable, True),  # MovedError too: the slot map is changing
    (rex.SlotNotCoveredError, StoreUnavailable, True),
    (rex.ClusterError, StoreUnavailable, True),
    (rex.ClusterCrossSlotError, StoreError, False),
    (rex.OutOfMemoryError, StoreError, True),  # memory may be freed by expiry/eviction
    (rex.NoPermissionError, StoreError, False),
    (rex.ExecAbortError, StoreError, False),
    (rex.NoScriptError, StoreError, True),
    (rex.ResponseError, StoreError, False),
    (rex.WatchError, StoreError, True),
    (rex.InvalidResponse, StoreUnavailable, True),
    (rex.DataError, StoreError, False),
    (rex.RedisClusterException, StoreUnavailable, True),  # "cannot be connected", no nodes
    (rex.RedisError, StoreError, False),
)
"""Every redis-py exception class the adapter catches, mapped to the toolkit's error."""


def _message(exc: BaseException) -> str:
    """The driver's class name and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _not_connecting(exc: BaseException, text: str) -> tuple[type[StoreError], bool] | None:
    """A bare ``RedisClusterException`` that is not about connecting: a plain, final error."""
    matched = next(rule[0] for rule in RULES if isinstance(exc, rule[0]))
    if matched is rex.RedisClusterException and "connect" not in text.lower():
        return StoreError, False
    return None


ERRORS: Final = ErrorTable("redis", RULES, refine=_not_connecting, message=_message)
"""How the adapter translates every redis-py exception (``ERRORS.translating``)."""
