"""``EdgeTable``: the SQL of the relational adapter's GRAPH capability.

One edge table per shard and namespace, ``{namespace}_ps_edges``: (source entity,
source key, type, target entity, target key) is the primary key and ``properties`` a
JSON column. Keys are stored as ``sharding.keys.encode_key`` bytes, so keys of any type
(composite ones too) and of different entities share one table, and ``1`` and ``"1"``
stay different nodes. A second index (target entity, target key, ...) serves incoming
edges and the cleanup when a node is deleted.

* ``reachable`` is one ``WITH RECURSIVE`` query: (node, distance) pairs joined level by
  level, ``UNION`` removing repeats, bounded by the depth, so cycles terminate; the
  minimal distance per node is kept. Each step is an index lookup per node (a LATERAL
  subquery on PostgreSQL, so a fresh table without statistics is no slower).
* ``path`` is a breadth-first search with one SQL query per level, remembering each
  node's first parent (frontier visited in key order, so the answer is stable).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection

from adapters.base import Direction, Relationship
from adapters.relational._json import jsonable
from adapters.relational._types import c_text, json_type
from sharding.core.errors import QueryError
from sharding.keys import decode_key, encode_key

__all__ = ["EdgeTable"]

_CHUNK: Final = 500
"""Keys per ``IN (...)`` list: below every backend's parameter limit."""


class EdgeTable:
    """The edge table of one shard, and the SQL that reads and writes it."""

    def __init__(self, name: str, schema: str | None) -> None:
        key_type = sa.LargeBinary()
        self.table = sa.Table(
            name,
            sa.MetaData(),
            sa.Column("source_entity", c_text(), primary_key=True),
            sa.Column("source_key", key_type, primary_key=True),
            sa.Column("type", c_text(), primary_key=True),
            sa.Column("target_entity", c_text(), primary_key=True),
            sa.Column("target_key", key_type, primary_key=True),
            sa.Column("properties", json_type(), nullable=False),
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

    def _ends(self, incoming: bool) -> tuple[sa.Column[Any], sa.Column[Any], sa.Column[Any], sa.Column[Any]]:
        """(this end's entity, its key, the other end's entity, its key) of an edge read
        from the source (or, ``incoming``, from the target)."""
        columns = self.table.c
        if incoming:
            return columns.target_entity, columns.target_key, columns.source_entity, columns.source_key
        return columns.source_entity, columns.source_key, columns.target_entity, columns.target_key

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
        entity, key = sa.bindparam("entity", type_=sa.Text()), sa.bindparam("key", type_=sa.LargeBinary())
        ends = (self._ends(incoming) for incoming in (False, True))
        return self.table.delete().where(sa.or_(*(sa.and_(kind == entity, at == key) for kind, at, _, _ in ends)))

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
        for incoming in (False, True):
            if direction != "both" and incoming != (direction == "in"):
                continue
            mine, at, theirs, there = self._ends(incoming)
            typed = [columns.type == type] if type is not None else []
            stmt = sa.select(there, columns.type, columns.properties).where(
                mine == entity, at == encoded, theirs == other, *typed
            )
            for other_key, kind, properties in connection.execute(stmt):
                neighbour = bytes(other_key)
                source, target = (decode_key(neighbour), key) if incoming else (key, decode_key(neighbour))
                found.append((neighbour, Relationship(kind, source, target, _props(properties))))
        return found

    def edges_of(
        self, connection: Connection, entity: str, keys: Sequence[Any], other: str, *, incoming: bool
    ) -> list[Relationship]:
        """Edges from the ``entity`` nodes with these keys to ``other`` nodes (or, with
        ``incoming``, from ``other`` nodes to them), any type."""
        columns = self.table.c
        found: list[Relationship] = []
        encoded = [encode_key(key) for key in dict.fromkeys(keys)]
        mine, by, theirs, _ = self._ends(incoming)
        for start in range(0, len(encoded), _CHUNK):
            stmt = sa.select(columns.source_key, columns.type, columns.target_key, columns.properties).where(
                mine == entity, theirs == other, by.in_(encoded[start : start + _CHUNK])
            )
            for source_key, kind, target_key, properties in connection.execute(stmt):
                found.append(
                    Relationship(kind, decode_key(bytes(source_key)), decode_key(bytes(target_key)), _props(properties))
                )
        return found

    def _within(self, entity: str, type: str | None) -> list[sa.ColumnElement[bool]]:
        """Edges between rows of ``entity`` (of ``type``, if given): what a walk follows."""
        columns = self.table.c
        where = [columns.source_entity == entity, columns.target_entity == entity]
        if type is not None:
            where.append(columns.type == type)
        return where

    @staticmethod
    def _hops(
        direction: Direction, select: Callable[[bool], sa.Select[Any]]
    ) -> sa.Select[Any] | sa.CompoundSelect[Any]:
        """``select(incoming)`` for the hops a ``direction`` allows: one, or both united."""
        if direction == "out":
            return select(False)
        if direction == "in":
            return select(True)
        return sa.union_all(select(False), select(True))

    def _steps(self, entity: str, type: str | None, direction: Direction) -> sa.Subquery:
        """(here, there) pairs: one edge between rows of ``entity`` in ``direction``."""
        where = self._within(entity, type)

        def hop(incoming: bool) -> sa.Select[Any]:
            _, here, _, there = self._ends(incoming)
            return sa.select(here.label("here"), there.label("there")).where(*where)

        return self._hops(direction, hop).subquery("step")

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
        where = self._within(entity, type)

        def hop(incoming: bool) -> sa.Select[Any]:
            _, here, _, there = self._ends(incoming)
            # OFFSET 0 keeps PostgreSQL from flattening a single-branch subquery back into a join.
            return sa.select(there.label("there")).where(*where, here == walk.c.node).offset(0)

        lateral = self._hops(direction, hop).lateral("step")
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
