"""``ChangeOps``: changes to one row on the server (increments, apply-once increments,
partial updates).

* ATOMIC_INCREMENT: ``UPDATE ... SET f = COALESCE(f, 0) + :amount ... RETURNING f``; a
  missing (or expired) row is a ``NotFoundError`` and is not created.
* APPLY_ONCE: ``increment_once`` runs that same ``UPDATE`` in one transaction with its
  marker row (``_markers``), so a saga step that repeats it applies it exactly once,
  and an undo that comes first leaves a tombstone a late ``do`` respects. The marker
  table is created on this adapter's first ``increment_once`` and remembered here.
* PARTIAL_UPDATE: one ``UPDATE`` setting fields and JSON paths (``_json``), applied in
  order; all in SQL, paths and values as parameters.

SQLite and PostgreSQL only (they have ``RETURNING``, ``json_set``/``jsonb_set`` and
``ON CONFLICT``); other dialects raise ``UnsupportedCapability``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapters.relational._errors import ERRORS
from adapters.relational._json import JsonChanges
from adapters.relational._markers import APPLIED, UNDONE, MarkerTable
from adapters.relational._shard import SqlShard
from adapters.relational._tables import TableSet
from sharding.core.errors import NotFoundError, QueryError
from sharding.core.model import EntitySchema, FieldSpec

__all__ = ["ChangeOps"]


class ChangeOps(SqlShard):
    """ATOMIC_INCREMENT, APPLY_ONCE and PARTIAL_UPDATE for ``RelationalAdapter``."""

    _markers: MarkerTable | None = None
    """The apply-once marker table, once this adapter has created (or found) it."""

    def _changeable(self, schema: EntitySchema, name: str) -> FieldSpec:
        if name not in schema.field_names:
            raise QueryError(f"{schema.name}: unknown field {name!r} (fields: {', '.join(schema.field_names)})")
        if name in schema.key or name in schema.shard_key:
            raise QueryError(f"{schema.name}.{name} is part of the key or shard key; it cannot change")
        return schema.field(name)

    # -- increments ------------------------------------------------------------------
    def _counter(self, schema: EntitySchema, field: str, amount: int | float) -> tuple[FieldSpec, TableSet]:
        """The numeric field ``field`` and its table, checked before anything is written."""
        spec = self._changeable(schema, field)
        if spec.type not in ("int", "float"):
            raise QueryError(f"{schema.name}.{field} is {spec.type}; increment needs int or float")
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise QueryError(f"{schema.name}.{field}: increment by a number, not {amount!r}")
        if spec.type == "int" and not isinstance(amount, int):
            raise QueryError(f"{schema.name}.{field} is int; increment it by an int, not {amount!r}")
        self._require_dialect("ATOMIC_INCREMENT", "RETURNING")
        return spec, self._tableset(schema)

    def _add(
        self, connection: Connection, schema: EntitySchema, spec: FieldSpec, key: Any, amount: int | float
    ) -> int | float | None:
        """Add ``amount`` to the live row's field; its new value, or None if there is no row."""
        tables = self._tableset(schema)
        column = tables.table.c[spec.name]
        stmt = (
            tables.table.update()
            .where(tables.key_clause(key), tables.live(time.time()))
            .values({spec.name: sa.func.coalesce(column, 0) + sa.bindparam("ps_amount", amount, type_=column.type)})
            .returning(column)
        )
        found = connection.execute(stmt).first()
        return None if found is None else _number(spec, found[0])

    def _no_row(self, schema: EntitySchema, key: Any) -> NotFoundError:
        return NotFoundError(f"no {schema.name} to increment", store=self.store, shard=self.shard, key=key)

    def increment(self, schema: EntitySchema, key: Any, field: str, amount: int | float) -> int | float:
        spec, _ = self._counter(schema, field, amount)
        with self._connect(key, write=True) as connection:
            value = self._add(connection, schema, spec, key, amount)
        if value is None:
            raise self._no_row(schema, key)
        return value

    def increment_once(
        self, schema: EntitySchema, key: Any, field: str, amount: int | float, *, marker: str, undo: bool = False
    ) -> int | float | None:
        """``increment`` tied to ``marker``, in one transaction with it (see the module docstring)."""
        spec, tables = self._counter(schema, field, amount)
        markers = self._marker_table()
        with self._connect(key, write=True) as connection:
            if undo:
                # The tombstone first: if a racing ``do`` holds the marker's key, the claim
                # waits for it to commit, and the conditional update then sees it applied.
                if not markers.claim(connection, marker, UNDONE) and markers.undo(connection, marker):
                    return self._add(connection, schema, spec, key, -amount)
            elif markers.claim(connection, marker, APPLIED):
                value = self._add(connection, schema, spec, key, amount)
                if value is None:  # raised inside the transaction: the marker is rolled back
                    raise self._no_row(schema, key)
                return value
            # A repeat, or a tombstone left behind: nothing changes; the counter as it is.
            found = connection.execute(sa.select(tables.table.c[field]).where(tables.key_clause(key))).first()
        return None if found is None else _number(spec, found[0])

    def _marker_table(self) -> MarkerTable:
        """The marker table, created on first use (once per adapter, see ``MarkerTable.create``)."""
        markers = self._markers
        if markers is None:
            with self._lock:
                markers = self._markers
                if markers is None:
                    markers = MarkerTable(f"{self._prefix}ps_saga_marker", self.schema)
                    with ERRORS.translating(self.store, self.shard):
                        markers.create(self.engine)
                    self._markers = markers
        return markers

    # -- partial updates -------------------------------------------------------------
    def update(self, schema: EntitySchema, key: Any, changes: Mapping[str, Any]) -> bool:
        """Set fields and JSON paths in one UPDATE (applied in order); False if no such row."""
        tables = self._tableset(schema)
        values: dict[str, Any] = {}
        documents: dict[str, JsonChanges] = {}
        for path, value in changes.items():
            name, *steps = path.split(".")
            spec = self._changeable(schema, name)
            column = tables.table.c[name]
            if spec.type == "json":
                if steps:
                    self._require_dialect("PARTIAL_UPDATE of JSON paths", "json_set/jsonb_set")
                documents.setdefault(name, JsonChanges(column)).set(steps, value)
            elif steps:
                raise QueryError(f"{schema.name}.{name} is {spec.type}, not a nested field: {path!r}")
            else:
                values[name] = sa.bindparam(None, value, type_=column.type)
        values.update({name: document.expression(self.dialect) for name, document in documents.items()})
        with self._connect(key, write=True) as connection:
            if not values:
                return connection.execute(tables.exists(key)).first() is not None
            stmt = tables.table.update().where(tables.key_clause(key), tables.live(time.time())).values(values)
            return bool(connection.execute(stmt).rowcount)


def _number(spec: FieldSpec, value: Any) -> int | float | None:
    """A counter's stored value as the field's Python type (None stays None)."""
    if value is None:
        return None
    return float(value) if spec.type == "float" else int(value)
