"""Queries on one entity's collection: filters, orders and scan pages as pymongo documents.

Ordering is always on the server (code-point order for strings on MongoDB and FerretDB),
nulls first ascending, ties by ``_id``; ordering by a json field or path is refused. A
token-range scan is ``_ps_token >= start AND < end`` ordered by the ``(_ps_token, _id)``
index and paged by keyset (``(token, _id) > last``): an index range scan on MongoDB.
FerretDB 1.24 on SQLite creates the index but does not push filters or sorts down to
SQLite (its ``explain`` shows ``filterPushdown: false``), so there each page reads the
collection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import pymongo

from adapters._scans import check_token_scan
from adapters.base import TOKEN_FIELD, Filter, Order
from adapters.document._entity import Entity
from adapters.document._filters import JsonPath, Plan, all_of, scalar_clause, tuple_compare
from adapters.document._json import Doc
from adapters.document._scalars import encode
from sharding.base import KeyRange, TokenRange
from sharding.core.errors import QueryError

__all__ = ["Sort", "after", "plan", "scan_bounds", "scan_sort", "sort"]

Sort = list[tuple[str, int]]
"""A pymongo sort specification: (path, direction) pairs."""

_MIN_TOKEN: Final = -(2**63)
_MAX_TOKEN: Final = 2**63 - 1


def _clause(entity: Entity, item: Filter) -> tuple[Doc, bool]:
    """(server condition, exact?) for one filter."""
    schema = entity.schema
    head, dot, rest = item.field.partition(".")
    kind = entity.kinds.get(head)
    if kind is None:
        raise entity.unknown(item.field)
    if kind == "json":
        if not dot and item.op != "contains":
            raise QueryError(
                f"{schema.name}.{head}: is a nested (JSON) field; filter on a dotted path inside it "
                f"({head}.<name>) or use 'contains' for an array"
            )
        return JsonPath(head, rest.split(".") if dot else []).clause(item)
    if dot:
        raise QueryError(f"{schema.name}.{head} is {kind}, not a nested field: {item.field!r}")
    if item.op == "contains":
        raise QueryError(f"{schema.name}.{head}: 'contains' needs a JSON array field, not {kind}")
    return scalar_clause(entity.path(head), kind, item), True


def plan(entity: Entity, filters: Sequence[Filter]) -> Plan:
    """The server filter for ``filters`` and the ones Python must re-check."""
    clauses: list[Doc] = []
    residual: list[Filter] = []
    for item in filters:
        clause, exact = _clause(entity, item)
        clauses.append(clause)
        if not exact:
            residual.append(item)
    return Plan(all_of(clauses), tuple(residual))


def sort(entity: Entity, order_by: Sequence[Order]) -> Sort:
    """The server sort for ``order_by``, ties broken by ``_id``."""
    schema = entity.schema
    spec: Sort = []
    for item in order_by:
        kind = entity.kinds.get(item.field)
        if kind is None:
            raise entity.unknown(item.field)
        if kind == "json":
            raise QueryError(f"{schema.name}.{item.field}: is a nested (JSON) field; it cannot be ordered by")
        path = entity.path(item.field)
        if all(path != seen for seen, _ in spec):
            spec.append((path, pymongo.DESCENDING if item.descending else pymongo.ASCENDING))
    if all(path != "_id" for path, _ in spec):
        spec.append(("_id", pymongo.ASCENDING))
    return spec


def scan_bounds(entity: Entity, tokens: TokenRange | None, keys: KeyRange | None) -> list[Doc] | None:
    """The conditions of a token and/or shard-key range scan; None if the range is empty."""
    bounds: list[Doc] = []
    if tokens is not None:
        check_token_scan(entity.schema.name, tokens, with_token=entity.with_token)
        if tokens.end <= tokens.start:
            return None
        span: Doc = {"$gte": max(tokens.start, _MIN_TOKEN)}
        if tokens.end <= _MAX_TOKEN:
            span["$lt"] = tokens.end
        bounds.append({TOKEN_FIELD: span})
    if keys is not None:
        bounds.extend(_key_bounds(entity, keys))
    return bounds


def _key_bounds(entity: Entity, keys: KeyRange) -> list[Doc]:
    """``lower <= shard key < upper``; a composite shard key compares as a tuple."""
    names = entity.schema.shard_key
    paths = [entity.path(name) for name in names]

    def encoded(bound: Any) -> list[Any]:
        parts = (bound,) if len(names) == 1 else tuple(bound)
        return [encode(entity.kinds[name], part) for name, part in zip(names, parts, strict=True)]

    bounds: list[Doc] = []
    if keys.lower is not None:
        bounds.append(tuple_compare(paths, encoded(keys.lower), greater=True, inclusive=True))
    if keys.upper is not None:
        bounds.append(tuple_compare(paths, encoded(keys.upper), greater=False, inclusive=False))
    return bounds


def scan_sort(by_token: bool) -> Sort:
    """The keyset order of a scan: ``(token, _id)`` for a token range, else ``_id``."""
    return [(TOKEN_FIELD, pymongo.ASCENDING), ("_id", pymongo.ASCENDING)] if by_token else [("_id", 1)]


def after(last: Doc, by_token: bool) -> Doc:
    """The condition for the next page: past ``last`` in the scan's keyset order."""
    if not by_token:
        return {"_id": {"$gt": last["_id"]}}
    return {
        "$or": [
            {TOKEN_FIELD: {"$gt": last[TOKEN_FIELD]}},
            {TOKEN_FIELD: last[TOKEN_FIELD], "_id": {"$gt": last["_id"]}},
        ]
    }
