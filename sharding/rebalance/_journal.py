"""The rebalance journal: its own tables in the catalog database.

Two tables, declared here on the catalog's one ``MetaData`` (``toolkit.catalog``):

* ``ps_rebalance``: one row per rebalance; ``state`` is the step to run next, ``plan``
  everything needed to resume without the config file (target shards, router spec,
  directory pins, moves, entity schemas, options);
* ``ps_rebalance_unit``: one row per (move, entity): which steps are done and the
  counts/checksums they found. A unit is the granule of resume.

What every process routes by while a rebalance runs (the phase, the target, the keys
written meanwhile) is not the journal's: it is the routing state (``toolkit.routing``),
which the rebalance publishes and the stores read. The entities a store holds are the
catalog's (``Catalog.schemas``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from sharding.core.errors import TopologyError
from toolkit.catalog import STORE, Catalog, catalog_table, required, utcnow

__all__ = ["Journal", "RebalanceRecord", "UnitRecord"]

_COUNTS = ("copied", "repaired", "deleted", "rows")
"""A unit's counters: rows copied, repaired and deleted by its steps, rows verified."""

rebalance_table = catalog_table(
    "ps_rebalance",
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("store", STORE, nullable=False, index=True),
    *required(state=sa.String(16), from_epoch=sa.Integer, plan=sa.JSON),
    sa.Column("error", sa.Text, nullable=False, default=""),
    *required(created_at=sa.DateTime(timezone=True), updated_at=sa.DateTime(timezone=True)),
)

unit_table = catalog_table(
    "ps_rebalance_unit",
    sa.Column("rebalance", sa.String(32), primary_key=True),
    sa.Column("move", sa.Integer, primary_key=True),
    sa.Column("entity", sa.String(63), primary_key=True),
    *required(done=sa.JSON),
    *(sa.Column(name, sa.BigInteger, nullable=False, default=0) for name in _COUNTS),
    sa.Column("checksum", sa.String(40), nullable=False, default=""),
    *required(updated_at=sa.DateTime(timezone=True)),
)

# -- records ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RebalanceRecord:
    id: str
    store: str
    state: str
    from_epoch: int
    plan: Mapping[str, Any]
    error: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class UnitRecord:
    move: int
    entity: str
    done: tuple[str, ...]
    copied: int
    repaired: int
    deleted: int
    rows: int
    checksum: str


class Journal:
    """Reads and writes the journal tables through the catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def create(self, store: str, from_epoch: int, plan: Mapping[str, Any], units: list[tuple[int, str]]) -> str:
        """Record a planned rebalance and its units; returns its id."""
        ident = uuid.uuid4().hex
        now = utcnow()
        with self.catalog.writing(f"journal a rebalance of {store!r}") as connection:
            connection.execute(
                sa.insert(rebalance_table).values(
                    id=ident,
                    store=store,
                    state="planned",
                    from_epoch=from_epoch,
                    plan=dict(plan),
                    error="",
                    created_at=now,
                    updated_at=now,
                )
            )
            if units:
                fresh = {"done": [], "checksum": "", "updated_at": now} | dict.fromkeys(_COUNTS, 0)
                rows = [{"rebalance": ident, "move": move, "entity": entity, **fresh} for move, entity in units]
                connection.execute(sa.insert(unit_table), rows)
        return ident

    @staticmethod
    def _record(row: Any) -> RebalanceRecord:
        return RebalanceRecord(
            row.id, row.store, row.state, row.from_epoch, dict(row.plan), row.error, row.created_at, row.updated_at
        )

    def get(self, ident: str) -> RebalanceRecord:
        with self.catalog.reading(f"read rebalance {ident}") as connection:
            row = connection.execute(sa.select(rebalance_table).where(rebalance_table.c.id == ident)).first()
        if row is None:
            raise TopologyError(f"no rebalance {ident!r} in the journal")
        return self._record(row)

    def latest(self, store: str | None = None) -> list[RebalanceRecord]:
        """Rebalances, newest first (of one store, or all)."""
        stmt = sa.select(rebalance_table).order_by(rebalance_table.c.created_at.desc())
        if store is not None:
            stmt = stmt.where(rebalance_table.c.store == store)
        with self.catalog.reading("list rebalances") as connection:
            return [self._record(row) for row in connection.execute(stmt)]

    def unfinished(self, store: str | None = None) -> list[RebalanceRecord]:
        return [record for record in self.latest(store) if record.state not in ("done", "aborted")]

    def set_state(self, ident: str, state: str, error: str = "") -> None:
        self._update(ident, "update a rebalance", state=state, error=error)

    def set_error(self, ident: str, error: str) -> None:
        self._update(ident, "record an error", error=error[:2000])

    def _update(self, ident: str, doing: str, **values: Any) -> None:
        with self.catalog.writing(f"{doing} ({ident})") as connection:
            stmt = sa.update(rebalance_table).where(rebalance_table.c.id == ident)
            connection.execute(stmt.values(updated_at=utcnow(), **values))

    def units(self, ident: str) -> list[UnitRecord]:
        stmt = (
            sa.select(unit_table)
            .where(unit_table.c.rebalance == ident)
            .order_by(unit_table.c.move, unit_table.c.entity)
        )
        with self.catalog.reading(f"read the units of rebalance {ident}") as connection:
            return [
                UnitRecord(
                    row.move, row.entity, tuple(row.done), row.copied, row.repaired, row.deleted, row.rows, row.checksum
                )
                for row in connection.execute(stmt)
            ]

    def unit_done(self, ident: str, move: int, entity: str, step: str, **counts: Any) -> None:
        """Mark ``step`` done for one unit and store its counts (one transaction).

        ``repaired`` adds up over the steps (verify, then final); a step already marked
        done changes nothing, so a step redone after a crash does not count twice.
        """
        where = (unit_table.c.rebalance == ident, unit_table.c.move == move, unit_table.c.entity == entity)
        with self.catalog.writing(f"record a step of rebalance {ident}") as connection:
            row = connection.execute(sa.select(unit_table.c.done, unit_table.c.repaired).where(*where)).first()
            if row is None:
                return
            done = list(row.done)
            if step in done:
                return
            done.append(step)
            if "repaired" in counts:
                counts["repaired"] += row.repaired
            connection.execute(sa.update(unit_table).where(*where).values(done=done, updated_at=utcnow(), **counts))
