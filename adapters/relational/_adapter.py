"""``RelationalAdapter``: the operation modules put together, with the capability set.

Every capability is declared for every dialect (one capability set per kind); the ones
that need SQL only SQLite and PostgreSQL have (JSON, ``RETURNING``, ``ON CONFLICT``)
raise ``UnsupportedCapability`` on MySQL/MariaDB when used.
"""

from __future__ import annotations

from typing import ClassVar

from adapters.base import Capability
from adapters.relational._changes import ChangeOps
from adapters.relational._graph import GraphOps
from adapters.relational._queries import QueryOps
from adapters.relational._ranges import RangeOps
from adapters.relational._stored import StoredCopy
from adapters.relational._ttl import TtlOps

__all__ = ["RelationalAdapter"]


class RelationalAdapter(TtlOps, ChangeOps, GraphOps, QueryOps, RangeOps, StoredCopy):
    """One shard in one SQL database. See ``adapters.relational``."""

    capabilities: ClassVar[Capability] = (
        Capability.TRANSACTIONS
        | Capability.TTL
        | Capability.NESTED_FILTERS
        | Capability.PARTIAL_UPDATE
        | Capability.ATOMIC_INCREMENT
        | Capability.PARTITION_RANGE
        | Capability.GRAPH
        | Capability.APPLY_ONCE
    )
