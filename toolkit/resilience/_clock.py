"""Time and randomness, injectable: the guard never calls ``time`` or ``random`` directly.

Every mechanism reads ``Clock.monotonic()`` and waits with ``Clock.sleep()``, and draws
jitter from a ``Random`` (any zero-argument callable returning a float in [0, 1)), so
a test can drive breakers, windows and backoff schedules exactly with ``ManualClock``
and a fixed sequence of numbers, without sleeping.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "Random", "SystemClock", "system_random"]


class Clock(Protocol):
    """A monotonic clock in seconds and a way to wait on it."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class Random(Protocol):
    """A source of uniform numbers in [0, 1): ``random.Random().random`` fits."""

    def __call__(self) -> float: ...


class SystemClock:
    """``time.monotonic`` and ``time.sleep``: the default clock."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()
"""The shared default clock (stateless)."""

system_random: Random = random.Random().random
"""The default jitter source: a private ``random.Random`` (not the module's global state)."""


class ManualClock:
    """A clock that only moves when told: ``advance`` it, or ``sleep`` (which advances it).

    Made for tests: a breaker's cool-down or a throttle's window edge is reached by
    ``advance(5.0)``, not by waiting five seconds. ``sleeps`` records every wait asked
    for, so a test can check a backoff schedule. Thread-safe.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            if seconds > 0:
                self._now += seconds
