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

The tables live in this module's own ``MetaData`` and are created on the catalog's
engine on first use; ``toolkit.catalog`` does not know about them.
"""

from __future__ import annotations

import builtins
import enum
import itertools
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from adapters.registry import redact_url
from toolkit.errors import CatalogError
from toolkit.saga._errors import LeaseLost

__all__ = ["ACTIVE", "TERMINAL", "SagaEvent", "SagaLog", "SagaRecord", "SagaState"]

metadata = sa.MetaData()

saga_table = sa.Table(
    "ps_saga",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("idempotency_key", sa.String(255), nullable=True, unique=True),
    sa.Column("payload_hash", sa.String(64), nullable=False),
    sa.Column("state", sa.String(20), nullable=False, index=True),
    sa.Column("phase", sa.String(12), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("steps", sa.JSON, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("results", sa.JSON, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("lease_owner", sa.String(80), nullable=True),
    sa.Column("lease_until", sa.Double, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

event_table = sa.Table(
    "ps_saga_event",
    metadata,
    sa.Column("saga_id", sa.String(36), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("step", sa.Integer, nullable=True),
    sa.Column("attempt", sa.Integer, nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
)

effect_table = sa.Table(
    "ps_saga_effect",
    metadata,
    sa.Column("marker", sa.String(255), primary_key=True),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("at", sa.Double, nullable=False),
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


_CREATED: set[tuple[int, str]] = set()
_CREATE_LOCK = threading.Lock()


class SagaLog:
    """Reads and writes the saga tables on one engine. Thread-safe.

    ``writes`` counts committed write transactions (what the benchmark reports per
    transition).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writes = itertools.count()
        self.writes = 0
        marker = (id(engine), str(engine.url))
        with _CREATE_LOCK:
            if marker not in _CREATED:
                self._create_tables()
                _CREATED.add(marker)

    def _create_tables(self) -> None:
        """CREATE TABLE IF MISSING, tolerating another process creating them at the same moment.

        ``checkfirst`` is a read then a write: two processes starting together can both
        see no table and one CREATE fails ("already exists", or a unique violation in
        PostgreSQL's catalog). Checking again then finds the winner's tables.
        """
        for attempt in range(5):
            try:
                metadata.create_all(self.engine, checkfirst=True)
                return
            except SQLAlchemyError:
                if attempt == 4:
                    with self._errors("create the saga log tables"):
                        raise
                time.sleep(0.05 * (attempt + 1))

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            inner = getattr(exc, "orig", None) or exc
            line = (str(inner).strip().splitlines() or [type(inner).__name__])[0]
            error = CatalogError(f"catalog {redact_url(str(self.engine.url))}: cannot {doing}: {line}")
            error.retryable = isinstance(exc, OperationalError)
            raise error from exc

    @contextmanager
    def _write(self, doing: str) -> Iterator[Connection]:
        with self._errors(doing), self.engine.begin() as connection:
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
        with self._errors("read saga leases"), self.engine.connect() as connection:
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
        with self._errors("read an effect marker"), self.engine.connect() as connection:
            value = connection.execute(stmt).scalar()
        return None if value is None else str(value)

    # -- reads -----------------------------------------------------------------------
    def get(self, saga_id: str, *, events: bool = False) -> SagaRecord | None:
        with self._errors(f"read saga {saga_id}"), self.engine.connect() as connection:
            row = connection.execute(sa.select(saga_table).where(saga_table.c.id == saga_id)).first()
            if row is None:
                return None
            record = _record(row)
            if events:
                record.events.extend(self._read_events(connection, saga_id))
        return record

    def by_key(self, key: str) -> SagaRecord | None:
        stmt = sa.select(saga_table).where(saga_table.c.idempotency_key == key)
        with self._errors("read a saga by idempotency key"), self.engine.connect() as connection:
            row = connection.execute(stmt).first()
        return None if row is None else _record(row)

    @staticmethod
    def _read_events(connection: Connection, saga_id: str) -> list[SagaEvent]:
        stmt = sa.select(event_table).where(event_table.c.saga_id == saga_id).order_by(event_table.c.seq)
        return [
            SagaEvent(row.seq, row.at, row.kind, row.step, row.attempt, row.detail) for row in connection.execute(stmt)
        ]

    def events(self, saga_id: str) -> list[SagaEvent]:
        with self._errors(f"read the timeline of saga {saga_id}"), self.engine.connect() as connection:
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
        with self._errors("list sagas"), self.engine.connect() as connection:
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
        with self._errors("find sagas to recover"), self.engine.connect() as connection:
            return [_record(row) for row in connection.execute(stmt)]

    def counts(self) -> dict[str, int]:
        """Sagas per state."""
        stmt = sa.select(saga_table.c.state, sa.func.count()).group_by(saga_table.c.state)
        with self._errors("count sagas"), self.engine.connect() as connection:
            return {str(row[0]): int(row[1]) for row in connection.execute(stmt)}
