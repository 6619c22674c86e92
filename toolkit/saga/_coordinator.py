"""The coordinator: runs sagas step by step, logging each transition before its effect.

``toolkit.sagas`` is one ``SagaCoordinator`` bound to a Toolkit::

    outcome = toolkit.sagas.run(checkout, {"order": 17, "sku": "A-1", "qty": 2}, key="order-17")
    outcome.state            # completed | compensated | needs_attention
    toolkit.sagas.recover()  # finish or compensate what dead processes left in flight

How a saga moves (every arrow is one catalog transaction, written *before* the effect
it announces; "done i" and "started i+1" share one, because both come after effect i
and before effect i+1)::

    started + step 0 started -> [action 0] -> done 0 + step 1 started -> ... -> done n-1 + completed
                 | a step fails for good (not retryable, or out of attempts / time)
                 v
    failed i + compensating + compensation i started -> [comp i] -> comp i done + comp i-1 started
             -> ... -> comp 0 done + compensated
                 | a compensation keeps failing (its own retry policy, default 8 attempts)
                 v
    needs_attention (with the error; `polystore saga list --state needs_attention`)

The failing step's own compensation runs too: a cross-store action is not atomic and
may have written something before it failed. After the point of no return (a pivot
that finished, or the first retriable step) failures are never compensated: the step
is retried by its policy and, if it still fails, the saga needs attention.

Recovery (``recover``) takes sagas whose lease ran out. A saga caught in ``running`` at
step i re-runs step i and continues (``recovery="resume"``, the default, as Temporal
replays an activity), or, with ``recovery="compensate"``, compensates from step i down
when i is before the point of no return. A saga caught in ``compensating`` continues
compensating. Steps therefore run at least once and must be idempotent: the
``StepContext`` helpers make the common writes so.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from toolkit.resilience import SYSTEM_CLOCK, Clock, system_random
from toolkit.resilience import Random as Jitter
from toolkit.saga._definition import Saga
from toolkit.saga._errors import LeaseLost, SagaError, SagaKeyConflict, UnknownSaga
from toolkit.saga._lease import Heartbeat
from toolkit.saga._log import ACTIVE, KeyTaken, SagaEvent, SagaLog, SagaRecord, SagaState
from toolkit.saga._policy import LeasePolicy
from toolkit.saga._runner import FaultHook, Runner, SagaOutcome

if TYPE_CHECKING:
    from toolkit.facade import Toolkit

__all__ = ["FaultHook", "RecoveryReport", "SagaCoordinator", "SagaOutcome"]

Recovery = Literal["resume", "compensate"]


@dataclass(slots=True)
class RecoveryReport:
    """What one ``recover`` call did."""

    recovered: list[SagaOutcome] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(saga id, why): sagas left alone, e.g. no definition was given for their name."""


def _payload_hash(payload: Mapping[str, Any]) -> str:
    try:
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SagaError(f"a saga payload must be JSON (it is stored in the log): {exc}") from None
    return hashlib.sha256(text.encode()).hexdigest()


class SagaCoordinator:
    """Runs and recovers sagas against one Toolkit's stores and catalog. Thread-safe.

    ``owner`` names this coordinator in leases (host, pid and a random suffix). The
    clock, the jitter source and a fault hook can be injected (tests, the harness).
    """

    def __init__(
        self,
        toolkit: Toolkit,
        *,
        lease: LeasePolicy | None = None,
        clock: Clock | None = None,
        jitter: Jitter | None = None,
        recovery: Recovery = "resume",
        fault_hook: FaultHook | None = None,
    ) -> None:
        if recovery not in ("resume", "compensate"):
            raise ValueError(f"recovery must be 'resume' or 'compensate', not {recovery!r}")
        self.toolkit = toolkit
        self.log = SagaLog(toolkit.catalog.engine)
        self.lease = lease or LeasePolicy()
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.jitter: Jitter = jitter or system_random
        self.recovery: Recovery = recovery
        self.fault_hook = fault_hook
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._definitions: dict[str, Saga] = {}
        self._heartbeat = Heartbeat(self)

    # -- definitions -----------------------------------------------------------------
    def register(self, *sagas: Saga) -> None:
        """Make definitions known to ``recover`` (``run`` registers its saga itself)."""
        for saga in sagas:
            known = self._definitions.get(saga.name)
            if known is not None and known is not saga and known.step_names != saga.step_names:
                raise SagaError(f"two different definitions are named {saga.name!r}")
            self._definitions[saga.name] = saga

    # -- running ---------------------------------------------------------------------
    def run(
        self, saga: Saga, payload: Mapping[str, Any] | None = None, *, key: str | None = None, wait: float = 60.0
    ) -> SagaOutcome:
        """Run ``saga`` to its end and return the outcome.

        With ``key``, the saga runs at most once per key: a second call returns the
        recorded outcome (``replayed=True``), waiting up to ``wait`` seconds if the
        first is still running, and finishing it itself if its runner died. Reusing a
        key for another saga or payload raises ``SagaKeyConflict``.

        Failures of steps do not raise: they end in ``compensated`` or
        ``needs_attention``. What raises: a payload that is not JSON, an unreachable
        catalog (the saga is then left for recovery), and ``BaseException``s.
        """
        self.register(saga)
        payload = dict(payload or {})
        digest = _payload_hash(payload)
        if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 255):
            raise SagaError(f"an idempotency key is a string of 1..255 characters, not {key!r}")
        now = self.clock.now()
        record = SagaRecord(
            id=str(uuid.uuid4()),
            name=saga.name,
            idempotency_key=key,
            payload_hash=digest,
            state=SagaState.RUNNING,
            phase="forward",
            step=0,
            steps=saga.step_names,
            payload=payload,
            results={},
            error=None,
            lease_owner=self.owner,
            lease_until=now + self.lease.ttl,
            created_at=now,
            updated_at=now,
        )
        self._hook("before-write:started")
        try:
            self.log.create(record, [SagaEvent(1, now, "started"), SagaEvent(2, now, "step_started", 0)])
        except KeyTaken:
            return self._await(key or "", saga, digest, wait)
        self._hook("after-write:started")
        runner = Runner(self, saga, record, next_seq=3)
        try:
            return runner.go()
        except LeaseLost:
            return self._await_id(record.id, saga, wait)

    def _await(self, key: str, saga: Saga, digest: str, wait: float) -> SagaOutcome:
        record = self.log.by_key(key)
        if record is None:  # the key's saga vanished (log purged): a real conflict to report
            raise SagaError(f"idempotency key {key!r} is taken but its saga cannot be read")
        if record.name != saga.name or record.payload_hash != digest:
            raise SagaKeyConflict(
                f"idempotency key {key!r} was used for saga {record.name!r} with another payload "
                f"(saga {record.id}); use a new key for a different request"
            )
        return self._await_id(record.id, saga, wait)

    def _await_id(self, saga_id: str, saga: Saga, wait: float) -> SagaOutcome:
        deadline = self.clock.now() + wait
        while True:
            record = self.log.get(saga_id)
            if record is None:
                raise UnknownSaga(f"no saga {saga_id}")
            if record.terminal:
                return SagaOutcome.of(record, replayed=True)
            now = self.clock.now()
            if record.lease_until < now:
                outcome = self._take(record, saga)
                if outcome is not None:
                    return outcome
            if now >= deadline:
                raise SagaError(
                    f"saga {saga_id} ({record.name}) is still {record.state} after {wait:g} s "
                    f"(held by {record.lease_owner})"
                )
            self.clock.sleep(self.lease.wait_interval)

    # -- recovery --------------------------------------------------------------------
    def recover(self, definitions: Iterable[Saga] = (), *, limit: int | None = None) -> RecoveryReport:
        """Finish or compensate every saga whose runner is gone (its lease ran out).

        Sagas still leased by a live runner are not touched; a saga that another
        recoverer takes first is skipped. Definitions are matched by name: pass the
        application's sagas (or ``register`` them) so recovery knows their steps.
        """
        self.register(*definitions)
        report = RecoveryReport()
        for record in self.log.expired(self.clock.now(), limit=limit):
            saga = self._definitions.get(record.name)
            if saga is None:
                report.skipped.append((record.id, f"no definition for saga {record.name!r}"))
                continue
            if saga.step_names != record.steps:
                report.skipped.append((record.id, f"definition {record.name!r} has other steps than the log"))
                continue
            try:
                outcome = self._take(record, saga)
            except LeaseLost:
                outcome = None
            if outcome is None:
                report.skipped.append((record.id, "taken by another process"))
            else:
                report.recovered.append(outcome)
        return report

    def resume(self, saga_id: str, definitions: Iterable[Saga] = ()) -> SagaOutcome:
        """Retry a ``needs_attention`` saga from where it stopped (after a person fixed the cause)."""
        self.register(*definitions)
        record = self.log.get(saga_id)
        if record is None:
            raise UnknownSaga(f"no saga {saga_id}")
        saga = self._definitions.get(record.name)
        if saga is None:
            raise UnknownSaga(f"no definition for saga {record.name!r} (pass it, e.g. --app MODULE:OBJECT)")
        if record.state != SagaState.NEEDS_ATTENTION:
            raise SagaError(f"saga {saga_id} is {record.state}, not needs_attention")
        now = self.clock.now()
        # A saga that needs attention holds no lease (lease_until = 0): the first resumer
        # sets one, so a second concurrent resume finds it taken.
        seq = self.log.acquire(
            saga_id, self.owner, now, now + self.lease.ttl, states=(SagaState.NEEDS_ATTENTION,), event="resumed"
        )
        if seq is None:
            raise SagaError(f"saga {saga_id} was taken by another process")
        state = SagaState.COMPENSATING if record.phase == "compensate" else SagaState.RUNNING
        runner = Runner(self, saga, record, next_seq=seq)
        runner.write({"state": state, "error": None}, [])
        return runner.continue_from(state, record.step, recovered=False)

    def _take(self, record: SagaRecord, saga: Saga) -> SagaOutcome | None:
        now = self.clock.now()
        seq = self.log.acquire(record.id, self.owner, now, now + self.lease.ttl)
        if seq is None:
            return None
        fresh = self.log.get(record.id)
        if fresh is None or fresh.state not in ACTIVE:
            return None
        runner = Runner(self, saga, fresh, next_seq=seq)
        return runner.continue_from(fresh.state, fresh.step, recovered=True)

    # -- reading ---------------------------------------------------------------------
    def get(self, saga_id: str) -> SagaRecord:
        """A saga with its timeline."""
        record = self.log.get(saga_id, events=True)
        if record is None:
            raise UnknownSaga(f"no saga {saga_id}")
        return record

    def list(self, state: SagaState | str | None = None, *, limit: int | None = 100) -> list[SagaRecord]:
        return self.log.list(state=SagaState(state) if state is not None else None, limit=limit)

    def close(self) -> None:
        self._heartbeat.close()

    def _hook(self, point: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(point)
