"""``TableSet``: one entity's table and the statements reused for it, and how both are built.

Tables come from the entity declaration: scalar fields become typed columns
(``_types``), nested fields one JSON column each, the key the primary key. Every table
carries the hidden nullable ``_ps_expires`` (epoch seconds, NULL: never expires) with a
partial index that plain puts never touch; hash-routed tables also ``_ps_token``
(BIGINT, indexed with the key), so reading a token range is an index range scan. When
the shard key is not the key's prefix, ``ix_<table>_ps_shard`` indexes (shard key,
clustering...) for shard-key ranges and partition reads.

Statements are built once per table and reused, so SQLAlchemy's compiled cache hits,
and the hot ones are ``Compiled`` for the raw-cursor path. Upserts are the dialect's own
(``ON CONFLICT DO UPDATE`` / ``ON DUPLICATE KEY``): one round trip, idempotent, safe to
repeat during a rebalance copy.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from adapters.base import EXPIRES_FIELD, TOKEN_FIELD, Row
from adapters.relational._compiled import NOW, Compiled
from adapters.relational._types import column_type
from sharding.base import KeyRange, TokenRange
from sharding.core.errors import QueryError
from sharding.core.model import EntitySchema
from sharding.keys import MAX_TOKEN

__all__ = ["TableSet", "build_tableset", "define_table"]


@dataclass(frozen=True, slots=True)
class TableSet:
    """A table and the statements reused for it."""

    table: sa.Table
    key_columns: tuple[sa.Column[Any], ...]
    shard_columns: tuple[sa.Column[Any], ...]
    data_columns: tuple[str, ...]
    read_columns: tuple[sa.Column[Any], ...]
    with_token: bool
    upsert_stmt: Any
    fast_get: Compiled
    fast_delete: Compiled
    fast_upsert: Compiled | None
    fast_upsert_ttl: Compiled | None
    fast_purge: Compiled

    @property
    def expires(self) -> sa.Column[Any]:
        return self.table.c[EXPIRES_FIELD]

    def live(self, now: float | None = None) -> sa.ColumnElement[bool]:
        """Not expired at ``now`` (a literal parameter; default: the bound ``_ps_now``)."""
        moment: Any = sa.bindparam(NOW, type_=sa.Double()) if now is None else sa.literal(now, sa.Double())
        return sa.or_(self.expires.is_(None), self.expires > moment)

    def select(self) -> sa.Select[Any]:
        return sa.select(*self.read_columns)

    def key_clause(self, key: Any) -> sa.ColumnElement[bool]:
        if len(self.key_columns) == 1:
            clause: sa.ColumnElement[bool] = self.key_columns[0] == key
            return clause
        return sa.and_(*(column == part for column, part in zip(self.key_columns, key, strict=True)))

    def keys_clause(self, keys: Sequence[Any]) -> sa.ColumnElement[bool]:
        if len(self.key_columns) == 1:
            return self.key_columns[0].in_(keys)
        return sa.tuple_(*self.key_columns).in_([tuple(key) for key in keys])

    def exists(self, key: Any) -> sa.Select[Any]:
        """``SELECT 1`` if the row with ``key`` exists and is live now."""
        return sa.select(sa.literal(1)).select_from(self.table).where(self.key_clause(key), self.live(time.time()))

    def key_params(self, key: Any) -> dict[str, Any]:
        """Parameters of the compiled by-key statements: the key and the time expiry is checked at."""
        if len(self.key_columns) == 1:
            return {f"k_{self.key_columns[0].name}": key, NOW: time.time()}
        params = {f"k_{column.name}": part for column, part in zip(self.key_columns, key, strict=True)}
        params[NOW] = time.time()
        return params

    def values(self, row: Row) -> dict[str, Any]:
        """The row's value of every stored column (a ``QueryError`` names a missing one)."""
        try:
            return {name: row[name] for name in self.data_columns}
        except KeyError as exc:
            raise self.lacks(exc) from None

    def bind(self, compiled: Compiled, rows: Sequence[Row]) -> list[Any]:
        """``compiled.many(rows)``, a missing field reported as ``values`` does."""
        try:
            return compiled.many(rows)
        except KeyError as exc:
            raise self.lacks(exc) from None

    def lacks(self, exc: KeyError) -> QueryError:
        return QueryError(f"row for {self.table.name} lacks field {exc.args[0]!r}")

    def range_bounds(
        self, entity: str, tokens: TokenRange | None, keys: KeyRange | None
    ) -> list[sa.ColumnElement[bool]]:
        """The WHERE clauses of a token or shard-key range (what ``scan`` and the range
        operations read)."""
        bounds: list[sa.ColumnElement[bool]] = []
        if tokens is not None:
            if not self.with_token:
                raise QueryError(f"{entity}: a token range needs a hash-routed store")
            token = self.table.c[TOKEN_FIELD]
            bounds.append(token >= tokens.start)
            if tokens.end <= MAX_TOKEN:  # a range may end one past MAX_TOKEN (2**63): no upper bound
                bounds.append(token < tokens.end)
        if keys is not None:
            columns = self.shard_columns
            shard = sa.tuple_(*columns) if len(columns) > 1 else columns[0]
            if keys.lower is not None:
                bounds.append(shard >= keys.lower)
            if keys.upper is not None:
                bounds.append(shard < keys.upper)
        return bounds

    def range_order(self, tokens: TokenRange | None) -> list[sa.Column[Any]]:
        """The order a range is walked in: by key, after the token for token ranges
        (the token index's order), a total order either way."""
        if tokens is None:
            return list(self.key_columns)
        return [self.table.c[TOKEN_FIELD], *self.key_columns]


def define_table(
    metadata: sa.MetaData, schema: EntitySchema, name: str, db_schema: str | None, dialect: str, *, with_token: bool
) -> sa.Table:
    """The table of ``schema`` (columns and indexes) on ``metadata``; nothing is created."""
    keyish = set(schema.key) | set(schema.shard_key) | {field for index in schema.indexes for field in index}
    columns: list[sa.Column[Any]] = [
        sa.Column(
            spec.name,
            column_type(spec, keyish=spec.name in keyish),
            primary_key=spec.name in schema.key,
            nullable=spec.nullable and spec.name not in schema.key,
        )
        for spec in schema.fields
    ]
    if with_token:
        columns.append(sa.Column(TOKEN_FIELD, sa.BigInteger(), nullable=False))
    columns.append(sa.Column(EXPIRES_FIELD, sa.Double(), nullable=True))
    table = sa.Table(name, metadata, *columns, schema=db_schema)
    key_columns = tuple(table.c[field] for field in schema.key)
    if with_token:
        sa.Index(f"ix_{name}_ps_token", table.c[TOKEN_FIELD], *key_columns)
    if schema.shard_key != schema.key[: len(schema.shard_key)]:
        # (shard key, clustering...): shard-key range scans and partition reads.
        clustering = [field for field in schema.key if field not in schema.shard_key]
        sa.Index(f"ix_{name}_ps_shard", *(table.c[field] for field in (*schema.shard_key, *clustering)))
    for index in schema.indexes:
        sa.Index(f"ix_{name}_{'_'.join(index)}", *(table.c[field] for field in index))
    if dialect in ("sqlite", "postgresql"):  # partial: plain puts never touch it
        expiring = table.c[EXPIRES_FIELD].is_not(None)
        sa.Index(f"ix_{name}_ps_expires", table.c[EXPIRES_FIELD], sqlite_where=expiring, postgresql_where=expiring)
    return table


def build_tableset(schema: EntitySchema, table: sa.Table, dialect: sa.Dialect, *, with_token: bool) -> TableSet:
    """The statements of ``table``, compiled for ``dialect``."""
    key_columns = tuple(table.c[field] for field in schema.key)
    read_columns = tuple(column for column in table.columns if column.name != EXPIRES_FIELD)
    expires = table.c[EXPIRES_FIELD]
    now: sa.BindParameter[float] = sa.bindparam(NOW, type_=sa.Double())
    by_key = sa.and_(*(column == sa.bindparam(f"k_{column.name}") for column in key_columns))
    live = sa.or_(expires.is_(None), expires > now)
    upsert = _upsert_statement(table, key_columns, dialect.name, with_expiry=False)
    upsert_ttl = _upsert_statement(table, key_columns, dialect.name, with_expiry=True)
    return TableSet(
        table=table,
        key_columns=key_columns,
        shard_columns=tuple(table.c[field] for field in schema.shard_key),
        data_columns=tuple(column.name for column in read_columns),
        read_columns=read_columns,
        with_token=with_token,
        upsert_stmt=upsert,
        fast_get=Compiled(sa.select(*read_columns).where(by_key, live), dialect, list(read_columns)),
        fast_delete=Compiled(table.delete().where(by_key, live), dialect),
        fast_upsert=Compiled(upsert, dialect) if upsert is not None else None,
        fast_upsert_ttl=Compiled(upsert_ttl, dialect) if upsert_ttl is not None else None,
        fast_purge=Compiled(table.delete().where(expires <= now), dialect),
    )


def _upsert_statement(
    table: sa.Table, key_columns: tuple[sa.Column[Any], ...], dialect: str, *, with_expiry: bool
) -> Any:
    """The dialect's upsert. ``_ps_expires`` is a parameter with expiry, else NULL (cleared);
    None for a dialect without one (the caller deletes and inserts in one transaction)."""
    values: dict[str, Any] = {
        column.name: sa.bindparam(column.name, type_=column.type)
        for column in table.columns
        if column.name != EXPIRES_FIELD
    }
    values[EXPIRES_FIELD] = sa.bindparam(EXPIRES_FIELD, type_=sa.Double()) if with_expiry else sa.null()
    non_key = [column for column in table.columns if column not in key_columns]
    if dialect in ("sqlite", "postgresql"):
        insert: Any = (sqlite_dialect.insert if dialect == "sqlite" else pg_dialect.insert)(table)
        insert = insert.values(values)
        return insert.on_conflict_do_update(
            index_elements=list(key_columns), set_={c.name: insert.excluded[c.name] for c in non_key}
        )
    if dialect in ("mysql", "mariadb"):
        my_insert = mysql_dialect.insert(table).values(values)
        return my_insert.on_duplicate_key_update({c.name: my_insert.inserted[c.name] for c in non_key})
    return None
