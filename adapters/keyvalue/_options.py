"""``KeyValueOptions``: what ``[stores.NAME.options]`` may say to a Redis store.

Declared as a frozen model so that a typo (``index_bucket``) or a wrong type is refused
when the configuration is loaded, instead of being ignored or surfacing later as a
redis-py error. The defaults are the ones the adapter has always used.
"""

from __future__ import annotations

import re
from typing import Final

from pydantic import Field

from adapters._options import AdapterOptions

__all__ = ["CLUSTER_BUCKETS", "MAX_BUCKETS", "NAME", "KeyValueOptions"]

NAME: Final = re.compile(r"^[A-Za-z0-9_.:-]*$")
"""What a URL's ``?prefix=`` may hold. It goes inside hash tags (``{NS E:B}``), so a
brace would move the slot and a ``*`` would read as a pattern. (The ``namespace``
option is stricter still: letters, digits and _, as on every adapter.)"""

CLUSTER_BUCKETS: Final = 64
"""Index buckets per entity on Redis Cluster unless ``index_buckets`` says otherwise."""
MAX_BUCKETS: Final = 1024


class KeyValueOptions(AdapterOptions):
    """``[stores.NAME.options]`` of a Redis or Redis Cluster store."""

    socket_timeout: float = Field(default=10, gt=0)
    """Seconds per Redis command: a hung server fails the call (``StoreTimeout``)."""
    connect_timeout: float = Field(default=5, gt=0)
    """Seconds to open a connection: past it, a call fails with ``StoreUnavailable``."""
    pool_size: int | None = Field(default=None, ge=1)
    """Connections per server client (redis-py's ``max_connections``); unbounded when
    unset. A client is shared by the shards on one server with the same options."""
    retries: int = Field(default=0, ge=0)
    """redis-py's own retries on standalone Redis. Off: polystore's resilience layer
    retries what is safe to retry, and a blind driver retry could apply an increment
    twice. (The cluster client keeps its own handling of MOVED/ASK redirects.)"""
    index_buckets: int | None = Field(default=None, ge=1, le=MAX_BUCKETS)
    """Index buckets (sorted sets) per entity: 1 on standalone Redis, 64 on Redis Cluster
    when unset, so that one entity's index and writes spread over every master. Fixed
    per entity at its first ``ensure`` (stored on the server), so processes agree."""

    def buckets(self, *, cluster: bool) -> int:
        """The index buckets of an entity created now (``index_buckets`` or the default)."""
        if self.index_buckets is not None:
            return self.index_buckets
        return CLUSTER_BUCKETS if cluster else 1
