"""The four throttles holding their rate under many threads, on the stack's Redis.

One store per algorithm (token bucket, leaky bucket, fixed and sliding window), each
throttled to ``--rate`` calls per second (burst 10, windows of 0.1 s) and hammered by
``--threads`` threads for ``--seconds``; printed: the calls per second each admitted,
its error against the rate, and how many calls it refused. The algorithms are tested
exactly on a manual clock (tests/resilience/test_throttle.py); this shows them on real
threads and a real server. Nothing is asserted.

    python bench/resilience_throttle.py [--rate 100] [--threads 6] [--seconds 10]
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _resilience_common import arguments, stack

from toolkit import Entity, Repository, Toolkit
from toolkit.config import CatalogConfig, Config, ShardConfig, StoreConfig, sqlite_url
from toolkit.resilience import ALGORITHMS, ResiliencePolicy, ThrottlePolicy


class Hit(Entity, store="rz_throttled", key="id"):
    id: int


def _toolkit(tmp: Path, namespace: str, throttle: ThrottlePolicy) -> Toolkit:
    store = StoreConfig(
        "rz_throttled",
        "keyvalue",
        (ShardConfig("s0", stack("redis")),),
        options={"namespace": namespace},
        resilience=ResiliencePolicy(throttle=throttle),
    )
    return Toolkit(
        Config(CatalogConfig(sqlite_url(tmp / f"catalog-{namespace}.db")), {"rz_throttled": store}, tmp, "bench")
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = {
        "rate": (float, 100.0, "calls per second"),
        "threads": (int, 6, "threads per store"),
        "seconds": (float, 10.0, "seconds of hammering"),
    }
    args, tmp, run = arguments(__doc__, argv, options)
    gate = threading.Barrier(len(ALGORITHMS) * args.threads + 1)
    stop_at = [float("inf")]  # set once every thread waits at the gate
    finished: dict[str, list[int]] = {algorithm: [] for algorithm in ALGORITHMS}
    lock = threading.Lock()

    def hammer(repository: Repository[Hit], algorithm: str) -> None:
        gate.wait()
        done = 0
        while True:
            repository.put(Hit(id=done % 50))
            if time.perf_counter() >= stop_at[0]:
                break
            done += 1
        with lock:
            finished[algorithm].append(done)

    toolkits: dict[str, Toolkit] = {}
    threads: list[threading.Thread] = []
    try:
        for index, algorithm in enumerate(ALGORITHMS):
            throttle = ThrottlePolicy(
                rate=args.rate, algorithm=algorithm, burst=10, window=0.1, wait=True, max_wait=2.0
            )
            toolkit = toolkits[algorithm] = _toolkit(tmp, f"{run}{index}", throttle)
            hits = toolkit.repository(Hit)
            hits.put(Hit(id=0))
            threads += [
                threading.Thread(target=hammer, args=(hits, algorithm), daemon=True) for _ in range(args.threads)
            ]
        for thread in threads:
            thread.start()
        gate.wait()
        stop_at[0] = time.perf_counter() + args.seconds
        for thread in threads:
            thread.join(args.seconds + 30)
        print(
            f"throttles at {args.rate:g} calls/s, {args.threads} threads each, {args.seconds:g} s "
            "(burst 10; windows 0.1 s)"
        )
        for name, toolkit in toolkits.items():
            stats = toolkit.health()["rz_throttled"].throttle
            measured = sum(finished[name]) / args.seconds
            print(
                f"  {name:<16} {measured:8.1f} calls/s  error {measured / args.rate - 1:+.2%}  "
                f"rejected {stats.rejected if stats else 0}"
            )
    finally:
        for toolkit in toolkits.values():
            try:
                toolkit.store("rz_throttled").adapter("s0").drop(toolkit.repository(Hit).schema)
            finally:
                toolkit.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
