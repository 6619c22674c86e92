"""Rate limiting per store, with the four algorithms users ask for.

Each limiter is pure arithmetic on the time it is given (no clock, no lock, no
sleeping), so its window edges and burst limits are tested exactly. ``reserve(now,
patience)`` either admits a call, possibly at a later moment it reserves for it
(``(True, delay)``: the caller sleeps ``delay`` first), or refuses it (``(False,
retry_after)``). ``Throttle`` adds the lock, the clock, the choice between waiting and
failing fast, and the counters.

The buckets reserve future capacity for a waiting caller (the generic cell rate
algorithm's trick), so waiters are served in arrival order at exactly the rate; the
window counters cannot reserve, so a waiter sleeps until the next admissible moment
and asks again.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Final, Protocol

from toolkit.errors import RateLimited
from toolkit.resilience._clock import Clock
from toolkit.resilience._policy import Algorithm, ThrottlePolicy

_EPSILON: Final = 1e-9
"""Slack for float arithmetic: a token 1e-12 short, or a slot 1e-12 late, counts as there."""

__all__ = [
    "FixedWindow",
    "LeakyBucket",
    "Limiter",
    "SlidingWindow",
    "Throttle",
    "ThrottleStats",
    "TokenBucket",
    "limiter_for",
]


class Limiter(Protocol):
    """One rate-limiting algorithm (not thread-safe: ``Throttle`` holds the lock)."""

    def reserve(self, now: float, patience: float) -> tuple[bool, float]:
        """Admit a call arriving at ``now`` if it can start within ``patience`` seconds.

        ``(True, delay)``: admitted, to start ``delay`` seconds from now (0: at once).
        ``(False, retry_after)``: refused; seconds until a call would be admitted at once.
        """
        ...


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; a call takes one.

    A waiting caller takes a token it does not have yet (the level goes below zero) and
    sleeps until the refill pays it back, so later callers queue behind it.
    """

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, rate: float, capacity: int, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.level = float(capacity)
        self.stamp = now

    def reserve(self, now: float, patience: float) -> tuple[bool, float]:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.level >= 1 - _EPSILON:
            self.level -= 1
            return True, 0.0
        delay = (1 - self.level) / self.rate
        if delay <= patience + _EPSILON:
            self.level -= 1
            return True, delay
        return False, delay


class LeakyBucket:
    """Calls leave at an even pace, one every ``1 / rate`` seconds; at most ``capacity``
    wait in the queue. Nothing bursts through: the backend sees the rate, smoothed."""

    __slots__ = ("capacity", "interval", "next_free")

    def __init__(self, rate: float, capacity: int, now: float) -> None:
        self.interval = 1.0 / rate
        self.capacity = capacity
        self.next_free = now

    def reserve(self, now: float, patience: float) -> tuple[bool, float]:
        delay = self.next_free - now
        if delay <= _EPSILON:
            self.next_free = max(now, self.next_free) + self.interval
            return True, 0.0
        queued = delay / self.interval  # calls already waiting ahead of this one
        if delay <= patience + _EPSILON and queued < self.capacity - _EPSILON:
            self.next_free += self.interval
            return True, delay
        return False, delay


class FixedWindow:
    """At most ``limit`` calls in each aligned window ``[k * window, (k + 1) * window)``."""

    __slots__ = ("count", "limit", "start", "window")

    def __init__(self, rate: float, window: float, now: float) -> None:
        self.window = window
        self.limit = max(1, math.floor(rate * window + 1e-9))
        self.start = math.floor(now / window) * window
        self.count = 0

    def reserve(self, now: float, patience: float) -> tuple[bool, float]:
        start = math.floor(now / self.window) * self.window
        if start != self.start:
            self.start = start
            self.count = 0
        if self.count < self.limit:
            self.count += 1
            return True, 0.0
        return False, self.start + self.window - now


class SlidingWindow:
    """The sliding window counter: the current window's count plus the previous window's,
    weighted by the share of it still inside the last ``window`` seconds; a call is
    admitted while that estimate is below ``limit`` (so a steady stream gets exactly
    ``limit`` per window, and no instant sees more than ``limit + 1``)."""

    __slots__ = ("current", "limit", "previous", "start", "window")

    def __init__(self, rate: float, window: float, now: float) -> None:
        self.window = window
        self.limit = max(1, math.floor(rate * window + 1e-9))
        self.start = math.floor(now / window) * window
        self.previous = 0
        self.current = 0

    def _roll(self, now: float) -> None:
        start = math.floor(now / self.window) * self.window
        if start != self.start:
            gone = round((start - self.start) / self.window)
            self.previous = self.current if gone == 1 else 0
            self.current = 0
            self.start = start

    def estimate(self, now: float) -> float:
        """Calls counted in the last ``window`` seconds (the previous window pro rata)."""
        self._roll(now)
        overlap = 1.0 - (now - self.start) / self.window
        return self.previous * overlap + self.current

    def reserve(self, now: float, patience: float) -> tuple[bool, float]:
        if self.estimate(now) < self.limit:
            self.current += 1
            return True, 0.0
        return False, self._wait(now)

    def _wait(self, now: float) -> float:
        """Seconds until the estimate drops below ``limit`` (if nothing else arrives)."""
        room = self.limit - self.current  # what the previous window may still weigh
        if room > 0 and self.previous > 0:
            # previous * (1 - (t - start) / window) < room
            moment = self.start + self.window * (1 - room / self.previous)
        else:
            # this window is full by itself: once it ends it is the previous window
            moment = self.start + self.window * (2 - self.limit / max(self.current, self.limit))
        return max(moment - now, 1e-6)


def limiter_for(policy: ThrottlePolicy, now: float) -> Limiter | None:
    """The limiter a policy asks for, or None when it sets no rate."""
    rate = policy.rate
    if rate is None:
        return None
    algorithm: Algorithm = policy.algorithm
    if algorithm == "token_bucket":
        return TokenBucket(rate, policy.capacity, now)
    if algorithm == "leaky_bucket":
        return LeakyBucket(rate, policy.capacity, now)
    if algorithm == "fixed_window":
        return FixedWindow(rate, policy.window, now)
    return SlidingWindow(rate, policy.window, now)


@dataclass(frozen=True, slots=True)
class ThrottleStats:
    """A throttle at one moment (None rate: no throttle, only the policy is shown)."""

    algorithm: str
    rate: float | None
    admitted: int
    delayed: int
    """Admitted calls that first waited for their turn."""
    rejected: int
    """Calls refused with ``RateLimited``."""


class Throttle:
    """The rate limit of one store: a limiter, a lock, a clock, and the wait/fail choice."""

    def __init__(self, policy: ThrottlePolicy, clock: Clock, *, store: str) -> None:
        limiter = limiter_for(policy, clock.monotonic())
        if limiter is None:
            raise ValueError("a Throttle needs a policy with a rate")
        self.policy = policy
        self.store = store
        self._limiter = limiter
        self._clock = clock
        self._lock = threading.Lock()
        self._admitted = 0
        self._delayed = 0
        self._rejected = 0

    def acquire(self) -> None:
        """Return when the call may go ahead (after waiting, if the policy waits), or raise
        ``RateLimited`` with the seconds after which it could be admitted."""
        clock = self._clock
        patience = self.policy.max_wait if self.policy.wait else 0.0
        now = clock.monotonic()
        deadline = now + patience
        waited = False
        while True:
            with self._lock:
                ok, seconds = self._limiter.reserve(now, max(0.0, deadline - now))
                if ok:
                    self._admitted += 1
                    if seconds > 0 or waited:
                        self._delayed += 1
                elif now + seconds > deadline:
                    self._rejected += 1
                    break
            if ok:
                clock.sleep(seconds)
                return
            waited = True
            clock.sleep(seconds)  # a window counter: try again at the next admissible moment
            now = clock.monotonic()
        raise RateLimited(
            f"rate limit of {self.policy.rate:g} calls/s ({self.policy.algorithm}) reached; retry in {seconds:.3f} s",
            store=self.store,
            retry_after=seconds,
        )

    def stats(self) -> ThrottleStats:
        with self._lock:
            return ThrottleStats(self.policy.algorithm, self.policy.rate, self._admitted, self._delayed, self._rejected)
