"""Retry and lease policies: frozen dataclasses with documented defaults.

The shape follows Temporal's ``RetryPolicy`` (initial interval, coefficient, cap,
attempts) because it is the one users already know; the clock and the randomness are
injected (``Clock``, ``Jitter``) so that tests replay exact schedules without sleeping.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from toolkit.errors import ToolkitError

__all__ = [
    "DEFAULT_COMPENSATION_POLICY",
    "DEFAULT_RETRY_POLICY",
    "Clock",
    "Jitter",
    "LeasePolicy",
    "RetryPolicy",
    "SystemClock",
    "is_retryable",
]


class Clock(Protocol):
    """Where the coordinator reads the time and how it waits (seconds, epoch based)."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """``time.time`` and ``time.sleep``: the default clock."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class Jitter(Protocol):
    """A source of uniform numbers in [0, 1): ``random.Random().random`` fits."""

    def __call__(self) -> float: ...


def is_retryable(error: BaseException) -> bool:
    """Whether retrying the same call may help: the ``retryable`` flag of toolkit errors.

    Anything that is not a ``ToolkitError`` (a bug in a step, a ValueError) is not
    retryable: retrying a deterministic failure only delays the compensation.
    """
    return isinstance(error, ToolkitError) and bool(error.retryable)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently one step (or one compensation) is attempted.

    The delay before attempt ``n + 1`` is ``initial_interval * backoff_coefficient **
    (n - 1)``, capped at ``max_interval``, then scaled by a factor drawn uniformly from
    ``[1 - jitter, 1]`` ("equal jitter" would keep retries of many sagas in lockstep;
    scaling down never waits longer than the cap).

    ``timeout`` bounds the whole step, all attempts and waits included (Temporal's
    schedule-to-close): no attempt starts after it, and a wait is cut short by it. A
    running attempt is never interrupted: Python cannot kill a thread, and abandoning
    one that may still write would break the guarantee that compensation runs after
    the action has stopped.

    Only errors whose ``retryable`` flag is set are retried (StoreUnavailable,
    StoreTimeout...), unless ``retry_all`` is true: compensations use that, because
    a compensation has no alternative but to succeed eventually.
    """

    max_attempts: int = 3
    """Attempts in total, the first included; at least 1."""
    initial_interval: float = 0.1
    """Seconds before the second attempt."""
    backoff_coefficient: float = 2.0
    """Each wait is this many times the previous one."""
    max_interval: float = 5.0
    """No wait is longer than this (seconds)."""
    jitter: float = 0.5
    """Fraction of each wait that is randomised (0: none, 1: anywhere in [0, wait])."""
    timeout: float | None = None
    """Seconds for the whole step, attempts and waits included; None: no limit."""
    retry_all: bool = False
    """Retry every exception, not only those marked retryable."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.initial_interval < 0 or self.max_interval < 0 or self.backoff_coefficient < 1:
            raise ValueError("intervals must be >= 0 and backoff_coefficient >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], not {self.jitter}")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout must be positive seconds, not {self.timeout}")

    def delay(self, attempt: int, jitter: Jitter) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_interval, self.initial_interval * self.backoff_coefficient ** (attempt - 1))
        return base * (1 - self.jitter * jitter())

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Whether attempt ``attempt`` failing with ``error`` earns another attempt."""
        if attempt >= self.max_attempts:
            return False
        return self.retry_all or is_retryable(error)


DEFAULT_RETRY_POLICY = RetryPolicy()
"""Steps: 3 attempts, 0.1 s then 0.2 s (jittered), retryable errors only."""

DEFAULT_COMPENSATION_POLICY = RetryPolicy(max_attempts=8, initial_interval=0.1, max_interval=5.0, retry_all=True)
"""Compensations: every error retried, 8 attempts (about 13 s of waiting in the worst
case), then the saga is left in ``needs_attention`` with the last error."""


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """How long a runner's claim on a saga lasts without news, and how often it renews.

    A runner renews its leases every ``heartbeat`` seconds (one UPDATE for all the
    sagas it holds) and with every transition it writes. Recovery only takes sagas
    whose lease ran out, so a live runner is never raced; ``ttl`` is also the longest
    a crashed runner's sagas wait before recovery may take them. Before every effect
    the runner checks that at least ``margin`` seconds of its lease remain (renewing
    otherwise), so an effect never starts on a lease about to lapse.
    """

    ttl: float = 15.0
    heartbeat: float = 5.0
    margin: float = 2.0
    wait_interval: float = 0.05
    """How often a caller waiting for a saga with the same idempotency key polls the log."""

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat < self.ttl or not 0 <= self.margin < self.ttl:
            raise ValueError("lease: need 0 < heartbeat < ttl and 0 <= margin < ttl")
