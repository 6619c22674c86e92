"""The routing state's tables: the rebalance in flight per store, and the keys written meanwhile.

The rebalance writes them (``publish``, ``release``, ``forget_writes``); every Store reads
them (``poll``, ``target``) and its repositories append to the write log (``log_writes``).
Neither side knows the other's modules: this is the whole interface between them.

* ``ps_routing``: at most one row per store (primary key): the rebalance in flight, the
  phase it published, the epoch it leads to and its target topology (shards, router spec,
  directory pins as JSON). Stores read the first three with their epoch in one query
  every poll, and the target once per rebalance.
* ``ps_rebalance_touched``: (key, shard key) of moving rows that repositories wrote while
  writes were split, appended before the write itself: the change log the fenced
  catch-up replays (append-only; duplicates are fine).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from toolkit.catalog import STORE, CatalogAccess, catalog_table, store_table
from toolkit.errors import TopologyError
from toolkit.routing._state import Phase

__all__ = ["RoutingRow", "Transitions", "routing_table", "written_table"]

REBALANCE = sa.String(32)
"""A rebalance id (a uuid4 in hex)."""

routing_table = catalog_table(
    "ps_routing",
    sa.Column("store", STORE, primary_key=True),
    sa.Column("rebalance", REBALANCE, nullable=False),
    sa.Column("phase", sa.String(16), nullable=False),
    sa.Column("to_epoch", sa.Integer, nullable=False),
    sa.Column("target", sa.JSON, nullable=False),
)

written_table = catalog_table(
    "ps_rebalance_touched",
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rebalance", REBALANCE, nullable=False, index=True),
    sa.Column("entity", sa.String(63), nullable=False),
    sa.Column("key", sa.LargeBinary, nullable=False),
    sa.Column("shard_key", sa.LargeBinary, nullable=False),
)


@dataclass(frozen=True, slots=True)
class RoutingRow:
    """What a Store compares against its cached routing, read in one query."""

    epoch: int
    directory_version: int
    rebalance: str | None = None
    phase: Phase | None = None
    to_epoch: int | None = None


_POLL = (
    sa.select(
        store_table.c.epoch,
        store_table.c.directory_version,
        routing_table.c.rebalance,
        routing_table.c.phase,
        routing_table.c.to_epoch,
    )
    .select_from(store_table.outerjoin(routing_table, routing_table.c.store == store_table.c.store))
    .where(store_table.c.store == sa.bindparam("store"))
)


class Transitions:
    """Reads and writes the routing state's tables through the catalog."""

    def __init__(self, catalog: CatalogAccess) -> None:
        self.catalog = catalog

    # -- what every store reads ------------------------------------------------------
    def poll(self, store: str) -> RoutingRow | None:
        """The store's epoch, directory version and rebalance in flight; None if the store is unknown."""
        with self.catalog.reading(f"read the routing of {store!r}") as connection:
            row = connection.execute(_POLL, {"store": store}).first()
        if row is None:
            return None
        phase = None if row.phase is None else Phase(row.phase)
        return RoutingRow(row.epoch, row.directory_version, row.rebalance, phase, row.to_epoch)

    def target(self, store: str, rebalance: str) -> Mapping[str, Any] | None:
        """The target topology a rebalance published (shards, router, entries), if it is in flight."""
        stmt = sa.select(routing_table.c.target).where(
            routing_table.c.store == store, routing_table.c.rebalance == rebalance
        )
        with self.catalog.reading(f"read the rebalance target of {store!r}") as connection:
            found = connection.execute(stmt).scalar()
        return None if found is None else dict(found)

    def current(self, store: str) -> tuple[str, Phase] | None:
        """(rebalance, phase) in flight for ``store``, or None."""
        row = self.poll(store)
        if row is None or row.rebalance is None or row.phase is None:
            return None
        return row.rebalance, row.phase

    # -- what the rebalance writes ---------------------------------------------------
    def publish(self, store: str, rebalance: str, phase: Phase, to_epoch: int, target: Mapping[str, Any]) -> None:
        """Claim ``store`` for this rebalance (one at a time) and publish its phase."""
        mine = routing_table.c.store == store
        with self.catalog.writing(f"publish the routing of {store!r}") as connection:
            row = connection.execute(sa.select(routing_table.c.rebalance).where(mine)).first()
            if row is not None and row.rebalance != rebalance:
                raise TopologyError(
                    f"store {store!r}: rebalance {row.rebalance} is in flight "
                    "(finish it with `polystore rebalance resume` or `abort`)"
                )
            if row is None:
                values = {"rebalance": rebalance, "phase": str(phase), "to_epoch": to_epoch, "target": dict(target)}
                connection.execute(sa.insert(routing_table).values(store=store, **values))
            else:
                connection.execute(sa.update(routing_table).where(mine).values(phase=str(phase)))

    def release(self, store: str, rebalance: str) -> None:
        """The rebalance is over: the store routes by its epoch alone again."""
        with self.catalog.writing(f"release store {store!r}") as connection:
            connection.execute(
                sa.delete(routing_table).where(routing_table.c.store == store, routing_table.c.rebalance == rebalance)
            )

    # -- the keys written while writes were split ----------------------------------------
    def log_writes(self, rebalance: str, entity: str, keys: list[tuple[bytes, bytes]]) -> None:
        """Log (encoded key, encoded shard key) pairs of moving rows about to be written
        (an empty shard key: unknown, the catch-up compares everything)."""
        if not keys:
            return
        rows = [{"rebalance": rebalance, "entity": entity, "key": key, "shard_key": shard} for key, shard in keys]
        with self.catalog.writing("log written keys") as connection:
            connection.execute(sa.insert(written_table), rows)

    def written(self, rebalance: str, entity: str) -> dict[bytes, bytes]:
        """Encoded key -> encoded shard key of every logged write of ``entity``."""
        stmt = sa.select(written_table.c.key, written_table.c.shard_key).where(
            written_table.c.rebalance == rebalance, written_table.c.entity == entity
        )
        with self.catalog.reading("read written keys") as connection:
            return {bytes(row.key): bytes(row.shard_key) for row in connection.execute(stmt)}

    def forget_writes(self, rebalance: str) -> None:
        with self.catalog.writing("forget written keys") as connection:
            connection.execute(sa.delete(written_table).where(written_table.c.rebalance == rebalance))
