"""The circuit breaker, driven by a manual clock: exact transitions and window edges."""

from __future__ import annotations

import pytest

from toolkit.errors import CircuitOpen, NotFoundError, StoreError, StoreTimeout, StoreUnavailable
from toolkit.resilience import BreakerPolicy, BreakerState, CircuitBreaker, ManualClock, is_unhealthy

DOWN = StoreUnavailable("connection refused", store="kv", shard="s0")


def breaker(clock: ManualClock, **policy: object) -> CircuitBreaker:
    return CircuitBreaker(BreakerPolicy(**policy), clock, store="kv", shard="s0")  # type: ignore[arg-type]


def state(b: CircuitBreaker) -> BreakerState:
    """Read through a call, so the type checker does not narrow it across state changes."""
    return b.state


def fail(b: CircuitBreaker, error: BaseException = DOWN) -> None:
    probe = b.before()
    b.failure(probe, error)


def succeed(b: CircuitBreaker) -> None:
    probe = b.before()
    b.success(probe)


def probing(cool_down: float, **policy: object) -> tuple[ManualClock, CircuitBreaker, bool]:
    """A breaker opened by one failure and moved past its cool-down: a probe admitted."""
    clock = ManualClock()
    b = breaker(clock, failures=1, cool_down=cool_down, **policy)
    fail(b)
    clock.advance(cool_down)
    return clock, b, b.before()


def test_only_unhealthy_errors_count() -> None:
    assert is_unhealthy(DOWN)
    assert is_unhealthy(StoreTimeout("slow"))
    assert not is_unhealthy(CircuitOpen("open", retry_after=1.0))
    assert not is_unhealthy(NotFoundError("gone"))
    assert not is_unhealthy(StoreError("transient code", retryable=True))
    assert not is_unhealthy(ValueError("bug"))
    clock = ManualClock()
    b = breaker(clock, failures=2)
    for _ in range(10):
        fail(b, NotFoundError("no row", store="kv", shard="s0"))
    assert state(b) is BreakerState.CLOSED
    assert b.stats().failures == 0


def test_opens_on_the_nth_failure_within_the_window_and_fails_fast_naming_store_and_shard() -> None:
    clock = ManualClock()
    b = breaker(clock, failures=3, window=10.0, cool_down=5.0)
    fail(b)
    clock.advance(4.0)
    fail(b)
    assert state(b) is BreakerState.CLOSED
    clock.advance(5.999)
    fail(b)  # three failures within 9.999 s
    assert state(b) is BreakerState.OPEN
    clock.advance(1.8)
    with pytest.raises(CircuitOpen) as raised:
        b.before()
    error = raised.value
    assert isinstance(error, StoreUnavailable)
    assert error.retryable
    assert (error.store, error.shard) == ("kv", "s0")
    assert error.retry_after == pytest.approx(3.2)
    assert str(error).startswith("kv/s0: circuit open, retry in 3.2 s (last failure: connection refused)")
    stats = b.stats()
    assert (stats.state, stats.opened, stats.rejected) == (BreakerState.OPEN, 1, 1)


def test_failures_older_than_the_window_are_forgotten_exactly_at_the_edge() -> None:
    clock = ManualClock()
    b = breaker(clock, failures=3, window=10.0)
    fail(b)
    clock.advance(5.0)
    fail(b)
    clock.advance(5.0)  # the first failure is exactly `window` old: outside
    fail(b)
    assert state(b) is BreakerState.CLOSED
    assert b.stats().failures == 2
    fail(b)  # failures at 5, 10, 10: within the window
    assert state(b) is BreakerState.OPEN


def test_successes_do_not_reset_the_count_in_count_mode() -> None:
    clock = ManualClock()
    b = breaker(clock, failures=2)
    fail(b)
    for _ in range(100):
        succeed(b)
    fail(b)
    assert state(b) is BreakerState.OPEN


def test_half_open_after_cool_down_lets_probes_through_and_closes_on_success() -> None:
    clock = ManualClock()
    b = breaker(clock, failures=1, cool_down=5.0, probes=2)
    fail(b)
    clock.advance(4.999)
    with pytest.raises(CircuitOpen):
        b.before()
    clock.advance(0.001)
    first = b.before()
    second = b.before()
    assert first
    assert second
    assert state(b) is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpen, match="half-open"):
        b.before()  # only two probes at a time
    b.success(first)
    assert state(b) is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpen):
        b.before()  # one probe succeeded, one in flight: still no third
    b.success(second)
    assert state(b) is BreakerState.CLOSED
    assert b.before() is False


def test_a_failed_probe_reopens_for_a_whole_cool_down() -> None:
    clock, b, probe = probing(5.0)
    clock.advance(0.5)
    b.failure(probe, DOWN)
    assert state(b) is BreakerState.OPEN
    assert b.stats().opened == 2
    assert b.stats().retry_after == pytest.approx(5.0)
    clock.advance(4.9)
    with pytest.raises(CircuitOpen):
        b.before()


def test_a_probe_answered_with_a_not_found_counts_as_success() -> None:
    _, b, probe = probing(1.0)
    b.failure(probe, NotFoundError("no row"))
    assert state(b) is BreakerState.CLOSED


def test_a_cancelled_probe_frees_its_place() -> None:
    _, b, probe = probing(1.0, probes=1)
    b.cancel(probe)  # e.g. throttled before it reached the backend
    again = b.before()
    assert again
    b.success(again)
    assert state(b) is BreakerState.CLOSED


def test_failure_rate_opens_only_over_min_calls() -> None:
    clock = ManualClock()
    b = breaker(clock, failures=1000, failure_rate=0.5, min_calls=10, window=10.0)
    for _ in range(4):
        succeed(b)
    for _ in range(4):
        fail(b)
    assert state(b) is BreakerState.CLOSED  # 8 calls < min_calls
    succeed(b)
    fail(b)  # 10 calls, 5 failed: 50 %
    assert state(b) is BreakerState.OPEN


def test_failure_rate_window_drops_old_calls() -> None:
    clock = ManualClock(start=0.0)
    b = breaker(clock, failures=1000, failure_rate=0.5, min_calls=4, window=10.0)
    for _ in range(3):
        fail(b)
    clock.advance(10.0)  # those buckets are out of the window now
    for _ in range(3):
        succeed(b)
    fail(b)  # 4 calls in the window, 1 failed
    assert state(b) is BreakerState.CLOSED


def test_reset_closes_and_forgets() -> None:
    clock = ManualClock()
    b = breaker(clock, failures=1)
    fail(b)
    b.reset()
    assert state(b) is BreakerState.CLOSED
    assert b.stats().failures == 0
