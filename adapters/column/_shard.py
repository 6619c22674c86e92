"""One shard's keyspace: connection, tables, statements, schema and health.

``CqlShard`` is what every column operation stands on: the shared session, the
keyspace (created on first ``ensure`` if missing), each entity's ``Table``, and the
ways statements run. Every statement is prepared once (per table, or per query shape
in a small LRU cache) and executed with bound values, so keys and values that look
like CQL are data. Scans page with the driver's paging state: it resumes after the
last row returned, in (partition token, clustering) order, so it is keyset pagination,
never an offset, and a row written during a scan is seen at most once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Final

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import BoundStatement, PreparedStatement

from adapters._options import AdapterOptions, parse_options
from adapters.base import ExpiringScan, ShardInfo
from adapters.column._connection import Connection, parse_url
from adapters.column._errors import ERRORS
from adapters.column._options import CQL_NAME, ColumnOptions
from adapters.column._table import Table, design, now_micros
from adapters.registry import redact_url
from sharding.core.errors import ConfigError, StoreError
from sharding.core.model import EntitySchema

__all__ = ["CONCURRENCY", "CqlShard"]

CONCURRENCY: Final = 64
"""Statements in flight at once for the many-row calls (``put_many``, ``get_many``...)."""
_FIND_CACHE: Final = 256


class CqlShard(ExpiringScan):
    """The keyspace of one shard, and how statements run in it (see the module docstring)."""

    Options: ClassVar[type[AdapterOptions]] = ColumnOptions
    options: ColumnOptions

    def _open(self) -> None:
        target = parse_url(self.url)
        if target.query:  # URL parameters are options too; the store's own win
            merged = {**dict(target.query), **self.options.model_dump(exclude_unset=True)}
            self.options = parse_options(ColumnOptions, merged, store=self.store, shard=self.shard)
        self._prefix = self.options.namespace
        self.keyspace = target.keyspace
        self._connection = Connection(target, self.options, store=self.store, shard=self.shard)
        self._tables: dict[str, Table] = {}
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- connection ------------------------------------------------------------------
    @property
    def session(self) -> Session:
        """The shared session, connected on first use (so building adapters is cheap)."""
        return self._connection.shared.session

    def close(self) -> None:
        with self._lock:
            self._tables.clear()
        self._connection.release()

    def _execute(self, statement: Any, params: Sequence[Any] = (), key: Any = None, **kwargs: Any) -> Any:
        with ERRORS.translating(self.store, self.shard, key):
            return self.session.execute(statement, params, **kwargs)

    def _concurrent(self, statement: PreparedStatement, params: Sequence[Sequence[Any]]) -> list[Any]:
        """Run one prepared statement for many parameter lists, ``CONCURRENCY`` at a time."""
        if not params:
            return []
        with ERRORS.translating(self.store, self.shard):
            results = execute_concurrent_with_args(self.session, statement, params, concurrency=CONCURRENCY)
        return [result for _, result in results]

    def _prepared(self, table: Table, cql: str) -> PreparedStatement:
        """A prepared statement for a query shape, from a small per-table LRU cache."""
        with self._lock:
            found = table.cache.get(cql)
            if found is not None:
                table.cache.move_to_end(cql)
                return found
        with ERRORS.translating(self.store, self.shard):
            prepared = self.session.prepare(cql)
        with self._lock:
            table.cache[cql] = prepared
            while len(table.cache) > _FIND_CACHE:
                table.cache.popitem(last=False)
        return prepared

    def _bound(self, table: Table, cql: str, params: Sequence[Any], fetch_size: int) -> BoundStatement:
        """The cached statement bound to ``params``, with its own page size (thread-safe)."""
        statement = self._prepared(table, cql)
        with ERRORS.translating(self.store, self.shard):
            bound = statement.bind(params)
        bound.fetch_size = fetch_size
        return bound

    def _pages(
        self, table: Table, cql: str, params: Sequence[Any], fetch_size: int
    ) -> Iterator[tuple[list[Sequence[Any]], int]]:
        """Each server page of a SELECT, with the instant it was read at (for expiry).

        Resumes from the paging state (keyset, no offset); the driver is not called
        while the caller holds a page.
        """
        statement = self._bound(table, cql, params, fetch_size)
        paging_state: bytes | None = None
        while True:
            with ERRORS.translating(self.store, self.shard):
                result = self.session.execute(statement, paging_state=paging_state)
                page = list(result.current_rows)
            yield page, now_micros()
            paging_state = result.paging_state
            if paging_state is None:
                return

    # -- schema ----------------------------------------------------------------------
    def _table_name(self, schema: EntitySchema) -> str:
        """The entity's table name, checked once per entity name (every call looks it up)."""
        name = self._names.get(schema.name)
        if name is None:
            name = f"{self._prefix}{schema.name}".lower()
            if not CQL_NAME.match(name):
                raise ConfigError(f"{self.store}: table name {name!r} is not a valid Cassandra name (at most 48)")
            self._names[schema.name] = name
        return name

    def _ensure_keyspace(self) -> None:
        shared = self._connection.shared
        if self.keyspace in shared.keyspaces:
            return
        cql = (
            f"CREATE KEYSPACE IF NOT EXISTS {self.keyspace} WITH replication = {self.options.replication_cql}"
            " AND durable_writes = true"
        )
        with ERRORS.translating(self.store, self.shard):
            if self.keyspace not in shared.session.cluster.metadata.keyspaces:
                shared.session.execute(cql)
        shared.keyspaces.add(self.keyspace)

    def ensure(self, schema: EntitySchema, *, with_token: bool) -> None:
        name = self._table_name(schema)
        if name in self._tables:
            return
        self._ensure_keyspace()
        planned = design(schema, self.keyspace, name, with_token=with_token)
        with ERRORS.translating(self.store, self.shard):
            self.session.execute(planned.create_table())
            # The indexes are independent schema changes: send them together, then wait.
            pending = [self.session.execute_async(cql) for cql in planned.create_indexes()]
            for future in pending:
                future.result()
            table = planned.prepare(self.session.prepare)
        with self._lock:
            self._tables[name] = table

    def _table(self, schema: EntitySchema) -> Table:
        """The entity's ensured table (every row call starts here: one dict lookup)."""
        try:
            return self._tables[self._table_name(schema)]
        except KeyError:
            raise StoreError(f"table for {schema.name!r} not ensured", store=self.store, shard=self.shard) from None

    def drop(self, schema: EntitySchema) -> None:
        name = self._table_name(schema)
        with self._lock:
            self._tables.pop(name, None)
        self._execute(f"DROP TABLE IF EXISTS {self.keyspace}.{name}")

    # -- health ----------------------------------------------------------------------
    def ping(self) -> None:
        self._execute("SELECT release_version FROM system.local")

    def describe(self) -> ShardInfo:
        server = f"cassandra {redact_url(self.url)}"
        try:
            release = self._execute("SELECT release_version FROM system.local").one()
            server = f"cassandra {release[0]} {redact_url(self.url)}"
            names = self._execute(
                "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (self.keyspace,)
            )
            counts: dict[str, int] = {}
            for (name,) in names:
                if self._prefix and not name.startswith(self._prefix.lower()):
                    continue
                found = self._execute(f"SELECT COUNT(*) FROM {self.keyspace}.{name}").one()
                counts[name.removeprefix(self._prefix.lower())] = int(found[0])
            return ShardInfo(reachable=True, tables=counts, server=server)
        except (StoreError, ConfigError) as exc:
            return ShardInfo(reachable=False, error=str(exc), server=server)
