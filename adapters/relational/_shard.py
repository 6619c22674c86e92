"""``SqlShard``: one SQL shard's engine, tables and connections (ensure, drop, describe).

The half of ``RelationalAdapter`` that is not about rows, and what every operation
module builds on: the engine (``adapters.sqlengine``: psycopg 3 for PostgreSQL, WAL for
SQLite), the entity tables (``_tables``) defined once per adapter, the edge table once
it exists, and two ways to talk to the server, each translating driver errors through
``ERRORS``: ``_connect`` (a SQLAlchemy connection or transaction) and ``_raw`` (a pooled
DBAPI cursor for the compiled hot path).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from typing import Any, ClassVar, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from adapters.base import EXPIRES_FIELD, AdapterOptions, ExpiringScan, ShardInfo
from adapters.registry import redact_url
from adapters.relational._compiled import Compiled
from adapters.relational._edges import EdgeTable
from adapters.relational._errors import ERRORS
from adapters.relational._options import RelationalOptions
from adapters.relational._tables import TableSet, build_tableset, define_table
from adapters.sqlengine import create_sql_engine, sqlalchemy_url
from sharding.core.errors import ConfigError, StoreError, UnsupportedCapability
from sharding.core.model import EntitySchema

__all__ = ["SqlShard"]

_SCHEMA_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class SqlShard(ExpiringScan):
    """The connection and schema half of ``RelationalAdapter`` (see ``adapters.relational``)."""

    Options: ClassVar[type[AdapterOptions]] = RelationalOptions
    options: RelationalOptions

    def _open(self) -> None:
        self._prefix = self.options.namespace
        self.engine = self._create_engine()
        self.dialect = self.engine.dialect.name
        self._metadata = sa.MetaData()
        self._tables: dict[str, TableSet] = {}
        self._lock = threading.Lock()
        self._edge_name = f"{self._prefix}_ps_edges"
        self._edges: EdgeTable | None = None
        """Set once an edge table exists: deletes then remove the node's edges too."""
        self._detach: Compiled | None = None
        # psycopg: a lone statement runs in autocommit (see ``_raw``).
        self._single_autocommit = self.dialect == "postgresql" and self.engine.dialect.driver == "psycopg"

    def _create_engine(self) -> Engine:
        url, self.schema = sqlalchemy_url(self.url)
        if self.schema is not None and (url.startswith("sqlite") or not _SCHEMA_NAME.match(self.schema)):
            raise ConfigError(f"{redact_url(self.url)}: schema= is for PostgreSQL/MySQL and must be a plain name")
        options = self.options
        with ERRORS.translating(self.store, self.shard):
            return create_sql_engine(
                url,
                busy_timeout=options.busy_timeout,
                pool_size=options.pool_size,
                connect_timeout=options.connect_timeout,
            )

    # -- talking to the server ---------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self, key: Any = None, *, write: bool = False) -> Iterator[Connection]:
        """A connection (with ``write``: a transaction, committed on success); driver
        errors leave it as the toolkit's, naming the store, shard and ``key``."""
        with (
            ERRORS.translating(self.store, self.shard, key),
            self.engine.begin() if write else self.engine.connect() as connection,
        ):
            yield connection

    @contextlib.contextmanager
    def _raw(self, key: Any = None, *, write: bool = False, single: bool = False) -> Iterator[Any]:
        """A pooled DBAPI cursor; commits a write, and maps driver errors like SQLAlchemy does.

        ``single``: the caller runs exactly one statement. On PostgreSQL that statement
        then runs in autocommit (it is atomic on its own): one round trip instead of
        three (psycopg's BEGIN, the statement, then COMMIT, or for a read the ROLLBACK
        of the pool's reset-on-return). The connection leaves autocommit before it goes
        back to the pool, or is discarded if that fails, so every other user of the pool
        (``engine.begin()``, batches, multi-statement writes) keeps its transactions.
        """
        dialect = self.engine.dialect
        dbapi_error = dialect.loaded_dbapi.Error
        autocommit = single and self._single_autocommit
        with ERRORS.translating(self.store, self.shard, key):
            raw = self.engine.raw_connection()
            cursor = None
            try:
                if autocommit:
                    raw.dbapi_connection.autocommit = True  # type: ignore[union-attr]
                cursor = raw.cursor()
                yield cursor
                if write and not autocommit:
                    raw.commit()
            except dbapi_error as exc:
                disconnected = dialect.is_disconnect(exc, raw.dbapi_connection, cursor)
                if disconnected:
                    raw.invalidate(exc)
                else:
                    with contextlib.suppress(dbapi_error):
                        raw.rollback()
                raise DBAPIError.instance(
                    None, None, exc, dbapi_error, connection_invalidated=disconnected, dialect=dialect
                ) from exc
            finally:
                if cursor is not None:
                    with contextlib.suppress(dbapi_error):
                        cursor.close()
                if autocommit and raw.dbapi_connection is not None:
                    try:
                        raw.dbapi_connection.autocommit = False
                    except dbapi_error as exc:  # never pool a connection left in autocommit
                        raw.invalidate(exc)
                raw.close()

    # -- schema ----------------------------------------------------------------------
    def _table_name(self, schema: EntitySchema) -> str:
        return f"{self._prefix}{schema.name}"

    def _tableset(self, schema: EntitySchema) -> TableSet:
        found = self._tables.get(self._table_name(schema))
        if found is None:
            raise StoreError(f"table for {schema.name!r} not ensured", store=self.store, shard=self.shard)
        return found

    def ensure(self, schema: EntitySchema, *, with_token: bool) -> None:
        name = self._table_name(schema)
        with self._lock:
            if name in self._tables:
                return
            table = define_table(self._metadata, schema, name, self.schema, self.dialect, with_token=with_token)
            try:
                with ERRORS.translating(self.store, self.shard):
                    if self.schema is not None:
                        with self.engine.begin() as connection:
                            connection.execute(sa.schema.CreateSchema(self.schema, if_not_exists=True))
                    self._metadata.create_all(self.engine, tables=[table], checkfirst=True)
                    self._add_expires_column(table)
                    if self._edges is None and self._has_table(self._edge_name):
                        self._attach_edges(EdgeTable(self._edge_name, self.schema))
            except BaseException:
                # Forget the definition, so that the next call (a retry once the server is
                # back) defines the table afresh instead of finding it already in the metadata.
                self._metadata.remove(table)
                raise
            self._tables[name] = build_tableset(schema, table, self.engine.dialect, with_token=with_token)

    def _has_table(self, name: str) -> bool:
        return sa.inspect(self.engine).has_table(name, schema=self.schema)

    def _add_expires_column(self, table: sa.Table) -> None:
        """Tables created before TTL existed get the column (and its index) added."""
        present = {column["name"] for column in sa.inspect(self.engine).get_columns(table.name, schema=self.schema)}
        if EXPIRES_FIELD in present:
            return
        column_type = table.c[EXPIRES_FIELD].type.compile(dialect=self.engine.dialect)
        full_name = self.engine.dialect.identifier_preparer.format_table(table)
        with self.engine.begin() as connection:
            connection.exec_driver_sql(f"ALTER TABLE {full_name} ADD COLUMN {EXPIRES_FIELD} {column_type}")
            for index in table.indexes:
                if index.name and index.name.endswith("_ps_expires"):
                    index.create(connection, checkfirst=True)

    def _attach_edges(self, edges: EdgeTable) -> EdgeTable:
        """Use an existing edge table: from now on, deletes detach nodes too."""
        self._detach = Compiled(edges.detach_statement(), self.engine.dialect)
        self._edges = edges
        return edges

    def drop(self, schema: EntitySchema) -> None:
        """Drop the table, and the edges that touch its rows."""
        name = self._table_name(schema)
        with self._lock, ERRORS.translating(self.store, self.shard):
            if self._edges is not None and self._has_table(self._edge_name):
                with self.engine.begin() as connection:
                    self._edges.forget_entity(connection, schema.name)
            table = self._tables.pop(name, None)
            if table is not None:
                table.table.drop(self.engine, checkfirst=True)
                self._metadata.remove(table.table)
            else:
                sa.Table(name, sa.MetaData(), schema=self.schema).drop(self.engine, checkfirst=True)

    # -- health ----------------------------------------------------------------------
    def ping(self) -> None:
        with self._connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    def describe(self) -> ShardInfo:
        try:
            with self._connect() as connection:
                names = sa.inspect(connection).get_table_names(schema=self.schema)
                counts = {}
                for name in sorted(names):
                    if self._prefix and not name.startswith(self._prefix):
                        continue
                    table = sa.table(name, schema=self.schema)
                    counts[name.removeprefix(self._prefix)] = int(
                        connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                    )
                return ShardInfo(reachable=True, tables=counts, server=f"{self.dialect} {redact_url(self.url)}")
        except StoreError as exc:
            return ShardInfo(reachable=False, error=str(exc), server=redact_url(self.url))

    def close(self) -> None:
        self.engine.dispose()

    # -- dialect checks --------------------------------------------------------------
    def _require_dialect(self, capability: str, needs: str) -> None:
        """Refuse what only SQLite and PostgreSQL implement (``needs``: the SQL it takes)."""
        if self.dialect not in ("sqlite", "postgresql"):
            raise self._unsupported(f"{capability} (needs {needs})")

    def _unsupported(self, what: str) -> UnsupportedCapability:
        return UnsupportedCapability(
            f"{what} is implemented for SQLite and PostgreSQL, not {self.dialect}", store=self.store, shard=self.shard
        )
