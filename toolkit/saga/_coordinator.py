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

import contextlib
import hashlib
import json
import os
import random
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from toolkit.errors import ToolkitError
from toolkit.saga._context import StepContext
from toolkit.saga._definition import Saga
from toolkit.saga._errors import LeaseLost, SagaError, SagaKeyConflict, UnknownSaga
from toolkit.saga._log import ACTIVE, KeyTaken, SagaEvent, SagaLog, SagaRecord, SagaState
from toolkit.saga._policy import Clock, Jitter, LeasePolicy, RetryPolicy, SystemClock

if TYPE_CHECKING:
    from toolkit.facade import Toolkit

__all__ = ["FaultHook", "RecoveryReport", "SagaCoordinator", "SagaOutcome"]

FaultHook = Callable[[str], None]
"""Called at named points (``before-write:<kind>``, ``after-action:<i>``...); the fault
injection harness uses it to crash the process at an exact place."""

Recovery = Literal["resume", "compensate"]


@dataclass(frozen=True, slots=True)
class SagaOutcome:
    """How a saga ended (or where it stands), as recorded in the log."""

    id: str
    name: str
    state: SagaState
    results: Mapping[str, Any]
    error: str | None = None
    key: str | None = None
    replayed: bool = False
    """True if this call did not run the saga: the key had run before (or elsewhere)."""

    @property
    def ok(self) -> bool:
        return self.state == SagaState.COMPLETED

    @classmethod
    def of(cls, record: SagaRecord, *, replayed: bool) -> SagaOutcome:
        return cls(
            record.id,
            record.name,
            record.state,
            dict(record.results),
            record.error,
            record.idempotency_key,
            replayed,
        )


@dataclass(slots=True)
class RecoveryReport:
    """What one ``recover`` call did."""

    recovered: list[SagaOutcome] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(saga id, why): sagas left alone, e.g. no definition was given for their name."""


def _describe(error: BaseException) -> str:
    line = f"{type(error).__name__}: {error}"
    return line if len(line) <= 2000 else line[:1997] + "..."


def _payload_hash(payload: Mapping[str, Any]) -> str:
    try:
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SagaError(f"a saga payload must be JSON (it is stored in the log): {exc}") from None
    return hashlib.sha256(text.encode()).hexdigest()


class _Heartbeat:
    """One thread per coordinator renewing every lease it holds, in one UPDATE per beat."""

    def __init__(self, coordinator: SagaCoordinator) -> None:
        self._coordinator = coordinator
        self._held: dict[str, int] = {}
        self.lost: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def hold(self, saga_id: str) -> None:
        with self._lock:
            self._held[saga_id] = self._held.get(saga_id, 0) + 1
            self.lost.discard(saga_id)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._loop, name="polystore-saga-heartbeat", daemon=True)
                self._thread.start()

    def release(self, saga_id: str) -> None:
        with self._lock:
            count = self._held.get(saga_id, 0) - 1
            if count > 0:
                self._held[saga_id] = count
            else:
                self._held.pop(saga_id, None)

    def _loop(self) -> None:
        coordinator = self._coordinator
        while not self._wake.wait(coordinator.lease.heartbeat):
            with self._lock:
                held = list(self._held)
                if not held:  # nothing to renew: stop; the next hold starts a new thread
                    self._thread = None
                    return
            try:
                lost = coordinator.log.renew(coordinator.owner, held, coordinator.clock.now() + coordinator.lease.ttl)
            except ToolkitError:
                continue  # the catalog is unreachable: the next transition write will tell the runner
            if lost:
                with self._lock:
                    self.lost |= lost

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


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
        self.clock: Clock = clock or SystemClock()
        self.jitter: Jitter = jitter or random.Random().random
        self.recovery: Recovery = recovery
        self.fault_hook = fault_hook
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._definitions: dict[str, Saga] = {}
        self._heartbeat = _Heartbeat(self)

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
        runner = _Runner(self, saga, record, next_seq=3)
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
        runner = _Runner(self, saga, record, next_seq=seq)
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
        runner = _Runner(self, saga, fresh, next_seq=seq)
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


class _Runner:
    """Drives one saga while holding its lease."""

    def __init__(self, coordinator: SagaCoordinator, saga: Saga, record: SagaRecord, *, next_seq: int) -> None:
        self.c = coordinator
        self.saga = saga
        self.id = record.id
        self.payload = dict(record.payload)
        self.results = dict(record.results)
        self.key = record.idempotency_key
        self.seq = next_seq
        self.lease_until = coordinator.clock.now() + coordinator.lease.ttl
        self.state = record.state
        self.error: str | None = record.error

    # -- the log ---------------------------------------------------------------------
    def event(
        self, kind: str, step: int | None = None, attempt: int | None = None, detail: str | None = None
    ) -> SagaEvent:
        event = SagaEvent(self.seq, self.c.clock.now(), kind, step, attempt, detail)
        self.seq += 1
        return event

    def write(self, changes: Mapping[str, Any], events: list[SagaEvent]) -> None:
        now = self.c.clock.now()
        values = dict(changes)
        values["updated_at"] = now
        if values.get("state") in (SagaState.COMPLETED, SagaState.COMPENSATED, SagaState.NEEDS_ATTENTION):
            values["lease_owner"] = None
            values["lease_until"] = 0.0
        else:
            values["lease_until"] = now + self.c.lease.ttl
        kind = events[-1].kind if events else "lease"
        self.c._hook(f"before-write:{kind}")
        self.c.log.transition(self.id, self.c.owner, values, events)
        self.c._hook(f"after-write:{kind}")
        self.lease_until = values["lease_until"]
        if "state" in values:
            self.state = SagaState(values["state"])

    def check_lease(self) -> None:
        """Before an effect: the lease must be ours with ``margin`` to spare."""
        if self.id in self.c._heartbeat.lost:
            raise LeaseLost(f"saga {self.id}: lease lost (heartbeat)")
        if self.lease_until - self.c.clock.now() < self.c.lease.margin:
            self.write({}, [])

    def outcome(self) -> SagaOutcome:
        return SagaOutcome(self.id, self.saga.name, self.state, dict(self.results), self.error, self.key, False)

    # -- driving ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        self.c._heartbeat.hold(self.id)
        try:
            yield
        finally:
            self.c._heartbeat.release(self.id)

    def go(self) -> SagaOutcome:
        with self._held():
            return self._forward(0)

    def continue_from(self, state: SagaState, step: int, *, recovered: bool) -> SagaOutcome:
        with self._held():
            if state == SagaState.COMPENSATING:
                return self._compensate(step)
            if recovered and self.c.recovery == "compensate" and self.saga.compensatable(step):
                return self._start_compensation(step, "recovery chose to compensate", failed=False)
            return self._forward(step)

    def _context(self, index: int, attempt: int, *, compensating: bool) -> StepContext:
        return StepContext(
            toolkit=self.c.toolkit,
            saga_id=self.id,
            saga=self.saga.name,
            payload=self.payload,
            step=self.saga.steps[index].name,
            index=index,
            attempt=attempt,
            compensating=compensating,
            results=dict(self.results),
            _log=self.c.log,
        )

    def _attempts(
        self, index: int, call: Callable[[StepContext], Any], policy: RetryPolicy, *, compensating: bool
    ) -> tuple[bool, Any]:
        """Run ``call`` under ``policy``; (True, result) or (False, last error text)."""
        clock = self.c.clock
        deadline = None if policy.timeout is None else clock.now() + policy.timeout
        what = "comp" if compensating else "action"
        attempt = 1
        while True:
            self.check_lease()
            self.c._hook(f"before-{what}:{index}")
            try:
                result = call(self._context(index, attempt, compensating=compensating))
                _check_json(self.saga.steps[index].name, result)
            except LeaseLost:
                raise
            except Exception as exc:
                error = _describe(exc)
                retry = policy.should_retry(exc, attempt)
                wait = policy.delay(attempt, self.c.jitter) if retry else 0.0
                if retry and deadline is not None:
                    left = deadline - clock.now()
                    retry = left > 0
                    wait = min(wait, max(left, 0.0))
                if not retry:
                    if deadline is not None and clock.now() >= deadline:
                        error += f" (step timeout {policy.timeout:g} s)"
                    return False, error
                kind = "comp_retry" if compensating else "step_retry"
                self.write({}, [self.event(kind, index, attempt, error)])
                clock.sleep(wait)
                attempt += 1
                continue
            self.c._hook(f"after-{what}:{index}")
            return True, result

    def _forward(self, start: int) -> SagaOutcome:
        steps = self.saga.steps
        index = start
        while True:
            step = steps[index]
            ok, value = self._attempts(index, step.action, step.retry, compensating=False)
            if not ok:
                if self.saga.compensatable(index):
                    return self._start_compensation(index, value, failed=True)
                self.error = f"step {index} ({step.name}) failed after the point of no return: {value}"
                self.write(
                    {"state": SagaState.NEEDS_ATTENTION, "phase": "forward", "step": index, "error": self.error},
                    [self.event("step_failed", index, detail=value), self.event("needs_attention", index)],
                )
                return self.outcome()
            self.results[step.name] = value
            if index + 1 < len(steps):
                self.write(
                    {"step": index + 1, "results": self.results},
                    [self.event("step_done", index), self.event("step_started", index + 1)],
                )
                index += 1
                continue
            self.write(
                {"state": SagaState.COMPLETED, "results": self.results},
                [self.event("step_done", index), self.event("completed")],
            )
            return self.outcome()

    def _lower_compensation(self, index: int) -> int:
        """The highest step <= ``index`` that has a compensation, or -1."""
        while index >= 0 and self.saga.steps[index].compensation is None:
            index -= 1
        return index

    def _start_compensation(self, index: int, error: str, *, failed: bool) -> SagaOutcome:
        self.error = f"step {index} ({self.saga.steps[index].name}): {error}" if failed else error
        first = self._lower_compensation(index)
        events = [self.event("step_failed", index, detail=error)] if failed else []
        events.append(self.event("compensating", index, detail=None if failed else error))
        if first < 0:
            events.append(self.event("compensated"))
            self.write({"state": SagaState.COMPENSATED, "phase": "compensate", "step": -1, "error": self.error}, events)
            return self.outcome()
        events.append(self.event("comp_started", first))
        self.write({"state": SagaState.COMPENSATING, "phase": "compensate", "step": first, "error": self.error}, events)
        return self._compensate(first)

    def _compensate(self, start: int) -> SagaOutcome:
        steps = self.saga.steps
        index = start
        while index >= 0:
            step = steps[index]
            assert step.compensation is not None  # _lower_compensation guarantees it
            ok, value = self._attempts(index, step.compensation, step.compensation_retry, compensating=True)
            if not ok:
                self.error = f"compensation of step {index} ({step.name}) keeps failing: {value}"
                self.write(
                    {"state": SagaState.NEEDS_ATTENTION, "phase": "compensate", "step": index, "error": self.error},
                    [self.event("comp_failed", index, detail=value), self.event("needs_attention", index)],
                )
                return self.outcome()
            following = self._lower_compensation(index - 1)
            if following >= 0:
                self.write({"step": following}, [self.event("comp_done", index), self.event("comp_started", following)])
            else:
                self.write(
                    {"state": SagaState.COMPENSATED, "step": -1},
                    [self.event("comp_done", index), self.event("compensated")],
                )
            index = following
        return self.outcome()


def _check_json(step: str, result: Any) -> None:
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError):
        raise SagaError(
            f"step {step!r} returned {type(result).__name__}, which is not JSON: results are stored in the log"
        ) from None
