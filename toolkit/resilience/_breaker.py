"""The circuit breaker of one shard: closed, open, half-open.

A backend that refuses connections or stops answering makes every call wait for a
connect timeout, and piles work onto a server that is trying to come back. The breaker
notices (``failures`` unhealthy failures within ``window`` seconds, or a failure rate)
and then fails calls at once, without I/O, for ``cool_down`` seconds; then it lets a
few probe calls through and closes when they succeed. Only failures that say the
backend is unhealthy count (``is_unhealthy``): a missing row or a duplicate key is the
backend working.

The closed state's success path takes no lock (one attribute read), so a healthy shard
pays almost nothing; failures, state changes and (with ``failure_rate``) call counting
take the breaker's lock.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from dataclasses import dataclass

from toolkit.errors import CircuitOpen, StoreTimeout, StoreUnavailable
from toolkit.resilience._clock import Clock
from toolkit.resilience._policy import BreakerPolicy

__all__ = ["BreakerState", "BreakerStats", "CircuitBreaker", "is_unhealthy"]

_BUCKETS = 10
"""The rate window is kept as this many buckets of ``window / _BUCKETS`` seconds."""


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


def is_unhealthy(error: BaseException) -> bool:
    """Whether ``error`` says the backend is down or overwhelmed (what a breaker counts).

    ``StoreUnavailable`` (cannot connect, connection lost) and ``StoreTimeout`` (no
    answer in time) do; the guard's own ``CircuitOpen`` does not (it is the breaker's
    answer, not news about the backend); neither does any other error.
    """
    return isinstance(error, StoreUnavailable | StoreTimeout) and not isinstance(error, CircuitOpen)


@dataclass(frozen=True, slots=True)
class BreakerStats:
    """A breaker at one moment, for health endpoints and ``polystore status``."""

    state: BreakerState
    failures: int
    """Unhealthy failures within the current window."""
    opened: int
    """How many times the circuit opened since the process started."""
    rejected: int
    """Calls refused without I/O while open (or half-open with every probe taken)."""
    retry_after: float
    """Seconds until the open circuit lets a probe through (0 unless open)."""
    last_error: str | None


class _RateWindow:
    """Calls and failures over the last ``window`` seconds, in ``_BUCKETS`` buckets."""

    __slots__ = ("calls", "failed", "stamps", "width")

    def __init__(self, window: float) -> None:
        self.width = window / _BUCKETS
        self.calls = [0] * _BUCKETS
        self.failed = [0] * _BUCKETS
        self.stamps = [-1] * _BUCKETS

    def add(self, now: float, failed: bool) -> None:
        tick = int(now / self.width)
        slot = tick % _BUCKETS
        if self.stamps[slot] != tick:
            self.stamps[slot] = tick
            self.calls[slot] = 0
            self.failed[slot] = 0
        self.calls[slot] += 1
        if failed:
            self.failed[slot] += 1

    def totals(self, now: float) -> tuple[int, int]:
        oldest = int(now / self.width) - _BUCKETS + 1
        calls = failed = 0
        for slot in range(_BUCKETS):
            if self.stamps[slot] >= oldest:
                calls += self.calls[slot]
                failed += self.failed[slot]
        return calls, failed

    def clear(self) -> None:
        self.stamps = [-1] * _BUCKETS


class CircuitBreaker:
    """One shard's breaker. ``before()`` each call, then exactly one of ``success``,
    ``failure`` or ``cancel`` with what ``before()`` returned. Thread-safe."""

    def __init__(self, policy: BreakerPolicy, clock: Clock, *, store: str, shard: str) -> None:
        self.policy = policy
        self.store = store
        self.shard = shard
        self._clock = clock
        self._lock = threading.Lock()
        self.state = BreakerState.CLOSED
        self._failures: deque[float] = deque(maxlen=policy.failures)
        self._rate = _RateWindow(policy.window) if policy.failure_rate is not None else None
        self.counts_calls = self._rate is not None
        """Whether a closed circuit must hear of successes too (only for ``failure_rate``)."""
        self._opened_at = 0.0
        self._probing = 0
        self._probe_successes = 0
        self._opened = 0
        self._rejected = 0
        self._last_error: str | None = None

    # -- the call protocol -------------------------------------------------------------
    def before(self) -> bool:
        """Admit a call or raise ``CircuitOpen``. True when the call is a half-open probe."""
        if self.state is BreakerState.CLOSED:
            return False
        with self._lock:
            now = self._clock.monotonic()
            if self.state is BreakerState.OPEN:
                left = self._opened_at + self.policy.cool_down - now
                if left > 0:
                    self._rejected += 1
                    raise self._open_error(left)
                self.state = BreakerState.HALF_OPEN
                self._probing = 0
                self._probe_successes = 0
            if self.state is BreakerState.HALF_OPEN:
                if self._probing + self._probe_successes >= self.policy.probes:
                    self._rejected += 1
                    raise self._open_error(0.0, probing=True)
                self._probing += 1
                return True
            return False  # closed by another thread meanwhile

    def success(self, probe: bool) -> None:
        """The call got an answer from the backend (an error that is not unhealthy counts too)."""
        if probe:
            with self._lock:
                self._probing -= 1
                if self.state is BreakerState.HALF_OPEN:
                    self._probe_successes += 1
                    if self._probe_successes >= self.policy.probes:
                        self._close()
            return
        if self._rate is not None:
            with self._lock:
                self._rate.add(self._clock.monotonic(), failed=False)

    def failure(self, probe: bool, error: BaseException) -> None:
        """The call ended with ``error``; counted only if ``is_unhealthy(error)``."""
        if not is_unhealthy(error):
            self.success(probe)
            return
        with self._lock:
            now = self._clock.monotonic()
            self._last_error = str(error).removeprefix(f"{self.store}/{self.shard}: ")
            if probe:
                self._probing -= 1
                if self.state is BreakerState.HALF_OPEN:
                    self._open(now)
                return
            if self.state is not BreakerState.CLOSED:
                return  # a call admitted before the circuit opened: already counted enough
            self._failures.append(now)
            if self._rate is not None:
                self._rate.add(now, failed=True)
            if self._should_open(now):
                self._open(now)

    def cancel(self, probe: bool) -> None:
        """The admitted call never reached the backend (throttled, no bulkhead slot)."""
        if probe:
            with self._lock:
                self._probing -= 1

    # -- state -------------------------------------------------------------------------
    def _should_open(self, now: float) -> bool:
        policy = self.policy
        failures = self._failures
        if len(failures) >= policy.failures and failures[0] > now - policy.window:
            return True
        if self._rate is not None and policy.failure_rate is not None:
            calls, failed = self._rate.totals(now)
            return calls >= policy.min_calls and failed >= policy.failure_rate * calls
        return False

    def _open(self, now: float) -> None:
        self.state = BreakerState.OPEN
        self._opened_at = now
        self._opened += 1

    def _close(self) -> None:
        self.state = BreakerState.CLOSED
        self._failures.clear()
        if self._rate is not None:
            self._rate.clear()

    def _open_error(self, retry_after: float, *, probing: bool = False) -> CircuitOpen:
        if probing:
            text = f"circuit half-open, {self.policy.probes} probe call(s) in flight; retry shortly"
        else:
            text = f"circuit open, retry in {retry_after:.1f} s"
        if self._last_error:
            text += f" (last failure: {self._last_error})"
        return CircuitOpen(text, store=self.store, shard=self.shard, retry_after=max(retry_after, 0.0))

    def stats(self) -> BreakerStats:
        with self._lock:
            now = self._clock.monotonic()
            state = self.state
            retry_after = 0.0
            if state is BreakerState.OPEN:
                retry_after = max(0.0, self._opened_at + self.policy.cool_down - now)
            recent = sum(1 for stamp in self._failures if stamp > now - self.policy.window)
            return BreakerStats(state, recent, self._opened, self._rejected, retry_after, self._last_error)

    def reset(self) -> None:
        """Close the circuit and forget every failure (an operator's override)."""
        with self._lock:
            self._close()
