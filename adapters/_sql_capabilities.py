"""TTL, atomic increment, partial update and partition reads for the relational adapter.

A mixin of ``RelationalAdapter`` (see its module docstring for the design): every
statement compares the hidden ``_ps_expires`` column, so an expired row is invisible.
The ``*_expiring`` reads return that column with the row (one statement, no extra
round trip) and ``put_expiring`` writes a batch whose rows each keep their own
instant, so a rebalance moves TTL rows with their remaining time to live.
Purging expired rows (each ``put_ttl``, or ``purge_expired``) also deletes their edges
when the shard has an edge table.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from adapters._sql_core import EXPIRES_FIELD, NOW, Compiled, SqlHost, TableSet, translate_errors
from adapters._sql_json import JsonChanges
from adapters.base import Row
from sharding.core.errors import NotFoundError, QueryError
from sharding.core.model import EntitySchema, FieldSpec
from sharding.keys import encode_key

__all__ = ["RowCapabilities"]


class RowCapabilities(SqlHost):
    """TTL, ATOMIC_INCREMENT, PARTIAL_UPDATE and PARTITION_RANGE."""

    # -- TTL -------------------------------------------------------------------------
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
        params = [fast.params({**self._row_params(tables, row), EXPIRES_FIELD: expires}) for row in rows]
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

    def ttl(self, schema: EntitySchema, key: Any) -> float | None:
        tables = self._tableset(schema)
        now = time.time()
        stmt = sa.select(tables.expires).where(tables.key_clause(key), tables.live(now))
        with translate_errors(self.store, self.shard, key), self.engine.connect() as connection:
            found = connection.execute(stmt).first()
        if found is None or found[0] is None:
            return None
        return max(0.0, float(found[0]) - now)

    def get_many_expiring(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        tables = self._tableset(schema)
        rows: list[Row] = []
        now = time.time()
        select = sa.select(*tables.read_columns, tables.expires)
        with translate_errors(self.store, self.shard), self.engine.connect() as connection:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                result = connection.execute(select.where(tables.keys_clause(chunk), tables.live(now)))
                rows.extend(dict(row) for row in result.mappings())
        return rows

    def put_expiring(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        """One transaction: rows without an instant through the plain upsert, the others
        through the TTL upsert with their own ``_ps_expires``. Rows already past it are
        deleted instead. No purge here: a copy should not pay for the table's garbage."""
        tables = self._tableset(schema)
        host: Any = self  # RelationalAdapter: put_many, delete_many
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
            host.delete_many(schema, gone)
        upsert, upsert_ttl = tables.fast_upsert, tables.fast_upsert_ttl
        if upsert is None or upsert_ttl is None:  # dialects without the compiled upserts
            instants = [float(row.pop(EXPIRES_FIELD)) for row in timed]
            for row in plain:
                row.pop(EXPIRES_FIELD, None)
            written = host.put_many(schema, plain) if plain else 0
            for row, instant in zip(timed, instants, strict=True):
                written += self.put_ttl(schema, [row], max(instant - time.time(), 1e-3))
            return int(written) + len(gone)
        try:
            plain_params = [upsert.params(row) for row in plain]
            timed_params = [
                upsert_ttl.params({**self._row_params(tables, row), EXPIRES_FIELD: float(row[EXPIRES_FIELD])})
                for row in timed
            ]
        except KeyError as exc:
            raise QueryError(f"row for {tables.table.name} lacks field {exc.args[0]!r}") from None
        with self._raw(write=True) as cursor:
            if plain_params:
                cursor.executemany(upsert.sql, plain_params)
            if timed_params:
                cursor.executemany(upsert_ttl.sql, timed_params)
        return len(plain) + len(timed) + len(gone)

    def purge_expired(self, schema: EntitySchema) -> int:
        """Delete the rows of ``schema`` that have expired (they are already invisible); how many."""
        tables = self._tableset(schema)
        with self._raw(write=True) as cursor:
            return self._purge(cursor, schema, tables, time.time())

    # -- increment, partial update ---------------------------------------------------
    def _changeable(self, schema: EntitySchema, name: str) -> FieldSpec:
        if name not in schema.field_names:
            raise QueryError(f"{schema.name}: unknown field {name!r} (fields: {', '.join(schema.field_names)})")
        if name in schema.key or name in schema.shard_key:
            raise QueryError(f"{schema.name}.{name} is part of the key or shard key; it cannot change")
        return schema.field(name)

    def increment(self, schema: EntitySchema, key: Any, field: str, amount: int | float) -> int | float:
        spec = self._changeable(schema, field)
        if spec.type not in ("int", "float"):
            raise QueryError(f"{schema.name}.{field} is {spec.type}; increment needs int or float")
        self._require_dialect("ATOMIC_INCREMENT", "RETURNING")
        tables = self._tableset(schema)
        column = tables.table.c[field]
        stmt = (
            tables.table.update()
            .where(tables.key_clause(key), tables.live(time.time()))
            .values({field: sa.func.coalesce(column, 0) + sa.bindparam("ps_amount", amount, type_=column.type)})
            .returning(column)
        )
        with translate_errors(self.store, self.shard, key), self.engine.begin() as connection:
            found = connection.execute(stmt).first()
        if found is None:
            raise NotFoundError(f"no {schema.name} to increment", store=self.store, shard=self.shard, key=key)
        return float(found[0]) if spec.type == "float" else int(found[0])

    def update(self, schema: EntitySchema, key: Any, changes: Mapping[str, Any]) -> bool:
        """Set fields and JSON paths in one UPDATE (applied in order); False if no such row."""
        tables = self._tableset(schema)
        values: dict[str, Any] = {}
        documents: dict[str, JsonChanges] = {}
        for path, value in changes.items():
            name, *steps = path.split(".")
            spec = self._changeable(schema, name)
            column = tables.table.c[name]
            if spec.type == "json":
                if steps:
                    self._require_dialect("PARTIAL_UPDATE of JSON paths", "json_set/jsonb_set")
                documents.setdefault(name, JsonChanges(column)).set(steps, value)
            elif steps:
                raise QueryError(f"{schema.name}.{name} is {spec.type}, not a nested field: {path!r}")
            else:
                values[name] = sa.bindparam(None, value, type_=column.type)
        values.update({name: document.expression(self.dialect) for name, document in documents.items()})
        live = tables.live(time.time())
        with translate_errors(self.store, self.shard, key), self.engine.begin() as connection:
            if not values:
                stmt = sa.select(sa.literal(1)).select_from(tables.table).where(tables.key_clause(key), live)
                return connection.execute(stmt).first() is not None
            stmt_update = tables.table.update().where(tables.key_clause(key), live).values(values)
            return bool(connection.execute(stmt_update).rowcount)

    # -- partitions ------------------------------------------------------------------
    def partition(
        self,
        schema: EntitySchema,
        partition: Any,
        *,
        start: Any = None,
        end: Any = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[Row]:
        """One index range read: shard key = partition, ``start <= clustering < end``."""
        tables = self._tableset(schema)
        clustering = [column for column in tables.key_columns if column.name not in schema.shard_key]
        if not clustering:
            raise QueryError(f"{schema.name}: a partition read needs key fields beyond the shard key (clustering)")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise QueryError(f"limit must be a non-negative integer, not {limit!r}")
        parts = (partition,) if len(tables.shard_columns) == 1 else tuple(partition)
        where = [column == part for column, part in zip(tables.shard_columns, parts, strict=True)]
        if start is not None:
            where.append(clustering[0] >= start)
        if end is not None:
            where.append(clustering[0] < end)
        stmt = tables.select().where(tables.live(time.time()), *where)
        stmt = stmt.order_by(*(column.desc() if descending else column.asc() for column in clustering))
        if limit is not None:
            stmt = stmt.limit(limit)
        with translate_errors(self.store, self.shard, partition), self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(stmt).mappings()]
