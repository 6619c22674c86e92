"""The policies of the guard: small frozen dataclasses with documented defaults.

One ``ResiliencePolicy`` per store bundles four parts, each read from the store's
``[stores.NAME.resilience.<part>]`` table in polystore.toml (see ``toolkit.config``):

* ``BreakerPolicy``   per shard: when to stop calling a failing backend, when to probe it;
* ``BulkheadPolicy``  per store: how many calls may be in flight at once, and how long
  a caller waits for a slot;
* ``ThrottlePolicy``  per store: how many calls per second are admitted (off by default);
* ``RetryPolicy``     per call: how transient failures are retried (exponential backoff
  with jitter, bounded in attempts and in total time); saga steps use it too.

The defaults are meant to be invisible while every backend is healthy and to contain
one that is not: a shard that fails 5 times within 10 s is left alone for 5 s; a store
never holds more than 32 calls at once; a retryable failure is tried 3 times within 5 s.
Invalid values raise ``PolicyError`` naming the field, which the config parser turns
into a ``ConfigError`` naming the file and the dotted field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal

from toolkit.resilience._retry import is_retryable

__all__ = [
    "ALGORITHMS",
    "DEFAULT_POLICY",
    "Algorithm",
    "BreakerPolicy",
    "BulkheadPolicy",
    "PolicyError",
    "ResiliencePolicy",
    "RetryPolicy",
    "ThrottlePolicy",
]

Algorithm = Literal["token_bucket", "leaky_bucket", "fixed_window", "sliding_window"]
ALGORITHMS: Final[tuple[Algorithm, ...]] = ("token_bucket", "leaky_bucket", "fixed_window", "sliding_window")


class PolicyError(ValueError):
    """A policy field has an invalid value; ``field`` names it (``failures``, ``rate``...)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def _positive(name: str, value: float) -> None:
    if not value > 0 or math.isinf(value):
        raise PolicyError(name, f"must be a positive number, not {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not value >= 0 or math.isinf(value):
        raise PolicyError(name, f"must be zero or a positive number, not {value!r}")


def _at_least_one(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PolicyError(name, f"must be a whole number of at least 1, not {value!r}")


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """A circuit breaker per shard: closed -> open -> half-open -> closed.

    Closed, calls go through and the failures that mean "the backend is unhealthy"
    (``StoreUnavailable``, ``StoreTimeout``; never a not-found, a duplicate key or a
    validation error) are counted in a sliding window of ``window`` seconds. The circuit
    opens when ``failures`` of them fall within the window, or, if ``failure_rate`` is
    set, when at least ``min_calls`` calls were made in the window and that fraction of
    them failed. Open, every call fails at once with ``CircuitOpen`` (a
    ``StoreUnavailable`` naming the store and shard and the seconds until the next
    probe). After ``cool_down`` seconds the circuit is half-open: ``probes`` calls go
    through; when all succeed it closes, when one fails it opens for another cool-down.
    """

    enabled: bool = True
    """False: no breaker (every call reaches the backend)."""
    failures: int = 5
    """Unhealthy failures within ``window`` that open the circuit."""
    window: float = 10.0
    """Seconds over which failures (and, for ``failure_rate``, calls) are counted."""
    failure_rate: float | None = None
    """Also open when this fraction (0 < rate <= 1) of the window's calls failed; None: off.
    Counting every call costs a little on each success, so it is off by default."""
    min_calls: int = 20
    """``failure_rate`` is judged only over at least this many calls in the window."""
    cool_down: float = 5.0
    """Seconds the circuit stays open before letting probe calls through."""
    probes: int = 1
    """Calls let through while half-open; all must succeed to close the circuit."""

    def __post_init__(self) -> None:
        _at_least_one("failures", self.failures)
        _positive("window", self.window)
        if self.failure_rate is not None and not 0 < self.failure_rate <= 1:
            raise PolicyError("failure_rate", f"must be within (0, 1], not {self.failure_rate!r}")
        _at_least_one("min_calls", self.min_calls)
        _positive("cool_down", self.cool_down)
        _at_least_one("probes", self.probes)


@dataclass(frozen=True, slots=True)
class BulkheadPolicy:
    """Bounded concurrency per store, so one slow store cannot hold every thread.

    At most ``max_concurrent`` calls to the store's shards run at once (a fan-out over
    four shards takes four slots). A caller that finds every slot taken waits up to
    ``max_wait`` seconds for one, then fails with ``BulkheadFull``.
    """

    enabled: bool = True
    """False: no limit on concurrent calls."""
    max_concurrent: int = 32
    """Calls in flight at once, over all shards of the store."""
    max_wait: float = 1.0
    """Seconds a caller waits for a free slot; 0: fail at once when all are taken."""

    def __post_init__(self) -> None:
        _at_least_one("max_concurrent", self.max_concurrent)
        _non_negative("max_wait", self.max_wait)


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """A rate limit per store. Off unless ``rate`` is set.

    ``algorithm`` picks how the rate is enforced:

    * ``token_bucket`` (default): a bucket of ``burst`` tokens refilled at ``rate`` per
      second; a call takes one. Allows bursts up to ``burst``, then ``rate``.
    * ``leaky_bucket``: calls leave at an even ``rate`` (one every ``1/rate`` s); up to
      ``burst`` may be queued waiting for their turn. No bursts reach the backend.
    * ``fixed_window``: at most ``rate * window`` calls per aligned window of ``window``
      seconds. Cheap; up to twice the rate across a window edge.
    * ``sliding_window``: the fixed-window count of the current window plus the previous
      window's count weighted by how much of it still overlaps the last ``window`` seconds
      (the sliding window counter); smooths the edge effect.

    With ``wait = true`` a caller that is not admitted sleeps until it may be (if that
    is at most ``max_wait`` seconds away); otherwise, and with ``wait = false``, the call
    fails with ``RateLimited`` carrying ``retry_after`` seconds.
    """

    rate: float | None = None
    """Calls per second admitted over time; None: no throttle."""
    algorithm: Algorithm = "token_bucket"
    """token_bucket | leaky_bucket | fixed_window | sliding_window."""
    burst: int | None = None
    """Token bucket: its size; leaky bucket: how many calls may queue. Default: one
    second's worth of ``rate`` (at least 1). Unused by the window algorithms."""
    window: float = 1.0
    """Seconds of the fixed and sliding windows (``rate * window`` calls per window)."""
    wait: bool = True
    """Wait for admission (up to ``max_wait``) rather than fail at once."""
    max_wait: float = 1.0
    """Longest wait for admission, in seconds, when ``wait`` is true."""

    def __post_init__(self) -> None:
        if self.rate is not None:
            _positive("rate", self.rate)
        if self.algorithm not in ALGORITHMS:
            raise PolicyError("algorithm", f"expected one of {', '.join(ALGORITHMS)}, not {self.algorithm!r}")
        if self.burst is not None:
            _at_least_one("burst", self.burst)
        _positive("window", self.window)
        _non_negative("max_wait", self.max_wait)
        windowed = self.algorithm in ("fixed_window", "sliding_window")
        if self.rate is not None and windowed and self.rate * self.window < 1:
            raise PolicyError("window", f"rate * window must allow at least one call, not {self.rate * self.window:g}")

    @property
    def capacity(self) -> int:
        """The effective burst: ``burst``, or one second's worth of ``rate`` (at least 1)."""
        if self.burst is not None:
            return self.burst
        return max(1, round(self.rate or 1))


@dataclass(frozen=True, slots=True, init=False)
class RetryPolicy:
    """How a failed call is tried again: one adapter call in the guard, one saga step.

    The wait after failed attempt ``n`` is ``initial_backoff * multiplier ** (n - 1)``,
    capped at ``max_backoff``, then scaled by a factor drawn uniformly from
    ``[1 - jitter, 1]``, so many clients that failed together do not retry together and no
    wait exceeds the cap. No attempt starts more than ``timeout`` seconds after the clock
    started: the guard starts it at the first failure (reading the clock before every
    call would tax the healthy path), a saga step before its first attempt (Temporal's
    schedule-to-close), and cuts its last wait short at the deadline. A running attempt is
    never interrupted: Python cannot kill a thread, and abandoning one that may still
    write would break the guarantee that a compensation runs after its action stopped.

    Only errors flagged ``retryable`` are retried (``is_retryable``), unless ``retry_all``:
    saga compensations use that, because a compensation has no alternative but to
    succeed eventually. In the guard, only idempotent operations are retried (upserts,
    reads, deletes, ``update``, ``relate``); ``increment`` only inside ``retry_safe(...)``,
    where the caller vouches that repeating it is harmless, and the guard's own refusals
    (``CircuitOpen``, ``RateLimited``, ``BulkheadFull``) never: they are answers, not
    accidents.

    The shape is Temporal's ``RetryPolicy``; its names for the first three waits'
    fields (``initial_interval``, ``backoff_coefficient``, ``max_interval``) are accepted
    as keywords too, since saga definitions were written with them.
    """

    max_attempts: int
    """Attempts in total, the first included; 1 turns retry off. Default 3."""
    initial_backoff: float
    """Seconds before the second attempt (before jitter). Default 0.05."""
    multiplier: float
    """Each wait is this many times the previous one (at least 1). Default 2.0."""
    max_backoff: float
    """No wait is longer than this (seconds). Default 1.0."""
    jitter: float
    """Fraction of each wait that is random: 0 none, 1 anywhere in [0, wait]. Default 0.5."""
    timeout: float | None
    """Seconds after which no further attempt starts (see above); None: no limit. Default 5.0."""
    retry_all: bool
    """Retry every error, not only those flagged retryable. Default false."""

    def __init__(
        self,
        max_attempts: int = 3,
        initial_backoff: float = 0.05,
        multiplier: float = 2.0,
        max_backoff: float = 1.0,
        jitter: float = 0.5,
        timeout: float | None = 5.0,
        retry_all: bool = False,
        *,
        initial_interval: float | None = None,
        backoff_coefficient: float | None = None,
        max_interval: float | None = None,
    ) -> None:
        values = {
            "max_attempts": max_attempts,
            "initial_backoff": initial_backoff if initial_interval is None else initial_interval,
            "multiplier": multiplier if backoff_coefficient is None else backoff_coefficient,
            "max_backoff": max_backoff if max_interval is None else max_interval,
            "jitter": jitter,
            "timeout": timeout,
            "retry_all": retry_all,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)
        self._check()

    def _check(self) -> None:
        _at_least_one("max_attempts", self.max_attempts)
        _non_negative("initial_backoff", self.initial_backoff)
        if not self.multiplier >= 1 or math.isinf(self.multiplier):
            raise PolicyError("multiplier", f"must be at least 1, not {self.multiplier!r}")
        _non_negative("max_backoff", self.max_backoff)
        if not 0 <= self.jitter <= 1:
            raise PolicyError("jitter", f"must be within [0, 1], not {self.jitter!r}")
        if self.timeout is not None:
            _positive("timeout", self.timeout)

    def backoff(self, attempt: int, random: float) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based); ``random`` in [0, 1)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return base * (1.0 - self.jitter * random)

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Whether attempt ``attempt`` failing with ``error`` earns another attempt."""
        return attempt < self.max_attempts and (self.retry_all or is_retryable(error))


@dataclass(frozen=True, slots=True)
class ResiliencePolicy:
    """Everything the guard of one store does; ``enabled = false`` removes the guard."""

    enabled: bool = True
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    bulkhead: BulkheadPolicy = field(default_factory=BulkheadPolicy)
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)


DEFAULT_POLICY: Final = ResiliencePolicy()
"""The policy of a store whose config has no ``resilience`` table."""
