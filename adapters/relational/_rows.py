"""``RowOps``: writes and reads by key (put, put_many, get, get_many, delete, delete_many).

The hot single-row paths (``put``, ``get``, ``delete``) run a ``Compiled`` statement on a
raw DBAPI cursor; on PostgreSQL a lone statement runs in autocommit (one round trip).
Batches and multi-row reads go through SQLAlchemy, ``IN`` lists cut to ``_IN_CHUNK``
keys. Every read compares ``_ps_expires`` in the same statement, so an expired row is
never seen. Deleting a row also deletes its edges, in the same transaction, once this
adapter knows an edge table exists (the GRAPH capability).
"""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapters.base import Row
from adapters.relational._shard import SqlShard
from adapters.relational._tables import TableSet
from sharding.core.model import EntitySchema
from sharding.keys import encode_key

__all__ = ["RowOps"]

_IN_CHUNK: Final = 500
"""Keys per ``IN (...)`` list: below every backend's parameter limit."""


class RowOps(SqlShard):
    """The core reads and writes by key of ``RelationalAdapter``."""

    def put(self, schema: EntitySchema, row: Row) -> None:
        tables = self._tableset(schema)
        fast = tables.fast_upsert
        if fast is None:
            with self._connect(schema.key_of(row), write=True) as connection:
                self._upsert(connection, tables, [tables.values(row)])
            return
        try:
            values = fast.params(row)  # straight from the row: no intermediate dict
        except KeyError as exc:
            raise tables.lacks(exc) from None
        with self._raw(schema.key_of(row), write=True, single=True) as cursor:
            cursor.execute(fast.sql, values)

    def put_many(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        if not rows:
            return 0
        tables = self._tableset(schema)
        fast = tables.fast_upsert
        if fast is None:
            unique = {schema.key_of(row): tables.values(row) for row in rows}
            with self._connect(write=True) as connection:
                self._upsert(connection, tables, list(unique.values()))
            return len(unique)
        params = tables.bind(fast, rows)
        # Executed in order, so the last write of a key within one batch wins, as with puts.
        with self._raw(write=True) as cursor:
            cursor.executemany(fast.sql, params)
        if len(schema.key) == 1:
            return len(set(map(operator.itemgetter(schema.key[0]), rows)))
        return len({schema.key_of(row) for row in rows})

    @staticmethod
    def _upsert(connection: Connection, tables: TableSet, params: list[dict[str, Any]]) -> None:
        """The dialect's upsert, or delete + insert in the caller's transaction."""
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
            cursor.execute(fast.sql, fast.params(tables.key_params(key)))
            found = cursor.fetchone()
            return fast.row(found, cursor.description) if found is not None else None

    def get_many(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        tables = self._tableset(schema)
        return self._read_keys(tables, keys, tables.select())

    def _read_keys(self, tables: TableSet, keys: Sequence[Any], select: sa.Select[Any]) -> list[Row]:
        """The live rows of ``keys`` through ``select`` (some columns of the table), in chunks."""
        rows: list[Row] = []
        live = tables.live(time.time())
        with self._connect() as connection:
            for start in range(0, len(keys), _IN_CHUNK):
                chunk = keys[start : start + _IN_CHUNK]
                result = connection.execute(select.where(tables.keys_clause(chunk), live))
                rows.extend(dict(row) for row in result.mappings())
        return rows

    def delete(self, schema: EntitySchema, key: Any) -> bool:
        """Delete the row (and, with GRAPH in use, its edges, in the same transaction)."""
        tables = self._tableset(schema)
        fast = tables.fast_delete
        with self._raw(key, write=True) as cursor:
            cursor.execute(fast.sql, fast.params(tables.key_params(key)))
            deleted = bool(cursor.rowcount)
            detach = self._detach
            if deleted and detach is not None:
                cursor.execute(detach.sql, detach.params({"entity": schema.name, "key": encode_key(key)}))
            return deleted

    def delete_many(self, schema: EntitySchema, keys: Sequence[Any]) -> int:
        """Delete the rows (and their edges, as ``delete`` does)."""
        tables = self._tableset(schema)
        deleted = 0
        live = tables.live(time.time())
        with self._connect(write=True) as connection:
            for start in range(0, len(keys), _IN_CHUNK):
                chunk = list(dict.fromkeys(keys[start : start + _IN_CHUNK]))
                deleted += connection.execute(tables.table.delete().where(tables.keys_clause(chunk), live)).rowcount
            if self._edges is not None:
                detach = self._edges.detach_statement()
                for key in dict.fromkeys(keys):
                    connection.execute(detach, {"entity": schema.name, "key": encode_key(key)})
        return deleted
