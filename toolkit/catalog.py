"""The catalog: polystore's own metadata, in one SQL database (SQLite or PostgreSQL).

It holds, per store:

* the topology history: every epoch's shards (name -> URL), kind and router spec. The
  current topology is the highest epoch. A topology is never edited in place: a change
  (a rebalance) inserts epoch e + 1 with a compare-and-set on e, so two processes can
  never both advance a store, and every process can tell which owner is current;
* the directory router's key -> shard table (keys stored in their canonical encoding);
* a small ``ps_store`` row with the current epoch and a directory version, so a
  process checks for changes with one cheap query instead of re-reading everything.

Later parts add their own tables here (the saga log, rebalance journals).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from adapters.registry import redact_url
from adapters.sqlengine import create_sql_engine, sqlalchemy_url
from toolkit.errors import CatalogError, TopologyError

__all__ = ["Catalog", "StoreVersion", "Topology"]

_metadata = sa.MetaData()

store_table = sa.Table(
    "ps_store",
    _metadata,
    sa.Column("store", sa.String(63), primary_key=True),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("directory_version", sa.Integer, nullable=False, default=0),
)

topology_table = sa.Table(
    "ps_topology",
    _metadata,
    sa.Column("store", sa.String(63), primary_key=True),
    sa.Column("epoch", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("shards", sa.JSON, nullable=False),
    sa.Column("router", sa.JSON, nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

directory_table = sa.Table(
    "ps_directory",
    _metadata,
    sa.Column("store", sa.String(63), primary_key=True),
    sa.Column("key", sa.LargeBinary, primary_key=True),
    sa.Column("shard", sa.String(63), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True, slots=True)
class Topology:
    """One epoch of one store: where its shards are and how keys are routed."""

    store: str
    epoch: int
    kind: str
    shards: Mapping[str, str]
    router: Mapping[str, Any]
    note: str = ""
    created_at: dt.datetime | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class StoreVersion:
    """What a process compares to know whether its cached routing is stale."""

    epoch: int
    directory_version: int


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Catalog:
    """Reads and writes the catalog database. Thread-safe; one per Toolkit."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = create_sql_engine(sqlalchemy_url(url)[0], make_dirs=True)
            with self._errors("create the catalog tables"):
                _metadata.create_all(self.engine, checkfirst=True)
        except ImportError as exc:
            raise CatalogError(f"catalog {redact_url(self.url)}: driver missing: {exc}") from None
        self._lock = threading.Lock()

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            inner = getattr(exc, "orig", None) or exc
            line = (str(inner).strip().splitlines() or [type(inner).__name__])[0]
            raise CatalogError(f"catalog {redact_url(self.url)}: cannot {doing}: {line}") from exc

    def close(self) -> None:
        self.engine.dispose()

    # -- topologies ------------------------------------------------------------------
    @staticmethod
    def _topology(row: Any) -> Topology:
        return Topology(
            store=row.store,
            epoch=row.epoch,
            kind=row.kind,
            shards=dict(row.shards),
            router=dict(row.router),
            note=row.note,
            created_at=row.created_at,
        )

    def topology(self, store: str, epoch: int | None = None) -> Topology | None:
        """The current topology of ``store`` (or the given epoch), or None if unknown."""
        stmt = sa.select(topology_table).where(topology_table.c.store == store)
        if epoch is None:
            stmt = stmt.order_by(topology_table.c.epoch.desc()).limit(1)
        else:
            stmt = stmt.where(topology_table.c.epoch == epoch)
        with self._errors(f"read the topology of {store!r}"), self.engine.connect() as connection:
            row = connection.execute(stmt).first()
        return self._topology(row) if row is not None else None

    def topologies(self) -> list[Topology]:
        """The current topology of every store, by store name."""
        latest = (
            sa.select(topology_table.c.store, sa.func.max(topology_table.c.epoch).label("epoch"))
            .group_by(topology_table.c.store)
            .subquery()
        )
        stmt = (
            sa.select(topology_table)
            .join(
                latest,
                sa.and_(topology_table.c.store == latest.c.store, topology_table.c.epoch == latest.c.epoch),
            )
            .order_by(topology_table.c.store)
        )
        with self._errors("list the topologies"), self.engine.connect() as connection:
            return [self._topology(row) for row in connection.execute(stmt)]

    def history(self, store: str) -> list[Topology]:
        """Every epoch of ``store``, oldest first."""
        stmt = sa.select(topology_table).where(topology_table.c.store == store).order_by(topology_table.c.epoch)
        with self._errors(f"read the history of {store!r}"), self.engine.connect() as connection:
            return [self._topology(row) for row in connection.execute(stmt)]

    def register(self, store: str, kind: str, shards: Mapping[str, str], router: Mapping[str, Any]) -> Topology:
        """Record epoch 1 of a new store; if the store exists, return its current topology.

        Safe when several processes start at once: the loser of the insert race reads
        the winner's topology.
        """
        existing = self.topology(store)
        if existing is not None:
            return existing
        topology = Topology(store, 1, kind, dict(shards), dict(router), "registered", _now())
        try:
            with self._errors(f"register store {store!r}"), self.engine.begin() as connection:
                connection.execute(sa.insert(store_table).values(store=store, epoch=1, directory_version=0))
                self._insert_topology(connection, topology)
        except CatalogError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            found = self.topology(store)
            if found is None:
                raise
            return found
        return topology

    @staticmethod
    def _insert_topology(connection: Connection, topology: Topology) -> None:
        connection.execute(
            sa.insert(topology_table).values(
                store=topology.store,
                epoch=topology.epoch,
                kind=topology.kind,
                shards=dict(topology.shards),
                router=dict(topology.router),
                note=topology.note,
                created_at=topology.created_at or _now(),
            )
        )

    def advance(
        self,
        store: str,
        expected_epoch: int,
        shards: Mapping[str, str],
        router: Mapping[str, Any],
        note: str = "",
    ) -> Topology:
        """Make a new topology current: epoch ``expected_epoch + 1``, compare-and-set.

        Raises ``TopologyError`` if another process advanced the store first.
        """
        current = self.topology(store)
        if current is None:
            raise TopologyError(f"store {store!r} is not registered in the catalog")
        new = Topology(store, expected_epoch + 1, current.kind, dict(shards), dict(router), note, _now())
        with self._errors(f"advance store {store!r}"), self.engine.begin() as connection:
            updated = connection.execute(
                sa.update(store_table)
                .where(store_table.c.store == store, store_table.c.epoch == expected_epoch)
                .values(epoch=new.epoch)
            ).rowcount
            if updated != 1:
                raise TopologyError(
                    f"store {store!r} is at epoch {current.epoch}, not {expected_epoch}: "
                    "another process changed its topology"
                )
            self._insert_topology(connection, new)
        return new

    def versions(self) -> dict[str, StoreVersion]:
        """Current epoch and directory version of every store, in one query."""
        with self._errors("read store versions"), self.engine.connect() as connection:
            return {
                row.store: StoreVersion(row.epoch, row.directory_version)
                for row in connection.execute(sa.select(store_table))
            }

    # -- the directory ---------------------------------------------------------------
    def directory(self, store: str) -> dict[bytes, str]:
        """The whole key -> shard table of a directory-routed store."""
        stmt = sa.select(directory_table.c.key, directory_table.c.shard).where(directory_table.c.store == store)
        with self._errors(f"read the directory of {store!r}"), self.engine.connect() as connection:
            return {bytes(row.key): row.shard for row in connection.execute(stmt)}

    def assign(self, store: str, entries: Mapping[bytes, str]) -> None:
        """Pin encoded keys to shards (insert or replace) and bump the directory version."""
        if not entries:
            return
        keys = list(entries)
        now = _now()
        with self._errors(f"update the directory of {store!r}"), self.engine.begin() as connection:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                connection.execute(
                    sa.delete(directory_table).where(directory_table.c.store == store, directory_table.c.key.in_(chunk))
                )
            connection.execute(
                sa.insert(directory_table),
                [{"store": store, "key": key, "shard": entries[key], "updated_at": now} for key in keys],
            )
            self._bump_directory(connection, store)

    def unassign(self, store: str, keys: Iterable[bytes]) -> int:
        """Remove keys from the directory (they fall back to the fallback router)."""
        keys = list(keys)
        removed = 0
        with self._errors(f"update the directory of {store!r}"), self.engine.begin() as connection:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                removed += connection.execute(
                    sa.delete(directory_table).where(directory_table.c.store == store, directory_table.c.key.in_(chunk))
                ).rowcount
            self._bump_directory(connection, store)
        return removed

    @staticmethod
    def _bump_directory(connection: Connection, store: str) -> None:
        connection.execute(
            sa.update(store_table)
            .where(store_table.c.store == store)
            .values(directory_version=store_table.c.directory_version + 1)
        )
