"""Leases and idempotency keys on both catalog databases: SQLite and PostgreSQL.

The conditional UPDATEs that take a lease, fence a replaced runner and claim an
idempotency key must give exactly one winner on each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from tests.saga.conftest import Item
from toolkit import Toolkit
from toolkit.resilience import ManualClock, SystemClock
from toolkit.saga import FaultHook, Saga, SagaCoordinator, SagaError, SagaState, Step, StepContext

T = TypeVar("T")


def later() -> ManualClock:
    """A clock a minute ahead of the system's: the dead runner's lease has run out for it."""
    return ManualClock(start=time.time() + 60)


class Polled(SystemClock):
    """The system clock, telling when ``callers`` threads are polling the log for a saga
    (a caller whose idempotency key is taken waits with ``sleep``)."""

    def __init__(self, callers: int) -> None:
        self.callers = callers
        self.polling: set[int] = set()
        self.all_polling = threading.Event()
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.polling.add(threading.get_ident())
            if len(self.polling) >= self.callers:
                self.all_polling.set()
        super().sleep(seconds)


def together(count: int, work: Callable[[], T]) -> list[T]:
    """``work()`` in ``count`` threads released at once (a barrier); their results, in no order."""
    results: list[T] = []
    lock = threading.Lock()
    barrier = threading.Barrier(count)

    def run() -> None:
        barrier.wait()
        result = work()
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _put(index: int) -> Step:
    return Step(
        f"p{index}",
        lambda ctx: ctx.put(Item, {"id": f"{ctx.payload['tag']}-{index}"}) and None,
        lambda ctx: ctx.delete_if_present(Item, f"{ctx.payload['tag']}-{index}") and None,
    )


THREE = Saga("three", [_put(0), _put(1), _put(2)])


class Crash(BaseException):
    pass


def _crash_at(point: str) -> FaultHook:
    def hook(at: str) -> None:
        if at == point:
            raise Crash(at)

    return hook


def test_eight_recoverers_take_each_saga_exactly_once(catalog_toolkit: Toolkit) -> None:
    toolkit = catalog_toolkit
    for number in range(10):
        with pytest.raises(Crash):
            SagaCoordinator(toolkit, fault_hook=_crash_at("after-action:1")).run(THREE, {"tag": f"r{number}"})
    recoverers = iter([SagaCoordinator(toolkit, clock=later()) for _ in range(8)])
    reports = together(8, lambda: next(recoverers).recover([THREE]))
    taken = [outcome.id for report in reports for outcome in report.recovered]
    assert len(taken) == 10
    assert len(set(taken)) == 10
    assert toolkit.sagas.log.counts() == {"completed": 10}
    for saga_id in taken:
        kinds = [event.kind for event in toolkit.sagas.get(saga_id).events]
        assert kinds.count("recovered") == 1


def test_a_live_lease_is_never_taken(catalog_toolkit: Toolkit) -> None:
    toolkit = catalog_toolkit
    with pytest.raises(Crash):
        SagaCoordinator(toolkit, fault_hook=_crash_at("after-action:0")).run(THREE, {"tag": "live"})
    assert SagaCoordinator(toolkit).recover([THREE]).recovered == []
    record = toolkit.sagas.list()[0]
    assert record.state == SagaState.RUNNING
    assert record.lease_owner is not None


def test_a_fenced_runner_writes_nothing_more(catalog_toolkit: Toolkit) -> None:
    toolkit = catalog_toolkit
    effects: list[int] = []
    thief = SagaCoordinator(toolkit, clock=later())

    def first(ctx: StepContext) -> None:
        effects.append(0)
        assert thief.log.acquire(ctx.saga_id, thief.owner, thief.clock.now(), thief.clock.now() + 30)

    saga = Saga("fenced", [Step("first", first), Step("second", lambda ctx: effects.append(1))])
    with pytest.raises(SagaError, match="still running"):
        SagaCoordinator(toolkit).run(saga, {}, key="fenced", wait=0.2)
    assert effects == [0]
    record = toolkit.sagas.log.by_key("fenced")
    assert record is not None
    assert record.lease_owner == thief.owner
    assert [event.kind for event in toolkit.sagas.get(record.id).events][-1] == "recovered"


def test_one_key_from_many_threads_runs_once(catalog_toolkit: Toolkit) -> None:
    toolkit = catalog_toolkit
    runs: list[int] = []
    clock = Polled(callers=5)
    coordinator = SagaCoordinator(toolkit, clock=clock)

    def slow(ctx: StepContext) -> int:
        runs.append(1)
        assert clock.all_polling.wait(30)  # the other five found the key taken and wait for this run
        return len(runs)

    saga = Saga("single", [Step("slow", slow)])
    outcomes = together(6, lambda: coordinator.run(saga, {"x": 1}, key="same"))
    coordinator.close()
    assert runs == [1]
    assert {outcome.id for outcome in outcomes} == {outcomes[0].id}
    assert sum(not outcome.replayed for outcome in outcomes) == 1
    assert all(outcome.ok for outcome in outcomes)


def test_a_waiter_finishes_a_saga_whose_runner_died(catalog_toolkit: Toolkit) -> None:
    toolkit = catalog_toolkit
    with pytest.raises(Crash):
        SagaCoordinator(toolkit, fault_hook=_crash_at("after-action:1")).run(THREE, {"tag": "w"}, key="w")
    outcome = SagaCoordinator(toolkit, clock=later()).run(THREE, {"tag": "w"}, key="w")
    assert outcome.state == SagaState.COMPLETED
    assert outcome.replayed is False  # this caller finished it (the key's first runner is gone)
    assert toolkit.repository(Item).get("w-2") is not None


def test_two_people_resuming_one_saga_run_it_once(catalog_toolkit: Toolkit) -> None:
    from tests.saga.conftest import FAST_COMP
    from toolkit.errors import NotFoundError, StoreUnavailable

    toolkit = catalog_toolkit
    broken = {"on": True}
    undone: list[int] = []
    refused = threading.Event()

    def undo(ctx: StepContext) -> None:
        if broken["on"]:
            raise StoreUnavailable("down")
        assert refused.wait(30)  # the other resumer was turned away while this one compensates
        undone.append(1)

    def fail(ctx: StepContext) -> None:
        raise NotFoundError("declined")

    saga = Saga("resume2", [Step("a", lambda ctx: None, undo, compensation_retry=FAST_COMP), Step("b", fail)])
    stuck = toolkit.sagas.run(saga, {})
    assert stuck.state == SagaState.NEEDS_ATTENTION
    broken["on"] = False
    resumers = iter([SagaCoordinator(toolkit), SagaCoordinator(toolkit)])

    def resume() -> object:
        try:
            return next(resumers).resume(stuck.id, [saga]).state
        except SagaError as exc:
            refused.set()
            return type(exc).__name__

    results = together(2, resume)
    assert undone == [1]
    assert sorted(map(str, results)) == ["SagaError", "compensated"]
