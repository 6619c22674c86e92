"""The guard around an adapter: retry rules, breaker and throttle order, the proxy itself.

A scripted adapter stands in for a backend here because what is tested is the guard's
own logic (which calls reach the adapter, how often, after which waits); the guard in
front of real servers is tested in test_servers.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from adapters.base import CONTRACT, Adapter, Capability, Filter, Query, Row, ShardInfo
from toolkit.errors import (
    CircuitOpen,
    DuplicateKeyError,
    NotFoundError,
    RateLimited,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    UnsupportedCapability,
)
from toolkit.model import EntitySchema
from toolkit.resilience import (
    BreakerPolicy,
    BreakerState,
    GuardedAdapter,
    ManualClock,
    ResiliencePolicy,
    RetryPolicy,
    StoreGuard,
    ThrottlePolicy,
    guard_adapter,
    retry_safe,
    retry_safe_reason,
)

SCHEMA: Any = None  # the scripted adapter ignores schemas


class Scripted(Adapter):
    """Answers each call with the next scripted outcome (an exception is raised)."""

    capabilities = Capability.TTL | Capability.ATOMIC_INCREMENT

    def __init__(self, outcomes: Sequence[object] = ()) -> None:
        super().__init__("scripted://", store="kv", shard="s0")
        self.outcomes = list(outcomes)
        self.calls: list[str] = []
        self.driver_handle = "the client"

    def _next(self, name: str) -> Any:
        self.calls.append(name)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def ensure(self, schema: EntitySchema, *, with_token: bool) -> None:
        self._next("ensure")

    def ping(self) -> None:
        self._next("ping")

    def describe(self) -> ShardInfo:
        self.calls.append("describe")
        return ShardInfo(reachable=False, error="down")

    def drop(self, schema: EntitySchema) -> None:
        self._next("drop")

    def put(self, schema: EntitySchema, row: Row) -> None:
        self._next("put")

    def put_many(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        return int(self._next("put_many") or 0)

    def get(self, schema: EntitySchema, key: Any) -> Row | None:
        result: Row | None = self._next("get")
        return result

    def get_many(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        return list(self._next("get_many") or [])

    def delete(self, schema: EntitySchema, key: Any) -> bool:
        return bool(self._next("delete"))

    def delete_many(self, schema: EntitySchema, keys: Sequence[Any]) -> int:
        return int(self._next("delete_many") or 0)

    def find(self, schema: EntitySchema, query: Query) -> list[Row]:
        return list(self._next("find") or [])

    def count(self, schema: EntitySchema, filters: Sequence[Filter] = ()) -> int:
        return int(self._next("count") or 0)

    def scan(
        self, schema: EntitySchema, *, tokens: Any = None, keys: Any = None, batch_size: int = 500
    ) -> Iterator[list[Row]]:
        for _ in range(3):
            yield list(self._next("scan") or [])

    def increment(self, schema: EntitySchema, key: Any, field: str, amount: int | float) -> int | float:
        return int(self._next("increment") or 0)


class Marked(Scripted):
    """Also applies increments once under a marker, and runs scripts."""

    capabilities = Scripted.capabilities | Capability.APPLY_ONCE | Capability.SCRIPTS

    def increment_once(
        self, schema: EntitySchema, key: Any, field: str, amount: int | float, *, marker: str, undo: bool = False
    ) -> int | float | None:
        return int(self._next("increment_once") or 0)

    def run_script(self, script: str, keys: Sequence[bytes | str], args: Sequence[Any]) -> Any:
        return self._next("run_script")

    scan_expiring = Scripted.scan


DOWN = StoreUnavailable("connection refused", store="kv", shard="s0")


def guarded(
    outcomes: Sequence[object] = (),
    *,
    clock: ManualClock | None = None,
    random: float = 0.5,
    adapter: type[Scripted] = Scripted,
    **parts: Any,
) -> tuple[GuardedAdapter, Scripted, StoreGuard, ManualClock]:
    clock = clock or ManualClock()
    policy = ResiliencePolicy(**parts)
    guard = StoreGuard("kv", policy, clock=clock, random=lambda: random)
    inner = adapter(outcomes)
    return guard_adapter(inner, guard.shard("s0")), inner, guard, clock


def test_an_idempotent_call_is_retried_with_jittered_exponential_backoff() -> None:
    adapter, inner, guard, clock = guarded([DOWN, StoreTimeout("slow"), {"id": 1}], random=0.5)
    assert adapter.get(SCHEMA, 1) == {"id": 1}
    assert inner.calls == ["get"] * 3
    # waits 0.05 and 0.1, each scaled by 1 - 0.5 * 0.5
    assert clock.sleeps == pytest.approx([0.0375, 0.075])
    assert guard.health().retries == 2


def test_retry_gives_up_after_max_attempts_with_the_last_error() -> None:
    last = StoreUnavailable("third", store="kv", shard="s0")
    adapter, inner, _, _ = guarded([DOWN, DOWN, last, {"id": 1}], retry=RetryPolicy(max_attempts=3))
    with pytest.raises(StoreUnavailable) as raised:
        adapter.put(SCHEMA, {"id": 1})
    assert raised.value is last
    assert len(inner.calls) == 3


def test_retry_stops_at_its_total_time() -> None:
    policy = RetryPolicy(max_attempts=10, initial_backoff=0.05, multiplier=2.0, jitter=0.0, timeout=0.12)
    adapter, inner, _, clock = guarded([DOWN] * 10, retry=policy)
    with pytest.raises(StoreUnavailable):
        adapter.get(SCHEMA, 1)
    assert clock.sleeps == pytest.approx([0.05])  # 0.05 + 0.1 would end after 0.12 s
    assert len(inner.calls) == 2


@pytest.mark.parametrize(
    "error",
    [NotFoundError("no row"), DuplicateKeyError("taken"), StoreError("bad query", retryable=False), ValueError("bug")],
)
def test_errors_that_are_not_retryable_are_raised_at_once(error: Exception) -> None:
    adapter, inner, _, clock = guarded([error, {"id": 1}])
    with pytest.raises(type(error)):
        adapter.get(SCHEMA, 1)
    assert inner.calls == ["get"]
    assert clock.sleeps == []


def test_a_retryable_error_that_is_not_unhealthy_is_retried_but_not_counted_by_the_breaker() -> None:
    transient = StoreError("write conflict", retryable=True)
    adapter, inner, guard, _ = guarded([transient] * 2 + [None], breaker=BreakerPolicy(failures=1))
    adapter.put(SCHEMA, {"id": 1})
    assert len(inner.calls) == 3
    assert guard.health().healthy


def test_increment_is_not_retried_unless_the_caller_marks_it_safe() -> None:
    adapter, inner, _, _ = guarded([DOWN, 5])
    with pytest.raises(StoreUnavailable):
        adapter.increment(SCHEMA, 1, "n", 1)
    assert inner.calls == ["increment"]

    adapter, inner, _, _ = guarded([DOWN, 5])
    assert retry_safe_reason() is None
    with retry_safe("saga-1:2"):
        assert retry_safe_reason() == "saga-1:2"
        assert adapter.increment(SCHEMA, 1, "n", 1) == 5
    assert retry_safe_reason() is None
    assert inner.calls == ["increment", "increment"]


def test_each_contract_method_runs_as_the_contract_table_says() -> None:
    """increment_once is idempotent (its marker makes a repeat harmless); run_script is not."""
    adapter, inner, _, _ = guarded([DOWN, 7], adapter=Marked)
    assert adapter.increment_once(SCHEMA, 1, "n", 1, marker="saga-1:0") == 7
    assert inner.calls == ["increment_once", "increment_once"]
    adapter, inner, _, _ = guarded([DOWN, "never"], adapter=Marked)
    with pytest.raises(StoreUnavailable):
        adapter.run_script("return 1", [], [])
    assert inner.calls == ["run_script"]
    adapter, inner, guard, _ = guarded([[{"id": 1}], DOWN], adapter=Marked, breaker=BreakerPolicy(failures=1))
    batches = adapter.scan_expiring(SCHEMA)  # the base class's default: a stream over ``scan``
    assert inner.calls == []  # nothing is read before the first batch is asked for
    assert next(batches) == [{"id": 1}]
    with pytest.raises(StoreUnavailable):
        next(batches)
    assert not guard.health().healthy
    assert adapter.stored_layout(SCHEMA) is None  # direct: answered even with the circuit open
    assert type(adapter).capabilities == Marked.capabilities


def test_an_open_circuit_fails_fast_without_calling_the_adapter_and_is_not_retried() -> None:
    adapter, inner, guard, clock = guarded(
        [DOWN] * 4 + [{"id": 1}],
        breaker=BreakerPolicy(failures=3, cool_down=5.0),
        retry=RetryPolicy(max_attempts=2),
    )
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            adapter.get(SCHEMA, 1)  # 2 calls x 2 attempts: the 3rd failure opens it
    assert len(inner.calls) == 3  # the 4th attempt met the open circuit
    sleeps = len(clock.sleeps)
    with pytest.raises(CircuitOpen, match=r"kv/s0: circuit open, retry in"):
        adapter.get(SCHEMA, 1)
    assert len(inner.calls) == 3
    assert len(clock.sleeps) == sleeps
    health = guard.health()
    assert not health.healthy
    assert health.shards[0].breaker is not None
    assert health.shards[0].breaker.state is BreakerState.OPEN
    clock.advance(5.0)
    inner.outcomes = [{"id": 1}]
    assert adapter.get(SCHEMA, 1) == {"id": 1}  # the probe succeeds: closed
    assert guard.health().healthy


def test_a_throttled_call_never_reaches_the_adapter_and_is_not_retried() -> None:
    adapter, inner, guard, _ = guarded(throttle=ThrottlePolicy(rate=1.0, burst=1, wait=False))
    adapter.put(SCHEMA, {"id": 1})
    with pytest.raises(RateLimited) as raised:
        adapter.put(SCHEMA, {"id": 2})
    assert raised.value.retry_after == pytest.approx(1.0)
    assert inner.calls == ["put"]
    stats = guard.health().throttle
    assert stats is not None
    assert (stats.admitted, stats.rejected) == (1, 1)


def test_a_throttled_probe_gives_its_place_back() -> None:
    adapter, inner, guard, clock = guarded(
        [DOWN],
        breaker=BreakerPolicy(failures=1, cool_down=1.0, probes=1),
        throttle=ThrottlePolicy(rate=0.5, burst=1, wait=False),
        retry=RetryPolicy(max_attempts=1),
    )
    with pytest.raises(StoreUnavailable):
        adapter.get(SCHEMA, 1)  # takes the only token and opens the circuit
    clock.advance(1.0)  # cool-down over; the next token comes at 2.0 s
    with pytest.raises(RateLimited):
        adapter.get(SCHEMA, 1)  # admitted as the probe, then throttled: the probe is given back
    clock.advance(1.0)
    adapter.get(SCHEMA, 1)  # a new probe, admitted by both: closes
    assert inner.calls == ["get", "get"]
    assert guard.health().healthy


def test_scan_guards_every_batch() -> None:
    adapter, _inner, guard, _ = guarded([[{"id": 1}], DOWN], breaker=BreakerPolicy(failures=1))
    batches = adapter.scan(SCHEMA)
    assert next(batches) == [{"id": 1}]
    with pytest.raises(StoreUnavailable):
        next(batches)
    assert not guard.health().healthy


def test_describe_and_close_bypass_the_guard() -> None:
    adapter, _inner, _, _ = guarded([DOWN], breaker=BreakerPolicy(failures=1), retry=RetryPolicy(max_attempts=1))
    with pytest.raises(StoreUnavailable):
        adapter.ping()
    assert adapter.describe().error == "down"  # the circuit is open: describe still asks
    adapter.close()


def test_the_proxy_keeps_the_contract_and_the_capabilities_and_nothing_else() -> None:
    adapter, _inner, _, _ = guarded()
    assert isinstance(adapter, Adapter)
    assert type(adapter).capabilities == Capability.TTL | Capability.ATOMIC_INCREMENT
    assert (adapter.store, adapter.shard, adapter.url) == ("kv", "s0", "scripted://")
    assert not hasattr(adapter, "driver_handle")  # not part of the contract: no way around the guard
    assert adapter.inner.driver_handle == "the client"  # the wrapped adapter keeps it
    with pytest.raises(UnsupportedCapability, match="Scripted does not support GRAPH"):
        adapter.relate(SCHEMA, None, SCHEMA)  # type: ignore[arg-type]
    # every method of the contract is guarded or forwarded (none falls back to a base default)
    for name in CONTRACT:
        assert getattr(type(adapter), name) is not getattr(Adapter, name), name
        assert name in vars(adapter), name  # and bound once per instance: the fast path
