"""Relationships between rows in SQL: the relational adapter's GRAPH capability.

One edge table per shard and namespace, ``{namespace}_ps_edges``: (source entity,
source key, type, target entity, target key) is the primary key and ``properties`` a
JSON column. Keys are stored as ``sharding.keys.encode_key`` bytes, so keys of any type
(composite ones too) and of different entities share one table, and ``1`` and ``"1"``
stay different nodes. A second index (target entity, target key, ...) serves incoming
edges and the cleanup when a node is deleted.

* ``neighbors`` reads the edges through one index and the rows through ``get_many``.
* ``traverse`` is one ``WITH RECURSIVE`` query: (node, distance) pairs joined level by
  level, ``UNION`` removing repeats, bounded by the depth, so cycles terminate; the
  minimal distance per node is kept. Each step is an index lookup per node (a LATERAL
  subquery on PostgreSQL, so a fresh table without statistics is no slower).
* ``shortest_path`` is a breadth-first search with one SQL query per level, remembering
  each node's first parent (frontier visited in key order, so the answer is stable).

The edge table itself is created lazily by the first ``relate``; the adapter deletes a
node's edges when it deletes the node.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection

from adapters._sql_core import Compiled, SqlHost, translate_errors
from adapters._sql_json import jsonable
from adapters.base import Direction, Neighbor, Relationship, Row
from sharding.core.errors import NotFoundError, QueryError
from sharding.core.model import EntitySchema
from sharding.keys import decode_key, encode_key

__all__ = ["EdgeTable", "GraphCapability"]

_CHUNK = 500


class EdgeTable:
    """The edge table of one shard, and the SQL that reads and writes it."""

    def __init__(self, name: str, schema: str | None) -> None:
        key_type = sa.LargeBinary()
        self.table = sa.Table(
            name,
            sa.MetaData(),
            sa.Column("source_entity", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), primary_key=True),
            sa.Column("source_key", key_type, primary_key=True),
            sa.Column("type", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), primary_key=True),
            sa.Column("target_entity", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), primary_key=True),
            sa.Column("target_key", key_type, primary_key=True),
            sa.Column("properties", sa.JSON().with_variant(pg_dialect.JSONB(), "postgresql"), nullable=False),
            schema=schema,
        )
        columns = self.table.c
        sa.Index(
            f"ix_{name}_target",
            columns.target_entity,
            columns.target_key,
            columns.type,
            columns.source_entity,
            columns.source_key,
        )

    # -- writes ----------------------------------------------------------------------
    def upsert(self, connection: Connection, relationship: Relationship, source: str, target: str) -> None:
        values = {
            "source_entity": source,
            "source_key": encode_key(relationship.source),
            "type": relationship.type,
            "target_entity": target,
            "target_key": encode_key(relationship.target),
            "properties": jsonable(dict(relationship.properties), "relationship properties"),
        }
        dialect = connection.dialect.name
        insert: Any = (pg_dialect.insert if dialect == "postgresql" else sqlite_dialect.insert)(self.table)
        stmt = insert.values(values).on_conflict_do_update(
            index_elements=list(self.table.primary_key.columns), set_={"properties": insert.excluded.properties}
        )
        connection.execute(stmt)

    def remove(self, connection: Connection, relationship: Relationship, source: str, target: str) -> bool:
        columns = self.table.c
        stmt = self.table.delete().where(
            columns.source_entity == source,
            columns.source_key == encode_key(relationship.source),
            columns.type == relationship.type,
            columns.target_entity == target,
            columns.target_key == encode_key(relationship.target),
        )
        return bool(connection.execute(stmt).rowcount)

    def detach_statement(self) -> sa.Delete:
        """Delete every edge touching one node (``entity``, ``key`` parameters)."""
        columns = self.table.c
        entity, key = sa.bindparam("entity", type_=sa.Text()), sa.bindparam("key", type_=sa.LargeBinary())
        return self.table.delete().where(
            sa.or_(
                sa.and_(columns.source_entity == entity, columns.source_key == key),
                sa.and_(columns.target_entity == entity, columns.target_key == key),
            )
        )

    def forget_entity(self, connection: Connection, entity: str) -> None:
        """Edges touching any row of a dropped entity."""
        columns = self.table.c
        connection.execute(
            self.table.delete().where(sa.or_(columns.source_entity == entity, columns.target_entity == entity))
        )

    # -- reads -----------------------------------------------------------------------
    def edges(
        self,
        connection: Connection,
        entity: str,
        key: Any,
        *,
        type: str | None,
        direction: Direction,
        other: str,
    ) -> list[tuple[bytes, Relationship]]:
        """(neighbour's encoded key, relationship) of the node's edges in ``direction``."""
        encoded = encode_key(key)
        columns = self.table.c
        found: list[tuple[bytes, Relationship]] = []
        if direction in ("out", "both"):
            stmt = sa.select(columns.target_key, columns.type, columns.properties).where(
                columns.source_entity == entity,
                columns.source_key == encoded,
                columns.target_entity == other,
                *([columns.type == type] if type is not None else []),
            )
            for target_key, kind, properties in connection.execute(stmt):
                target = bytes(target_key)
                found.append((target, Relationship(kind, key, decode_key(target), _props(properties))))
        if direction in ("in", "both"):
            stmt = sa.select(columns.source_key, columns.type, columns.properties).where(
                columns.target_entity == entity,
                columns.target_key == encoded,
                columns.source_entity == other,
                *([columns.type == type] if type is not None else []),
            )
            for source_key, kind, properties in connection.execute(stmt):
                source = bytes(source_key)
                found.append((source, Relationship(kind, decode_key(source), key, _props(properties))))
        return found

    def edges_of(
        self, connection: Connection, entity: str, keys: Sequence[Any], other: str, *, incoming: bool
    ) -> list[Relationship]:
        """Edges from the ``entity`` nodes with these keys to ``other`` nodes (or, with
        ``incoming``, from ``other`` nodes to them), any type."""
        columns = self.table.c
        found: list[Relationship] = []
        encoded = [encode_key(key) for key in dict.fromkeys(keys)]
        mine, theirs, by = (
            (columns.target_entity, columns.source_entity, columns.target_key)
            if incoming
            else (columns.source_entity, columns.target_entity, columns.source_key)
        )
        for start in range(0, len(encoded), _CHUNK):
            stmt = sa.select(columns.source_key, columns.type, columns.target_key, columns.properties).where(
                mine == entity, theirs == other, by.in_(encoded[start : start + _CHUNK])
            )
            for source_key, kind, target_key, properties in connection.execute(stmt):
                found.append(
                    Relationship(kind, decode_key(bytes(source_key)), decode_key(bytes(target_key)), _props(properties))
                )
        return found

    def _steps(self, entity: str, type: str | None, direction: Direction) -> sa.Subquery:
        """(here, there) pairs: one edge between rows of ``entity`` in ``direction``."""
        columns = self.table.c
        where = [columns.source_entity == entity, columns.target_entity == entity]
        if type is not None:
            where.append(columns.type == type)
        out = sa.select(columns.source_key.label("here"), columns.target_key.label("there")).where(*where)
        back = sa.select(columns.target_key.label("here"), columns.source_key.label("there")).where(*where)
        if direction == "out":
            return out.subquery("step")
        if direction == "in":
            return back.subquery("step")
        return sa.union_all(out, back).subquery("step")

    def reachable(
        self, connection: Connection, entity: str, key: Any, *, type: str | None, direction: Direction, depth: int
    ) -> list[tuple[int, bytes]]:
        """(minimal distance, encoded key) of nodes 1..depth edges away; one recursive query."""
        start = encode_key(key)
        walk = sa.select(
            sa.literal(start, type_=sa.LargeBinary()).label("node"), sa.literal(0, type_=sa.Integer()).label("distance")
        ).cte("walk", recursive=True)
        there, source = self._step_from(walk, connection.dialect.name, entity, type, direction)
        walk = walk.union(sa.select(there, walk.c.distance + 1).select_from(source).where(walk.c.distance < depth))
        stmt = (
            sa.select(walk.c.node, sa.func.min(walk.c.distance))
            .where(walk.c.node != sa.literal(start, type_=sa.LargeBinary()))
            .group_by(walk.c.node)
        )
        return [(int(distance), bytes(node)) for node, distance in connection.execute(stmt)]

    def _step_from(
        self, walk: sa.CTE, dialect: str, entity: str, type: str | None, direction: Direction
    ) -> tuple[Any, sa.FromClause]:
        """(next node column, FROM clause) of one step from the walk, as an index lookup per node.

        PostgreSQL: a LATERAL subquery, so the plan is a nested loop over the walk with
        index scans, even on a new edge table without statistics (a plain join then
        risks scanning every edge for every node). SQLite pushes the join condition
        into each branch of the step subquery by itself.
        """
        if dialect != "postgresql":
            step = self._steps(entity, type, direction)
            return step.c.there, walk.join(step, step.c.here == walk.c.node)
        columns = self.table.c
        common = [columns.source_entity == entity, columns.target_entity == entity]
        if type is not None:
            common.append(columns.type == type)
        out = sa.select(columns.target_key.label("there")).where(*common, columns.source_key == walk.c.node)
        back = sa.select(columns.source_key.label("there")).where(*common, columns.target_key == walk.c.node)
        # OFFSET 0 keeps PostgreSQL from flattening a single-branch subquery back into a join.
        out, back = out.offset(0), back.offset(0)
        chosen: Any = out if direction == "out" else back if direction == "in" else sa.union_all(out, back)
        lateral = chosen.lateral("step")
        return lateral.c.there, walk.join(lateral, sa.true())

    def path(
        self,
        connection: Connection,
        entity: str,
        source: Any,
        target: Any,
        *,
        type: str | None,
        direction: Direction,
        max_depth: int,
        order: Callable[[bytes], Any],
    ) -> list[bytes] | None:
        """Encoded keys of a shortest path source..target (breadth first), or None."""
        start, goal = encode_key(source), encode_key(target)
        if start == goal:
            return [start]
        step = self._steps(entity, type, direction)
        parents: dict[bytes, bytes] = {start: start}
        frontier = [start]
        for _ in range(max_depth):
            following: list[bytes] = []
            for here, there in self._next(connection, step, sorted(frontier, key=order), order):
                if there not in parents:
                    parents[there] = here
                    following.append(there)
            if goal in parents:
                return _unwind(parents, goal)
            if not following:
                return None
            frontier = following
        return None

    def _next(
        self, connection: Connection, step: sa.Subquery, frontier: Sequence[bytes], order: Callable[[bytes], Any]
    ) -> Iterable[tuple[bytes, bytes]]:
        """Edges leaving the frontier, in the frontier's order, then by neighbour."""
        rank = {node: index for index, node in enumerate(frontier)}
        pairs: list[tuple[bytes, bytes]] = []
        for begin in range(0, len(frontier), _CHUNK):
            chunk = list(frontier[begin : begin + _CHUNK])
            stmt = sa.select(step.c.here, step.c.there).where(step.c.here.in_(chunk))
            pairs.extend((bytes(here), bytes(there)) for here, there in connection.execute(stmt))
        pairs.sort(key=lambda pair: (rank[pair[0]], order(pair[1])))
        return pairs


class GraphCapability(SqlHost):
    """GRAPH for ``RelationalAdapter``: relate, unrelate, neighbors, traverse, shortest_path."""

    def _attach_edges(self, edges: EdgeTable) -> EdgeTable:
        """Use an existing edge table: from now on, deletes detach nodes too."""
        self._detach = Compiled(edges.detach_statement(), self.engine.dialect)
        self._edges = edges
        return edges

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
                with translate_errors(self.store, self.shard):
                    edges.table.create(self.engine, checkfirst=True)
                self._attach_edges(edges)
            return edges

    def _exists(self, connection: Connection, schema: EntitySchema, key: Any) -> bool:
        tables = self._tableset(schema)
        stmt = (
            sa.select(sa.literal(1)).select_from(tables.table).where(tables.key_clause(key), tables.live(time.time()))
        )
        return connection.execute(stmt).first() is not None

    def relate(self, schema: EntitySchema, relationship: Relationship, target: EntitySchema) -> None:
        edges = self._graph(schema, target)
        with translate_errors(self.store, self.shard, relationship.source), self.engine.begin() as connection:
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
        with translate_errors(self.store, self.shard, relationship.source), self.engine.begin() as connection:
            return edges.remove(connection, relationship, schema.name, target.name)

    def may_have_edges(self, schema: EntitySchema) -> bool:
        """Only if the shard's edge table exists (attached now if another adapter made it)."""
        if self._edges is not None:
            return True
        with translate_errors(self.store, self.shard):
            if not sa.inspect(self.engine).has_table(self._edge_name, schema=self.schema):
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
        with translate_errors(self.store, self.shard), self.engine.connect() as connection:
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
        with translate_errors(self.store, self.shard, key), self.engine.connect() as connection:
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
        with translate_errors(self.store, self.shard, key), self.engine.connect() as connection:
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
        with translate_errors(self.store, self.shard, source), self.engine.connect() as connection:
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


def _props(properties: Any) -> Mapping[str, Any]:
    if isinstance(properties, str):  # a driver that hands JSON back as text
        properties = json.loads(properties)
    if not isinstance(properties, dict):
        raise QueryError(f"edge properties are not an object: {properties!r}")
    return properties


def _unwind(parents: Mapping[bytes, bytes], goal: bytes) -> list[bytes]:
    path = [goal]
    while parents[path[-1]] != path[-1]:
        path.append(parents[path[-1]])
    path.reverse()
    return path
