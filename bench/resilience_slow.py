"""A slow PostgreSQL saturates only its own bulkhead: the other stores' throughput, with and
without it.

Five stores on the stack take traffic from many threads; the PostgreSQL store reaches
the stack's server through a proxy that delays every round trip by ``--delay`` seconds
in alternating phases (normal, slow, normal, slow...), so drift of a shared machine
hits both alike. Printed, for a 1-slot bulkhead that does not wait and for no bulkhead
(the control): the other stores' operations per second in normal and slow phases, the
median ratio of back-to-back pairs and its spread, and PostgreSQL's calls served and
refused (``BulkheadFull``) while slow. Without the bulkhead the slow store takes the
threads; with it, the others keep their throughput. Nothing is asserted.

    python bench/resilience_slow.py [--delay 0.3] [--threads 24] [--phase 1.5] [--pairs 4]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _resilience_common import (
    KINDS,
    DelayProxy,
    Traffic,
    arguments,
    build,
    stack,
    stack_urls,
    traffic_on,
)

from toolkit.resilience import BreakerPolicy, BulkheadPolicy, ResiliencePolicy, RetryPolicy

SLOW = "rz_customers"
Span = tuple[float, float]


def _phases(traffic: Traffic, proxy: DelayProxy, delay: float, pairs: int, phase: float, settle: float) -> list[Span]:
    """Alternate normal and slow phases; the spans measured (the first ``settle`` seconds of
    each phase, when calls from the previous one are still in flight, are not), in order."""
    spans: list[Span] = []
    traffic.start()
    try:
        time.sleep(0.5)
        for _ in range(pairs):
            for wanted in (0.0, delay):
                proxy.delay = wanted
                begin = time.perf_counter()
                time.sleep(phase)
                spans.append((begin + settle, time.perf_counter()))
    finally:
        proxy.delay = 0.0
        traffic.finish()
    return spans


def _rate(traffic: Traffic, spans: Sequence[Span], names: Sequence[str]) -> float:
    done = sum(1 for a, b in spans for name in names for s in traffic.between(name, a, b) if s.error is None)
    return done / sum(b - a for a, b in spans)


def main(argv: Sequence[str] | None = None) -> int:
    options = {
        "delay": (float, 0.3, "seconds added per round trip"),
        "threads": (int, 24, "worker threads"),
        "phase": (float, 1.5, "seconds per phase"),
        "settle": (float, 0.35, "seconds not counted per phase"),
        "pairs": (int, 4, "normal/slow pairs with the bulkhead"),
    }
    args, tmp, run = arguments(__doc__, argv, options)
    address = stack("postgres").split("@", 1)[1].split("/", 1)[0]
    port = int(address.split(":")[1])
    proxy = DelayProxy("127.0.0.1", port)
    proxied = stack("postgres").replace(f":{port}/", f":{proxy.port}/") + f"?schema={run}"
    others = [name for name in KINDS if name != SLOW]
    print(
        f"PostgreSQL slowed by {args.delay:g} s per round trip ({args.threads} threads cycling over five stores; "
        f"{args.phase:g} s phases alternating, first {args.settle:g} s of each not counted)"
    )
    print(
        f"  {'guard':<26}{'others ops/s normal':>20}{'slow':>7}{'median pair ratio':>19}{'spread':>8}"
        f"{'pg ok':>7}{'pg full':>9}"
    )
    try:
        for index, (label, bulkhead, pairs) in enumerate(
            [
                ("bulkhead 1 slot, no wait", BulkheadPolicy(max_concurrent=1, max_wait=0.0), args.pairs),
                ("no bulkhead (control)", BulkheadPolicy(enabled=False), 1),
            ]
        ):
            policy = ResiliencePolicy(
                bulkhead=bulkhead, breaker=BreakerPolicy(enabled=False), retry=RetryPolicy(max_attempts=1)
            )
            toolkit = build(tmp, f"{run}{index}", {**stack_urls(run), SLOW: proxied}, {SLOW: policy})
            # cleanup(toolkit, run) after: its tables, and the schema the proxied store shares
            with traffic_on(toolkit, run, args.threads) as traffic:
                spans = _phases(traffic, proxy, args.delay, pairs, args.phase, args.settle)
            normal, slow = spans[0::2], spans[1::2]
            ratios = [
                _rate(traffic, [b], others) / _rate(traffic, [a], others) for a, b in zip(normal, slow, strict=True)
            ]
            pg = [s for a, b in slow for s in traffic.between(SLOW, a, b)]
            print(
                f"  {label:<26}{_rate(traffic, normal, others):>20.0f}{_rate(traffic, slow, others):>7.0f}"
                f"{statistics.median(ratios):>19.3f}{max(ratios) - min(ratios):>8.3f}"
                f"{sum(s.error is None for s in pg):>7}{sum(s.error == 'BulkheadFull' for s in pg):>9}"
            )
    finally:
        proxy.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
