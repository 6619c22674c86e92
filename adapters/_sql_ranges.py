"""Whole token/key ranges on the SQL server: a checksum and a delete that read no rows back,
and a copy that moves rows as stored.

A mixin of ``RelationalAdapter`` (see ``Adapter.range_checksum``/``delete_range`` for the
contract). They exist for the rebalance: its verify compares a moving span on two
shards, and its cleanup deletes the span from the old owner. Done row by row through
Python, both cost more than the copy itself; done here they cost one aggregate and a few
``DELETE`` statements. The copy itself spends most of its time decoding and encoding
values it only passes on; between two SQLite shards it does not have to.

* ``range_checksum``: ``count(*)`` and a 64-bit hash of every live row's stored
  fields. PostgreSQL sums (mod 2**64) a hash of each row's text
  (``md5(ROW(...)::text)``, first 16 hex digits). SQLite, which has no hash function,
  renders each row in SQL (``quote()`` of every value, which is exact: text quoted and
  escaped, blobs in hex, floats with 20 significant digits) and a small aggregate
  registered on the connection hashes those texts in key order (blake2b-64 over the
  sequence, fed a few thousand rows at a time), so Python does one list append per row
  (the database runs in this process, so that is still "where the rows are"). The
  ``method`` names the dialect, the hash and the table layout, so only two shards with
  the same expression over the same columns compare; the caller treats any difference,
  including a different method, as "compare row by row", so a representation that
  differs for equal rows (another session time zone, JSON written with another key
  order, rows met in another order) costs time, never correctness.
* ``stored_layout``/``scan_stored``/``put_stored``: a range copied as the database
  stores it, so a row costs neither a decode nor an encode. SQLite: values come back
  untouched (the JSON text, the 0/1 of a boolean, a datetime's ISO text) and are bound
  again unchanged into the same upsert with expiry, in the order that statement binds
  them; only the token is recomputed, from the decoded shard key. PostgreSQL: one
  binary ``COPY ... TO STDOUT`` of the span, whose fields psycopg passes on as opaque
  bytes into a binary ``COPY`` to a temporary table on the target, merged by one
  ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` per batch (an upsert: a rerun
  converges); the token is copied as stored (a fixed hash of the shard key). The
  layout names the columns and their types (on PostgreSQL as the server's catalog has
  them, and its major version): two shards agree only if a stored value means the same
  thing on both.
* ``delete_range``: one ``DELETE ... WHERE range`` (each index page rewritten once: on a
  large table, batches would rewrite the same pages of the token index again and
  again), or with ``batch_size`` ``DELETE ... WHERE key IN (SELECT key ... LIMIT n)``
  until fewer than n go, for callers that prefer short transactions. Refused (None) on
  a shard with an edge table, where deleting a node must delete its edges too (the row
  path does that), and on dialects other than SQLite and PostgreSQL.

Private: import ``adapters.relational``.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import typing
from collections.abc import Iterator, Sequence
from typing import Any, Final

import sqlalchemy as sa

from adapters._sql_core import SqlHost, TableSet, translate_errors
from adapters.base import TOKEN_FIELD, RangeChecksum
from sharding.base import KeyRange, TokenRange
from sharding.core.errors import QueryError
from sharding.core.model import EntitySchema
from sharding.keys import MAX_TOKEN, token

__all__ = ["RangeCapabilities"]

_SQLITE_AGGREGATE: Final = "ps_range_checksum"
_MODULUS: Final = 2**64
_SQLITE_CACHE_KIB: Final = 64 * 1024


class _SqliteChecksum:
    """The SQLite aggregate: blake2b-64 of the rows' texts in the order they arrive.

    Rows are buffered and hashed a few thousand at a time (one C call per chunk instead
    of one hash per row); each row ends with a separator no ``quote()`` output contains
    unquoted, so chunk boundaries do not change the result.
    """

    CHUNK: Final = 4096

    def __init__(self) -> None:
        self.hasher = hashlib.blake2b(digest_size=8)
        self.rows: list[str] = []

    def step(self, row: str) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.rows.append("")
            self.hasher.update("\x1e".join(self.rows).encode())
            self.rows.clear()

    def finalize(self) -> str:
        self._flush()
        return self.hasher.hexdigest()  # text: SQLite integers are signed 64-bit


@contextlib.contextmanager
def _roomy_cache(dialect: str, driver_connection: Any) -> Iterator[None]:
    """On SQLite, a page cache of ``_SQLITE_CACHE_KIB`` for one large write transaction.

    A range delete or a stored-copy batch touches rows in key order but the token index
    in hash order, i.e. nearly every page of a large table's token index. With SQLite's
    default 2 MiB cache, dirty pages spill to the WAL in the middle of the transaction
    and are written again when touched again (measured: deleting 20,000 rows from a
    500,000-row shard 0.43 s, with room for the pages 0.16-0.23 s). The setting is the
    connection's, so the previous one is restored before the pooled connection is reused.
    """
    if dialect != "sqlite":
        yield
        return
    (previous,) = driver_connection.execute("PRAGMA cache_size").fetchone()
    driver_connection.execute(f"PRAGMA cache_size = -{_SQLITE_CACHE_KIB}")
    try:
        yield
    finally:
        driver_connection.execute(f"PRAGMA cache_size = {int(previous)}")


class RangeCapabilities(SqlHost):
    """``range_checksum`` and ``delete_range`` for SQLite and PostgreSQL."""

    def _range_bounds(
        self, schema: EntitySchema, tables: TableSet, tokens: TokenRange | None, keys: KeyRange | None
    ) -> list[sa.ColumnElement[bool]]:
        """The WHERE clauses of a token or shard-key range (as ``scan`` reads it)."""
        table = tables.table
        bounds: list[sa.ColumnElement[bool]] = []
        if tokens is not None:
            if not tables.with_token:
                raise QueryError(f"{schema.name}: a token range needs a hash-routed store")
            token = table.c[TOKEN_FIELD]
            bounds.append(token >= tokens.start)
            if tokens.end <= MAX_TOKEN:  # a range may end at 2**63: no upper bound then
                bounds.append(token < tokens.end)
        if keys is not None:
            columns = tables.shard_columns
            shard = sa.tuple_(*columns) if len(columns) > 1 else columns[0]
            if keys.lower is not None:
                bounds.append(shard >= keys.lower)
            if keys.upper is not None:
                bounds.append(shard < keys.upper)
        return bounds

    def _layout(self, schema: EntitySchema, tables: TableSet) -> str:
        """Dialect, hash and column types: what must match for two checksums to compare."""
        dialect = self.engine.dialect
        columns = ",".join(
            f"{name}:{tables.table.c[name].type.compile(dialect=dialect)}" for name in schema.field_names
        )
        version = "v2" if self.dialect == "sqlite" else "v1"  # v2: SQLite's ordered quote() hash
        return f"{self.dialect}/{version}/{hashlib.sha1(columns.encode()).hexdigest()[:12]}"

    def range_checksum(
        self,
        schema: EntitySchema,
        *,
        tokens: TokenRange | None = None,
        keys: KeyRange | None = None,
        now: float | None = None,
    ) -> RangeChecksum | None:
        if self.dialect not in ("sqlite", "postgresql"):
            return None
        tables = self._tableset(schema)
        where = [tables.live(time.time() if now is None else now), *self._range_bounds(schema, tables, tokens, keys)]
        columns = [tables.table.c[name] for name in schema.field_names]
        quote = self.engine.dialect.identifier_preparer.quote
        stmt: Any
        if self.dialect == "sqlite":
            # Ordered by key (after the token for token ranges: the token index's order),
            # a total order, so equal rows arrive in the same order on both shards. An
            # aggregate over an ordered subquery is never flattened, so the order holds.
            row_text = " || ',' || ".join(f"quote({quote(column.name)})" for column in columns)
            order = list(tables.key_columns)
            if tokens is not None:
                order = [tables.table.c[TOKEN_FIELD], *order]
            rows = (
                sa.select(sa.literal_column(row_text, sa.String()).label("row"))
                .select_from(tables.table)
                .where(*where)
                .order_by(*order)
                .subquery()
            )
            stmt = sa.select(sa.func.count(), getattr(sa.func, _SQLITE_AGGREGATE)(rows.c.row, type_=sa.String()))
        else:
            row_text = f"ROW({', '.join(quote(column.name) for column in columns)})::text"
            row_hash = f"('x' || substr(md5({row_text}), 1, 16))::bit(64)::bigint"
            digest = sa.literal_column(f"coalesce(sum(({row_hash})::numeric), 0)::text", sa.String())
            stmt = sa.select(sa.func.count(), digest).select_from(tables.table).where(*where)
        with translate_errors(self.store, self.shard), self.engine.connect() as connection:
            if self.dialect == "sqlite":
                driver = typing.cast(Any, connection.connection.driver_connection)
                driver.create_aggregate(_SQLITE_AGGREGATE, 1, _SqliteChecksum)
            count, total = connection.execute(stmt).one()
        # SQLite's aggregate answers in hex; PostgreSQL the (signed) bigints' exact sum.
        checksum = int(total or "0", 16 if self.dialect == "sqlite" else 10) % _MODULUS
        return RangeChecksum(self._layout(schema, tables), int(count), checksum)

    def delete_range(
        self,
        schema: EntitySchema,
        *,
        tokens: TokenRange | None = None,
        keys: KeyRange | None = None,
        batch_size: int | None = None,
    ) -> int | None:
        if self.dialect not in ("sqlite", "postgresql"):
            return None
        if batch_size is not None and batch_size < 1:
            raise QueryError(f"batch_size must be positive, not {batch_size}")
        if typing.cast(Any, self).may_have_edges(schema):  # GraphCapability: nodes take their edges along
            return None
        tables = self._tableset(schema)
        bounds = self._range_bounds(schema, tables, tokens, keys)
        key_columns = tables.key_columns
        if batch_size is None:  # one statement: every index page is rewritten once, not once per batch
            with (
                translate_errors(self.store, self.shard),
                self.engine.begin() as connection,
                _roomy_cache(self.dialect, connection.connection.driver_connection),
            ):
                return int(connection.execute(tables.table.delete().where(*bounds)).rowcount)
        chosen = sa.select(*key_columns).where(*bounds).limit(batch_size)
        target = sa.tuple_(*key_columns) if len(key_columns) > 1 else key_columns[0]
        stmt = tables.table.delete().where(target.in_(chosen))
        deleted = 0
        while True:  # one short transaction per batch: writers of other keys are not held up
            with translate_errors(self.store, self.shard), self.engine.begin() as connection:
                count = connection.execute(stmt).rowcount
            deleted += count
            if count < batch_size:
                return deleted

    # -- stored-form copy (SQLite, PostgreSQL) ---------------------------------------
    def _stored_columns(self, tables: TableSet) -> list[str]:
        """The columns of a stored row, in order: on SQLite the order the upsert with
        expiry binds them, on PostgreSQL the table's (fields, token, expiry)."""
        if self.dialect == "postgresql":
            return [column.name for column in tables.table.columns]
        fast = tables.fast_upsert_ttl
        if fast is None:
            raise self._unsupported("a stored-form copy")
        return [name for name, _ in fast.binds]

    def stored_layout(self, schema: EntitySchema) -> str | None:
        if self.dialect == "postgresql":
            return self._pg_stored_layout(self._tableset(schema))
        if self.dialect != "sqlite":
            return None
        tables = self._tableset(schema)
        if tables.fast_upsert_ttl is None:
            return None
        dialect = self.engine.dialect
        columns = ",".join(
            f"{name}:{tables.table.c[name].type.compile(dialect=dialect)}" for name in self._stored_columns(tables)
        )
        return f"sqlite/stored/v1/{hashlib.sha1(columns.encode()).hexdigest()[:12]}"

    def scan_stored(
        self,
        schema: EntitySchema,
        *,
        tokens: TokenRange | None = None,
        keys: KeyRange | None = None,
        batch_size: int = 500,
    ) -> Iterator[list[tuple[Any, ...]]]:
        if self.stored_layout(schema) is None:
            raise self._unsupported("a stored-form copy")
        if batch_size < 1:
            raise QueryError(f"batch_size must be positive, not {batch_size}")
        if self.dialect == "postgresql":
            yield from self._pg_scan_stored(schema, tokens, keys, batch_size)
            return
        tables = self._tableset(schema)
        table = tables.table
        raw = sa.types.NullType()  # no result processor: values as SQLite holds them
        selected = [sa.type_coerce(table.c[name], raw).label(name) for name in self._stored_columns(tables)]
        order = list(tables.key_columns)
        if tokens is not None:
            order = [table.c[TOKEN_FIELD], *order]
        where = self._range_bounds(schema, tables, tokens, keys)
        positions = [self._stored_columns(tables).index(column.name) for column in order]
        last: tuple[Any, ...] | None = None
        while True:
            stmt = sa.select(*selected).where(tables.live(time.time()), *where)
            if last is not None:  # keyset pagination on the stored values themselves
                after = [sa.literal(value, raw) for value in last]
                stmt = stmt.where(sa.tuple_(*(sa.type_coerce(c, raw) for c in order)) > sa.tuple_(*after))
            stmt = stmt.order_by(*order).limit(batch_size)
            with translate_errors(self.store, self.shard), self.engine.connect() as connection:
                result = connection.execute(stmt)
                batch: list[tuple[Any, ...]] = list(result.cursor.fetchall())  # the driver's tuples, no Row objects
                result.close()
            if not batch:
                return
            yield batch
            if len(batch) < batch_size:
                return
            last = tuple(batch[-1][position] for position in positions)

    def put_stored(self, schema: EntitySchema, rows: Sequence[tuple[Any, ...]]) -> int:
        if self.stored_layout(schema) is None:
            raise self._unsupported("a stored-form copy")
        if not rows:
            return 0
        tables = self._tableset(schema)
        if self.dialect == "postgresql":
            return self._pg_put_stored(tables, rows)
        fast = tables.fast_upsert_ttl
        assert fast is not None  # stored_layout checked it
        names = self._stored_columns(tables)
        if tables.with_token:  # recomputed from the decoded shard key, as every write does
            rows = self._with_tokens(schema, tables, names, rows)
        # A row that expired on the way is written as it is: invisible, like any expired row.
        with self._raw(write=True) as cursor, _roomy_cache(self.dialect, cursor.connection):
            cursor.executemany(fast.sql, rows)
        return len(rows)

    # PostgreSQL: binary COPY out of the source, binary COPY into a temporary table on the
    # target, one INSERT ... SELECT ... ON CONFLICT DO UPDATE from there. Every field
    # travels as the server's binary representation of its column type, passed through
    # psycopg as opaque bytes (loaded and dumped as ``bytea``, whose binary form is the
    # bytes themselves): no value is decoded or encoded in Python. The token is copied
    # as stored: it is ``sharding.keys.token`` of the shard key (a fixed hash, no router
    # or shard in it), written by every write path, so the source's is the target's.
    def _pg_stored_layout(self, tables: TableSet) -> str | None:
        """Server major version and the columns' actual types (from the catalog, not the
        declared metadata): binary values mean the same on two servers only then."""
        names = self._stored_columns(tables)
        full = self.engine.dialect.identifier_preparer.format_table(tables.table)
        query = (
            "SELECT current_setting('server_version_num')::int / 10000, a.attname, "
            "format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%(table)s) AND a.attnum > 0 AND NOT a.attisdropped"
        )
        with self._raw() as cursor:
            cursor.execute(query, {"table": full})
            found = {name: (major, kind) for major, name, kind in cursor.fetchall()}
        if any(name not in found for name in names):
            return None  # the table on the server lacks a column the adapter writes
        columns = ",".join(f"{name}:{found[name][1]}" for name in names)
        major = found[names[0]][0]
        return f"postgresql{major}/stored/v1/{hashlib.sha1(columns.encode()).hexdigest()[:12]}"

    def _pg_scan_stored(
        self, schema: EntitySchema, tokens: TokenRange | None, keys: KeyRange | None, batch_size: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        """One COPY of the whole span (one snapshot, no pagination), cut into batches."""
        tables = self._tableset(schema)
        table = tables.table
        names = self._stored_columns(tables)
        where = [tables.live(time.time()), *self._range_bounds(schema, tables, tokens, keys)]
        query, params = self._pg_inline(sa.select(*(table.c[name] for name in names)).where(*where))
        with self._raw() as cursor, cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)", params) as copy:
            copy.set_types(["bytea"] * len(names))  # every field as its raw binary bytes
            batch: list[tuple[Any, ...]] = []
            for row in copy.rows():
                batch.append(row)
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch

    def _pg_inline(self, stmt: sa.Select[Any]) -> tuple[str, dict[str, Any]]:
        """SQL and driver parameters of ``stmt`` (psycopg merges them client-side for COPY,
        which takes no server-side parameters), each through its type's bind processor."""
        dialect = self.engine.dialect
        compiled = stmt.compile(dialect=dialect)
        params: dict[str, Any] = {}
        for name, value in compiled.construct_params().items():
            process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            params[name] = value if process is None else process(value)
        return compiled.string, params

    def _pg_put_stored(self, tables: TableSet, rows: Sequence[tuple[Any, ...]]) -> int:
        """Upsert, in one transaction: a crash leaves the batch applied or not at all, and
        a rerun upserts it again (the same as the row path's ``put_expiring``)."""
        names = self._stored_columns(tables)
        quote = self.engine.dialect.identifier_preparer.quote
        full = self.engine.dialect.identifier_preparer.format_table(tables.table)
        columns = ", ".join(quote(name) for name in names)
        keys = [column.name for column in tables.key_columns]
        update = ", ".join(f"{quote(name)} = EXCLUDED.{quote(name)}" for name in names if name not in keys)
        merge = (
            f"INSERT INTO {full} ({columns}) SELECT {columns} FROM ps_stored_copy "
            f"ON CONFLICT ({', '.join(quote(name) for name in keys)}) DO UPDATE SET {update}"
        )
        # A row that expired on the way is written as it is: invisible, like any expired row.
        with self._raw(write=True) as cursor:
            cursor.execute(f"CREATE TEMPORARY TABLE ps_stored_copy (LIKE {full}) ON COMMIT DROP")
            with cursor.copy(f"COPY ps_stored_copy ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["bytea"] * len(names))
                for row in rows:
                    copy.write_row(row)
            cursor.execute(merge)
        return len(rows)

    def _with_tokens(
        self, schema: EntitySchema, tables: TableSet, names: list[str], rows: Sequence[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """``rows`` with the token column recomputed from each row's shard key."""
        at = names.index(TOKEN_FIELD)
        dialect = self.engine.dialect
        decoders = [
            (names.index(name), tables.table.c[name].type.dialect_impl(dialect).result_processor(dialect, None))
            for name in schema.shard_key
        ]
        if len(decoders) == 1:
            ((index, decode),) = decoders
            if decode is None:  # int and str keys: the stored value is the key
                return [(*row[:at], token(row[index]), *row[at + 1 :]) for row in rows]
            return [(*row[:at], token(decode(row[index])), *row[at + 1 :]) for row in rows]
        return [
            (*row[:at], token(tuple(row[i] if d is None else d(row[i]) for i, d in decoders)), *row[at + 1 :])
            for row in rows
        ]
