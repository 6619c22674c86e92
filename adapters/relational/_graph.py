"""``GraphOps``: relationships between rows in SQL, the relational adapter's GRAPH capability.

The SQL is ``EdgeTable``'s (``_edges``); this module holds the contract's side of it:

* the edge table is created lazily by the first ``relate`` (or found by ``ensure`` and
  ``may_have_edges`` when another adapter created it); from then on deleting a node
  (delete, delete_many, a purge of expired rows) deletes its edges in the same
  transaction, and dropping a table deletes the edges of its entity;
* ``neighbors`` reads the edges through one index and the rows through ``get_many``,
  so an expired row is never a neighbour;
* ``traverse`` is one recursive query, ``shortest_path`` a breadth-first search with
  one query per level (see ``EdgeTable``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from adapters.base import Direction, Neighbor, Relationship, Row
from adapters.relational._edges import EdgeTable
from adapters.relational._errors import ERRORS
from adapters.relational._shard import SqlShard
from sharding.core.errors import NotFoundError, QueryError
from sharding.core.model import EntitySchema
from sharding.keys import decode_key, encode_key

__all__ = ["GraphOps"]


class GraphOps(SqlShard):
    """GRAPH for ``RelationalAdapter``: relate, unrelate, neighbors, traverse, shortest_path."""

    def _graph(self, *schemas: EntitySchema) -> EdgeTable:
        """The edge table, created on first use; ``schemas`` ensured (a target may be new here)."""
        self._require_dialect("GRAPH", "the edge table's upsert")
        for schema in schemas:
            if self._table_name(schema) not in self._tables:
                self.ensure(schema, with_token=True)
        if self._edges is not None:
            return self._edges
        with self._lock:
            edges: EdgeTable | None = self._edges  # another thread may have created it
            if edges is None:
                edges = EdgeTable(self._edge_name, self.schema)
                with ERRORS.translating(self.store, self.shard):
                    edges.table.create(self.engine, checkfirst=True)
                self._attach_edges(edges)
            return edges

    def _exists(self, connection: Connection, schema: EntitySchema, key: Any) -> bool:
        return connection.execute(self._tableset(schema).exists(key)).first() is not None

    def relate(self, schema: EntitySchema, relationship: Relationship, target: EntitySchema) -> None:
        edges = self._graph(schema, target)
        with self._connect(relationship.source, write=True) as connection:
            for end, key, what in ((schema, relationship.source, "source"), (target, relationship.target, "target")):
                if not self._exists(connection, end, key):
                    raise NotFoundError(
                        f"cannot relate: the {what} {end.name} does not exist",
                        store=self.store,
                        shard=self.shard,
                        key=key,
                    )
            edges.upsert(connection, relationship, schema.name, target.name)

    def unrelate(self, schema: EntitySchema, relationship: Relationship, target: EntitySchema) -> bool:
        edges = self._graph(schema, target)
        with self._connect(relationship.source, write=True) as connection:
            return edges.remove(connection, relationship, schema.name, target.name)

    def may_have_edges(self, schema: EntitySchema) -> bool:
        """Only if the shard's edge table exists (attached now if another adapter made it)."""
        if self._edges is not None:
            return True
        with ERRORS.translating(self.store, self.shard):
            if not self._has_table(self._edge_name):
                return False
        with self._lock:
            if self._edges is None:
                self._attach_edges(EdgeTable(self._edge_name, self.schema))
        return True

    def edges_of(
        self, schema: EntitySchema, keys: Sequence[Any], other: EntitySchema, *, incoming: bool = False
    ) -> list[Relationship]:
        """The nodes' edges to (or from) ``other`` nodes; none without an edge table."""
        edges = self._edges
        if edges is None or not keys:
            return []
        with self._connect() as connection:
            return edges.edges_of(connection, schema.name, keys, other.name, incoming=incoming)

    def _rows_by_encoded_key(self, schema: EntitySchema, encoded: Iterable[bytes]) -> dict[bytes, Row]:
        unique = list(dict.fromkeys(encoded))
        rows = self.get_many(schema, [decode_key(item) for item in unique]) if unique else []
        return {encode_key(schema.key_of(row)): row for row in rows}

    def neighbors(
        self,
        schema: EntitySchema,
        key: Any,
        *,
        type: str | None = None,
        direction: Direction = "out",
        target: EntitySchema | None = None,
    ) -> list[Neighbor]:
        other = target or schema
        edges = self._graph(schema, other)
        with self._connect(key) as connection:
            found = edges.edges(connection, schema.name, key, type=type, direction=direction, other=other.name)
        rows = self._rows_by_encoded_key(other, (encoded for encoded, _ in found))
        result = [(decode_key(encoded), Neighbor(rows[encoded], rel)) for encoded, rel in found if encoded in rows]
        result.sort(key=lambda item: (item[0], item[1].relationship.type, item[1].relationship.target != item[0]))
        return [neighbor for _, neighbor in result]

    def traverse(
        self,
        schema: EntitySchema,
        key: Any,
        *,
        type: str | None = None,
        direction: Direction = "out",
        depth: int = 1,
    ) -> list[tuple[int, Row]]:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise QueryError(f"depth must be a positive integer, not {depth!r}")
        edges = self._graph(schema)
        with self._connect(key) as connection:
            found = edges.reachable(connection, schema.name, key, type=type, direction=direction, depth=depth)
        rows = self._rows_by_encoded_key(schema, (encoded for _, encoded in found))
        result = [(distance, rows[encoded]) for distance, encoded in found if encoded in rows]
        result.sort(key=lambda item: (item[0], schema.key_of(item[1])))
        return result

    def shortest_path(
        self,
        schema: EntitySchema,
        source: Any,
        target: Any,
        *,
        type: str | None = None,
        direction: Direction = "out",
        max_depth: int = 6,
    ) -> list[Row] | None:
        edges = self._graph(schema)
        with self._connect(source) as connection:
            if not (self._exists(connection, schema, source) and self._exists(connection, schema, target)):
                return None
            path = edges.path(
                connection,
                schema.name,
                source,
                target,
                type=type,
                direction=direction,
                max_depth=max_depth,
                order=decode_key,
            )
        if path is None:
            return None
        rows = self._rows_by_encoded_key(schema, path)
        return [rows[encoded] for encoded in path] if all(encoded in rows for encoded in path) else None
