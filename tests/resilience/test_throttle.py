"""The four rate-limiting algorithms, exact on a manual clock: bursts, window edges, waits."""

from __future__ import annotations

import pytest

from toolkit.errors import RateLimited
from toolkit.resilience import (
    ALGORITHMS,
    FixedWindow,
    LeakyBucket,
    ManualClock,
    SlidingWindow,
    Throttle,
    ThrottlePolicy,
    TokenBucket,
    limiter_for,
)


def test_token_bucket_allows_its_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10.0, capacity=5, now=0.0)
    assert [bucket.reserve(0.0, 0.0)[0] for _ in range(5)] == [True] * 5
    ok, retry_after = bucket.reserve(0.0, 0.0)
    assert not ok
    assert retry_after == pytest.approx(0.1)
    assert bucket.reserve(0.1, 0.0) == (True, 0.0)
    assert not bucket.reserve(0.1, 0.0)[0]
    # a long idle time refills to the capacity, never beyond it
    assert sum(bucket.reserve(100.0, 0.0)[0] for _ in range(20)) == 5


def test_token_bucket_reserves_for_patient_callers_in_order() -> None:
    bucket = TokenBucket(rate=10.0, capacity=1, now=0.0)
    assert bucket.reserve(0.0, 1.0) == (True, 0.0)
    delays = [bucket.reserve(0.0, 1.0)[1] for _ in range(3)]
    assert delays == pytest.approx([0.1, 0.2, 0.3])
    ok, retry_after = bucket.reserve(0.0, 0.35)  # would need 0.4 s
    assert not ok
    assert retry_after == pytest.approx(0.4)


def test_leaky_bucket_spaces_calls_evenly_and_bounds_its_queue() -> None:
    bucket = LeakyBucket(rate=10.0, capacity=3, now=0.0)
    delays = [bucket.reserve(0.0, 10.0) for _ in range(3)]
    assert [ok for ok, _ in delays] == [True] * 3
    assert [delay for _, delay in delays] == pytest.approx([0.0, 0.1, 0.2])
    ok, retry_after = bucket.reserve(0.0, 10.0)  # three queued: full
    assert not ok
    assert retry_after == pytest.approx(0.3)
    assert bucket.reserve(0.3, 10.0) == (True, 0.0)


def test_leaky_bucket_without_patience_admits_one_per_interval() -> None:
    bucket = LeakyBucket(rate=4.0, capacity=100, now=0.0)
    assert bucket.reserve(0.0, 0.0) == (True, 0.0)
    ok, retry_after = bucket.reserve(0.1, 0.0)
    assert not ok
    assert retry_after == pytest.approx(0.15)
    assert bucket.reserve(0.25, 0.0) == (True, 0.0)


def test_fixed_window_counts_per_aligned_window_and_resets_at_the_edge() -> None:
    window = FixedWindow(rate=10.0, window=1.0, now=0.5)
    assert sum(window.reserve(0.5, 0.0)[0] for _ in range(10)) == 10
    ok, retry_after = window.reserve(0.75, 0.0)
    assert not ok
    assert retry_after == pytest.approx(0.25)
    assert window.reserve(0.999, 0.0)[0] is False
    # the edge effect the algorithm is known for: 10 more at once in the next window
    assert sum(window.reserve(1.0, 0.0)[0] for _ in range(20)) == 10


def test_sliding_window_weighs_the_previous_window() -> None:
    window = SlidingWindow(rate=10.0, window=1.0, now=0.0)
    assert sum(window.reserve(0.5, 0.0)[0] for _ in range(12)) == 10
    assert window.estimate(1.2) == pytest.approx(8.0)  # 10 * 0.8 of the previous window
    assert window.reserve(1.2, 0.0) == (True, 0.0)  # 8 < 10
    assert window.reserve(1.2, 0.0) == (True, 0.0)  # 9 < 10
    assert window.reserve(1.2, 0.0)[0] is False  # 10
    assert window.reserve(1.25, 0.0) == (True, 0.0)  # 7.5 + 2 < 10
    ok, retry_after = window.reserve(1.25, 0.0)  # 7.5 + 3 = 10.5: below 10 after 0.05 s
    assert not ok
    assert retry_after == pytest.approx(0.05)
    assert window.reserve(1.2999, 0.0)[0] is False
    assert window.reserve(1.3001, 0.0) == (True, 0.0)
    # unlike the fixed window there is no burst at the edge: at 1.0 the previous counts fully
    edge = SlidingWindow(rate=10.0, window=1.0, now=0.0)
    for _ in range(10):
        edge.reserve(0.99, 0.0)
    assert sum(edge.reserve(1.0, 0.0)[0] for _ in range(10)) == 0
    # a gap longer than a window forgets everything
    assert sum(edge.reserve(3.5, 0.0)[0] for _ in range(20)) == 10


def test_sliding_window_wait_when_the_current_window_is_full_by_itself() -> None:
    window = SlidingWindow(rate=4.0, window=1.0, now=0.0)
    for _ in range(4):
        assert window.reserve(0.0, 0.0)[0]
    ok, retry_after = window.reserve(0.5, 0.0)
    # after 1.0 the estimate is 4 * (1 - (t - 1)), below 4 as soon as t > 1.0
    assert not ok
    assert retry_after == pytest.approx(0.5)
    assert not window.reserve(1.0, 0.0)[0]
    assert window.reserve(1.001, 0.0)[0]
    assert window.estimate(1.001) == pytest.approx(4.996)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_holds_its_rate_over_a_simulated_ten_seconds(algorithm: str) -> None:
    """1000 arrivals per second for 10 s at a limit of 100/s: admitted ~ 1000 (+ the burst)."""
    policy = ThrottlePolicy(rate=100.0, algorithm=algorithm, burst=10, window=0.1)  # type: ignore[arg-type]
    limiter = limiter_for(policy, 0.0)
    assert limiter is not None
    admitted = sum(limiter.reserve(step / 1000, 0.0)[0] for step in range(10_000))
    assert 1000 <= admitted <= 1010, admitted


class _Simultaneous(ManualClock):
    """Records sleeps without advancing: callers that all arrive at one instant."""

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def test_throttle_waits_on_its_clock_when_allowed() -> None:
    clock = _Simultaneous(start=0.0)
    throttle = Throttle(ThrottlePolicy(rate=10.0, burst=1, wait=True, max_wait=0.25), clock, store="kv")
    throttle.acquire()
    throttle.acquire()  # reserved 0.1 s ahead: sleeps it
    throttle.acquire()  # and the next 0.2 s ahead
    assert clock.sleeps == [0.0, pytest.approx(0.1), pytest.approx(0.2)]
    with pytest.raises(RateLimited) as raised:
        throttle.acquire()  # 0.3 s ahead > max_wait
    assert raised.value.retry_after == pytest.approx(0.3)
    assert raised.value.store == "kv"
    stats = throttle.stats()
    assert (stats.admitted, stats.delayed, stats.rejected) == (3, 2, 1)


def test_throttle_fails_fast_with_retry_after_when_not_waiting() -> None:
    clock = ManualClock(start=0.0)
    throttle = Throttle(ThrottlePolicy(rate=2.0, burst=2, wait=False), clock, store="kv")
    throttle.acquire()
    throttle.acquire()
    with pytest.raises(RateLimited, match=r"kv: rate limit of 2 calls/s \(token_bucket\) reached; retry in 0.500 s"):
        throttle.acquire()
    assert clock.sleeps == [0.0, 0.0]


def test_throttle_with_a_window_algorithm_sleeps_then_asks_again() -> None:
    clock = ManualClock(start=0.0)
    policy = ThrottlePolicy(rate=2.0, algorithm="fixed_window", window=1.0, wait=True, max_wait=1.0)
    throttle = Throttle(policy, clock, store="kv")
    throttle.acquire()
    throttle.acquire()
    clock.advance(0.4)
    throttle.acquire()  # sleeps 0.6 s to the next window, then is admitted
    assert clock.monotonic() == pytest.approx(1.0)
    assert throttle.stats().delayed == 1


def test_policy_defaults_and_validation() -> None:
    assert ThrottlePolicy().rate is None
    assert ThrottlePolicy(rate=250.0).capacity == 250
    assert ThrottlePolicy(rate=0.2).capacity == 1
    with pytest.raises(ValueError, match="rate: must be a positive number"):
        ThrottlePolicy(rate=0)
    with pytest.raises(ValueError, match="window: rate \\* window must allow at least one call"):
        ThrottlePolicy(rate=0.5, algorithm="fixed_window", window=1.0)
