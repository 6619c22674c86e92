"""``Catalog``: opens the catalog database, creates its tables, and keeps topologies,
the directory and the entity schemas (the other parts keep their own tables through
the same ``CatalogAccess``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from adapters.registry import redact_url
from adapters.sqlengine import create_sql_engine, sqlalchemy_url
from toolkit.catalog._entities import read_schemas, record_schema
from toolkit.catalog._metadata import CatalogAccess, utcnow
from toolkit.catalog._topology import StoreVersion, Topology, directory_table, store_table, topology_table
from toolkit.errors import CatalogError, TopologyError
from toolkit.model import EntitySchema

__all__ = ["Catalog"]

_CHUNK = 500
"""Keys per ``IN (...)``: under every backend's limit on bound parameters."""


class Catalog(CatalogAccess):
    """Reads and writes the catalog database. Thread-safe; one per Toolkit.

    Opening it creates every catalog table that is missing (``toolkit.catalog``).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            engine = create_sql_engine(sqlalchemy_url(url)[0], make_dirs=True)
        except ImportError as exc:
            raise CatalogError(f"catalog {redact_url(url)}: driver missing: {exc}") from None
        super().__init__(engine, url)
        self.create_tables()

    def close(self) -> None:
        self.engine.dispose()

    # -- topologies ------------------------------------------------------------------
    def topology(self, store: str, epoch: int | None = None) -> Topology | None:
        """The current topology of ``store`` (or the given epoch), or None if unknown."""
        stmt = sa.select(topology_table).where(topology_table.c.store == store)
        if epoch is None:
            stmt = stmt.order_by(topology_table.c.epoch.desc()).limit(1)
        else:
            stmt = stmt.where(topology_table.c.epoch == epoch)
        with self.reading(f"read the topology of {store!r}") as connection:
            row = connection.execute(stmt).first()
        return Topology.from_row(row) if row is not None else None

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
        with self.reading("list the topologies") as connection:
            return [Topology.from_row(row) for row in connection.execute(stmt)]

    def history(self, store: str) -> list[Topology]:
        """Every epoch of ``store``, oldest first."""
        stmt = sa.select(topology_table).where(topology_table.c.store == store).order_by(topology_table.c.epoch)
        with self.reading(f"read the history of {store!r}") as connection:
            return [Topology.from_row(row) for row in connection.execute(stmt)]

    def register(self, store: str, kind: str, shards: Mapping[str, str], router: Mapping[str, Any]) -> Topology:
        """Record epoch 1 of a new store; if the store exists, return its current topology.

        Safe when several processes start at once: the loser of the insert race reads
        the winner's topology.
        """
        existing = self.topology(store)
        if existing is not None:
            return existing
        topology = Topology(store, 1, kind, dict(shards), dict(router), "registered", utcnow())
        try:
            with self.writing(f"register store {store!r}") as connection:
                connection.execute(sa.insert(store_table).values(store=store, epoch=1, directory_version=0))
                connection.execute(sa.insert(topology_table).values(topology.values(utcnow())))
        except CatalogError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            found = self.topology(store)
            if found is None:
                raise
            return found
        return topology

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
        new = Topology(store, expected_epoch + 1, current.kind, dict(shards), dict(router), note, utcnow())
        with self.writing(f"advance store {store!r}") as connection:
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
            connection.execute(sa.insert(topology_table).values(new.values(utcnow())))
        return new

    def versions(self) -> dict[str, StoreVersion]:
        """Current epoch and directory version of every store, in one query."""
        with self.reading("read store versions") as connection:
            return {
                row.store: StoreVersion(row.epoch, row.directory_version)
                for row in connection.execute(sa.select(store_table))
            }

    # -- the directory ---------------------------------------------------------------
    def directory(self, store: str) -> dict[bytes, str]:
        """The whole key -> shard table of a directory-routed store."""
        stmt = sa.select(directory_table.c.key, directory_table.c.shard).where(directory_table.c.store == store)
        with self.reading(f"read the directory of {store!r}") as connection:
            return {bytes(row.key): row.shard for row in connection.execute(stmt)}

    def assign(self, store: str, entries: Mapping[bytes, str]) -> None:
        """Pin encoded keys to shards (insert or replace) and bump the directory version."""
        if not entries:
            return
        now = utcnow()
        with self.writing(f"update the directory of {store!r}") as connection:
            self._unpin(connection, store, list(entries))
            connection.execute(
                sa.insert(directory_table),
                [{"store": store, "key": key, "shard": shard, "updated_at": now} for key, shard in entries.items()],
            )
            self._bump_directory(connection, store)

    def unassign(self, store: str, keys: Iterable[bytes]) -> int:
        """Remove keys from the directory (they fall back to the fallback router)."""
        with self.writing(f"update the directory of {store!r}") as connection:
            removed = self._unpin(connection, store, list(keys))
            self._bump_directory(connection, store)
        return removed

    @staticmethod
    def _unpin(connection: Connection, store: str, keys: list[bytes]) -> int:
        removed = 0
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            removed += connection.execute(
                sa.delete(directory_table).where(directory_table.c.store == store, directory_table.c.key.in_(chunk))
            ).rowcount
        return removed

    @staticmethod
    def _bump_directory(connection: Connection, store: str) -> None:
        connection.execute(
            sa.update(store_table)
            .where(store_table.c.store == store)
            .values(directory_version=store_table.c.directory_version + 1)
        )

    # -- entity schemas --------------------------------------------------------------
    def record_schema(self, schema: EntitySchema) -> None:
        """Remember an entity's schema for its store (see ``toolkit.catalog._entities``)."""
        record_schema(self, schema)

    def schemas(self, store: str) -> list[EntitySchema]:
        """The recorded schemas of ``store``'s entities, by name."""
        return read_schemas(self, store)
