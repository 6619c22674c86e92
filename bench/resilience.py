"""What the resilience guard costs per call: guarded adapter vs the raw one, side by side.

The same SQLite shard, the same rows, the same ``get``/``put`` calls; once through the
adapter ``Store.adapter`` hands out (behind the default guard: breaker, bulkhead, retry),
once through the adapter it wraps, in alternating back-to-back slices so that drift of a
shared machine hits both alike. The ratio is the median of the pairs' time ratios; the
overhead per call is the median difference. Nothing is asserted.

    python bench/resilience.py [--calls 2000] [--slices 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.base import TOKEN_FIELD, Adapter
from sharding.keys import token
from toolkit import Entity, Toolkit
from toolkit.config import CatalogConfig, Config, ShardConfig, StoreConfig, sqlite_url
from toolkit.resilience import GuardedAdapter, ResiliencePolicy, ThrottlePolicy


class Item(Entity, store="bench", key="id"):
    id: int
    name: str


def timed(call: Callable[[], None]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def calls(adapter: Adapter, op: str, schema: Any, rows: list[dict[str, Any]]) -> Callable[[], None]:
    """One slice: ``get`` every key, or ``put`` every row, through ``adapter``."""

    def get() -> None:
        for row in rows:
            adapter.get(schema, row["id"])

    def put() -> None:
        for row in rows:
            adapter.put(schema, row)

    return get if op == "get" else put


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per slice (default 2000)")
    parser.add_argument("--slices", type=int, default=15, help="back-to-back pairs (default 15)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="ps-bench-resilience-"))
    policies = {
        "default guard": ResiliencePolicy(),
        "guard + token bucket (1e9/s)": ResiliencePolicy(throttle=ThrottlePolicy(rate=1e9)),
    }
    print(f"guarded vs raw SQLite adapter: {args.calls} calls per slice, median of {args.slices} pairs")
    print(f"{'guard':<30}{'op':<5}{'raw µs/call':>12}{'guarded µs/call':>17}{'overhead µs':>13}{'time ratio':>12}")
    for index, (label, policy) in enumerate(policies.items()):
        shards = (ShardConfig("s0", sqlite_url(tmp / f"s{index}.db")),)
        store = StoreConfig("bench", "relational", shards, resilience=policy)
        catalog = CatalogConfig(sqlite_url(tmp / f"catalog-{index}.db"))  # one topology per catalog
        with Toolkit(Config(catalog, {"bench": store}, tmp, "bench")) as toolkit:
            repository = toolkit.repository(Item)
            schema = repository.schema
            repository.put_many(Item(id=i, name=f"n{i}") for i in range(args.calls))
            guarded: Adapter = toolkit.store("bench").ensure(schema, toolkit.store("bench").router.shards[0])
            assert isinstance(guarded, GuardedAdapter)
            raw = guarded.inner
            rows = [{"id": i, "name": f"m{i}", TOKEN_FIELD: token(i)} for i in range(args.calls)]
            for op in ("get", "put"):
                pairs = []
                for index in range(args.slices):
                    order = [(raw, "raw"), (guarded, "guarded")]
                    if index % 2:
                        order.reverse()
                    got = {name: timed(calls(adapter, op, schema, rows)) for adapter, name in order}
                    pairs.append((got["raw"] / args.calls, got["guarded"] / args.calls))
                raw_us = statistics.median(p[0] for p in pairs) * 1e6
                guarded_us = statistics.median(p[1] for p in pairs) * 1e6
                overhead = statistics.median((g - r) for r, g in pairs) * 1e6
                ratio = statistics.median(g / r for r, g in pairs)
                print(f"{label:<30}{op:<5}{raw_us:>12.2f}{guarded_us:>17.2f}{overhead:>13.2f}{ratio:>11.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
