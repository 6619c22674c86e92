"""Resilience per store and shard: circuit breaker, bulkhead, throttle, retry.

An application with five backends is only as available as its weakest one unless a
failing or slow store is contained. Every shard's adapter sits behind a guard
(``GuardedAdapter``) configured per store in polystore.toml::

    [stores.sessions.resilience.breaker]
    failures = 5          # unhealthy failures within the window that open the circuit
    window = 10.0
    cool_down = 5.0       # seconds open before a probe call is let through
    [stores.sessions.resilience.bulkhead]
    max_concurrent = 16   # calls in flight at once, over all shards of the store
    max_wait = 0.5
    [stores.sessions.resilience.throttle]
    algorithm = "token_bucket"   # | leaky_bucket | fixed_window | sliding_window
    rate = 500.0                 # calls per second; no rate, no throttle
    burst = 50
    wait = true
    [stores.sessions.resilience.retry]
    max_attempts = 3

Failures surface as ``toolkit.errors``: ``CircuitOpen`` (a ``StoreUnavailable``) while a
shard's circuit is open, ``RateLimited`` and ``BulkheadFull``; each names the store (and
shard) and says when to come back. ``Toolkit.health()`` returns a ``StoreHealth`` per
store for an application's own health endpoint; ``polystore status`` draws the same.

Modules: ``_policy`` (the frozen policies and their defaults), ``_clock`` (injectable
time and randomness), ``_breaker``, ``_bulkhead``, ``_throttle`` (four algorithms),
``_retry`` (what is retried, ``retry_safe``), ``_guard`` (one call through breaker,
throttle, bulkhead and retry) and ``_proxy`` (``GuardedAdapter``: the adapter contract
behind the guard). The clock, the retry policy and ``is_retryable`` are the toolkit's
only ones: sagas use them too (``toolkit.saga`` re-exports them).
"""

from __future__ import annotations

from toolkit.resilience._breaker import BreakerState, BreakerStats, CircuitBreaker, is_unhealthy
from toolkit.resilience._bulkhead import Bulkhead, BulkheadStats
from toolkit.resilience._clock import SYSTEM_CLOCK, Clock, ManualClock, Random, SystemClock, system_random
from toolkit.resilience._guard import ShardGuard, ShardHealth, StoreGuard, StoreHealth
from toolkit.resilience._policy import (
    ALGORITHMS,
    DEFAULT_POLICY,
    Algorithm,
    BreakerPolicy,
    BulkheadPolicy,
    PolicyError,
    ResiliencePolicy,
    RetryPolicy,
    ThrottlePolicy,
)
from toolkit.resilience._proxy import GuardedAdapter, guard_adapter
from toolkit.resilience._retry import REFUSALS, is_retryable, retry_safe, retry_safe_reason
from toolkit.resilience._throttle import (
    FixedWindow,
    LeakyBucket,
    Limiter,
    SlidingWindow,
    Throttle,
    ThrottleStats,
    TokenBucket,
    limiter_for,
)

__all__ = [
    "ALGORITHMS",
    "DEFAULT_POLICY",
    "REFUSALS",
    "SYSTEM_CLOCK",
    "Algorithm",
    "BreakerPolicy",
    "BreakerState",
    "BreakerStats",
    "Bulkhead",
    "BulkheadPolicy",
    "BulkheadStats",
    "CircuitBreaker",
    "Clock",
    "FixedWindow",
    "GuardedAdapter",
    "LeakyBucket",
    "Limiter",
    "ManualClock",
    "PolicyError",
    "Random",
    "ResiliencePolicy",
    "RetryPolicy",
    "ShardGuard",
    "ShardHealth",
    "SlidingWindow",
    "StoreGuard",
    "StoreHealth",
    "SystemClock",
    "Throttle",
    "ThrottlePolicy",
    "ThrottleStats",
    "TokenBucket",
    "guard_adapter",
    "is_retryable",
    "is_unhealthy",
    "limiter_for",
    "retry_safe",
    "retry_safe_reason",
    "system_random",
]
