"""The runner: drives one saga while holding its lease, logging each transition first.

``Runner`` is what ``SagaCoordinator.run``, ``recover`` and ``resume`` hand a saga to
once they hold its lease; see ``toolkit.saga._coordinator`` for the state machine.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolkit.resilience import RetryPolicy
from toolkit.saga._context import StepContext
from toolkit.saga._definition import Saga
from toolkit.saga._errors import LeaseLost, SagaError
from toolkit.saga._log import SagaEvent, SagaRecord, SagaState

if TYPE_CHECKING:
    from toolkit.saga._coordinator import SagaCoordinator

__all__ = ["FaultHook", "Runner", "SagaOutcome"]

FaultHook = Callable[[str], None]
"""Called at named points (``before-write:<kind>``, ``after-action:<i>``...); the fault
injection harness uses it to crash the process at an exact place."""


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


def _describe(error: BaseException) -> str:
    line = f"{type(error).__name__}: {error}"
    return line if len(line) <= 2000 else line[:1997] + "..."


class Runner:
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
                wait = policy.backoff(attempt, self.c.jitter()) if retry else 0.0
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
