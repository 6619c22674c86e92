"""``MarkerTable``: the apply-once markers of ``increment_once``, beside the counters.

One table per shard and namespace, ``{namespace}ps_saga_marker`` in the shard's own
database and schema: (marker, state, at). A marker row is written in the same
transaction as the increment it guards, so both commit or neither does: that is what
makes a saga step's increment exactly once however often the step is repeated.

The marker is claimed with ``INSERT ... ON CONFLICT DO NOTHING`` (SQLite and
PostgreSQL): of two racing attempts of one step, the second waits on the first's
primary-key entry and then finds it taken, instead of reading "no marker" and failing
on a duplicate key. ``undo`` flips ``applied`` to ``undone`` with a conditional
``UPDATE``, or claims the marker as ``undone`` (a tombstone) when the action never ran,
so an action that arrives after its compensation does nothing.
"""

from __future__ import annotations

import time
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

__all__ = ["APPLIED", "UNDONE", "MarkerTable"]

APPLIED: Final = "applied"
UNDONE: Final = "undone"


class MarkerTable:
    """The marker table of one shard (see the module docstring)."""

    def __init__(self, name: str, schema: str | None) -> None:
        self.table = sa.Table(
            name,
            sa.MetaData(),
            sa.Column("marker", sa.String(255), primary_key=True),
            sa.Column("state", sa.String(10), nullable=False),
            sa.Column("at", sa.Double, nullable=False),
            schema=schema,
        )

    def create(self, engine: Engine) -> None:
        """Create the table unless it exists, also when another process creates it at the
        same moment (its ``CREATE`` then wins and ours fails: the table is there)."""
        try:
            self.table.create(engine, checkfirst=True)
        except SQLAlchemyError:
            if not sa.inspect(engine).has_table(self.table.name, schema=self.table.schema):
                raise

    def claim(self, connection: Connection, marker: str, state: str) -> bool:
        """Write ``marker`` in ``state`` unless it exists; whether this call wrote it."""
        dialect = connection.dialect.name
        insert: Any = (pg_dialect.insert if dialect == "postgresql" else sqlite_dialect.insert)(self.table)
        stmt = insert.values(marker=marker, state=state, at=time.time()).on_conflict_do_nothing()
        # RETURNING, not rowcount: a skipped insert returns no row on every dialect and driver.
        return connection.execute(stmt.returning(self.table.c.marker)).first() is not None

    def undo(self, connection: Connection, marker: str) -> bool:
        """Move an ``applied`` marker to ``undone``; whether it was applied."""
        column = self.table.c
        stmt = (
            self.table.update()
            .where(column.marker == marker, column.state == APPLIED)
            .values(state=UNDONE, at=time.time())
        )
        return bool(connection.execute(stmt).rowcount)
