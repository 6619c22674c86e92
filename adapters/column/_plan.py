"""What ``find`` and ``count`` push to the server, and the WHERE of range scans.

Filters are pushed only where CQL's semantics are exactly Python's (``eq``/``in``
without null, range comparisons on str, bytes, int, bool, date, datetime, non-zero
floats), with ``ALLOW FILTERING``. Cassandra then drives the read from an SAI index
(declared ``indexes`` get one, and a range on the first shard-key field uses
``_ps_skey``), or from the partition key when every partition column is fixed;
otherwise it filters during a full scan of the shard's table. ``ne``, ``eq None``,
``in`` with None, every decimal filter and uuid ranges are evaluated client-side only:
the caller re-checks every row with ``Filter.matches`` whatever was pushed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from adapters.base import Filter, Query, Row, sort_key
from adapters.column._codecs import MAX_TOKEN, MIN_TOKEN, pushable_value, skey_prefix
from adapters.column._table import SKEY_FIELD, Table, q
from sharding.core.errors import QueryError
from sharding.core.model import EntitySchema, FieldSpec

__all__ = ["Plan", "bound", "normalise", "order_key", "plan"]

_CQL_OPS: Final = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _plain_field(schema: EntitySchema, name: str, nested: str) -> FieldSpec:
    """The field ``name``; QueryError if it is unknown or nested (``nested`` says why)."""
    if name not in schema.field_names:
        raise QueryError(f"{schema.name}: unknown field {name!r} (fields: {', '.join(schema.field_names)})")
    spec = schema.field(name)
    if spec.type == "json":
        raise QueryError(f"{schema.name}.{name}: is a nested (JSON) field; {nested}")
    return spec


def normalise(schema: EntitySchema, filters: Iterable[Filter]) -> list[Filter]:
    """Check fields; naive datetimes in filters are taken as UTC (as they are stored)."""
    result: list[Filter] = []
    for item in filters:
        spec = _plain_field(schema, item.field, "filtering and ordering on it needs the document kind's nested filters")
        if spec.type == "datetime":
            item = Filter(item.field, item.op, _aware(item.value))
        result.append(item)
    return result


def _aware(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(_aware(part) for part in value)
    return value


def order_key(schema: EntitySchema, query: Query) -> Callable[[Row], tuple[Any, ...]]:
    """The sort key of ``query``'s order (nulls first, ties by key); fields checked."""
    for item in query.order_by:
        _plain_field(schema, item.field, "ordering on it is not supported")
    return sort_key(schema, query.order_by)


def bound(clauses: list[str], params: list[Any], column: str, low: int | None, high: int | None) -> None:
    """``low <= column <= high`` within the signed 64-bit range (None: unbounded)."""
    if low is not None and low > MIN_TOKEN:
        clauses.append(f"{q(column)} >= ?")
        params.append(low)
    if high is not None and high < MAX_TOKEN:
        clauses.append(f"{q(column)} <= ?")
        params.append(high)


@dataclass(frozen=True, slots=True)
class Plan:
    where: str
    params: tuple[Any, ...]


def plan(table: Table, filters: Sequence[Filter]) -> Plan | None:
    """The CQL WHERE for the filters CQL evaluates exactly as Python; None if nothing matches.

    The result is a superset of the matching rows (filters not pushed are checked by the
    caller). Per column CQL allows one ``=``/``IN`` or one lower and one upper bound.
    """
    schema = table.schema
    eq: dict[str, list[Any]] = {}
    lower: dict[str, tuple[str, Any]] = {}
    upper: dict[str, tuple[str, Any]] = {}
    for item in filters:
        spec = schema.field(item.field)
        codec = table.codecs[item.field]
        if item.op == "in":
            values = [value for value in item.value if value is not None]
            if not values and None not in item.value:
                return None  # x in [] is never true
            if None in item.value or not all(pushable_value(spec, value) for value in values):
                continue
            eq.setdefault(item.field, [codec.to_db(value) for value in dict.fromkeys(values)])
        elif item.op == "eq" and item.value is not None and pushable_value(spec, item.value):
            eq.setdefault(item.field, [codec.to_db(item.value)])
        elif item.op in ("lt", "le", "gt", "ge"):
            if item.value is None:
                return None  # ordering comparisons never match null
            if not codec.ordered or not pushable_value(spec, item.value):
                continue
            side = lower if item.op in ("gt", "ge") else upper
            side.setdefault(item.field, (_CQL_OPS[item.op], codec.to_db(item.value)))
    return _where(table, eq, lower, upper)


def _where(
    table: Table,
    eq: dict[str, list[Any]],
    lower: dict[str, tuple[str, Any]],
    upper: dict[str, tuple[str, Any]],
) -> Plan:
    clauses: list[str] = []
    params: list[Any] = []
    partition_fixed = all(column in eq for column in table.partition)
    partition_in = partition_fixed and any(len(eq[column]) > 1 for column in table.partition)
    for column, values in eq.items():
        if partition_in and column in table.indexed:
            continue  # CQL: no indexed column beside an IN on the partition key
        if len(values) == 1:
            clauses.append(f"{q(column)} = ?")
            params.append(values[0])
        else:
            clauses.append(f"{q(column)} IN ?")
            params.append(values)
    for bounds in (lower, upper):
        for column, (op, value) in bounds.items():
            if column in eq or (partition_in and column in table.indexed):
                continue
            clauses.append(f"{q(column)} {op} ?")
            params.append(value)
    first = table.schema.shard_key[0]
    if not partition_fixed and not partition_in and first in table.partition and (first in lower or first in upper):
        # a range on the first shard-key field: let the SAI index on its prefix drive the read
        decode = table.codecs[first].from_db
        if first in lower:
            clauses.append(f"{q(SKEY_FIELD)} >= ?")
            params.append(skey_prefix(decode(lower[first][1])))
        if first in upper:
            clauses.append(f"{q(SKEY_FIELD)} <= ?")
            params.append(skey_prefix(decode(upper[first][1])))
    if not clauses:
        return Plan("", ())
    return Plan(f" WHERE {' AND '.join(clauses)} ALLOW FILTERING", tuple(params))
