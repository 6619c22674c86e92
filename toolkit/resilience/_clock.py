"""Time and randomness, injectable: neither the guard nor the sagas call ``time`` or ``random`` directly.

Every mechanism reads the time from a ``Clock`` (``monotonic()`` for intervals, ``now()``
for instants stored in a log), waits with ``Clock.sleep()`` or, on a condition another
thread signals, with ``Clock.wait()``, and draws jitter from a ``Random`` (any
zero-argument callable returning a float in [0, 1)). A test therefore drives breakers,
windows, bulkhead waits, backoff schedules, step timeouts and saga leases exactly with
``ManualClock`` and a fixed sequence of numbers, without sleeping.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "Random", "SystemClock", "system_random"]


class Clock(Protocol):
    """Where time comes from and how to wait for it (seconds)."""

    def monotonic(self) -> float:
        """A clock for intervals: never goes back."""
        ...

    def now(self) -> float:
        """The current instant, epoch based: what is written to a log other processes read."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        ...

    def wait(self, condition: threading.Condition, seconds: float) -> bool:
        """``condition.wait(seconds)`` on this clock's time: called with ``condition`` held;
        False if the time ran out, True if woken before (the caller checks why)."""
        ...


class Random(Protocol):
    """A source of uniform numbers in [0, 1): ``random.Random().random`` fits."""

    def __call__(self) -> float: ...


class SystemClock:
    """``time.monotonic``, ``time.time`` and real waits: the default clock."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, condition: threading.Condition, seconds: float) -> bool:
        return condition.wait(seconds)


SYSTEM_CLOCK = SystemClock()
"""The shared default clock (stateless)."""

system_random: Random = random.Random().random
"""The default jitter source: a private ``random.Random`` (not the module's global state)."""


class ManualClock:
    """A clock that only moves when told: ``advance`` it, or ``sleep`` (which advances it).

    Made for tests: a breaker's cool-down or a lease's expiry is reached by
    ``advance(5.0)``, not by waiting five seconds. ``monotonic()`` and ``now()`` read the
    same number (start it at ``time.time()`` to compare with instants other clocks wrote).
    ``sleeps`` records every wait asked for, so a test can check a backoff schedule.

    Threads blocked in ``wait`` (a bulkhead's queue, a saga's heartbeat) wake when their
    condition is signalled or when the clock is moved; ``until_waiting`` lets a test
    hold off until they are parked, so it synchronizes on state, not on time. Thread-safe.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._state = threading.Condition()
        self._conditions: Counter[threading.Condition] = Counter()
        self._waiting = 0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._now

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward and wake every thread waiting on it."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        with self._state:
            self._now += seconds
            conditions = list(self._conditions)
        for condition in conditions:
            with condition:  # the waiter holds it until it is parked in wait(): no lost wake-up
                condition.notify_all()

    def sleep(self, seconds: float) -> None:
        with self._state:
            self.sleeps.append(seconds)
        if seconds > 0:
            self.advance(seconds)

    def wait(self, condition: threading.Condition, seconds: float) -> bool:
        if seconds <= 0:
            return False
        with self._state:  # registered before the deadline is read: an advance from now on wakes it
            deadline = self._now + seconds
            self._conditions[condition] += 1
            self._waiting += 1
            self._state.notify_all()
        try:
            condition.wait()
        finally:
            with self._state:
                self._waiting -= 1
                self._conditions[condition] -= 1
                if not self._conditions[condition]:
                    del self._conditions[condition]
        return self._now < deadline

    @property
    def waiting(self) -> int:
        """Threads parked in ``wait`` right now."""
        return self._waiting

    def until_waiting(self, count: int = 1, timeout: float = 30.0) -> bool:
        """Block (real time, at most ``timeout``) until ``count`` threads are parked in ``wait``."""
        with self._state:
            return self._state.wait_for(lambda: self._waiting >= count, timeout)
