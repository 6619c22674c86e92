"""``TtlOps``: the TTL capability, and rows moved with their expiry.

TTL is the hidden nullable ``_ps_expires`` column (epoch seconds, client clock) on every
table. Every read and every write that needs an existing row compares it in the same
statement, so an expired row is never seen. A plain put writes NULL (clearing an
earlier expiry). Expired rows are purged by every ``put_ttl`` (one ``DELETE`` through
the partial index on ``_ps_expires``, in the same transaction) and by
``purge_expired``, together with their edges when the shard has an edge table.

The ``*_expiring`` reads return that column with the row (one statement, no extra
round trip) and ``put_expiring`` writes a batch whose rows each keep their own instant,
so a rebalance moves TTL rows with their remaining time to live.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from adapters.base import EXPIRES_FIELD, Row
from adapters.relational._compiled import NOW, Compiled
from adapters.relational._rows import RowOps
from adapters.relational._tables import TableSet
from sharding.core.errors import QueryError
from sharding.core.model import EntitySchema
from sharding.keys import encode_key

__all__ = ["TtlOps"]


class TtlOps(RowOps):
    """TTL for ``RelationalAdapter``: put_ttl, ttl, purge_expired and the expiring reads and writes."""

    def put_ttl(self, schema: EntitySchema, rows: Sequence[Row], ttl: float) -> int:
        """Upsert rows expiring ``ttl`` seconds from now; purges expired rows of the table first."""
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
            raise QueryError(f"ttl must be a positive number of seconds, not {ttl!r}")
        if not rows:
            return 0
        tables = self._tableset(schema)
        fast = tables.fast_upsert_ttl
        if fast is None:
            raise self._unsupported("TTL")
        now = time.time()
        expires = now + float(ttl)
        params = [fast.params({**tables.values(row), EXPIRES_FIELD: expires}) for row in rows]
        with self._raw(write=True) as cursor:
            self._purge(cursor, schema, tables, now)
            cursor.executemany(fast.sql, params)
        return len({schema.key_of(row) for row in rows})

    def _purge(self, cursor: Any, schema: EntitySchema, tables: TableSet, now: float) -> int:
        """Delete expired rows (through the partial index), and their edges if GRAPH is in use."""
        detach = self._detach
        if detach is None:
            cursor.execute(tables.fast_purge.sql, tables.fast_purge.params({NOW: now}))
            return int(cursor.rowcount)
        key_columns = list(tables.key_columns)
        purge = Compiled(
            tables.table.delete().where(tables.expires <= sa.bindparam(NOW, type_=sa.Double())).returning(*key_columns),
            self.engine.dialect,
            key_columns,
        )
        cursor.execute(purge.sql, purge.params({NOW: now}))
        purged = [schema.key_of(purge.row(found, cursor.description)) for found in cursor.fetchall()]
        for key in purged:
            cursor.execute(detach.sql, detach.params({"entity": schema.name, "key": encode_key(key)}))
        return len(purged)

    def purge_expired(self, schema: EntitySchema) -> int:
        """Delete the rows of ``schema`` that have expired (they are already invisible); how many."""
        tables = self._tableset(schema)
        with self._raw(write=True) as cursor:
            return self._purge(cursor, schema, tables, time.time())

    def ttl(self, schema: EntitySchema, key: Any) -> float | None:
        tables = self._tableset(schema)
        now = time.time()
        stmt = sa.select(tables.expires).where(tables.key_clause(key), tables.live(now))
        with self._connect(key) as connection:
            found = connection.execute(stmt).first()
        if found is None or found[0] is None:
            return None
        return max(0.0, float(found[0]) - now)

    def get_many_expiring(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        tables = self._tableset(schema)
        return self._read_keys(tables, keys, sa.select(*tables.read_columns, tables.expires))

    def put_expiring(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        """One transaction: rows without an instant through the plain upsert, the others
        through the TTL upsert with their own ``_ps_expires``. Rows already past it are
        deleted instead. No purge here: a copy should not pay for the table's garbage."""
        tables = self._tableset(schema)
        plain: list[Row] = []
        timed: list[Row] = []
        gone: list[Any] = []
        now = time.time()
        for row in rows:
            instant = row.get(EXPIRES_FIELD)
            if instant is None:
                plain.append(row)
            elif instant <= now:
                gone.append(schema.key_of(row))
            else:
                timed.append(row)
        if gone:
            self.delete_many(schema, gone)
        upsert, upsert_ttl = tables.fast_upsert, tables.fast_upsert_ttl
        if upsert is None or upsert_ttl is None:  # dialects without the compiled upserts
            instants = [float(row.pop(EXPIRES_FIELD)) for row in timed]
            for row in plain:
                row.pop(EXPIRES_FIELD, None)
            written = self.put_many(schema, plain) if plain else 0
            for row, instant in zip(timed, instants, strict=True):
                written += self.put_ttl(schema, [row], max(instant - time.time(), 1e-3))
            return written + len(gone)
        plain_params = tables.bind(upsert, plain)
        timed_params = [
            upsert_ttl.params({**tables.values(row), EXPIRES_FIELD: float(row[EXPIRES_FIELD])}) for row in timed
        ]
        with self._raw(write=True) as cursor:
            if plain_params:
                cursor.executemany(upsert.sql, plain_params)
            if timed_params:
                cursor.executemany(upsert_ttl.sql, timed_params)
        return len(plain) + len(timed) + len(gone)
