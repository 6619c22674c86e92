"""``StoredCopy``: a token or key range copied as the database stores it, so a row costs
neither a decode nor an encode (``stored_layout``/``scan_stored``/``put_stored``).

What a rebalance copies with between two shards of the same layout; its copy
otherwise spends most of its time decoding and encoding values it only passes on.

* SQLite: values come back untouched (the JSON text, the 0/1 of a boolean, a
  datetime's ISO text) and are bound again unchanged into the same upsert with expiry,
  in the order that statement binds them; only the token is recomputed, from the
  decoded shard key.
* PostgreSQL: one binary ``COPY ... TO STDOUT`` of the span, whose fields psycopg
  passes on as opaque bytes into a binary ``COPY`` to a temporary table on the target,
  merged by one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` per batch (an upsert: a
  rerun converges); the token is copied as stored (a fixed hash of the shard key).

The layout names the columns and their types (on PostgreSQL as the server's catalog
has them, and its major version): two shards agree only if a stored value means the
same thing on both.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from adapters._scans import check_batch_size
from adapters.base import TOKEN_FIELD
from adapters.relational._ranges import fingerprint, roomy_cache
from adapters.relational._shard import SqlShard
from adapters.relational._tables import TableSet
from sharding.base import KeyRange, TokenRange
from sharding.core.model import EntitySchema
from sharding.keys import token

__all__ = ["StoredCopy"]


class StoredCopy(SqlShard):
    """The stored-form copy of ``RelationalAdapter`` (SQLite, PostgreSQL)."""

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
        return f"sqlite/stored/v1/{fingerprint(tables, self._stored_columns(tables), self.engine.dialect)}"

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
        check_batch_size(batch_size)
        if self.dialect == "postgresql":
            yield from self._pg_scan_stored(schema, tokens, keys, batch_size)
            return
        tables = self._tableset(schema)
        table = tables.table
        raw = sa.types.NullType()  # no result processor: values as SQLite holds them
        selected = [sa.type_coerce(table.c[name], raw).label(name) for name in self._stored_columns(tables)]
        order = tables.range_order(tokens)
        where = tables.range_bounds(schema.name, tokens, keys)
        positions = [self._stored_columns(tables).index(column.name) for column in order]
        last: tuple[Any, ...] | None = None
        while True:
            stmt = sa.select(*selected).where(tables.live(time.time()), *where)
            if last is not None:  # keyset pagination on the stored values themselves
                after = [sa.literal(value, raw) for value in last]
                stmt = stmt.where(sa.tuple_(*(sa.type_coerce(c, raw) for c in order)) > sa.tuple_(*after))
            stmt = stmt.order_by(*order).limit(batch_size)
            with self._connect() as connection:
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
        with self._raw(write=True) as cursor, roomy_cache(self.dialect, cursor.connection):
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
        where = [tables.live(time.time()), *tables.range_bounds(schema.name, tokens, keys)]
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
