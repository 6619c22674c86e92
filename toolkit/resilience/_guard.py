"""The guard in front of each shard's adapter: breaker, throttle, bulkhead, retry.

``StoreGuard`` holds what a store shares (its bulkhead, its throttle, its retry policy,
its counters) and one breaker per shard; ``ShardGuard`` runs one call to one shard
through them, in this order::

    retry (idempotent calls, or inside retry_safe)
      -> breaker of the shard   fail fast while open, no token or slot spent
        -> throttle of the store  wait for admission or RateLimited
          -> bulkhead of the store  a slot, or BulkheadFull after max_wait
            -> the adapter

The throttle comes before the bulkhead so that a call waiting for admission does not
sit on a concurrency slot. ``GuardedAdapter`` (``_proxy``) is the ``Adapter`` that sends
each method of the contract through a ``ShardGuard``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from toolkit.errors import ToolkitError
from toolkit.resilience._breaker import BreakerState, BreakerStats, CircuitBreaker
from toolkit.resilience._bulkhead import Bulkhead, BulkheadStats
from toolkit.resilience._clock import SYSTEM_CLOCK, Clock, Random, system_random
from toolkit.resilience._policy import ResiliencePolicy
from toolkit.resilience._retry import _SAFE, REFUSALS
from toolkit.resilience._throttle import Throttle, ThrottleStats

__all__ = ["ShardGuard", "ShardHealth", "StoreGuard", "StoreHealth"]

T = TypeVar("T")
_END: Final = object()
_CLOSED: Final = BreakerState.CLOSED


@dataclass(frozen=True, slots=True)
class ShardHealth:
    """One shard's breaker (None when the store's breaker is disabled)."""

    shard: str
    breaker: BreakerStats | None


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """What the guard of one store knows right now: for a health endpoint or a dashboard."""

    store: str
    enabled: bool
    shards: tuple[ShardHealth, ...]
    """Shards called in this process (and those asked for), in first-use order."""
    bulkhead: BulkheadStats | None
    throttle: ThrottleStats | None
    """None when the store has no rate limit."""
    retries: int
    """Attempts after the first, over all calls since the process started."""

    @property
    def healthy(self) -> bool:
        """True when no breaker of the store is open or half-open."""
        return all(shard.breaker is None or shard.breaker.state.value == "closed" for shard in self.shards)


class StoreGuard:
    """The resilience state of one store (thread-safe; one per ``Store``)."""

    def __init__(
        self,
        store: str,
        policy: ResiliencePolicy,
        *,
        clock: Clock = SYSTEM_CLOCK,
        random: Random = system_random,
    ) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        self.random = random
        self.bulkhead = Bulkhead(policy.bulkhead, clock, store=store) if policy.bulkhead.enabled else None
        self.throttle = Throttle(policy.throttle, clock, store=store) if policy.throttle.rate is not None else None
        self._lock = threading.Lock()
        self._shards: dict[str, ShardGuard] = {}
        self.retries = 0

    def shard(self, shard: str) -> ShardGuard:
        """The guard of one shard (its breaker is created on first use)."""
        found = self._shards.get(shard)
        if found is None:
            with self._lock:
                found = self._shards.get(shard)
                if found is None:
                    found = ShardGuard(self, shard)
                    self._shards[shard] = found
        return found

    def count_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def health(self, shards: Iterable[str] = ()) -> StoreHealth:
        """The store's guard now; ``shards`` are listed even if not called yet (closed, no failures)."""
        for name in shards:
            self.shard(name)
        found = tuple(
            ShardHealth(name, guard.breaker.stats() if guard.breaker is not None else None)
            for name, guard in list(self._shards.items())
        )
        return StoreHealth(
            store=self.store,
            enabled=self.policy.enabled,
            shards=found,
            bulkhead=self.bulkhead.stats() if self.bulkhead is not None else None,
            throttle=self.throttle.stats() if self.throttle is not None else None,
            retries=self.retries,
        )


class ShardGuard:
    """Runs calls to one shard through the store's guard (see the module docstring)."""

    def __init__(self, store: StoreGuard, shard: str) -> None:
        self.store = store
        self.shard = shard
        policy = store.policy
        self.breaker = (
            CircuitBreaker(policy.breaker, store.clock, store=store.store, shard=shard)
            if policy.breaker.enabled
            else None
        )
        self._bulkhead = store.bulkhead
        self._throttle = store.throttle
        self._retry = policy.retry if policy.retry.max_attempts > 1 else None

    def call(self, fn: Callable[..., T], idempotent: bool | None, /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` under the guard: breaker, throttle, bulkhead, then ``fn``.

        A retryable failure is retried if ``idempotent`` is True, or False inside
        ``retry_safe``; None means one attempt whatever the context. This is
        the hot path of every adapter call: a closed breaker costs one attribute read.
        """
        breaker = self.breaker
        probe = False
        if breaker is not None and breaker.state is not _CLOSED:
            probe = breaker.before()
        bulkhead = self._bulkhead
        if self._throttle is not None or bulkhead is not None:
            try:
                if self._throttle is not None:
                    self._throttle.acquire()
                if bulkhead is not None:
                    bulkhead.acquire()
            except BaseException:
                if breaker is not None:
                    breaker.cancel(probe)
                raise
        try:
            result = fn(*args, **kwargs)
        except ToolkitError as exc:
            if breaker is not None:
                breaker.failure(probe, exc)
            error = exc
        except BaseException:
            if breaker is not None:
                breaker.cancel(probe)
            raise
        else:
            if breaker is not None and (probe or breaker.counts_calls):
                breaker.success(probe)
            return result
        finally:
            if bulkhead is not None:
                bulkhead.release()
        retry = self._retry
        if (
            retry is None
            or idempotent is None
            or not (idempotent or _SAFE.get() is not None)
            or isinstance(error, REFUSALS)
            or not retry.should_retry(error, 1)
        ):
            raise error
        return self._again(error, fn, args, kwargs)

    def stream(self, fn: Callable[..., Iterator[T]], /, *args: Any, **kwargs: Any) -> Iterator[T]:
        """``fn(*args, **kwargs)``'s items, each fetched as one attempt: a half-read
        iterator cannot be retried, but every batch it reads passes the breaker, the
        throttle and the bulkhead. ``fn`` is called on the first ``next``, as a generator
        function would be."""
        items = fn(*args, **kwargs)
        call = self.call
        while True:
            item = call(next, None, items, _END)
            if item is _END:
                return
            yield item

    def _again(self, error: ToolkitError, fn: Callable[..., T], args: Sequence[Any], kwargs: Mapping[str, Any]) -> T:
        """Attempts 2..max_attempts after ``error``, with jittered exponential backoff."""
        policy = self._retry
        assert policy is not None
        clock = self.store.clock
        deadline = None if policy.timeout is None else clock.monotonic() + policy.timeout
        attempt = 1
        while True:
            wait = policy.backoff(attempt, self.store.random())
            if deadline is not None and clock.monotonic() + wait > deadline:
                raise error
            clock.sleep(wait)
            attempt += 1
            self.store.count_retry()
            try:
                return self.call(fn, None, *args, **kwargs)
            except ToolkitError as exc:
                if isinstance(exc, REFUSALS) or not policy.should_retry(exc, attempt):
                    raise
                error = exc
