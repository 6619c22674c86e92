"""The relational adapter: SQLAlchemy Core over SQLite (the embedded default),
PostgreSQL (psycopg 3) and MySQL/MariaDB.

Design choices, and why:

* Tables come from the entity declaration: scalar fields become typed columns, nested
  fields one JSON column each (JSONB on PostgreSQL), the key the primary key.
* Strings use the byte-order ``"C"`` collation on PostgreSQL, so ``ORDER BY`` and range
  filters agree with Python's ordering (which the fan-out merge and the range router
  rely on); SQLite's default BINARY collation already does.
* Upserts are the dialect's own (``ON CONFLICT DO UPDATE`` / ``ON DUPLICATE KEY``): one
  round trip, idempotent, safe to repeat during a rebalance copy.
* Hash-routed tables carry ``_ps_token`` (BIGINT, indexed with the key): reading a token
  range is an index range scan, not a full scan.
* Statements are built once per table and reused, so SQLAlchemy's compiled cache hits.
* Every SQLAlchemy/DBAPI exception is translated into ``toolkit.errors`` here.

The embedded default implements every capability the other kinds offer, on SQLite and
PostgreSQL (MySQL/MariaDB: TTL and partition ranges; the JSON, increment and graph
capabilities raise ``UnsupportedCapability`` there):

* TTL: a hidden nullable ``_ps_expires`` column (epoch seconds, client clock) on every
  table. Every read (get, get_many, find, count, scan, partition, ttl) and every write
  that needs an existing row (delete, update, increment) compares it in the same SQL
  statement, so an expired row is never seen. A plain put writes NULL (clearing an
  earlier expiry). Expired rows are purged by every ``put_ttl`` (one ``DELETE`` through
  a partial index on ``_ps_expires``, in the same transaction) and by ``purge_expired``.
  ``_ps_expires`` is returned only by ``scan_expiring``/``get_many_expiring`` (what a
  rebalance copies with, so TTLs move with their rows). Tables created before TTL get
  the column on ensure.
* NESTED_FILTERS and PARTIAL_UPDATE: see ``adapters._sql_json`` (all in SQL, paths and
  values as parameters). Ordering by a dotted path raises QueryError.
* ATOMIC_INCREMENT: ``UPDATE ... SET f = COALESCE(f, 0) + :amount ... RETURNING f``.
* PARTITION_RANGE: the shard key's value is the partition, the other key fields the
  clustering; served by the primary key or by ``ix_<table>_ps_shard``, which indexes
  (shard key, clustering...) when the shard key is not the key's prefix.
* GRAPH: see ``adapters._sql_graph`` (an edge table, recursive SQL). Deleting a row
  (delete, delete_many) deletes its edges in the same transaction, once this adapter
  knows the edge table exists (checked on ensure, set by the first relate); dropping a
  table deletes the edges of its entity. Expired rows are not returned as neighbours.

Layout: this module holds the tables, the hot path and the queries; ``_sql_core`` the
compiled statements and error translation; ``_sql_capabilities`` TTL, increment, update
and partitions; ``_sql_graph`` and ``_sql_json`` the graph and JSON SQL; ``_sql_ranges``
the whole-range checksum and delete a rebalance verifies and cleans up with.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import operator
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from adapters._sql_capabilities import RowCapabilities
from adapters._sql_core import DRIVER_ERRORS, EXPIRES_FIELD, NOW, Compiled, TableSet, translate_errors
from adapters._sql_graph import EdgeTable, GraphCapability
from adapters._sql_json import json_filter
from adapters._sql_ranges import RangeCapabilities
from adapters.base import TOKEN_FIELD, AdapterOptions, Capability, ExpiringScan, Filter, Query, Row, ShardInfo
from adapters.registry import redact_url
from adapters.sqlengine import create_sql_engine, sqlalchemy_url
from sharding.base import KeyRange, TokenRange
from sharding.core.errors import ConfigError, QueryError, StoreError, UnsupportedCapability
from sharding.core.model import EntitySchema, FieldSpec
from sharding.keys import MAX_TOKEN, encode_key

__all__ = ["DRIVER_ERRORS", "EXPIRES_FIELD", "RelationalAdapter", "translate_errors"]


_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

_IN_CHUNK = 500
"""Keys per ``IN (...)`` list: below every backend's parameter limit."""


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Datetimes stored as UTC instants on every dialect.

    Naive values are taken as UTC; values come back timezone-aware in UTC. On SQLite
    (which has no datetime type) they are fixed-width ISO strings, so text order is
    time order and range filters and ORDER BY stay correct.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(26))
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, not {type(value).__name__}")
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")
        return value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]
        return value.astimezone(dt.UTC)  # type: ignore[no-any-return]


def _column_type(spec: FieldSpec, *, keyish: bool) -> sa.types.TypeEngine[Any]:
    string: sa.types.TypeEngine[Any] = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
    if keyish:  # MySQL cannot index TEXT without a length
        string = string.with_variant(sa.String(255, collation="utf8mb4_bin"), "mysql", "mariadb")
    types: dict[str, sa.types.TypeEngine[Any]] = {
        "str": string,
        "int": sa.BigInteger(),
        "float": sa.Double(),
        "bool": sa.Boolean(),
        "bytes": sa.LargeBinary(),
        "datetime": UTCDateTime(),
        "date": sa.Date(),
        "decimal": sa.Numeric(asdecimal=True),
        "uuid": sa.Uuid(),
        "json": sa.JSON().with_variant(pg_dialect.JSONB(), "postgresql"),
    }
    return types[spec.type]


class RelationalOptions(AdapterOptions):
    """``[stores.NAME.options]`` of a SQL store."""

    pool_size: int | None = None
    """Connections kept per shard (PostgreSQL/MySQL; SQLAlchemy's default when unset)."""
    busy_timeout: float = 30
    """SQLite: seconds a writer waits for another connection's lock."""
    connect_timeout: int = 10
    """PostgreSQL: seconds to wait for a connection."""


class RelationalAdapter(RowCapabilities, GraphCapability, RangeCapabilities, ExpiringScan):
    """One shard in one SQL database. See the module docstring."""

    capabilities: ClassVar[Capability] = (
        Capability.TRANSACTIONS
        | Capability.TTL
        | Capability.NESTED_FILTERS
        | Capability.PARTIAL_UPDATE
        | Capability.ATOMIC_INCREMENT
        | Capability.PARTITION_RANGE
        | Capability.GRAPH
    )

    Options: ClassVar[type[AdapterOptions]] = RelationalOptions
    options: RelationalOptions

    def __init__(
        self, url: str, *, store: str, shard: str, options: Mapping[str, Any] | AdapterOptions | None = None
    ) -> None:
        super().__init__(url, store=store, shard=shard, options=options)
        # ``namespace``: a prefix for every table, so several apps (or tests) share a database.
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
        with translate_errors(self.store, self.shard):
            return create_sql_engine(
                url,
                busy_timeout=options.busy_timeout,
                pool_size=options.pool_size,
                connect_timeout=options.connect_timeout,
            )

    # -- schema ----------------------------------------------------------------------
    def _table_name(self, schema: EntitySchema) -> str:
        return f"{self._prefix}{schema.name}"

    def ensure(self, schema: EntitySchema, *, with_token: bool) -> None:
        name = self._table_name(schema)
        with self._lock:
            if name in self._tables:
                return
            table = self._define_table(schema, name, with_token=with_token)
            try:
                with translate_errors(self.store, self.shard):
                    if self.schema is not None:
                        with self.engine.begin() as connection:
                            connection.execute(sa.schema.CreateSchema(self.schema, if_not_exists=True))
                    self._metadata.create_all(self.engine, tables=[table], checkfirst=True)
                    self._add_expires_column(table)
                    if self._edges is None and sa.inspect(self.engine).has_table(self._edge_name, schema=self.schema):
                        self._attach_edges(EdgeTable(self._edge_name, self.schema))
            except BaseException:
                # Forget the definition, so that the next call (a retry once the server is
                # back) defines the table afresh instead of finding it already in the metadata.
                self._metadata.remove(table)
                raise
            self._tables[name] = self._statements(schema, table, with_token=with_token)

    def _define_table(self, schema: EntitySchema, name: str, *, with_token: bool) -> sa.Table:
        keyish = set(schema.key) | set(schema.shard_key) | {field for index in schema.indexes for field in index}
        columns: list[sa.Column[Any]] = [
            sa.Column(
                spec.name,
                _column_type(spec, keyish=spec.name in keyish),
                primary_key=spec.name in schema.key,
                nullable=spec.nullable and spec.name not in schema.key,
            )
            for spec in schema.fields
        ]
        if with_token:
            columns.append(sa.Column(TOKEN_FIELD, sa.BigInteger(), nullable=False))
        columns.append(sa.Column(EXPIRES_FIELD, sa.Double(), nullable=True))
        table = sa.Table(name, self._metadata, *columns, schema=self.schema)
        key_columns = tuple(table.c[field] for field in schema.key)
        if with_token:
            sa.Index(f"ix_{name}_ps_token", table.c[TOKEN_FIELD], *key_columns)
        if schema.shard_key != schema.key[: len(schema.shard_key)]:
            # (shard key, clustering...): shard-key range scans and partition reads.
            clustering = [field for field in schema.key if field not in schema.shard_key]
            sa.Index(f"ix_{name}_ps_shard", *(table.c[field] for field in (*schema.shard_key, *clustering)))
        for index in schema.indexes:
            sa.Index(f"ix_{name}_{'_'.join(index)}", *(table.c[field] for field in index))
        if self.dialect in ("sqlite", "postgresql"):  # partial: plain puts never touch it
            expiring = table.c[EXPIRES_FIELD].is_not(None)
            sa.Index(f"ix_{name}_ps_expires", table.c[EXPIRES_FIELD], sqlite_where=expiring, postgresql_where=expiring)
        return table

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

    def _statements(self, schema: EntitySchema, table: sa.Table, *, with_token: bool) -> TableSet:
        key_columns = tuple(table.c[field] for field in schema.key)
        read_columns = tuple(column for column in table.columns if column.name != EXPIRES_FIELD)
        expires = table.c[EXPIRES_FIELD]
        live = sa.or_(expires.is_(None), expires > sa.bindparam(NOW, type_=sa.Double()))
        by_key = sa.and_(*(column == sa.bindparam(f"k_{column.name}") for column in key_columns))
        get_stmt = sa.select(*read_columns).where(by_key, live)
        delete_stmt = table.delete().where(by_key, live)
        upsert_stmt = self._upsert_statement(table, key_columns, with_expiry=False)
        upsert_ttl_stmt = self._upsert_statement(table, key_columns, with_expiry=True)
        dialect = self.engine.dialect
        return TableSet(
            table=table,
            key_columns=key_columns,
            shard_columns=tuple(table.c[field] for field in schema.shard_key),
            data_columns=tuple(column.name for column in read_columns),
            read_columns=read_columns,
            with_token=with_token,
            get_stmt=get_stmt,
            delete_stmt=delete_stmt,
            upsert_stmt=upsert_stmt,
            upsert_ttl_stmt=upsert_ttl_stmt,
            fast_get=Compiled(get_stmt, dialect, list(read_columns)),
            fast_delete=Compiled(delete_stmt, dialect),
            fast_upsert=Compiled(upsert_stmt, dialect) if upsert_stmt is not None else None,
            fast_upsert_ttl=Compiled(upsert_ttl_stmt, dialect) if upsert_ttl_stmt is not None else None,
            fast_purge=Compiled(table.delete().where(expires <= sa.bindparam(NOW, type_=sa.Double())), dialect),
        )

    def _upsert_statement(self, table: sa.Table, key_columns: tuple[sa.Column[Any], ...], *, with_expiry: bool) -> Any:
        """The dialect's upsert. ``_ps_expires`` is a parameter with expiry, else NULL (cleared)."""
        values: dict[str, Any] = {
            column.name: sa.bindparam(column.name, type_=column.type)
            for column in table.columns
            if column.name != EXPIRES_FIELD
        }
        values[EXPIRES_FIELD] = sa.bindparam(EXPIRES_FIELD, type_=sa.Double()) if with_expiry else sa.null()
        non_key = [column for column in table.columns if column not in key_columns]
        if self.dialect in ("sqlite", "postgresql"):
            insert: Any = (sqlite_dialect.insert if self.dialect == "sqlite" else pg_dialect.insert)(table)
            insert = insert.values(values)
            return insert.on_conflict_do_update(
                index_elements=list(key_columns), set_={c.name: insert.excluded[c.name] for c in non_key}
            )
        if self.dialect in ("mysql", "mariadb"):
            my_insert = mysql_dialect.insert(table).values(values)
            return my_insert.on_duplicate_key_update({c.name: my_insert.inserted[c.name] for c in non_key})
        return None  # generic fallback: delete + insert in one transaction

    def _tableset(self, schema: EntitySchema) -> TableSet:
        found = self._tables.get(self._table_name(schema))
        if found is None:
            raise StoreError(f"table for {schema.name!r} not ensured", store=self.store, shard=self.shard)
        return found

    def drop(self, schema: EntitySchema) -> None:
        """Drop the table, and the edges that touch its rows."""
        name = self._table_name(schema)
        with self._lock, translate_errors(self.store, self.shard):
            if self._edges is not None and sa.inspect(self.engine).has_table(self._edge_name, schema=self.schema):
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
        with translate_errors(self.store, self.shard), self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    def describe(self) -> ShardInfo:
        try:
            with translate_errors(self.store, self.shard), self.engine.connect() as connection:
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

    # -- the hot path ----------------------------------------------------------------
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
        with translate_errors(self.store, self.shard, key):
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

    # -- rows ------------------------------------------------------------------------
    @staticmethod
    def _key_params(tables: TableSet, key: Any) -> dict[str, Any]:
        """Parameters of the compiled by-key statements: the key and the time expiry is checked at."""
        if len(tables.key_columns) == 1:
            return {f"k_{tables.key_columns[0].name}": key, NOW: time.time()}
        params = {f"k_{column.name}": part for column, part in zip(tables.key_columns, key, strict=True)}
        params[NOW] = time.time()
        return params

    def _row_params(self, tables: TableSet, row: Row) -> dict[str, Any]:
        try:
            return {name: row[name] for name in tables.data_columns}
        except KeyError as exc:
            raise QueryError(f"row for {tables.table.name} lacks field {exc.args[0]!r}") from None

    def put(self, schema: EntitySchema, row: Row) -> None:
        tables = self._tableset(schema)
        fast = tables.fast_upsert
        if fast is None:
            params = self._row_params(tables, row)
            with translate_errors(self.store, self.shard, schema.key_of(row)), self.engine.begin() as connection:
                self._upsert(connection, tables, [params])
            return
        try:
            values = fast.params(row)  # straight from the row: no intermediate dict
        except KeyError as exc:
            raise QueryError(f"row for {tables.table.name} lacks field {exc.args[0]!r}") from None
        with self._raw(schema.key_of(row), write=True, single=True) as cursor:
            cursor.execute(fast.sql, values)

    def put_many(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        if not rows:
            return 0
        tables = self._tableset(schema)
        fast = tables.fast_upsert
        if fast is None:
            unique = {schema.key_of(row): self._row_params(tables, row) for row in rows}
            with translate_errors(self.store, self.shard), self.engine.begin() as connection:
                self._upsert(connection, tables, list(unique.values()))
            return len(unique)
        try:
            params = fast.many(rows)
        except KeyError as exc:
            raise QueryError(f"row for {tables.table.name} lacks field {exc.args[0]!r}") from None
        # Executed in order, so the last write of a key within one batch wins, as with puts.
        with self._raw(write=True) as cursor:
            cursor.executemany(fast.sql, params)
        if len(schema.key) == 1:
            return len(set(map(operator.itemgetter(schema.key[0]), rows)))
        return len({schema.key_of(row) for row in rows})

    def _upsert(self, connection: Connection, tables: TableSet, params: list[dict[str, Any]]) -> None:
        if tables.upsert_stmt is not None:
            connection.execute(tables.upsert_stmt, params)
            return
        for row in params:
            key = tuple(row[column.name] for column in tables.key_columns)
            connection.execute(tables.table.delete().where(tables.key_clause(key if len(key) > 1 else key[0])))
        connection.execute(tables.table.insert(), params)

    def get(self, schema: EntitySchema, key: Any) -> Row | None:
        tables = self._tableset(schema)
        fast = tables.fast_get
        with self._raw(key, single=True) as cursor:
            cursor.execute(fast.sql, fast.params(self._key_params(tables, key)))
            found = cursor.fetchone()
            return fast.row(found, cursor.description) if found is not None else None

    def get_many(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        tables = self._tableset(schema)
        rows: list[Row] = []
        now = time.time()
        with translate_errors(self.store, self.shard), self.engine.connect() as connection:
            for start in range(0, len(keys), _IN_CHUNK):
                chunk = keys[start : start + _IN_CHUNK]
                result = connection.execute(tables.select().where(tables.keys_clause(chunk), tables.live(now)))
                rows.extend(dict(row) for row in result.mappings())
        return rows

    def delete(self, schema: EntitySchema, key: Any) -> bool:
        """Delete the row (and, with GRAPH in use, its edges, in the same transaction)."""
        tables = self._tableset(schema)
        fast = tables.fast_delete
        with self._raw(key, write=True) as cursor:
            cursor.execute(fast.sql, fast.params(self._key_params(tables, key)))
            deleted = bool(cursor.rowcount)
            detach = self._detach
            if deleted and detach is not None:
                cursor.execute(detach.sql, detach.params({"entity": schema.name, "key": encode_key(key)}))
            return deleted

    def delete_many(self, schema: EntitySchema, keys: Sequence[Any]) -> int:
        """Delete the rows (and their edges, as ``delete`` does)."""
        tables = self._tableset(schema)
        deleted = 0
        now = time.time()
        with translate_errors(self.store, self.shard), self.engine.begin() as connection:
            for start in range(0, len(keys), _IN_CHUNK):
                chunk = list(dict.fromkeys(keys[start : start + _IN_CHUNK]))
                stmt = tables.table.delete().where(tables.keys_clause(chunk), tables.live(now))
                deleted += connection.execute(stmt).rowcount
            if self._edges is not None:
                detach = self._edges.detach_statement()
                for key in dict.fromkeys(keys):
                    connection.execute(detach, {"entity": schema.name, "key": encode_key(key)})
        return deleted

    # -- queries ---------------------------------------------------------------------
    def _column(self, schema: EntitySchema, tables: TableSet, field: str) -> sa.Column[Any]:
        """The column a query orders by: a scalar field (not a JSON field or a path into one)."""
        if "." in field and field.split(".", 1)[0] in schema.field_names:
            raise QueryError(f"{schema.name}: ordering by a nested path ({field!r}) is not supported")
        if field not in schema.field_names:
            raise QueryError(f"{schema.name}: unknown field {field!r} (fields: {', '.join(schema.field_names)})")
        if schema.field(field).type == "json":
            raise QueryError(f"{schema.name}.{field}: is a nested (JSON) field; it cannot order a query")
        return tables.table.c[field]

    def _where(self, schema: EntitySchema, tables: TableSet, filters: Sequence[Filter]) -> list[sa.ColumnElement[bool]]:
        return [self._condition(schema, tables, item) for item in filters]

    def _condition(self, schema: EntitySchema, tables: TableSet, item: Filter) -> sa.ColumnElement[bool]:
        name, *steps = item.field.split(".")
        if name not in schema.field_names:
            raise QueryError(f"{schema.name}: unknown field {name!r} (fields: {', '.join(schema.field_names)})")
        if schema.field(name).type == "json":
            if self.dialect not in ("sqlite", "postgresql"):
                raise UnsupportedCapability(
                    f"filters on JSON fields are not supported on {self.dialect}", store=self.store, shard=self.shard
                )
            return json_filter(self.dialect, tables.table.c[name], steps, item.op, item.value)
        if steps:
            raise QueryError(f"{schema.name}.{name} is {schema.field(name).type}, not a nested field: {item.field!r}")
        if item.op == "contains":
            raise QueryError(f"{schema.name}.{name}: 'contains' needs a JSON array field")
        return _scalar_condition(tables.table.c[name], item.op, item.value)

    def _order(self, schema: EntitySchema, tables: TableSet, query: Query) -> list[Any]:
        order: list[Any] = []
        seen: set[str] = set()
        for item in query.order_by:
            column = self._column(schema, tables, item.field)
            seen.add(item.field)
            order.append(column.desc().nulls_last() if item.descending else column.asc().nulls_first())
        order.extend(column.asc() for column in tables.key_columns if column.name not in seen)
        return order

    def find(self, schema: EntitySchema, query: Query) -> list[Row]:
        tables = self._tableset(schema)
        stmt = tables.select().where(tables.live(time.time()), *self._where(schema, tables, query.filters))
        stmt = stmt.order_by(*self._order(schema, tables, query))
        if query.limit is not None:
            stmt = stmt.limit(query.limit)
        with translate_errors(self.store, self.shard), self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(stmt).mappings()]

    def count(self, schema: EntitySchema, filters: Sequence[Filter] = ()) -> int:
        tables = self._tableset(schema)
        where = self._where(schema, tables, filters)
        stmt = sa.select(sa.func.count()).select_from(tables.table).where(tables.live(time.time()), *where)
        with translate_errors(self.store, self.shard), self.engine.connect() as connection:
            return int(connection.execute(stmt).scalar_one())

    def _scan_rows(
        self,
        schema: EntitySchema,
        tokens: TokenRange | None,
        keys: KeyRange | None,
        batch_size: int,
        *,
        expiring: bool,
    ) -> Iterator[list[Row]]:
        """``scan``; with ``expiring``, rows also carry ``_ps_expires`` (``scan_expiring``)."""
        tables = self._tableset(schema)
        table = tables.table
        if batch_size < 1:
            raise QueryError(f"batch_size must be positive, not {batch_size}")
        bounds: list[sa.ColumnElement[bool]] = []
        order_columns: list[sa.Column[Any]] = list(tables.key_columns)
        if tokens is not None:
            if not tables.with_token:
                raise QueryError(f"{schema.name}: a token range scan needs a hash-routed store")
            token = table.c[TOKEN_FIELD]
            bounds.append(token >= tokens.start)
            if tokens.end <= MAX_TOKEN:  # a range may end one past MAX_TOKEN (2**63): no upper bound
                bounds.append(token < tokens.end)
            order_columns = [token, *tables.key_columns]
        if keys is not None:
            shard = sa.tuple_(*tables.shard_columns) if len(tables.shard_columns) > 1 else tables.shard_columns[0]
            if keys.lower is not None:
                bounds.append(shard >= keys.lower)
            if keys.upper is not None:
                bounds.append(shard < keys.upper)
        position: tuple[Any, ...] | None = None
        while True:
            stmt = (sa.select(*tables.read_columns, tables.expires) if expiring else tables.select()).where(
                tables.live(time.time()), *bounds
            )
            if position is not None:
                after = (
                    sa.literal(value, type_=column.type) for value, column in zip(position, order_columns, strict=True)
                )
                stmt = stmt.where(sa.tuple_(*order_columns) > sa.tuple_(*after))
            stmt = stmt.order_by(*order_columns).limit(batch_size)
            with translate_errors(self.store, self.shard), self.engine.connect() as connection:
                batch = [dict(row) for row in connection.execute(stmt).mappings()]
            if not batch:
                return
            yield batch
            if len(batch) < batch_size:
                return
            position = tuple(batch[-1][column.name] for column in order_columns)


def _scalar_condition(column: sa.Column[Any], op: str, value: Any) -> sa.ColumnElement[bool]:
    """``column op value`` with Python's null semantics (see ``Filter.matches``)."""
    if op == "eq":
        return column.is_(None) if value is None else column == value
    if op == "ne":  # null != 'x' is true in Python, so nulls are kept
        return column.is_not(None) if value is None else sa.or_(column != value, column.is_(None))
    if op == "in":
        values = [item for item in value if item is not None]
        clause = column.in_(values) if values else sa.false()
        return sa.or_(clause, column.is_(None)) if None in list(value) else clause
    if value is None:
        return sa.false()  # ordering comparisons never match null
    comparisons: dict[str, Callable[[Any, Any], Any]] = {
        "lt": operator.lt,
        "le": operator.le,
        "gt": operator.gt,
        "ge": operator.ge,
    }
    return comparisons[op](column, value)  # type: ignore[no-any-return]
