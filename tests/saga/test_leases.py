"""Leases and idempotency keys on both catalog databases: SQLite and PostgreSQL.

The conditional UPDATEs that take a lease, fence a replaced runner and claim an
idempotency key must give exactly one winner on each.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.saga.conftest import Item
from toolkit import Toolkit
from toolkit.saga import FaultHook, Saga, SagaCoordinator, SagaError, SagaState, Step, StepContext


class Later:
    """The system clock moved forward: the dead runner's lease has run out."""

    def now(self) -> float:
        return time.time() + 60

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


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
    taken: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def recover() -> None:
        coordinator = SagaCoordinator(toolkit, clock=Later())
        barrier.wait()
        ids = [outcome.id for outcome in coordinator.recover([THREE]).recovered]
        with lock:
            taken.extend(ids)

    threads = [threading.Thread(target=recover) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
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
    thief = SagaCoordinator(toolkit, clock=Later())

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

    def slow(ctx: StepContext) -> int:
        runs.append(1)
        time.sleep(0.2)
        return len(runs)

    saga = Saga("single", [Step("slow", slow)])
    outcomes = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def run() -> None:
        barrier.wait()
        outcome = toolkit.sagas.run(saga, {"x": 1}, key="same")
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert runs == [1]
    assert {outcome.id for outcome in outcomes} == {outcomes[0].id}
    assert sum(not outcome.replayed for outcome in outcomes) == 1
    assert all(outcome.ok for outcome in outcomes)


def test_a_waiter_finishes_a_saga_whose_runner_died(catalog_toolkit: Toolkit) -> None:
    toolkit = catalog_toolkit
    with pytest.raises(Crash):
        SagaCoordinator(toolkit, fault_hook=_crash_at("after-action:1")).run(THREE, {"tag": "w"}, key="w")
    outcome = SagaCoordinator(toolkit, clock=Later()).run(THREE, {"tag": "w"}, key="w")
    assert outcome.state == SagaState.COMPLETED
    assert outcome.replayed is False  # this caller finished it (the key's first runner is gone)
    assert toolkit.repository(Item).get("w-2") is not None


def test_two_people_resuming_one_saga_run_it_once(catalog_toolkit: Toolkit) -> None:
    from tests.saga.conftest import FAST_COMP
    from toolkit.errors import NotFoundError, StoreUnavailable

    toolkit = catalog_toolkit
    broken = {"on": True}
    undone: list[int] = []

    def undo(ctx: StepContext) -> None:
        if broken["on"]:
            raise StoreUnavailable("down")
        time.sleep(0.1)
        undone.append(1)

    def fail(ctx: StepContext) -> None:
        raise NotFoundError("declined")

    saga = Saga("resume2", [Step("a", lambda ctx: None, undo, compensation_retry=FAST_COMP), Step("b", fail)])
    stuck = toolkit.sagas.run(saga, {})
    assert stuck.state == SagaState.NEEDS_ATTENTION
    broken["on"] = False
    results: list[object] = []
    barrier = threading.Barrier(2)

    def resume() -> None:
        coordinator = SagaCoordinator(toolkit)
        barrier.wait()
        try:
            results.append(coordinator.resume(stuck.id, [saga]).state)
        except SagaError as exc:
            results.append(type(exc).__name__)

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert undone == [1]
    assert sorted(map(str, results)) == ["SagaError", "compensated"]
