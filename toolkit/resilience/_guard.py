"""The guard in front of each shard's adapter: breaker, throttle, bulkhead, retry.

``StoreGuard`` holds what a store shares (its bulkhead, its throttle, its retry policy,
its counters) and one breaker per shard; ``guard_adapter`` wraps a shard's adapter in a
``GuardedAdapter`` that implements the same ``Adapter`` contract and sends every call
through, in this order::

    retry (idempotent calls, or inside retry_safe)
      -> breaker of the shard   fail fast while open, no token or slot spent
        -> throttle of the store  wait for admission or RateLimited
          -> bulkhead of the store  a slot, or BulkheadFull after max_wait
            -> the adapter

The throttle comes before the bulkhead so that a call waiting for admission does not
sit on a concurrency slot. Attributes the contract does not name (``engine``,
``client``...) are read from the wrapped adapter, so code that reaches for a driver
handle keeps working; such direct driver use bypasses the guard.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from adapters.base import Adapter, Direction, Filter, Neighbor, Query, Relationship, Row, ShardInfo
from sharding.base import KeyRange, TokenRange
from toolkit.errors import ToolkitError
from toolkit.resilience._breaker import BreakerState, BreakerStats, CircuitBreaker
from toolkit.resilience._bulkhead import Bulkhead, BulkheadStats
from toolkit.resilience._clock import SYSTEM_CLOCK, Clock, Random, system_random
from toolkit.resilience._policy import ResiliencePolicy
from toolkit.resilience._retry import _SAFE, is_retryable
from toolkit.resilience._throttle import Throttle, ThrottleStats

if TYPE_CHECKING:
    from toolkit.model import EntitySchema

__all__ = ["GuardedAdapter", "ShardGuard", "ShardHealth", "StoreGuard", "StoreHealth", "guard_adapter"]

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

    def call(self, fn: Callable[..., T], idempotent: bool, /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` under the guard; retried if idempotent (or marked safe).

        The first attempt is ``once`` written out in place: this is the hot path of every
        adapter call, and a closed breaker costs one attribute read here.
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
        if self._retry is None or not is_retryable(error) or not (idempotent or _SAFE.get() is not None):
            raise error
        return self._again(error, fn, args, kwargs)

    def once(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """One attempt: breaker, throttle, bulkhead, then ``fn``; no retry."""
        breaker = self.breaker
        probe = breaker.before() if breaker is not None else False
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
            raise
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

    def _again(self, error: ToolkitError, fn: Callable[..., T], args: Sequence[Any], kwargs: Mapping[str, Any]) -> T:
        """Attempts 2..max_attempts after ``error``, with jittered exponential backoff."""
        policy = self._retry
        assert policy is not None
        clock = self.store.clock
        deadline = None if policy.timeout is None else clock.monotonic() + policy.timeout
        attempt = 1
        while attempt < policy.max_attempts:
            wait = policy.backoff(attempt, self.store.random())
            if deadline is not None and clock.monotonic() + wait > deadline:
                break
            clock.sleep(wait)
            attempt += 1
            self.store.count_retry()
            try:
                return self.once(fn, *args, **kwargs)
            except ToolkitError as exc:
                if not is_retryable(exc):
                    raise
                error = exc
        raise error


_GUARDED_CLASSES: dict[type[Adapter], type[GuardedAdapter]] = {}
_CLASSES_LOCK = threading.Lock()


def guard_adapter(adapter: Adapter, guard: ShardGuard) -> GuardedAdapter:
    """``adapter`` behind ``guard``, as an ``Adapter`` with the same capabilities."""
    cls = type(adapter)
    guarded = _GUARDED_CLASSES.get(cls)
    if guarded is None:
        with _CLASSES_LOCK:
            guarded = _GUARDED_CLASSES.get(cls)
            if guarded is None:
                # A subclass per adapter class, so ``capabilities`` stays a class attribute,
                # with a plain forward for every contract method the proxy does not guard
                # (one added to Adapter later must reach the real adapter's override).
                namespace: dict[str, Any] = {"capabilities": cls.capabilities}
                for name, value in vars(Adapter).items():
                    if callable(value) and not name.startswith("_") and name not in vars(GuardedAdapter):
                        namespace[name] = _forward(name)
                guarded = type(f"Guarded{cls.__name__}", (GuardedAdapter,), namespace)
                _GUARDED_CLASSES[cls] = guarded
    return guarded(adapter, guard)


def _forward(name: str) -> Callable[..., Any]:
    """A method that calls the wrapped adapter's ``name`` directly (unguarded)."""

    def forward(self: GuardedAdapter, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.inner, name)(*args, **kwargs)

    forward.__name__ = name
    forward.__doc__ = f"``{name}`` of the wrapped adapter, not guarded."
    return forward


class GuardedAdapter(Adapter):
    """An ``Adapter`` that forwards every call through a ``ShardGuard`` to the real one.

    Idempotent operations (upserts, reads, deletes, ``update``, ``relate``, DDL) are
    retried on retryable errors; ``increment`` only inside ``retry_safe``. ``scan``
    guards each batch it fetches (a half-read generator cannot be retried). ``describe``
    and ``close`` bypass the guard: a status report must see a down shard as down, not
    as an open circuit, and closing must always work. Contract methods this class does
    not name (``require``, and any added to ``Adapter`` later) are forwarded unguarded
    by the subclass ``guard_adapter`` builds.
    """

    def __init__(self, inner: Adapter, guard: ShardGuard) -> None:
        # No super().__init__: the connection state lives in ``inner``.
        self.inner = inner
        self.guard = guard
        self.url = inner.url
        self.store = inner.store
        self.shard = inner.shard
        self.options = inner.options
        self._call = guard.call

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (a half-built proxy): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"<guarded {self.inner!r}>"

    # -- lifecycle -----------------------------------------------------------------------
    def ensure(self, schema: EntitySchema, *, with_token: bool) -> None:
        self._call(self.inner.ensure, True, schema, with_token=with_token)

    def ping(self) -> None:
        self._call(self.inner.ping, True)

    def describe(self) -> ShardInfo:
        return self.inner.describe()

    def drop(self, schema: EntitySchema) -> None:
        self._call(self.inner.drop, True, schema)

    def close(self) -> None:
        self.inner.close()

    # -- the core --------------------------------------------------------------------------
    def put(self, schema: EntitySchema, row: Row) -> None:
        self._call(self.inner.put, True, schema, row)

    def put_many(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        return self._call(self.inner.put_many, True, schema, rows)

    def get(self, schema: EntitySchema, key: Any) -> Row | None:
        return self._call(self.inner.get, True, schema, key)

    def get_many(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        return self._call(self.inner.get_many, True, schema, keys)

    def delete(self, schema: EntitySchema, key: Any) -> bool:
        return self._call(self.inner.delete, True, schema, key)

    def delete_many(self, schema: EntitySchema, keys: Sequence[Any]) -> int:
        return self._call(self.inner.delete_many, True, schema, keys)

    def find(self, schema: EntitySchema, query: Query) -> list[Row]:
        return self._call(self.inner.find, True, schema, query)

    def count(self, schema: EntitySchema, filters: Sequence[Filter] = ()) -> int:
        return self._call(self.inner.count, True, schema, filters)

    def scan(
        self,
        schema: EntitySchema,
        *,
        tokens: TokenRange | None = None,
        keys: KeyRange | None = None,
        batch_size: int = 500,
    ) -> Iterator[list[Row]]:
        batches = self.inner.scan(schema, tokens=tokens, keys=keys, batch_size=batch_size)
        once = self.guard.once
        while True:
            batch = once(next, batches, _END)
            if batch is _END:
                return
            yield batch

    # -- capabilities ------------------------------------------------------------------------
    def put_ttl(self, schema: EntitySchema, rows: Sequence[Row], ttl: float) -> int:
        return self._call(self.inner.put_ttl, True, schema, rows, ttl)

    def ttl(self, schema: EntitySchema, key: Any) -> float | None:
        return self._call(self.inner.ttl, True, schema, key)

    def increment(self, schema: EntitySchema, key: Any, field: str, amount: int | float) -> int | float:
        return self._call(self.inner.increment, False, schema, key, field, amount)

    def update(self, schema: EntitySchema, key: Any, changes: Mapping[str, Any]) -> bool:
        return self._call(self.inner.update, True, schema, key, changes)

    def partition(
        self,
        schema: EntitySchema,
        partition: Any,
        *,
        start: Any = None,
        end: Any = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[Row]:
        return self._call(
            self.inner.partition, True, schema, partition, start=start, end=end, descending=descending, limit=limit
        )

    def relate(self, schema: EntitySchema, relationship: Relationship, target: EntitySchema) -> None:
        self._call(self.inner.relate, True, schema, relationship, target)

    def unrelate(self, schema: EntitySchema, relationship: Relationship, target: EntitySchema) -> bool:
        return self._call(self.inner.unrelate, True, schema, relationship, target)

    def neighbors(
        self,
        schema: EntitySchema,
        key: Any,
        *,
        type: str | None = None,
        direction: Direction = "out",
        target: EntitySchema | None = None,
    ) -> list[Neighbor]:
        return self._call(self.inner.neighbors, True, schema, key, type=type, direction=direction, target=target)

    def traverse(
        self,
        schema: EntitySchema,
        key: Any,
        *,
        type: str | None = None,
        direction: Direction = "out",
        depth: int = 1,
    ) -> list[tuple[int, Row]]:
        return self._call(self.inner.traverse, True, schema, key, type=type, direction=direction, depth=depth)

    def shortest_path(
        self,
        schema: EntitySchema,
        source: Any,
        target: Any,
        *,
        type: str | None = None,
        direction: Direction = "out",
        max_depth: int = 6,
    ) -> list[Row] | None:
        return self._call(
            self.inner.shortest_path, True, schema, source, target, type=type, direction=direction, max_depth=max_depth
        )
