"""How the resilience guard runs each method of the adapter contract (``CONTRACT``).

Kept apart from ``adapters.base`` (which re-exports both names) so that the contract's
table is read in one place, next to nothing else: ``toolkit.resilience`` wraps exactly
these names, and a test checks that ``Adapter`` has no public method outside them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

__all__ = ["CONTRACT", "Call"]


class Call(enum.Enum):
    """How the resilience guard runs one contract method (see ``CONTRACT``)."""

    IDEMPOTENT = "idempotent"
    """Guarded, and retried on a retryable error: repeating it changes nothing."""
    ONCE = "once"
    """Guarded, retried only inside ``retry_safe`` (the caller vouches for it)."""
    STREAM = "stream"
    """Returns an iterator: each batch it fetches is guarded on its own, never retried."""
    DIRECT = "direct"
    """Not guarded: status reports must see a down shard as down, and closing and
    capability checks must always work."""


CONTRACT: Final[Mapping[str, Call]] = {
    # lifecycle
    "ensure": Call.IDEMPOTENT,
    "ping": Call.IDEMPOTENT,
    "describe": Call.DIRECT,
    "drop": Call.IDEMPOTENT,
    "close": Call.DIRECT,
    "require": Call.DIRECT,
    # the core
    "put": Call.IDEMPOTENT,
    "put_many": Call.IDEMPOTENT,
    "get": Call.IDEMPOTENT,
    "get_many": Call.IDEMPOTENT,
    "delete": Call.IDEMPOTENT,
    "delete_many": Call.IDEMPOTENT,
    "find": Call.IDEMPOTENT,
    "count": Call.IDEMPOTENT,
    "scan": Call.STREAM,
    # moving rows: rebalance
    "scan_expiring": Call.STREAM,
    "get_many_expiring": Call.IDEMPOTENT,
    "put_expiring": Call.IDEMPOTENT,
    "range_checksum": Call.IDEMPOTENT,
    "delete_range": Call.IDEMPOTENT,
    "stored_layout": Call.DIRECT,
    "scan_stored": Call.STREAM,
    "put_stored": Call.IDEMPOTENT,
    "may_have_edges": Call.DIRECT,
    "edges_of": Call.IDEMPOTENT,
    # capabilities
    "put_ttl": Call.IDEMPOTENT,
    "ttl": Call.IDEMPOTENT,
    "increment": Call.ONCE,
    "increment_once": Call.IDEMPOTENT,
    "run_script": Call.ONCE,
    "update": Call.IDEMPOTENT,
    "partition": Call.IDEMPOTENT,
    "relate": Call.IDEMPOTENT,
    "unrelate": Call.IDEMPOTENT,
    "neighbors": Call.IDEMPOTENT,
    "traverse": Call.IDEMPOTENT,
    "shortest_path": Call.IDEMPOTENT,
}
"""Every public method of ``Adapter``, and how the guard runs it. The contract *is* this
table: the guard wraps exactly these names, and a test checks that ``Adapter`` has no
public method outside it. Code above the adapters calls nothing else on an adapter."""
