"""Topology epochs and the directory: where each store's rows live.

* ``ps_topology``: every epoch of every store (shards name -> URL, kind, router spec).
  The current topology is the highest epoch; a change inserts epoch e + 1, never edits e.
* ``ps_store``: one row per store with its current epoch (the compare-and-set target of a
  change) and a directory version, so that a process sees any change with one cheap query.
* ``ps_directory``: the directory router's pins, keys in their canonical encoding.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from toolkit.catalog._metadata import catalog_table, required

__all__ = ["StoreVersion", "Topology", "directory_table", "store_table", "topology_table"]

STORE = sa.String(63)
"""Store and shard names: what config names may be."""

store_table = catalog_table(
    "ps_store",
    sa.Column("store", STORE, primary_key=True),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("directory_version", sa.Integer, nullable=False, default=0),
)

topology_table = catalog_table(
    "ps_topology",
    sa.Column("store", STORE, primary_key=True),
    sa.Column("epoch", sa.Integer, primary_key=True),
    *required(kind=sa.String(20), shards=sa.JSON, router=sa.JSON),
    sa.Column("note", sa.Text, nullable=False, default=""),
    *required(created_at=sa.DateTime(timezone=True)),
)

directory_table = catalog_table(
    "ps_directory",
    sa.Column("store", STORE, primary_key=True),
    sa.Column("key", sa.LargeBinary, primary_key=True),
    sa.Column("shard", STORE, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True, slots=True)
class Topology:
    """One epoch of one store: where its shards are and how keys are routed."""

    store: str
    epoch: int
    """1 when the store was registered; each rebalance adds one."""
    kind: str
    shards: Mapping[str, str]
    """Shard name -> URL without credentials (they come from config and environment)."""
    router: Mapping[str, Any]
    """The router's spec (``Router.to_spec``); directory pins are in ``ps_directory``."""
    note: str = ""
    created_at: dt.datetime | None = field(default=None, compare=False)

    @classmethod
    def from_row(cls, row: Any) -> Topology:
        return cls(row.store, row.epoch, row.kind, dict(row.shards), dict(row.router), row.note, row.created_at)

    def values(self, now: dt.datetime) -> dict[str, Any]:
        """The ``ps_topology`` row of this epoch."""
        return {
            "store": self.store,
            "epoch": self.epoch,
            "kind": self.kind,
            "shards": dict(self.shards),
            "router": dict(self.router),
            "note": self.note,
            "created_at": self.created_at or now,
        }


@dataclass(frozen=True, slots=True)
class StoreVersion:
    """What a process compares to know whether its cached routing is stale."""

    epoch: int
    directory_version: int
