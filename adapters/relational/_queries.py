"""``QueryOps``: find, count, scans and partition reads, as SQL.

Filters are data (``Filter``), turned into SQL with every value a bind parameter:
scalar fields with Python's null semantics (``Filter.matches``), JSON fields and dotted
paths through ``_json`` (SQLite and PostgreSQL). ``find`` orders by the requested
fields, then by key, so a fan-out merge and a paginating caller see a total order;
ordering by a JSON field or a path into one is a ``QueryError``.

``scan`` pages by keyset (never OFFSET): by key, or for a token range by (token, key),
the order of the token index. ``partition`` is one index range read (the primary key,
or ``ix_<table>_ps_shard`` when the shard key is not the key's prefix).
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from adapters._scans import check_batch_size
from adapters.base import Filter, Query, Row
from adapters.relational._json import json_filter
from adapters.relational._shard import SqlShard
from adapters.relational._tables import TableSet
from sharding.base import KeyRange, TokenRange
from sharding.core.errors import QueryError, UnsupportedCapability
from sharding.core.model import EntitySchema

__all__ = ["QueryOps"]


class QueryOps(SqlShard):
    """The queries of ``RelationalAdapter``: find, count, scan, partition."""

    def find(self, schema: EntitySchema, query: Query) -> list[Row]:
        tables = self._tableset(schema)
        stmt = tables.select().where(tables.live(time.time()), *self._where(schema, tables, query.filters))
        stmt = stmt.order_by(*self._order(schema, tables, query))
        if query.limit is not None:
            stmt = stmt.limit(query.limit)
        return self._rows(stmt)

    def count(self, schema: EntitySchema, filters: Sequence[Filter] = ()) -> int:
        tables = self._tableset(schema)
        where = self._where(schema, tables, filters)
        stmt = sa.select(sa.func.count()).select_from(tables.table).where(tables.live(time.time()), *where)
        with self._connect() as connection:
            return int(connection.execute(stmt).scalar_one())

    def _rows(self, stmt: sa.Select[Any], key: Any = None) -> list[Row]:
        with self._connect(key) as connection:
            return [dict(row) for row in connection.execute(stmt).mappings()]

    # -- filters and order -----------------------------------------------------------
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

    @staticmethod
    def _column(schema: EntitySchema, tables: TableSet, field: str) -> sa.Column[Any]:
        """The column a query orders by: a scalar field (not a JSON field or a path into one)."""
        if "." in field and field.split(".", 1)[0] in schema.field_names:
            raise QueryError(f"{schema.name}: ordering by a nested path ({field!r}) is not supported")
        if field not in schema.field_names:
            raise QueryError(f"{schema.name}: unknown field {field!r} (fields: {', '.join(schema.field_names)})")
        if schema.field(field).type == "json":
            raise QueryError(f"{schema.name}.{field}: is a nested (JSON) field; it cannot order a query")
        return tables.table.c[field]

    def _order(self, schema: EntitySchema, tables: TableSet, query: Query) -> list[Any]:
        order: list[Any] = []
        seen: set[str] = set()
        for item in query.order_by:
            column = self._column(schema, tables, item.field)
            seen.add(item.field)
            order.append(column.desc().nulls_last() if item.descending else column.asc().nulls_first())
        order.extend(column.asc() for column in tables.key_columns if column.name not in seen)
        return order

    # -- scans and partitions --------------------------------------------------------
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
        check_batch_size(batch_size)
        bounds = tables.range_bounds(schema.name, tokens, keys)
        order_columns = tables.range_order(tokens)
        selected = sa.select(*tables.read_columns, tables.expires) if expiring else tables.select()
        position: tuple[Any, ...] | None = None
        while True:
            stmt = selected.where(tables.live(time.time()), *bounds)
            if position is not None:
                after = (
                    sa.literal(value, type_=column.type) for value, column in zip(position, order_columns, strict=True)
                )
                stmt = stmt.where(sa.tuple_(*order_columns) > sa.tuple_(*after))
            batch = self._rows(stmt.order_by(*order_columns).limit(batch_size))
            if not batch:
                return
            yield batch
            if len(batch) < batch_size:
                return
            position = tuple(batch[-1][column.name] for column in order_columns)

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
        return self._rows(stmt, partition)


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
