"""A Redis shard killed under mixed traffic: how fast the breaker opens, how fast the calls
it refuses fail, what the other four stores see meanwhile, how fast it recovers.

Five stores (PostgreSQL, MongoDB-wire, Redis, Cassandra, Neo4j: one shard each, on the
stack) take mixed traffic from worker threads; the Redis shard is a private
redis-server, SIGKILLed after a normal phase and restarted after an open phase. Printed:
time from kill to open breaker, the failed calls before it opened, the latency of the
calls failed fast while open (against the driver's connect timeout), the p50/p99 of the
other stores before and during the outage, and the time to recover after the restart.
Nothing is asserted (the guard's logic is tested on a manual clock in tests/resilience).

    python bench/resilience_outage.py [--threads 6] [--before 3] [--open 3] [--cool-down 1]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _resilience_common import (
    CONNECT_TIMEOUT,
    KINDS,
    arguments,
    build,
    ms,
    percentile,
    stack_urls,
    traffic_on,
)

from tests.resilience.helpers import PrivateRedis
from toolkit.resilience import BreakerPolicy, BreakerState, ResiliencePolicy, StoreHealth

KILLED = "rz_sessions"


def _state(health: StoreHealth) -> BreakerState | None:
    breaker = health.shards[0].breaker
    return breaker.state if breaker is not None else None


def _until(condition: Callable[[], bool], limit: float) -> float | None:
    """Poll ``condition()`` every millisecond for up to ``limit`` seconds: when it held, or None."""
    began = time.perf_counter()
    while time.perf_counter() - began < limit:
        if condition():
            return time.perf_counter()
        time.sleep(0.001)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    options = {
        "threads": (int, 6, "worker threads"),
        "before": (float, 3.0, "seconds of normal traffic measured"),
        "open": (float, 3.0, "seconds the server stays down"),
        "after": (float, 1.0, "seconds measured after recovery"),
        "cool-down": (float, 1.0, "the breaker's cool-down"),
    }
    args, tmp, run = arguments(__doc__, argv, options)
    with PrivateRedis(tmp) as server:
        breaker = BreakerPolicy(failures=5, window=10.0, cool_down=args.cool_down)
        toolkit = build(tmp, run, {**stack_urls(run), KILLED: server.url}, {KILLED: ResiliencePolicy(breaker=breaker)})
        with traffic_on(toolkit, run, args.threads) as traffic:
            traffic.start()
            try:
                time.sleep(0.5)
                before_start = time.perf_counter()
                time.sleep(args.before)
                killed = time.perf_counter()
                server.kill()
                opened = _until(lambda: _state(toolkit.health()[KILLED]) is BreakerState.OPEN, 10.0)
                time.sleep(args.open)
                restarted = time.perf_counter()
                server.start()
                served = _until(
                    lambda: any(s.error is None for s in traffic.between(KILLED, restarted, time.perf_counter())),
                    args.cool_down + 10,
                )
                time.sleep(args.after)
                after_end = time.perf_counter()
            finally:
                traffic.finish()
            health = toolkit.health()[KILLED]
    if opened is None:
        print("the breaker never opened")
        return 1
    recovered = None
    if served is not None:
        first = next(s for s in traffic.between(KILLED, restarted, after_end) if s.error is None)
        recovered = first.start + first.latency
    early = [s for s in traffic.between(KILLED, killed, opened) if s.error is not None]
    fast = [s.latency for s in traffic.between(KILLED, opened, restarted) if s.error == "CircuitOpen"]
    after = traffic.between(KILLED, recovered or after_end, after_end)
    stats = health.shards[0].breaker
    lines = [
        f"redis shard killed under mixed traffic from {args.threads} threads "
        f"(breaker: 5 failures in 10 s, cool-down {args.cool_down:g} s)",
        f"  time from kill to open breaker: {ms(opened - killed)}",
        f"  failed calls before it opened: {len(early)}, median {ms(percentile([s.latency for s in early], 0.5))}",
        f"  calls failed fast while open: {len(fast)}, median {ms(percentile(fast, 0.5))}, "
        f"p99 {ms(percentile(fast, 0.99))} (driver connect timeout {CONNECT_TIMEOUT} s)",
        f"  recovered {ms((recovered or float('nan')) - restarted)} after the restart (same process); "
        f"breaker {stats.state.value if stats else '-'}, opened {stats.opened if stats else '-'} times; "
        f"{sum(s.error is not None for s in after)} errors in {len(after)} calls after recovery",
        f"  {'store':<14}{'p50 before':>12}{'p50 during':>12}{'p99 before':>12}{'p99 during':>12}"
        f"{'calls during':>14}{'errors':>8}{'p50 ratio':>11}",
    ]
    pooled: dict[str, list[float]] = {"before": [], "during": []}
    for name in KINDS:
        if name == KILLED:
            continue
        before = [s.latency for s in traffic.between(name, before_start, killed) if s.error is None]
        during_samples = traffic.between(name, opened, restarted)
        during = [s.latency for s in during_samples if s.error is None]
        pooled["before"] += before
        pooled["during"] += during
        lines.append(
            f"  {name:<14}{ms(percentile(before, 0.5)):>12}{ms(percentile(during, 0.5)):>12}"
            f"{ms(percentile(before, 0.99)):>12}{ms(percentile(during, 0.99)):>12}{len(during_samples):>14}"
            f"{sum(s.error is not None for s in during_samples):>8}"
            f"{percentile(during, 0.5) / percentile(before, 0.5):>10.2f}x"
        )
    ratio = percentile(pooled["during"], 0.5) / percentile(pooled["before"], 0.5)
    lines.append(
        f"  {'all four':<14}{ms(percentile(pooled['before'], 0.5)):>12}{ms(percentile(pooled['during'], 0.5)):>12}"
        f"{'':>50}{ratio:>10.2f}x"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
