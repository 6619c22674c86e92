"""The Cypher of ``find``, ``count`` and ``scan``: filters, orders and keyset pages.

Neo4j does not store nulls (a null property is an absent one), so filters spell out
Python's semantics: ``ne`` keeps nulls, ordering comparisons never match null, ``in``
may hold None; ``ORDER BY (f IS NULL) DESC, f`` puts nulls first ascending (last
descending), then the key breaks ties. Filters and order run on the server, except on
``decimal`` fields (stored as text, so text order is not numeric order): those are
left to Python (``split``). Strings compare by UTF-16 code unit on the server, which
agrees with Python's code-point order except between U+E000..U+FFFF and characters
outside the BMP.

A token-range scan is a ``NodeIndexSeekByRange`` on ``start <= token < end`` (forced
with ``USING INDEX SEEK``: on a wide range the planner would otherwise scan the whole
index in order), paged by keyset on ``(token, key)``: never a label or full index scan.
Key-range scans seek the key's constraint index (or the shard key's RANGE index).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters._scans import check_batch_size, check_token_scan
from adapters.base import TOKEN_FIELD, Filter, Order
from adapters.graph._cypher import Params, columns, lex, tick
from adapters.graph._label import Label
from adapters.graph._values import INT64, encode, encode_key
from sharding.base import KeyRange, TokenRange
from sharding.core.errors import QueryError
from sharding.core.model import FieldSpec

__all__ = ["check_scan", "client_side", "field_spec", "order", "scan_order", "scan_query", "split", "where"]

_SYMBOLS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def field_spec(label: Label, field: str) -> FieldSpec:
    """A field that can be filtered or ordered on, or a QueryError saying why not."""
    spec = label.spec(field)
    if spec.type == "json":
        raise QueryError(
            f"{label.schema.name}.{field}: is a nested (JSON) field; filtering and ordering on it needs the "
            "document kind's nested filters"
        )
    return spec


def client_side(label: Label, field: str) -> bool:
    """Fields the server cannot compare like Python does (decimal text)."""
    spec = label.specs.get(field)
    return spec is not None and spec.type == "decimal"


def split(label: Label, filters: Sequence[Filter]) -> tuple[list[Filter], list[Filter]]:
    """(filters the server runs, filters Python runs), each checked."""
    server: list[Filter] = []
    client: list[Filter] = []
    for item in filters:
        field_spec(label, item.field)
        if item.op == "contains":
            raise QueryError(f"{label.schema.name}.{item.field}: 'contains' needs NESTED_FILTERS (a JSON array)")
        (client if client_side(label, item.field) else server).append(item)
    return server, client


def _condition(label: Label, item: Filter, params: Params) -> str:
    """One filter as Cypher with Python's null semantics (see the module docstring)."""
    spec = field_spec(label, item.field)
    column = f"n.{tick(spec.name)}"
    value = item.value
    if item.op == "eq":
        return f"{column} IS NULL" if value is None else f"{column} = {params.add(encode(spec.type, value))}"
    if item.op == "ne":
        if value is None:
            return f"{column} IS NOT NULL"
        return f"({column} IS NULL OR {column} <> {params.add(encode(spec.type, value))})"
    if item.op == "in":
        values = [encode(spec.type, v) for v in value if v is not None]
        clause = f"{column} IN {params.add(values)}"
        return f"({clause} OR {column} IS NULL)" if None in list(value) else clause
    if value is None:
        return "false"
    return f"{column} {_SYMBOLS[item.op]} {params.add(encode(spec.type, value))}"


def where(label: Label, filters: Sequence[Filter], params: Params) -> str:
    """``WHERE a AND b `` for server-side filters (from ``split``), or nothing."""
    conditions = [_condition(label, item, params) for item in filters]
    return f"WHERE {' AND '.join(conditions)} " if conditions else ""


def order(label: Label, items: Sequence[Order]) -> str:
    """The ``ORDER BY`` list: nulls first ascending (last descending), then the key."""
    parts: list[str] = []
    seen: set[str] = set()
    for item in items:
        column = f"n.{tick(field_spec(label, item.field).name)}"
        seen.add(item.field)
        if item.descending:
            parts += [f"({column} IS NULL)", f"{column} DESC"]
        else:
            parts += [f"({column} IS NULL) DESC", column]
    parts += [f"n.{tick(f)}" for f in label.key if f not in seen]
    return ", ".join(parts)


def check_scan(label: Label, tokens: TokenRange | None, batch_size: int, *, with_token: bool) -> None:
    """A scan's arguments: a positive batch size, and a token range only over rows that
    carry their token (a hash-routed store's)."""
    check_batch_size(batch_size)
    check_token_scan(label.schema.name, tokens, with_token=with_token)


def scan_order(label: Label, tokens: TokenRange | None) -> list[str]:
    """The fields a scan pages by: (token, key) for a token range, else the key."""
    return ([TOKEN_FIELD] if tokens is not None else []) + list(label.key)


def scan_query(
    label: Label,
    tokens: TokenRange | None,
    keys: KeyRange | None,
    position: list[Any] | None,
    batch_size: int,
) -> tuple[str, dict[str, Any]]:
    """One page of a scan: index-seekable bounds, keyset after ``position``, ordered, limited."""
    fields = scan_order(label, tokens)
    params = Params()
    conditions = _scan_bounds(label, tokens, keys, position, params)
    if position is not None:
        encoded = [params.add(encode_key(label.kind(f), v)) for f, v in zip(fields, position, strict=True)]
        conditions.append(lex([f"n.{tick(f)}" for f in fields], encoded, ">"))
    clause = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    text = (
        f"MATCH (n:{label.q}) {_scan_hint(label, tokens, keys)}{clause}WITH n ORDER BY {columns('n', fields)} "
        f"LIMIT {params.add(batch_size)} RETURN properties(n) AS p"
    )
    return text, params.values


def _scan_hint(label: Label, tokens: TokenRange | None, keys: KeyRange | None) -> str:
    """Force the index seek: on a wide range the planner may prefer scanning a whole index
    in order, which reads every entry below the page's start."""
    if tokens is not None:
        return f"USING INDEX SEEK n:{label.q}({tick(TOKEN_FIELD)}) "
    shard_key = label.schema.shard_key
    if keys is not None and len(shard_key) == 1 and (keys.lower is not None or keys.upper is not None):
        return f"USING INDEX SEEK n:{label.q}({tick(shard_key[0])}) "
    return ""


def _scan_bounds(
    label: Label,
    tokens: TokenRange | None,
    keys: KeyRange | None,
    position: list[Any] | None,
    params: Params,
) -> list[str]:
    """Index-seekable bounds: the token range (raised to the last page's token) and the key range."""
    conditions: list[str] = []
    token = f"n.{tick(TOKEN_FIELD)}"
    if tokens is not None:
        start = tokens.start if position is None else max(tokens.start, int(position[0]))
        # Token ranges may end at 2**63 (one past the last token), which Bolt cannot send.
        conditions.append(f"{token} >= {params.add(max(start, INT64[0]))}")
        if tokens.end <= INT64[1]:
            conditions.append(f"{token} < {params.add(tokens.end)}")
    if keys is not None:
        shard_key = label.schema.shard_key
        shard_columns = [f"n.{tick(f)}" for f in shard_key]
        for bound, op in ((keys.lower, ">="), (keys.upper, "<")):
            if bound is None:
                continue
            values = (bound,) if len(shard_columns) == 1 else tuple(bound)
            encoded = [params.add(encode(label.kind(f), v)) for f, v in zip(shard_key, values, strict=True)]
            conditions.append(lex(shard_columns, encoded, op))
    return conditions
