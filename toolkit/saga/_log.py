"""The saga log: two tables in the catalog database (SQLite or PostgreSQL).

``ps_saga`` holds one row per saga: its state, the step it is at, its payload and step
results, and the lease (owner, expiry) of the process running it. ``ps_saga_event``
is the timeline: one row per transition, numbered per saga. A transition is one
transaction that updates the saga row *and* appends its events, so the catalog sees
one write per transition; the update is conditional on the writer still holding the
lease (``WHERE lease_owner = :me``), which is what fences a runner that was presumed
dead and replaced (``LeaseLost``).

Leases are taken with one conditional UPDATE (``WHERE lease_until < :now AND state IN
(active)``): on PostgreSQL the row lock makes the second of two racing recoverers
re-check the condition and match nothing; on SQLite writers are serialized. Both give
"exactly one winner" without SELECT ... FOR UPDATE.

The tables are the saga log's own, declared here on the catalog's one ``MetaData``
(``toolkit.catalog``), which creates them when it opens.
"""

from __future__ import annotations

import builtins
import enum
import itertools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from toolkit.catalog import CatalogAccess, catalog_table, optional, required
from toolkit.errors import CatalogError
from toolkit.saga._errors import LeaseLost

__all__ = ["ACTIVE", "TERMINAL", "SagaEvent", "SagaLog", "SagaRecord", "SagaState"]

saga_table = catalog_table(
    "ps_saga",
    sa.Column("id", sa.String(36), primary_key=True),
    *required(name=sa.String(120)),
    sa.Column("idempotency_key", sa.String(255), nullable=True, unique=True),
    *required(payload_hash=sa.String(64)),
    sa.Column("state", sa.String(20), nullable=False, index=True),
    *required(phase=sa.String(12), step=sa.Integer, steps=sa.JSON, payload=sa.JSON, results=sa.JSON),
    *optional(error=sa.Text, lease_owner=sa.String(80)),
    *required(lease_until=sa.Double, created_at=sa.Double, updated_at=sa.Double),
)

event_table = catalog_table(
    "ps_saga_event",
    sa.Column("saga_id", sa.String(36), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    *required(at=sa.Double, kind=sa.String(24)),
    *optional(step=sa.Integer, attempt=sa.Integer, detail=sa.Text),
)

effect_table = catalog_table(
    "ps_saga_effect",
    sa.Column("marker", sa.String(255), primary_key=True),
    *required(state=sa.String(10), at=sa.Double),
)
"""Markers of ``increment_once`` on backends that cannot keep one beside the counter."""


_TRANSITIONS: dict[tuple[str, ...], sa.Update] = {}
_INSERT_EVENTS = sa.insert(event_table)


class SagaState(enum.StrEnum):
    """Where a saga is. ``needs_attention`` is the issue's "failed": a person must look."""

    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    COMPENSATED = "compensated"
    NEEDS_ATTENTION = "needs_attention"


ACTIVE = (SagaState.RUNNING, SagaState.COMPENSATING)
TERMINAL = (SagaState.COMPLETED, SagaState.COMPENSATED, SagaState.NEEDS_ATTENTION)


@dataclass(frozen=True, slots=True)
class SagaEvent:
    """One line of a saga's timeline."""

    seq: int
    at: float
    kind: str
    step: int | None = None
    attempt: int | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class SagaRecord:
    """A saga as the log knows it."""

    id: str
    name: str
    idempotency_key: str | None
    payload_hash: str
    state: SagaState
    phase: str
    """``forward`` (actions) or ``compensate``: which list ``step`` indexes."""
    step: int
    steps: list[str]
    payload: dict[str, Any]
    results: dict[str, Any]
    error: str | None
    lease_owner: str | None
    lease_until: float
    created_at: float
    updated_at: float
    events: list[SagaEvent] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


def _record(row: Any) -> SagaRecord:
    return SagaRecord(
        id=row.id,
        name=row.name,
        idempotency_key=row.idempotency_key,
        payload_hash=row.payload_hash,
        state=SagaState(row.state),
        phase=row.phase,
        step=row.step,
        steps=list(row.steps),
        payload=dict(row.payload),
        results=dict(row.results),
        error=row.error,
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class KeyTaken(Exception):
    """Internal: the idempotency key already has a saga (the caller reads it)."""


class SagaLog:
    """Reads and writes the saga tables on the catalog's engine. Thread-safe.

    ``writes`` counts committed write transactions (what the benchmark reports per
    transition).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._catalog = CatalogAccess(engine)
        self._writes = itertools.count()
        self.writes = 0

    @contextmanager
    def _write(self, doing: str) -> Iterator[Connection]:
        with self._catalog.writing(doing) as connection:
            yield connection
        self.writes = next(self._writes) + 1

    @staticmethod
    def _events(connection: Connection, saga_id: str, events: Sequence[SagaEvent]) -> None:
        if events:
            connection.execute(
                _INSERT_EVENTS,
                [
                    {
                        "saga_id": saga_id,
                        "seq": event.seq,
                        "at": event.at,
                        "kind": event.kind,
                        "step": event.step,
                        "attempt": event.attempt,
                        "detail": event.detail,
                    }
                    for event in events
                ],
            )

    # -- writes ----------------------------------------------------------------------
    def create(self, record: SagaRecord, events: Sequence[SagaEvent]) -> None:
        """Insert a new saga and its first events; ``KeyTaken`` if its idempotency key exists."""
        values = {
            "id": record.id,
            "name": record.name,
            "idempotency_key": record.idempotency_key,
            "payload_hash": record.payload_hash,
            "state": str(record.state),
            "phase": record.phase,
            "step": record.step,
            "steps": record.steps,
            "payload": record.payload,
            "results": record.results,
            "error": record.error,
            "lease_owner": record.lease_owner,
            "lease_until": record.lease_until,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
        }
        try:
            with self._write(f"start saga {record.name!r}") as connection:
                connection.execute(sa.insert(saga_table).values(**values))
                self._events(connection, record.id, events)
        except CatalogError as exc:
            if isinstance(exc.__cause__, IntegrityError) and record.idempotency_key is not None:
                raise KeyTaken(record.idempotency_key) from None
            raise

    def transition(self, saga_id: str, owner: str, changes: Mapping[str, Any], events: Sequence[SagaEvent]) -> None:
        """Apply ``changes`` to the saga row and append ``events``: one transaction.

        Raises ``LeaseLost`` (and writes nothing) if ``owner`` no longer holds the lease.
        """
        names = tuple(sorted(changes))
        stmt = _TRANSITIONS.get(names)
        if stmt is None:  # built once per set of changed columns: SQLAlchemy then reuses its compiled form
            stmt = (
                sa.update(saga_table)
                .where(saga_table.c.id == sa.bindparam("w_id"), saga_table.c.lease_owner == sa.bindparam("w_owner"))
                .values({name: sa.bindparam(f"v_{name}") for name in names})
            )
            _TRANSITIONS[names] = stmt
        params = {f"v_{key}": str(value) if isinstance(value, SagaState) else value for key, value in changes.items()}
        params["w_id"] = saga_id
        params["w_owner"] = owner
        with self._write(f"log a transition of saga {saga_id}") as connection:
            updated = connection.execute(stmt, params).rowcount
            if updated != 1:
                raise LeaseLost(f"saga {saga_id}: lease lost by {owner} (another process took it over)")
            self._events(connection, saga_id, events)

    def renew(self, owner: str, saga_ids: Sequence[str], until: float) -> set[str]:
        """Extend the leases ``owner`` holds on ``saga_ids``; returns the ids it no longer holds."""
        if not saga_ids:
            return set()
        with self._write("renew saga leases") as connection:
            connection.execute(
                sa.update(saga_table)
                .where(saga_table.c.id.in_(list(saga_ids)), saga_table.c.lease_owner == owner)
                .values(lease_until=until)
            )
        held = self._held(owner, saga_ids)
        return set(saga_ids) - held

    def _held(self, owner: str, saga_ids: Sequence[str]) -> set[str]:
        stmt = sa.select(saga_table.c.id).where(saga_table.c.id.in_(list(saga_ids)), saga_table.c.lease_owner == owner)
        with self._catalog.reading("read saga leases") as connection:
            return {row.id for row in connection.execute(stmt)}

    def acquire(
        self,
        saga_id: str,
        owner: str,
        now: float,
        until: float,
        *,
        states: Sequence[SagaState] = ACTIVE,
        event: str = "recovered",
    ) -> int | None:
        """Take the lease of a saga in ``states`` whose lease has run out.

        Returns the next event number if this call won, None if another process holds
        the saga (or took it first, or it has finished). One transaction: the
        conditional UPDATE, then the "recovered" event.
        """
        with self._write(f"take the lease of saga {saga_id}") as connection:
            won = connection.execute(
                sa.update(saga_table)
                .where(
                    saga_table.c.id == saga_id,
                    saga_table.c.lease_until < now,
                    saga_table.c.state.in_([str(state) for state in states]),
                )
                .values(lease_owner=owner, lease_until=until, updated_at=now)
            ).rowcount
            if won != 1:
                return None
            last = connection.execute(
                sa.select(sa.func.max(event_table.c.seq)).where(event_table.c.saga_id == saga_id)
            ).scalar()
            seq = int(last or 0) + 1
            self._events(connection, saga_id, [SagaEvent(seq, now, event, detail=owner)])
        return seq + 1

    # -- effect markers (fallback increment_once) ---------------------------------------
    def mark(self, marker: str, state: str, now: float, *, expect: str | None = None) -> bool:
        """Insert a marker (``expect`` None) or move it from ``expect`` to ``state``; True if done."""
        try:
            with self._write("record an effect marker") as connection:
                if expect is None:
                    connection.execute(sa.insert(effect_table).values(marker=marker, state=state, at=now))
                    return True
                return bool(
                    connection.execute(
                        sa.update(effect_table)
                        .where(effect_table.c.marker == marker, effect_table.c.state == expect)
                        .values(state=state, at=now)
                    ).rowcount
                )
        except CatalogError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False
            raise

    def unmark(self, marker: str, *, expect: str) -> bool:
        """Delete a marker still in state ``expect``; True if it was."""
        with self._write("remove an effect marker") as connection:
            return bool(
                connection.execute(
                    sa.delete(effect_table).where(effect_table.c.marker == marker, effect_table.c.state == expect)
                ).rowcount
            )

    def marker(self, marker: str) -> str | None:
        stmt = sa.select(effect_table.c.state).where(effect_table.c.marker == marker)
        with self._catalog.reading("read an effect marker") as connection:
            value = connection.execute(stmt).scalar()
        return None if value is None else str(value)

    # -- reads -----------------------------------------------------------------------
    def get(self, saga_id: str, *, events: bool = False) -> SagaRecord | None:
        with self._catalog.reading(f"read saga {saga_id}") as connection:
            row = connection.execute(sa.select(saga_table).where(saga_table.c.id == saga_id)).first()
            if row is None:
                return None
            record = _record(row)
            if events:
                record.events.extend(self._read_events(connection, saga_id))
        return record

    def by_key(self, key: str) -> SagaRecord | None:
        stmt = sa.select(saga_table).where(saga_table.c.idempotency_key == key)
        with self._catalog.reading("read a saga by idempotency key") as connection:
            row = connection.execute(stmt).first()
        return None if row is None else _record(row)

    @staticmethod
    def _read_events(connection: Connection, saga_id: str) -> list[SagaEvent]:
        stmt = sa.select(event_table).where(event_table.c.saga_id == saga_id).order_by(event_table.c.seq)
        return [
            SagaEvent(row.seq, row.at, row.kind, row.step, row.attempt, row.detail) for row in connection.execute(stmt)
        ]

    def events(self, saga_id: str) -> list[SagaEvent]:
        with self._catalog.reading(f"read the timeline of saga {saga_id}") as connection:
            return self._read_events(connection, saga_id)

    def list(
        self, *, state: SagaState | None = None, name: str | None = None, limit: int | None = 100
    ) -> list[SagaRecord]:
        """Sagas, newest first, optionally of one state or name."""
        stmt = sa.select(saga_table).order_by(saga_table.c.created_at.desc(), saga_table.c.id)
        if state is not None:
            stmt = stmt.where(saga_table.c.state == str(state))
        if name is not None:
            stmt = stmt.where(saga_table.c.name == name)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._catalog.reading("list sagas") as connection:
            return [_record(row) for row in connection.execute(stmt)]

    def expired(self, now: float, *, limit: int | None = None) -> builtins.list[SagaRecord]:
        """Active sagas whose lease ran out: what recovery takes, oldest first."""
        stmt = (
            sa.select(saga_table)
            .where(saga_table.c.state.in_([str(state) for state in ACTIVE]), saga_table.c.lease_until < now)
            .order_by(saga_table.c.created_at)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._catalog.reading("find sagas to recover") as connection:
            return [_record(row) for row in connection.execute(stmt)]

    def counts(self) -> dict[str, int]:
        """Sagas per state."""
        stmt = sa.select(saga_table.c.state, sa.func.count()).group_by(saga_table.c.state)
        with self._catalog.reading("count sagas") as connection:
            return {str(row[0]): int(row[1]) for row in connection.execute(stmt)}
