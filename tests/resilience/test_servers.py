"""The guard against real servers: a Redis shard killed and restarted, a slow PostgreSQL,
and throttles holding their rate, under mixed traffic from many threads to all five kinds.

Nothing here stops or slows the shared stack: the Redis shard is a private redis-server
(``helpers.PrivateRedis``), the slow PostgreSQL is the stack's one behind this test's
delaying proxy (``helpers.DelayProxy``). The measured figures are printed; assertions
use ratios measured in the same run with margins for a shared two-core machine.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.resilience.helpers import DelayProxy, PrivateRedis
from tests.servers import endpoint
from toolkit import Entity, Toolkit
from toolkit.config import CatalogConfig, Config, ShardConfig, StoreConfig, sqlite_url
from toolkit.errors import ToolkitError
from toolkit.resilience import (
    BreakerPolicy,
    BreakerState,
    BulkheadPolicy,
    ResiliencePolicy,
    RetryPolicy,
    ThrottlePolicy,
)

pytestmark = [pytest.mark.postgres, pytest.mark.mongo, pytest.mark.redis, pytest.mark.cassandra, pytest.mark.neo4j]


class Customer(Entity, store="rz_customers", key="id"):
    id: int
    name: str


class Profile(Entity, store="rz_profiles", key="id"):
    id: int
    prefs: dict[str, Any] = {}


class Session(Entity, store="rz_sessions", key="token"):
    token: str
    hits: int = 0


class Event(Entity, store="rz_events", key=("customer_id", "seq"), shard_key="customer_id"):
    customer_id: int
    seq: int
    kind: str


class Person(Entity, store="rz_social", key="id"):
    id: int
    name: str


KINDS = {
    "rz_customers": "relational",
    "rz_profiles": "document",
    "rz_sessions": "keyvalue",
    "rz_events": "column",
    "rz_social": "graph",
}
ENTITIES: list[type[Entity]] = [Customer, Profile, Session, Event, Person]
TIMEOUTS = {"connect_timeout": 2, "socket_timeout": 2}
"""Driver timeouts of every store in these tests (seconds): "fails fast" is measured against them."""


def stack_urls(run: str) -> dict[str, str]:
    cassandra = endpoint("cassandra")[0].removeprefix("cassandra://")
    return {
        "rz_customers": f"{endpoint('postgres')[0]}?schema={run}",
        "rz_profiles": endpoint("mongo")[0],
        "rz_sessions": endpoint("redis")[0],
        "rz_events": f"cassandra://{cassandra}/polystore_resilience",
        "rz_social": endpoint("neo4j")[0],
    }


def build(tmp: Path, run: str, urls: dict[str, str], policies: dict[str, ResiliencePolicy]) -> Toolkit:
    stores = {
        name: StoreConfig(
            name,
            kind,
            (ShardConfig("s0", urls[name]),),
            options={"namespace": run, **TIMEOUTS},
            resilience=policies.get(name, ResiliencePolicy()),
        )
        for name, kind in KINDS.items()
    }
    return Toolkit(Config(CatalogConfig(sqlite_url(tmp / f"catalog-{run}.db")), stores, tmp, source="test.toml"))


def operations(toolkit: Toolkit) -> dict[str, Callable[[int], object]]:
    """One small read or write per store, by an integer (even: write, odd: read)."""
    customers = toolkit.repository(Customer)
    profiles = toolkit.repository(Profile)
    sessions = toolkit.repository(Session)
    events = toolkit.repository(Event)
    people = toolkit.repository(Person)

    def pick(write: Callable[[int], object], read: Callable[[int], object]) -> Callable[[int], object]:
        return lambda n: write(n % 200) if n % 2 == 0 else read(n % 200)

    return {
        "rz_customers": pick(lambda k: customers.put(Customer(id=k, name=f"c{k}")), customers.get),
        "rz_profiles": pick(lambda k: profiles.put(Profile(id=k, prefs={"k": k})), profiles.get),
        "rz_sessions": pick(lambda k: sessions.put(Session(token=f"t{k}", hits=k)), lambda k: sessions.get(f"t{k}")),
        "rz_events": pick(
            lambda k: events.put(Event(customer_id=k % 10, seq=k, kind="view")),
            lambda k: events.get((k % 10, k), shard_key=k % 10),
        ),
        "rz_social": pick(lambda k: people.put(Person(id=k, name=f"p{k}")), people.get),
    }


@dataclass
class Sample:
    store: str
    start: float
    latency: float
    error: str | None


@dataclass
class Traffic:
    """Worker threads cycling over the stores, one operation each, recording every call."""

    ops: dict[str, Callable[[int], object]]
    threads: int
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        names = list(self.ops)
        for index in range(self.threads):
            order = names[index % len(names) :] + names[: index % len(names)]
            thread = threading.Thread(target=self._work, args=(order, index), daemon=True)
            thread.start()
            self.workers.append(thread)

    def _work(self, order: list[str], seed: int) -> None:
        rng = random.Random(seed)
        while not self.stop.is_set():
            for name in order:
                begin = time.perf_counter()
                error = None
                try:
                    self.ops[name](rng.randrange(1_000_000))
                except ToolkitError as exc:
                    error = type(exc).__name__
                self.samples.append(Sample(name, begin, time.perf_counter() - begin, error))

    def finish(self) -> None:
        self.stop.set()
        for thread in self.workers:
            thread.join(30)

    def between(self, store: str, start: float, end: float) -> list[Sample]:
        return [s for s in list(self.samples) if s.store == store and start <= s.start < end]


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


@pytest.fixture
def run() -> str:
    return f"rz{uuid.uuid4().hex[:8]}_"


def cleanup(toolkit: Toolkit, run: str) -> None:
    try:
        for entity in ENTITIES:
            repository = toolkit.repository(entity)
            with contextlib.suppress(ToolkitError):
                repository.store.adapter("s0").drop(repository.schema)
        engine = sa.create_engine(endpoint("postgres")[0].replace("postgresql://", "postgresql+psycopg://"))
        with engine.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{run}" CASCADE')
        engine.dispose()
    finally:
        toolkit.close()


@pytest.fixture
def toolkits(tmp_path: Path, run: str) -> Iterator[list[Toolkit]]:
    """Toolkits a test builds; each is cleaned up (tables, schema) and closed afterwards."""
    built: list[Toolkit] = []
    yield built
    for toolkit in built:
        cleanup(toolkit, run)


def warm(ops: dict[str, Callable[[int], object]]) -> None:
    """One write and one read per store, so tables exist and pools are connected."""
    for op in ops.values():
        op(0)
        op(1)


def test_a_killed_redis_shard_fails_fast_while_the_others_keep_serving(
    tmp_path: Path, run: str, toolkits: list[Toolkit], capsys: pytest.CaptureFixture[str]
) -> None:
    cool_down = 1.0
    with PrivateRedis(tmp_path) as redis_server:
        urls = {**stack_urls(run), "rz_sessions": redis_server.url}
        breaker = BreakerPolicy(failures=5, window=10.0, cool_down=cool_down)
        toolkit = build(tmp_path, run, urls, {"rz_sessions": ResiliencePolicy(breaker=breaker)})
        toolkits.append(toolkit)
        ops = operations(toolkit)
        warm(ops)
        traffic = Traffic(ops, threads=6)
        traffic.start()
        try:
            time.sleep(0.5)
            before_start = time.perf_counter()
            time.sleep(3.0)
            killed = time.perf_counter()
            redis_server.kill()
            opened_at = None
            while time.perf_counter() - killed < 10:
                state = toolkit.health()["rz_sessions"].shards[0].breaker
                if state is not None and state.state is BreakerState.OPEN:
                    opened_at = time.perf_counter()
                    break
                time.sleep(0.001)
            assert opened_at is not None, "the breaker never opened"
            time.sleep(3.0)
            restarted = time.perf_counter()
            redis_server.start()
            recovered_at = None
            while time.perf_counter() - restarted < cool_down + 10:
                ok = [s for s in traffic.between("rz_sessions", restarted, time.perf_counter()) if s.error is None]
                if ok:
                    recovered_at = ok[0].start + ok[0].latency
                    break
                time.sleep(0.01)
            time.sleep(1.0)
            after_end = time.perf_counter()
        finally:
            traffic.finish()
        health = toolkit.health()["rz_sessions"]

    # -- what the traffic saw ----------------------------------------------------------------
    open_failures = [s for s in traffic.between("rz_sessions", opened_at, restarted) if s.error == "CircuitOpen"]
    early_failures = [s for s in traffic.between("rz_sessions", killed, opened_at) if s.error is not None]
    after = traffic.between("rz_sessions", (recovered_at or after_end), after_end)
    lines = [
        "",
        f"redis shard killed under mixed traffic from 6 threads (breaker: 5 failures in 10 s, cool-down {cool_down} s)",
        f"  time from kill to open breaker: {ms(opened_at - killed)}",
        f"  failed calls before it opened: {len(early_failures)}, median {ms(statistics.median([s.latency for s in early_failures] or [0]))}",
        f"  calls failed fast while open: {len(open_failures)}, median {ms(percentile([s.latency for s in open_failures], 0.5))}, "
        f"p99 {ms(percentile([s.latency for s in open_failures], 0.99))} (driver connect timeout {TIMEOUTS['connect_timeout']} s)",
        f"  recovered {ms((recovered_at or float('nan')) - restarted)} after the restart (same process); "
        f"breaker {health.shards[0].breaker.state.value if health.shards[0].breaker else '-'}, "
        f"opened {health.shards[0].breaker.opened if health.shards[0].breaker else '-'} times",
        f"  {'store':<14}{'p50 before':>12}{'p50 during':>12}{'p99 before':>12}{'p99 during':>12}{'calls during':>14}{'errors':>8}",
    ]
    ratios = {}
    for name in KINDS:
        if name == "rz_sessions":
            continue
        before = [s.latency for s in traffic.between(name, before_start, killed) if s.error is None]
        during_samples = traffic.between(name, opened_at, restarted)
        during = [s.latency for s in during_samples if s.error is None]
        errors = [s for s in during_samples if s.error is not None]
        ratios[name] = (percentile(during, 0.5) / percentile(before, 0.5), len(errors), len(during))
        lines.append(
            f"  {name:<14}{ms(percentile(before, 0.5)):>12}{ms(percentile(during, 0.5)):>12}"
            f"{ms(percentile(before, 0.99)):>12}{ms(percentile(during, 0.99)):>12}{len(during_samples):>14}{len(errors):>8}"
        )
    others = [name for name in KINDS if name != "rz_sessions"]
    pooled_before = percentile(
        [s.latency for n in others for s in traffic.between(n, before_start, killed) if s.error is None], 0.5
    )
    pooled_during = percentile(
        [s.latency for n in others for s in traffic.between(n, opened_at, restarted) if s.error is None], 0.5
    )
    lines.append(f"  {'all four':<14}{ms(pooled_before):>12}{ms(pooled_during):>12}")
    with capsys.disabled():
        print("\n".join(lines))

    assert open_failures, "no call met the open circuit"
    assert percentile([s.latency for s in open_failures], 0.99) * 10 < TIMEOUTS["connect_timeout"]
    assert all(s.error in (None, "CircuitOpen") for s in traffic.between("rz_sessions", opened_at, restarted))
    # Latency on a shared two-core machine drifts by itself (other test runs, the JIT of the
    # servers): the pooled median of the four other stores must stay within 2x, each one
    # within 3x; an outage that held their threads would show as 10x or errors.
    for name, (ratio, failed, served) in ratios.items():
        assert failed == 0, f"{name} failed {failed} calls while redis was down"
        assert served > 0, name
        assert ratio < 3.0, f"{name}: p50 latency {ratio:.2f}x of normal while redis was down"
    assert pooled_during / pooled_before < 2.0, f"pooled p50 {pooled_during / pooled_before:.2f}x of normal"
    assert recovered_at is not None, "redis calls did not recover after the restart"
    assert recovered_at - restarted < cool_down + 5
    assert health.shards[0].breaker is not None
    assert health.shards[0].breaker.state is BreakerState.CLOSED
    assert after, "no redis call after recovery"
    assert all(s.error is None for s in after), "errors after recovery"


THREADS, PHASE, SETTLE = 24, 1.5, 0.35


def test_a_slow_postgres_saturates_only_its_own_bulkhead(
    tmp_path: Path, run: str, toolkits: list[Toolkit], capsys: pytest.CaptureFixture[str]
) -> None:
    delay = 0.3
    host, port = "127.0.0.1", int(endpoint("postgres")[0].split("@", 1)[1].split("/", 1)[0].split(":")[1])
    proxy = DelayProxy(host, port)
    try:
        base = endpoint("postgres")[0]
        proxied = base.replace(f":{port}/", f":{proxy.port}/") + f"?schema={run}"
        urls = {**stack_urls(run), "rz_customers": proxied}
        results: dict[str, dict[str, float]] = {}
        for label, bulkhead, pairs in [
            ("bulkhead 1 slot, no wait", BulkheadPolicy(max_concurrent=1, max_wait=0.0), 4),
            ("no bulkhead (control)", BulkheadPolicy(enabled=False), 1),
        ]:
            policy = ResiliencePolicy(
                bulkhead=bulkhead, breaker=BreakerPolicy(enabled=False), retry=RetryPolicy(max_attempts=1)
            )
            toolkit = build(tmp_path, f"{run}{len(results)}", urls, {"rz_customers": policy})
            toolkits.append(toolkit)
            ops = operations(toolkit)
            warm(ops)
            proxy.delay = 0.0
            traffic = Traffic(ops, threads=THREADS)
            # Normal and slow phases alternate, so drift of the shared machine hits both,
            # and the verdict is the median of the back-to-back pairs' ratios; the first
            # SETTLE seconds of a phase (calls in flight from the previous one) do not count.
            normal: list[tuple[float, float]] = []
            slow: list[tuple[float, float]] = []
            traffic.start()
            try:
                time.sleep(0.5)
                for _ in range(pairs):
                    for phase, wanted in ((normal, 0.0), (slow, delay)):
                        proxy.delay = wanted
                        begin = time.perf_counter()
                        time.sleep(PHASE)
                        phase.append((begin + SETTLE, time.perf_counter()))
            finally:
                proxy.delay = 0.0
                traffic.finish()
            others = [name for name in KINDS if name != "rz_customers"]

            def rate(spans: list[tuple[float, float]], names: list[str], _traffic: Traffic = traffic) -> float:
                done = sum(1 for a, b in spans for n in names for s in _traffic.between(n, a, b) if s.error is None)
                return done / sum(b - a for a, b in spans)

            pg_slow = [s for a, b in slow for s in traffic.between("rz_customers", a, b)]
            pair_ratios = [rate([b], others) / rate([a], others) for a, b in zip(normal, slow, strict=True)]
            results[label] = {
                "normal": rate(normal, others),
                "slow": rate(slow, others),
                "ratio": statistics.median(pair_ratios),
                "spread": max(pair_ratios) - min(pair_ratios),
                "pg_ok": sum(1 for s in pg_slow if s.error is None),
                "pg_full": sum(1 for s in pg_slow if s.error == "BulkheadFull"),
            }
    finally:
        proxy.close()

    lines = [
        "",
        f"PostgreSQL slowed by {delay} s per round trip ({THREADS} threads cycling over five stores; "
        f"{PHASE} s phases alternating, first {SETTLE} s of each not counted)",
    ]
    lines.append(
        f"  {'guard':<26}{'others ops/s normal':>20}{'slow':>7}{'median pair ratio':>19}{'spread':>8}"
        f"{'pg ok':>7}{'pg full':>9}"
    )
    for label, figures in results.items():
        lines.append(
            f"  {label:<26}{figures['normal']:>20.0f}{figures['slow']:>7.0f}{figures['ratio']:>19.3f}"
            f"{figures['spread']:>8.3f}{figures['pg_ok']:>7.0f}{figures['pg_full']:>9.0f}"
        )
    with capsys.disabled():
        print("\n".join(lines))

    guarded = results["bulkhead 1 slot, no wait"]
    control = results["no bulkhead (control)"]
    assert guarded["ratio"] >= 0.9, "the other stores lost more than 10% of their throughput"
    assert guarded["pg_full"] > 0
    assert guarded["pg_ok"] > 0
    # the control shows the test can fail: without the bulkhead the slow store takes the threads
    assert control["ratio"] < 0.5


def test_throttles_hold_their_rate_under_many_threads(
    tmp_path: Path, run: str, toolkits: list[Toolkit], capsys: pytest.CaptureFixture[str]
) -> None:
    """Four stores on the stack's Redis, one per algorithm, each hammered by 6 threads for 10 s."""
    rate, seconds = 100.0, 10.0
    algorithms = ["token_bucket", "leaky_bucket", "fixed_window", "sliding_window"]
    redis_url = endpoint("redis")[0]

    class Hit(Entity, store="rz_throttled", key="id"):
        id: int

    figures: dict[str, tuple[int, float]] = {}
    threads: list[threading.Thread] = []
    built: list[Toolkit] = []
    finished_calls: dict[str, list[list[float]]] = {}
    start_gate = threading.Barrier(len(algorithms) * 6 + 1)
    stop_at = [float("inf")]  # set once every thread waits at the gate
    try:
        for index, algorithm in enumerate(algorithms):
            throttle = ThrottlePolicy(rate=rate, algorithm=algorithm, burst=10, window=0.1, wait=True, max_wait=2.0)  # type: ignore[arg-type]
            store = StoreConfig(
                "rz_throttled",
                "keyvalue",
                (ShardConfig("s0", redis_url),),
                options={"namespace": f"{run}{index}"},
                resilience=ResiliencePolicy(throttle=throttle),
            )
            toolkit = Toolkit(
                Config(
                    CatalogConfig(sqlite_url(tmp_path / f"catalog{index}.db")), {"rz_throttled": store}, tmp_path, "t"
                )
            )
            built.append(toolkit)
            hits = toolkit.repository(Hit)
            hits.put(Hit(id=0))
            counts: list[list[float]] = finished_calls.setdefault(algorithm, [])

            def hammer(repository: Any = hits, done: list[list[float]] = counts) -> None:
                mine: list[float] = []
                done.append(mine)
                start_gate.wait()
                n = 0
                while True:
                    repository.put(Hit(id=n % 50))
                    finished = time.perf_counter()
                    if finished >= stop_at[0]:
                        break
                    mine.append(finished)
                    n += 1

            threads += [threading.Thread(target=hammer, daemon=True) for _ in range(6)]
        for thread in threads:
            thread.start()
        start_gate.wait()
        began = time.perf_counter()
        stop_at[0] = began + seconds
        for thread in threads:
            thread.join(seconds + 30)
        for algorithm, toolkit in zip(algorithms, built, strict=True):
            done = sum(len(mine) for mine in finished_calls[algorithm])
            health = toolkit.health()["rz_throttled"].throttle
            assert health is not None
            figures[algorithm] = (done, health.rejected)
    finally:
        for toolkit in built:
            try:
                toolkit.store("rz_throttled").adapter("s0").drop(toolkit.repository(Hit).schema)
            finally:
                toolkit.close()

    lines = ["", f"throttles at {rate:g} calls/s, 6 threads each, {seconds:g} s (burst 10; windows 0.1 s)"]
    for algorithm, (done, rejected) in figures.items():
        measured = done / seconds
        lines.append(
            f"  {algorithm:<16} {measured:8.1f} calls/s  error {measured / rate - 1:+.2%}  rejected {rejected:.0f}"
        )
    with capsys.disabled():
        print("\n".join(lines))
    for algorithm, (done, _) in figures.items():
        assert abs(done / seconds / rate - 1) <= 0.05, algorithm
