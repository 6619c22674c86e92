"""The rebalance journal: its own tables in the catalog database.

Why its own ``MetaData`` on ``catalog.engine``: the catalog module owns topology epochs
and the directory; the journal is the rebalance's business, so it lives here and is
created on first use (``ensure_tables``). Five tables:

* ``ps_rebalance``: one row per rebalance; ``state`` is the step to run next, ``plan``
  everything needed to resume without the config file (target shards, router spec,
  directory pins, moves, entity schemas, options);
* ``ps_rebalance_unit``: one row per (move, entity): which steps are done and the
  counts/checksums they found. A unit is the granule of resume;
* ``ps_rebalance_active``: at most one row per store (primary key), the rebalance that
  is in flight and the phase every Toolkit process must route by. Stores read it with
  their epoch in one query (``routing_state``);
* ``ps_rebalance_touched``: keys (and shard keys) of moving rows that repositories
  wrote while the rebalance was in ``dual``, appended before the write itself: the
  fenced final pass re-syncs exactly these (an append-only log; duplicates are fine);
* ``ps_entity_schema``: the schemas of entities stored in each store, recorded by
  ``Store.ensure`` so that a CLI process without the application's classes can move
  their rows.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from sharding.core.errors import CatalogError, TopologyError
from sharding.core.model import EntitySchema, FieldSpec
from toolkit.catalog import Catalog, store_table

__all__ = [
    "ACTIVE_PHASES",
    "Journal",
    "RebalanceRecord",
    "RoutingState",
    "UnitRecord",
    "ensure_tables",
    "routing_state",
    "schema_from_json",
    "schema_to_json",
]

_metadata = sa.MetaData()

rebalance_table = sa.Table(
    "ps_rebalance",
    _metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("store", sa.String(63), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("from_epoch", sa.Integer, nullable=False),
    sa.Column("plan", sa.JSON, nullable=False),
    sa.Column("error", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

unit_table = sa.Table(
    "ps_rebalance_unit",
    _metadata,
    sa.Column("rebalance", sa.String(32), primary_key=True),
    sa.Column("move", sa.Integer, primary_key=True),
    sa.Column("entity", sa.String(63), primary_key=True),
    sa.Column("done", sa.JSON, nullable=False),
    sa.Column("copied", sa.BigInteger, nullable=False, default=0),
    sa.Column("repaired", sa.BigInteger, nullable=False, default=0),
    sa.Column("deleted", sa.BigInteger, nullable=False, default=0),
    sa.Column("rows", sa.BigInteger, nullable=False, default=0),
    sa.Column("checksum", sa.String(40), nullable=False, default=""),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

active_table = sa.Table(
    "ps_rebalance_active",
    _metadata,
    sa.Column("store", sa.String(63), primary_key=True),
    sa.Column("rebalance", sa.String(32), nullable=False),
    sa.Column("phase", sa.String(16), nullable=False),
    sa.Column("to_epoch", sa.Integer, nullable=False),
)

touched_table = sa.Table(
    "ps_rebalance_touched",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rebalance", sa.String(32), nullable=False, index=True),
    sa.Column("entity", sa.String(63), nullable=False),
    sa.Column("key", sa.LargeBinary, nullable=False),
    sa.Column("shard_key", sa.LargeBinary, nullable=False),
)

schema_table = sa.Table(
    "ps_entity_schema",
    _metadata,
    sa.Column("store", sa.String(63), primary_key=True),
    sa.Column("entity", sa.String(63), primary_key=True),
    sa.Column("schema", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

ACTIVE_PHASES: Final = ("dual", "fence", "cleanup", "abort")
"""What ``ps_rebalance_active.phase`` tells the repositories (see the package docstring)."""

_created: weakref.WeakSet[Engine] = weakref.WeakSet()
_create_lock = threading.Lock()


def ensure_tables(engine: Engine) -> None:
    """Create the journal tables once per engine (idempotent, cheap after the first call)."""
    if engine in _created:
        return
    with _create_lock:
        if engine in _created:
            return
        try:
            _metadata.create_all(engine, checkfirst=True)
        except SQLAlchemyError as exc:  # two processes creating at once: the loser re-checks
            try:
                _metadata.create_all(engine, checkfirst=True)
            except SQLAlchemyError:
                raise CatalogError(f"cannot create the rebalance journal tables: {exc}") from exc
        _created.add(engine)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- what every store polls -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoutingState:
    """A store's epoch, directory version and in-flight rebalance, read in one query."""

    epoch: int
    directory_version: int
    rebalance: str | None = None
    phase: str | None = None
    to_epoch: int | None = None


_STATE_QUERY = (
    sa.select(
        store_table.c.epoch,
        store_table.c.directory_version,
        active_table.c.rebalance,
        active_table.c.phase,
        active_table.c.to_epoch,
    )
    .select_from(store_table.outerjoin(active_table, active_table.c.store == store_table.c.store))
    .where(store_table.c.store == sa.bindparam("store"))
)


def routing_state(engine: Engine, store: str) -> RoutingState | None:
    """What a Store compares against its cached routing; None if the store is unknown."""
    with engine.connect() as connection:
        row = connection.execute(_STATE_QUERY, {"store": store}).first()
    if row is None:
        return None
    return RoutingState(row.epoch, row.directory_version, row.rebalance, row.phase, row.to_epoch)


# -- entity schemas ---------------------------------------------------------------------


def schema_to_json(schema: EntitySchema) -> dict[str, Any]:
    return {
        "name": schema.name,
        "store": schema.store,
        "fields": [[spec.name, spec.type, spec.nullable] for spec in schema.fields],
        "key": list(schema.key),
        "shard_key": list(schema.shard_key),
        "indexes": [list(index) for index in schema.indexes],
        "ttl": schema.ttl,
    }


def schema_from_json(data: Mapping[str, Any]) -> EntitySchema:
    return EntitySchema(
        name=data["name"],
        store=data["store"],
        fields=tuple(FieldSpec(name, kind, bool(nullable)) for name, kind, nullable in data["fields"]),
        key=tuple(data["key"]),
        shard_key=tuple(data["shard_key"]),
        indexes=tuple(tuple(index) for index in data["indexes"]),
        ttl=data.get("ttl"),
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
    """Reads and writes the journal tables through the catalog's engine."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.engine = catalog.engine
        ensure_tables(self.engine)

    def _run(self, doing: str, statement: Any, params: Any = None) -> Any:
        try:
            with self.engine.begin() as connection:
                return connection.execute(statement, params) if params is not None else connection.execute(statement)
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise CatalogError(f"rebalance journal: cannot {doing}: {exc}") from exc

    # -- schemas
    def record_schema(self, schema: EntitySchema) -> None:
        """Remember an entity's schema for its store (insert or replace)."""
        data = schema_to_json(schema)
        with self.engine.begin() as connection:
            found = connection.execute(
                sa.select(schema_table.c.schema).where(
                    schema_table.c.store == schema.store, schema_table.c.entity == schema.name
                )
            ).first()
            if found is not None and found.schema == data:
                return
            if found is not None:
                connection.execute(
                    sa.update(schema_table)
                    .where(schema_table.c.store == schema.store, schema_table.c.entity == schema.name)
                    .values(schema=data, updated_at=_now())
                )
            else:
                try:
                    with connection.begin_nested():
                        connection.execute(
                            sa.insert(schema_table).values(
                                store=schema.store, entity=schema.name, schema=data, updated_at=_now()
                            )
                        )
                except IntegrityError:
                    pass  # another process recorded it first

    def schemas(self, store: str) -> list[EntitySchema]:
        stmt = sa.select(schema_table.c.schema).where(schema_table.c.store == store).order_by(schema_table.c.entity)
        with self.engine.connect() as connection:
            return [schema_from_json(row.schema) for row in connection.execute(stmt)]

    # -- rebalances
    def create(self, store: str, from_epoch: int, plan: Mapping[str, Any], units: list[tuple[int, str]]) -> str:
        """Record a planned rebalance and its units; returns its id."""
        ident = uuid.uuid4().hex
        now = _now()
        with self.engine.begin() as connection:
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
                connection.execute(
                    sa.insert(unit_table),
                    [
                        {
                            "rebalance": ident,
                            "move": move,
                            "entity": entity,
                            "done": [],
                            "copied": 0,
                            "repaired": 0,
                            "deleted": 0,
                            "rows": 0,
                            "checksum": "",
                            "updated_at": now,
                        }
                        for move, entity in units
                    ],
                )
        return ident

    @staticmethod
    def _record(row: Any) -> RebalanceRecord:
        return RebalanceRecord(
            row.id, row.store, row.state, row.from_epoch, dict(row.plan), row.error, row.created_at, row.updated_at
        )

    def get(self, ident: str) -> RebalanceRecord:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(rebalance_table).where(rebalance_table.c.id == ident)).first()
        if row is None:
            raise TopologyError(f"no rebalance {ident!r} in the journal")
        return self._record(row)

    def latest(self, store: str | None = None) -> list[RebalanceRecord]:
        """Rebalances, newest first (of one store, or all)."""
        stmt = sa.select(rebalance_table).order_by(rebalance_table.c.created_at.desc())
        if store is not None:
            stmt = stmt.where(rebalance_table.c.store == store)
        with self.engine.connect() as connection:
            return [self._record(row) for row in connection.execute(stmt)]

    def unfinished(self, store: str | None = None) -> list[RebalanceRecord]:
        return [record for record in self.latest(store) if record.state not in ("done", "aborted")]

    def set_state(self, ident: str, state: str, error: str = "") -> None:
        self._run(
            "update a rebalance",
            sa.update(rebalance_table)
            .where(rebalance_table.c.id == ident)
            .values(state=state, error=error, updated_at=_now()),
        )

    def set_error(self, ident: str, error: str) -> None:
        self._run(
            "record an error",
            sa.update(rebalance_table)
            .where(rebalance_table.c.id == ident)
            .values(error=error[:2000], updated_at=_now()),
        )

    def units(self, ident: str) -> list[UnitRecord]:
        stmt = (
            sa.select(unit_table)
            .where(unit_table.c.rebalance == ident)
            .order_by(unit_table.c.move, unit_table.c.entity)
        )
        with self.engine.connect() as connection:
            return [
                UnitRecord(
                    row.move,
                    row.entity,
                    tuple(row.done),
                    row.copied,
                    row.repaired,
                    row.deleted,
                    row.rows,
                    row.checksum,
                )
                for row in connection.execute(stmt)
            ]

    def unit_done(self, ident: str, move: int, entity: str, step: str, **counts: Any) -> None:
        """Mark ``step`` done for one unit and store its counts (one transaction).

        ``repaired`` adds up over the steps (verify, then final); a step already marked
        done changes nothing, so a step redone after a crash does not count twice.
        """
        where = (unit_table.c.rebalance == ident, unit_table.c.move == move, unit_table.c.entity == entity)
        with self.engine.begin() as connection:
            row = connection.execute(sa.select(unit_table.c.done, unit_table.c.repaired).where(*where)).first()
            if row is None:
                return
            done = list(row.done)
            if step in done:
                return
            done.append(step)
            if "repaired" in counts:
                counts["repaired"] += row.repaired
            connection.execute(sa.update(unit_table).where(*where).values(done=done, updated_at=_now(), **counts))

    # -- keys written during the move
    def touch(self, ident: str, entity: str, keys: list[tuple[bytes, bytes]]) -> None:
        """Log (encoded key, encoded shard key) pairs of moving rows about to be written."""
        if keys:
            self._run(
                "log written keys",
                sa.insert(touched_table),
                [{"rebalance": ident, "entity": entity, "key": key, "shard_key": shard} for key, shard in keys],
            )

    def touched(self, ident: str, entity: str) -> dict[bytes, bytes]:
        """Encoded key -> encoded shard key of every logged write of ``entity``."""
        stmt = sa.select(touched_table.c.key, touched_table.c.shard_key).where(
            touched_table.c.rebalance == ident, touched_table.c.entity == entity
        )
        with self.engine.connect() as connection:
            return {bytes(row.key): bytes(row.shard_key) for row in connection.execute(stmt)}

    def forget_touched(self, ident: str) -> None:
        self._run("forget written keys", sa.delete(touched_table).where(touched_table.c.rebalance == ident))

    # -- the active row every store polls
    def activate(self, store: str, ident: str, phase: str, to_epoch: int) -> None:
        """Claim the store for this rebalance (one at a time) and publish its phase."""
        with self.engine.begin() as connection:
            row = connection.execute(sa.select(active_table).where(active_table.c.store == store)).first()
            if row is not None and row.rebalance != ident:
                raise TopologyError(
                    f"store {store!r}: rebalance {row.rebalance} is in flight "
                    "(finish it with `polystore rebalance resume` or `abort`)"
                )
            if row is None:
                connection.execute(
                    sa.insert(active_table).values(store=store, rebalance=ident, phase=phase, to_epoch=to_epoch)
                )
            else:
                connection.execute(sa.update(active_table).where(active_table.c.store == store).values(phase=phase))

    def active(self, store: str) -> tuple[str, str] | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(active_table).where(active_table.c.store == store)).first()
        return None if row is None else (row.rebalance, row.phase)

    def release(self, store: str, ident: str) -> None:
        self._run(
            "release the store",
            sa.delete(active_table).where(active_table.c.store == store, active_table.c.rebalance == ident),
        )
