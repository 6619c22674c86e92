"""The sagas' policies: retry of a step (the toolkit's one ``RetryPolicy``) and leases.

Steps retry with ``toolkit.resilience.RetryPolicy``, the same policy the resilience
guard retries adapter calls with (Temporal's shape: initial interval, coefficient, cap,
attempts); time and jitter come from the same injectable ``Clock`` and ``Random``
(``Jitter`` here), so tests replay exact schedules without sleeping. What is only the
sagas' own is here: their default step and compensation policies, and ``LeasePolicy``.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.resilience import Clock, RetryPolicy, SystemClock, is_retryable
from toolkit.resilience import Random as Jitter

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

DEFAULT_RETRY_POLICY = RetryPolicy(max_attempts=3, initial_backoff=0.1, max_backoff=5.0, timeout=None)
"""Steps: 3 attempts, 0.1 s then 0.2 s (jittered), retryable errors only, no time limit."""

DEFAULT_COMPENSATION_POLICY = RetryPolicy(
    max_attempts=8, initial_backoff=0.1, max_backoff=5.0, timeout=None, retry_all=True
)
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
