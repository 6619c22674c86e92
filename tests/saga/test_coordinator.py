"""The coordinator on the embedded default: outcomes, idempotency keys, failures, pivots, leases."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.saga.conftest import FAST, FAST_COMP, Counter, Item
from toolkit import Toolkit
from toolkit.errors import NotFoundError, StoreUnavailable
from toolkit.resilience import ManualClock
from toolkit.saga import (
    RetryPolicy,
    Saga,
    SagaCoordinator,
    SagaError,
    SagaKeyConflict,
    SagaState,
    Step,
    StepContext,
)


def ahead(seconds: float = 60) -> ManualClock:
    """A clock ``seconds`` ahead of the system's: leases taken now look expired to it."""
    return ManualClock(start=time.time() + seconds)


def put_step(index: int) -> Step:
    def action(ctx: StepContext) -> int:
        ctx.put(Item, {"id": f"{ctx.payload['tag']}-{index}", "value": index})
        if ctx.payload.get("fail_at") == index:
            raise NotFoundError(f"injected at {index}")
        return index

    def compensation(ctx: StepContext) -> None:
        if ctx.payload.get("comp_fails") == index:
            raise StoreUnavailable(f"compensation {index} cannot reach its store")
        ctx.delete_if_present(Item, f"{ctx.payload['tag']}-{index}")

    return Step(f"put{index}", action, compensation, retry=FAST, compensation_retry=FAST_COMP)


FIVE = Saga("five", [put_step(index) for index in range(5)])


def items(toolkit: Toolkit, tag: str) -> list[str]:
    return sorted(item.id for item in toolkit.repository(Item).find() if item.id.startswith(f"{tag}-"))


def test_a_saga_completes_and_records_its_results(toolkit: Toolkit) -> None:
    outcome = toolkit.sagas.run(FIVE, {"tag": "ok"}, key="ok")
    assert outcome.state == SagaState.COMPLETED
    assert outcome.ok
    assert not outcome.replayed
    assert outcome.results == {f"put{index}": index for index in range(5)}
    assert items(toolkit, "ok") == [f"ok-{index}" for index in range(5)]
    record = toolkit.sagas.get(outcome.id)
    kinds = [event.kind for event in record.events]
    assert kinds[:2] == ["started", "step_started"]
    assert kinds[-2:] == ["step_done", "completed"]
    assert record.lease_owner is None


def test_one_catalog_write_per_step_plus_one(toolkit: Toolkit) -> None:
    """'done i' and 'started i+1' share a transaction: N steps cost N + 1 log writes."""
    coordinator = toolkit.sagas
    coordinator.run(FIVE, {"tag": "warm"})
    before = coordinator.log.writes
    coordinator.run(FIVE, {"tag": "count"})
    assert coordinator.log.writes - before == 6


def test_the_same_key_runs_once_and_returns_the_recorded_outcome(toolkit: Toolkit) -> None:
    calls: list[int] = []

    def count(ctx: StepContext) -> int:
        calls.append(1)
        return len(calls)

    saga = Saga("once", [Step("count", count)])
    first = toolkit.sagas.run(saga, {"a": 1}, key="k")
    second = toolkit.sagas.run(saga, {"a": 1}, key="k")
    assert calls == [1]
    assert second.replayed
    assert second.id == first.id
    assert second.results == first.results == {"count": 1}
    with pytest.raises(SagaKeyConflict):
        toolkit.sagas.run(saga, {"a": 2}, key="k")


def test_a_payload_must_be_json(toolkit: Toolkit) -> None:
    with pytest.raises(SagaError, match="JSON"):
        toolkit.sagas.run(FIVE, {"tag": object()})


@pytest.mark.parametrize("fail_at", range(5))
def test_a_failure_at_any_step_compensates_everything_done(toolkit: Toolkit, fail_at: int) -> None:
    outcome = toolkit.sagas.run(FIVE, {"tag": "f", "fail_at": fail_at})
    assert outcome.state == SagaState.COMPENSATED
    assert f"step {fail_at}" in (outcome.error or "")
    assert "injected" in (outcome.error or "")
    assert items(toolkit, "f") == []  # the failing step's own write is undone too
    kinds = [(event.kind, event.step) for event in toolkit.sagas.get(outcome.id).events]
    assert ("step_failed", fail_at) in kinds
    assert [step for kind, step in kinds if kind == "comp_done"] == list(range(fail_at, -1, -1))


@pytest.mark.parametrize(("fail_at", "comp_fails"), [(0, 0), (3, 1), (4, 4)])
def test_a_compensation_that_keeps_failing_needs_attention(toolkit: Toolkit, fail_at: int, comp_fails: int) -> None:
    outcome = toolkit.sagas.run(FIVE, {"tag": "c", "fail_at": fail_at, "comp_fails": comp_fails})
    assert outcome.state == SagaState.NEEDS_ATTENTION
    assert f"compensation of step {comp_fails}" in (outcome.error or "")
    assert "StoreUnavailable" in (outcome.error or "")
    record = toolkit.sagas.get(outcome.id)
    assert record.phase == "compensate"
    assert record.step == comp_fails
    retries = [event for event in record.events if event.kind == "comp_retry"]
    assert len(retries) == FAST_COMP.max_attempts - 1
    # Steps above the failing compensation were undone; it and those below were not.
    assert items(toolkit, "c") == [f"c-{index}" for index in range(comp_fails + 1)]
    assert [r.id for r in toolkit.sagas.list(SagaState.NEEDS_ATTENTION)] == [outcome.id]


def test_a_needs_attention_saga_resumes_once_the_cause_is_fixed(toolkit: Toolkit) -> None:
    broken = {"on": True}

    def undo(ctx: StepContext) -> None:
        if broken["on"]:
            raise StoreUnavailable("still down")
        ctx.delete_if_present(Item, "r-0")

    def fail(ctx: StepContext) -> None:
        raise NotFoundError("no")

    saga = Saga(
        "resumable",
        [
            Step("a", lambda ctx: ctx.put(Item, {"id": "r-0"}) and None, undo, compensation_retry=FAST_COMP),
            Step("b", fail),
        ],
    )
    outcome = toolkit.sagas.run(saga, {})
    assert outcome.state == SagaState.NEEDS_ATTENTION
    broken["on"] = False
    resumed = toolkit.sagas.resume(outcome.id)
    assert resumed.state == SagaState.COMPENSATED
    assert toolkit.repository(Item).get("r-0") is None


def test_retryable_errors_are_retried_and_others_are_not(toolkit: Toolkit) -> None:
    attempts: list[str] = []

    def flaky(ctx: StepContext) -> int:
        attempts.append("flaky")
        if ctx.attempt < 3:
            raise StoreUnavailable("blip")
        return ctx.attempt

    def broken(ctx: StepContext) -> None:
        attempts.append("broken")
        raise ValueError("a bug is not retried")

    outcome = toolkit.sagas.run(Saga("r", [Step("flaky", flaky, retry=FAST)]), {})
    assert outcome.ok
    assert outcome.results == {"flaky": 3}
    assert attempts == ["flaky"] * 3
    attempts.clear()
    outcome = toolkit.sagas.run(Saga("nr", [Step("broken", broken, retry=FAST)]), {})
    assert outcome.state == SagaState.COMPENSATED
    assert attempts == ["broken"]


def test_a_step_timeout_bounds_all_attempts() -> None:
    clock = ManualClock(start=1_000.0)

    def slow(ctx: StepContext) -> None:
        clock.advance(4)
        raise StoreUnavailable("slow")

    policy = RetryPolicy(max_attempts=100, initial_interval=1, max_interval=1, jitter=0, timeout=10)
    with Toolkit.embedded("data") as toolkit:
        coordinator = SagaCoordinator(toolkit, clock=clock)
        outcome = coordinator.run(Saga("t", [Step("slow", slow, retry=policy)]), {})
    assert outcome.state == SagaState.COMPENSATED
    assert "timeout 10 s" in (outcome.error or "")
    assert clock.now() - 1_000 <= 4 * 3 + 2 + 1  # three attempts fit in 10 s; no fourth begins


def test_after_the_pivot_only_forward_recovery(toolkit: Toolkit) -> None:
    undone: list[str] = []
    tries = {"n": 0}

    def post(ctx: StepContext) -> None:
        tries["n"] += 1
        raise NotFoundError("cannot go forward")

    saga = Saga(
        "pivot",
        [
            Step("before", lambda ctx: None, lambda ctx: undone.append("before")),
            Step("pivot", lambda ctx: None, pivot=True),
            Step("after", post, retriable=True, retry=FAST),
        ],
    )
    outcome = toolkit.sagas.run(saga, {})
    assert outcome.state == SagaState.NEEDS_ATTENTION
    assert undone == []
    assert "point of no return" in (outcome.error or "")

    def pivot_fails(ctx: StepContext) -> None:
        raise NotFoundError("declined")

    failing_pivot = Saga(
        "pivot2",
        [
            Step("before", lambda ctx: None, lambda ctx: undone.append("before")),
            Step("pivot", pivot_fails, pivot=True),
            Step("after", lambda ctx: None, retriable=True),
        ],
    )
    assert toolkit.sagas.run(failing_pivot, {}).state == SagaState.COMPENSATED
    assert undone == ["before"]


def test_a_step_result_that_is_not_json_fails_the_step(toolkit: Toolkit) -> None:
    outcome = toolkit.sagas.run(Saga("j", [Step("bad", lambda ctx: object())]), {})
    assert outcome.state == SagaState.COMPENSATED
    assert "not JSON" in (outcome.error or "")


def _crash_after(point: str) -> Any:
    class Crash(BaseException):
        pass

    def hook(at: str) -> None:
        if at == point:
            raise Crash(at)

    return hook, Crash


@pytest.mark.parametrize("mode", ["resume", "compensate"])
def test_recovery_finishes_or_compensates_a_dead_runner_and_never_a_live_one(tmp_path: Any, mode: str) -> None:
    hook, crash = _crash_after("after-action:2")
    with Toolkit.embedded(tmp_path / "d") as toolkit:
        dying = SagaCoordinator(toolkit, fault_hook=hook)
        with pytest.raises(crash):
            dying.run(FIVE, {"tag": "rec"}, key="rec")
        record = toolkit.sagas.log.by_key("rec")
        assert record is not None
        assert record.state == SagaState.RUNNING
        assert record.step == 2
        # The lease is still valid: recovery leaves the saga alone.
        live = SagaCoordinator(toolkit, recovery=mode)  # type: ignore[arg-type]
        assert live.recover([FIVE]).recovered == []
        later = SagaCoordinator(toolkit, clock=ahead(), recovery=mode)  # type: ignore[arg-type]
        report = later.recover([FIVE])
        assert [outcome.id for outcome in report.recovered] == [record.id]
        expected = SagaState.COMPLETED if mode == "resume" else SagaState.COMPENSATED
        assert report.recovered[0].state == expected
        assert items(toolkit, "rec") == ([f"rec-{i}" for i in range(5)] if mode == "resume" else [])
        kinds = [event.kind for event in toolkit.sagas.get(record.id).events]
        assert "recovered" in kinds
        # The idempotency key now answers with the recovered outcome.
        assert toolkit.sagas.run(FIVE, {"tag": "rec"}, key="rec").state == expected


def test_recovery_skips_sagas_it_has_no_definition_for(tmp_path: Any) -> None:
    hook, crash = _crash_after("after-write:started")
    with Toolkit.embedded(tmp_path / "d") as toolkit:
        with pytest.raises(crash):
            SagaCoordinator(toolkit, fault_hook=hook).run(FIVE, {"tag": "x"})
        report = SagaCoordinator(toolkit, clock=ahead()).recover()
        assert report.recovered == []
        assert "no definition" in report.skipped[0][1]


def test_two_recoverers_never_take_the_same_saga(tmp_path: Any) -> None:
    hook, crash = _crash_after("after-action:1")
    with Toolkit.embedded(tmp_path / "d") as toolkit:
        for number in range(6):
            with pytest.raises(crash):
                SagaCoordinator(toolkit, fault_hook=hook).run(FIVE, {"tag": f"two{number}"})
        taken: list[list[str]] = []
        barrier = threading.Barrier(2)

        def recover() -> None:
            coordinator = SagaCoordinator(toolkit, clock=ahead())
            barrier.wait()
            taken.append([outcome.id for outcome in coordinator.recover([FIVE]).recovered])

        threads = [threading.Thread(target=recover) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        everything = taken[0] + taken[1]
        assert len(everything) == 6
        assert len(set(everything)) == 6
        assert toolkit.sagas.log.counts() == {"completed": 6}


def test_a_runner_whose_lease_was_taken_stops_before_its_next_effect(toolkit: Toolkit) -> None:
    effects: list[int] = []
    thief = SagaCoordinator(toolkit, clock=ahead())

    def first(ctx: StepContext) -> None:
        effects.append(0)
        record = toolkit.sagas.log.get(ctx.saga_id)
        assert record is not None
        assert thief.log.acquire(ctx.saga_id, thief.owner, thief.clock.now(), thief.clock.now() + 30)

    saga = Saga("fenced", [Step("first", first), Step("second", lambda ctx: effects.append(1))])
    coordinator = SagaCoordinator(toolkit)
    # The runner's next transition fails (LeaseLost); run() then waits for the new holder.
    with pytest.raises(SagaError, match="still running"):
        coordinator.run(saga, {}, key="fenced", wait=0.2)
    assert effects == [0]  # the second step never ran in the fenced-out runner
    record = toolkit.sagas.log.by_key("fenced")
    assert record is not None
    assert record.lease_owner == thief.owner
    assert record.step == 0


def test_the_heartbeat_keeps_a_slow_step_leased(toolkit: Toolkit, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that lasts twice the lease's ttl on the coordinator's clock keeps its lease:
    the heartbeat renews it at every beat (the log's renew reports each one)."""
    from toolkit.saga import LeasePolicy

    clock = ManualClock(start=time.time())
    lease = LeasePolicy(ttl=0.6, heartbeat=0.1, margin=0.05)
    coordinator = SagaCoordinator(toolkit, lease=lease, clock=clock)
    beats = threading.Semaphore(0)
    renew = coordinator.log.renew

    def renewed(*args: Any, **kwargs: Any) -> Any:
        lost = renew(*args, **kwargs)
        beats.release()
        return lost

    monkeypatch.setattr(coordinator.log, "renew", renewed)
    seen: list[int] = []

    def slow(ctx: StepContext) -> None:
        for _ in range(12):  # 1.2 s of the coordinator's clock
            assert clock.until_waiting(1)  # the heartbeat is parked on the clock
            clock.advance(lease.heartbeat)
            assert beats.acquire(timeout=30)  # and has renewed the lease
        thief = SagaCoordinator(toolkit, clock=clock)
        seen.append(len(thief.recover([saga]).recovered))

    saga = Saga("slow", [Step("slow", slow)])
    try:
        assert coordinator.run(saga, {}).ok
    finally:
        coordinator.close()
    assert seen == [0]


def test_counters_show_exactly_once_increments(toolkit: Toolkit) -> None:
    toolkit.repository(Counter).put(Counter(id="c", n=0))

    def add(ctx: StepContext) -> Any:
        first = ctx.increment_once(Counter, "c", "n", 5)
        again = ctx.increment_once(Counter, "c", "n", 5)  # a replay of the same step: no effect
        assert first == again == 5
        raise NotFoundError("then fail, so the compensation runs")

    def undo(ctx: StepContext) -> None:
        ctx.undo_increment(Counter, "c", "n", 5)
        ctx.undo_increment(Counter, "c", "n", 5)

    outcome = toolkit.sagas.run(Saga("inc", [Step("add", add, undo)]), {})
    assert outcome.state == SagaState.COMPENSATED
    counter = toolkit.repository(Counter).get("c")
    assert counter is not None
    assert counter.n == 0
