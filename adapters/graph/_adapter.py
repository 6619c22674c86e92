"""``GraphAdapter``: rows, queries, scans, increments and partial updates on Neo4j.

The lifecycle (``_schema``) and the GRAPH capability (``_graph``) are its other halves;
this module holds the hot path. ``put_many`` is one ``UNWIND ... MERGE`` on the key's
uniqueness constraint; reads by key seek the same index.

ATOMIC_INCREMENT is ``SET n.f = coalesce(n.f, 0) + $amount`` in one write transaction.
PARTIAL_UPDATE sets top-level fields with ``SET n += $changes``; dotted paths into JSON
fields are read, changed and written back inside one write transaction that first takes
the node's write lock, so concurrent updates serialise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import neo4j

from adapters.base import Capability, ExpiringScan, Filter, Query, Row, sort_key
from adapters.graph import _queries as q
from adapters.graph._cypher import Params, tick
from adapters.graph._graph import GraphOps
from adapters.graph._label import Label
from adapters.graph._schema import SchemaOps
from adapters.graph._values import encode
from sharding.base import KeyRange, TokenRange
from sharding.core.errors import QueryError
from sharding.core.limits import DEFAULT_LIMITS, ValueLimits
from sharding.core.model import EntitySchema

__all__ = ["GraphAdapter"]


class GraphAdapter(GraphOps, SchemaOps, ExpiringScan):
    """One shard on one Neo4j server (or one label prefix of it). See ``adapters.graph``."""

    capabilities: ClassVar[Capability] = Capability.GRAPH | Capability.ATOMIC_INCREMENT | Capability.PARTIAL_UPDATE
    # Neo4j's own types where it has them, text where not (``_values``), each round trip
    # tested on the stack's Neo4j (tests/safety). Integers stay 64-bit (Neo4j's).
    value_limits: ClassVar[ValueLimits] = replace(
        DEFAULT_LIMITS,
        float_nan=True,  # Neo4j floats are IEEE doubles: NaN, infinities and -0.0 kept
        float_infinity=True,
        decimal_digits=None,  # decimal text, exact; compared in Python, not on the server
        decimal_min_exponent=None,
        decimal_max_exponent=None,
        decimal_infinity=True,  # "Infinity" text (a NaN stays refused: it cannot be ordered)
        datetime_min=dt.datetime.min.replace(tzinfo=dt.UTC),  # a zoned DateTime: years 1..9999 and beyond
        date_min=dt.date.min,  # a Date, likewise
        str_nul=True,  # Neo4j strings hold any code point
    )

    # -- rows ------------------------------------------------------------------------
    def put(self, schema: EntitySchema, row: Row) -> None:
        self.put_many(schema, [row])

    def put_many(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        if not rows:
            return 0
        label = self._label(schema)
        with_token = self._with_token.get(label.name, True)
        # Last write wins within one batch, as with a sequence of puts.
        key_of, encode_row = schema.key_of, label.encode_row
        unique = {key_of(row): encode_row(row, with_token) for row in rows}
        key = next(iter(unique)) if len(unique) == 1 else None
        self._records(label.upsert, {"rows": list(unique.values())}, write=True, key=key)
        return len(unique)

    def get(self, schema: EntitySchema, key: Any) -> Row | None:
        label = self._label(schema)
        found = self._nodes(label, label.read, {"key": label.key_params(key)}, key=key)
        return found[0] if found else None

    def get_many(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        if not keys:
            return []
        label = self._label(schema)
        query = f"UNWIND $keys AS k MATCH {label.node('n', 'k')} RETURN DISTINCT properties(n) AS p"
        return self._nodes(label, query, {"keys": [label.key_params(key) for key in keys]})

    def delete(self, schema: EntitySchema, key: Any) -> bool:
        return self._delete(schema, [key], key) > 0

    def delete_many(self, schema: EntitySchema, keys: Sequence[Any]) -> int:
        return self._delete(schema, list(dict.fromkeys(keys)), None) if keys else 0

    def _delete(self, schema: EntitySchema, keys: Sequence[Any], key: Any) -> int:
        label = self._label(schema)
        query = f"UNWIND $keys AS k MATCH {label.node('n', 'k')} WITH DISTINCT n DETACH DELETE n RETURN count(*) AS c"
        found = self._records(query, {"keys": [label.key_params(k) for k in keys]}, write=True, key=key)
        return int(found[0]["c"]) if found else 0

    # -- queries ---------------------------------------------------------------------
    def _matching(self, label: Label, where: str, params: Params) -> list[Row]:
        """Every row the server-side filters let through (Python finishes the rest)."""
        return self._nodes(label, f"MATCH (n:{label.q}) {where}RETURN properties(n) AS p", params.values)

    def find(self, schema: EntitySchema, query: Query) -> list[Row]:
        label = self._label(schema)
        server, client = q.split(label, query.filters)
        for item in query.order_by:
            q.field_spec(label, item.field)
        params = Params()
        where = q.where(label, server, params)
        if client or any(q.client_side(label, item.field) for item in query.order_by):
            rows = [row for row in self._matching(label, where, params) if all(f.matches(row) for f in client)]
            rows.sort(key=sort_key(schema, query.order_by))
            return rows if query.limit is None else rows[: query.limit]
        text = f"MATCH (n:{label.q}) {where}WITH n ORDER BY {q.order(label, query.order_by)} "
        if query.limit is not None:
            text += f"LIMIT {params.add(int(query.limit))} "
        return self._nodes(label, text + "RETURN properties(n) AS p", params.values)

    def count(self, schema: EntitySchema, filters: Sequence[Filter] = ()) -> int:
        label = self._label(schema)
        server, client = q.split(label, filters)
        params = Params()
        where = q.where(label, server, params)
        if client:
            return sum(1 for row in self._matching(label, where, params) if all(f.matches(row) for f in client))
        found = self._records(f"MATCH (n:{label.q}) {where}RETURN count(n) AS c", params.values)
        return int(found[0]["c"])

    def _scan_rows(
        self, schema: EntitySchema, tokens: TokenRange | None, keys: KeyRange | None, batch_size: int, *, expiring: bool
    ) -> Iterator[list[Row]]:
        # No TTL here: no row expires, so ``expiring`` (scan_expiring) adds nothing.
        label = self._label(schema)
        q.check_scan(label, tokens, batch_size, with_token=self._with_token.get(label.name, True))
        # A decimal shard key is stored as text: its bounds are checked in Python over a
        # keyset scan of the shard.
        keys_in_python = keys is not None and any(q.client_side(label, f) for f in schema.shard_key)
        server_keys = None if keys_in_python else keys
        order = q.scan_order(label, tokens)
        position: list[Any] | None = None
        while True:
            text, params = q.scan_query(label, tokens, server_keys, position, batch_size)
            batch = self._nodes(label, text, params)
            if not batch:
                return
            position = [batch[-1][f] for f in order]
            selected = [r for r in batch if keys is None or server_keys is not None or schema.shard_key_of(r) in keys]
            if selected:
                yield selected
            if len(batch) < batch_size:
                return

    # -- ATOMIC_INCREMENT / PARTIAL_UPDATE ---------------------------------------------
    def increment(self, schema: EntitySchema, key: Any, field: str, amount: int | float) -> int | float:
        label = self._label(schema)
        spec = q.field_spec(label, field)
        if spec.type not in ("int", "float") or field in schema.key:
            raise QueryError(f"{schema.name}.{field} is {spec.type}; increment needs a non-key int or float field")
        column = f"n.{tick(field)}"
        query = f"MATCH {label.node('n', '$key')} SET {column} = coalesce({column}, 0) + $amount RETURN {column} AS v"
        amount = float(amount) if spec.type == "float" else amount
        found = self._records(query, {"key": label.key_params(key), "amount": amount}, write=True, key=key)
        if not found:
            raise self._missing(schema, key)
        value = found[0]["v"]
        return float(value) if spec.type == "float" else int(value)

    def update(self, schema: EntitySchema, key: Any, changes: Mapping[str, Any]) -> bool:
        label = self._label(schema)
        top: dict[str, Any] = {}
        paths: dict[str, list[tuple[list[str], Any]]] = {}
        for path, value in changes.items():
            name, _, rest = path.partition(".")
            spec = label.spec(name)
            if name in schema.key or name in schema.shard_key:
                raise QueryError(f"{schema.name}.{name} is part of the key or shard key; it cannot change")
            if rest and spec.type != "json":
                raise QueryError(f"{schema.name}.{name} is {spec.type}, not a nested field: {path!r}")
            if rest:
                paths.setdefault(name, []).append((rest.split("."), value))
            else:
                top[name] = value
        params = {"key": label.key_params(key)}
        lock = f"n.{tick(schema.key[0])}"
        match = f"MATCH {label.node('n', '$key')} "

        def work(tx: neo4j.ManagedTransaction) -> bool:
            # Writing the key to itself takes the node's write lock before anything is read.
            found = list(tx.run(match + f"SET {lock} = {lock} RETURN properties(n) AS p", params))
            if not found:
                return False
            current = label.decode(found[0]["p"])
            values = dict(top)
            for name, steps in paths.items():
                values[name] = _set_paths(values.get(name, current.get(name)), steps)
            encoded = {name: encode(label.specs[name].type, value) for name, value in values.items()}
            tx.run(match + "SET n += $changes", {**params, "changes": encoded}).consume()
            return True

        if not changes:
            return self.get(schema, key) is not None
        return self._write(work, key)


def _set_paths(document: Any, steps: Sequence[tuple[list[str], Any]]) -> Any:
    """``document`` with each dotted path set, creating (or replacing) intermediate objects.

    Not ``adapters._paths.set_path``: that one refuses a path through a non-object, and
    this adapter has always replaced it (its tests say so), as the relational one does."""
    root: dict[str, Any] = dict(document) if isinstance(document, Mapping) else {}
    for path, value in steps:
        node = root
        for step in path[:-1]:
            child = node.get(step)
            child = dict(child) if isinstance(child, Mapping) else {}
            node[step] = child
            node = child
        node[path[-1]] = value
    return root
