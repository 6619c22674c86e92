"""The GRAPH capability in Cypher: relationships, neighbours, traversal and shortest paths.

Relationship types are validated identifiers, not prefixed: node labels already isolate
namespaces and shards. ``MERGE`` keeps one edge of a type per direction between two
nodes. Traversal and shortest paths use Neo4j 5's quantified path patterns with ``ANY
SHORTEST`` (a breadth-first search per reachable node, Neo4j 5.21 or later) and require
every node on the path to carry the entity's label. Deleting a node deletes its
relationships (``DETACH DELETE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from adapters.base import Direction, Neighbor, Relationship, Row
from adapters.graph._cypher import check_depth, ident, pattern, tick
from adapters.graph._label import Label
from adapters.graph._session import GraphSession
from adapters.graph._values import native_map, property_value
from sharding.core.errors import QueryError
from sharding.core.model import EntitySchema

__all__ = ["GraphOps"]

_EDGE_BATCH: Final = 500
"""Keys per ``UNWIND`` when reading the edges of many nodes."""


class GraphOps(GraphSession):
    """The GRAPH half of ``GraphAdapter``."""

    def _edge(self, schema: EntitySchema, relationship: Relationship, target: EntitySchema) -> tuple[str, str, str]:
        """The two end patterns (keys from ``$source`` and ``$target``) and the validated type."""
        source, other = self._label(schema), self._label(target)
        rel = tick(ident(relationship.type, "relationship type"))
        return source.node("a", "$source"), other.node("b", "$target"), rel

    def _ends(self, schema: EntitySchema, relationship: Relationship, target: EntitySchema) -> dict[str, Any]:
        return {
            "source": self._label(schema).key_params(relationship.source),
            "target": self._label(target).key_params(relationship.target),
        }

    def relate(self, schema: EntitySchema, relationship: Relationship, target: EntitySchema) -> None:
        a, b, rel = self._edge(schema, relationship, target)
        props: dict[str, Any] = {}
        for name, value in relationship.properties.items():
            if not isinstance(name, str):
                raise QueryError(f"relationship property names are strings, not {name!r}")
            stored = property_value(name, value)
            if stored is not None:
                props[name] = stored
        query = (
            f"OPTIONAL MATCH {a} OPTIONAL MATCH {b} "
            "FOREACH (_ IN CASE WHEN a IS NOT NULL AND b IS NOT NULL THEN [1] ELSE [] END | "
            f"MERGE (a)-[r:{rel}]->(b) SET r = $props) "
            "RETURN a IS NOT NULL AS has_source, b IS NOT NULL AS has_target"
        )
        params = {**self._ends(schema, relationship, target), "props": props}
        record = self._records(query, params, write=True, key=relationship.source)[0]
        if not record["has_source"]:
            raise self._missing(schema, relationship.source)
        if not record["has_target"]:
            raise self._missing(target, relationship.target)

    def unrelate(self, schema: EntitySchema, relationship: Relationship, target: EntitySchema) -> bool:
        a, b, rel = self._edge(schema, relationship, target)
        query = f"MATCH {a}-[r:{rel}]->{b} DELETE r RETURN count(*) AS c"
        params = self._ends(schema, relationship, target)
        found = self._records(query, params, write=True, key=relationship.source)
        return bool(found and found[0]["c"])

    def edges_of(
        self, schema: EntitySchema, keys: Sequence[Any], other: EntitySchema, *, incoming: bool = False
    ) -> list[Relationship]:
        """Edges from these ``schema`` nodes to ``other`` nodes (or into them with
        ``incoming``), any type: one UNWIND per 500 keys."""
        mine, theirs = self._label(schema), self._label(other)
        arrow = pattern("in" if incoming else "out", variable="r")
        query = (
            f"UNWIND $keys AS k MATCH {mine.node('a', 'k')}{arrow}(b:{theirs.q}) "
            "RETURN properties(a) AS a, type(r) AS t, properties(r) AS rp, properties(b) AS b"
        )
        found: list[Relationship] = []
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _EDGE_BATCH):
            params = {"keys": [mine.key_params(key) for key in unique[start : start + _EDGE_BATCH]]}
            for record in self._records(query, params):
                here, there = mine.key_of(mine.decode(record["a"])), theirs.key_of(theirs.decode(record["b"]))
                ends = (there, here) if incoming else (here, there)
                found.append(Relationship(record["t"], ends[0], ends[1], native_map(record["rp"])))
        return found

    def neighbors(
        self,
        schema: EntitySchema,
        key: Any,
        *,
        type: str | None = None,
        direction: Direction = "out",
        target: EntitySchema | None = None,
    ) -> list[Neighbor]:
        source = self._label(schema)
        other = self._label(target or schema)
        query = (
            f"MATCH {source.node('a', '$key')}{pattern(direction, type, 'r')}(b:{other.q}) "
            "WITH DISTINCT a, r, b "
            f"ORDER BY {other.order_key('b')}, type(r), startNode(r) = a DESC "
            "RETURN properties(b) AS p, type(r) AS t, properties(r) AS rp, startNode(r) = a AS outgoing"
        )
        result: list[Neighbor] = []
        for record in self._records(query, {"key": source.key_params(key)}, key=key):
            row = other.decode(record["p"])
            node_key = other.key_of(row)
            ends = (key, node_key) if record["outgoing"] else (node_key, key)
            result.append(Neighbor(row, Relationship(record["t"], ends[0], ends[1], native_map(record["rp"]))))
        return result

    def traverse(
        self,
        schema: EntitySchema,
        key: Any,
        *,
        type: str | None = None,
        direction: Direction = "out",
        depth: int = 1,
    ) -> list[tuple[int, Row]]:
        label = self._label(schema)
        depth = check_depth(depth, "depth", minimum=1)
        query = (
            f"MATCH {label.node('a', '$key')} "
            f"MATCH p = ANY SHORTEST (a){_steps(label, type, direction, depth)}(b) "
            "WHERE b <> a "
            f"WITH length(p) AS d, b ORDER BY d, {label.order_key('b')} "
            "RETURN d, properties(b) AS p"
        )
        found = self._records(query, {"key": label.key_params(key)}, key=key)
        return [(int(record["d"]), label.decode(record["p"])) for record in found]

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
        label = self._label(schema)
        max_depth = check_depth(max_depth, "max_depth", minimum=0)
        steps = _steps(label, type, direction, max(max_depth, 1))
        if label.key_params(source) == label.key_params(target):
            row = self.get(schema, source)
            return None if row is None else [row]
        if max_depth == 0:
            return None
        query = (
            f"MATCH {label.node('a', '$source')} MATCH {label.node('b', '$target')} "
            f"MATCH p = ANY SHORTEST (a){steps}(b) "
            "RETURN [x IN nodes(p) | properties(x)] AS nodes LIMIT 1"
        )
        params = {"source": label.key_params(source), "target": label.key_params(target)}
        found = self._records(query, params, key=source)
        return [label.decode(props) for props in found[0]["nodes"]] if found else None


def _steps(label: Label, type: str | None, direction: Direction, high: int) -> str:
    """A quantified path pattern of ``1..high`` hops whose every node has ``label``."""
    return "(()" + pattern(direction, type) + f"(:{label.q})){{1,{int(high)}}}"
