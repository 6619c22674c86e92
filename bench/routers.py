"""HashRouter vs uhashring, side by side in one run on the same keys and shards.

    python bench/routers.py [--keys N] [--shards S] [--repeat R]

Measures, for our hash-slot router and for uhashring's ketama ring:

* lookups per second (``shard_for`` vs ``get_node``), best of ``--repeat`` timed batches;
* balance: max/mean keys per shard over ``--shards`` equal shards;
* movement when one shard is added: the fraction of keys that change shard (ideal
  ``1/(S+1)``) and whether every moved key landed on the new shard;
* weights 1, 2, 3, 4: each shard's observed share vs its expected share.

and prints PASS/FAIL against polystore's targets for our router: >= 4x uhashring's
lookups/s, max/mean <= 1.02, moved <= 1.02 x ideal with all moves onto the new shard,
weights within 2%. Wall-clock numbers depend on the machine; the ratios are the point.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from uhashring import HashRing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sharding import HashRouter

LOOKUP_RATIO_TARGET = 4.0
BALANCE_TARGET = 1.02
MOVE_TARGET = 1.02
WEIGHT_TARGET = 0.02


def make_keys(count: int) -> list[str]:
    """Realistic string shard keys (user ids), identical for both routers."""
    return [f"user:{index:09d}" for index in range(count)]


def best_rate(lookup: Callable[[str], Any], keys: Sequence[str], repeat: int, advance: Callable[[], None]) -> float:
    """Lookups per second: the whole batch timed with perf_counter, best of ``repeat``."""
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        for key in keys:
            lookup(key)
        elapsed = time.perf_counter() - start
        best = max(best, len(keys) / elapsed)
        advance()
    return best


def assign(lookup: Callable[[str], Any], keys: Sequence[str]) -> list[Any]:
    return [lookup(key) for key in keys]


def max_over_mean(owners: Sequence[Any], shards: Sequence[str]) -> float:
    counts = Counter(owners)
    loads = [counts.get(name, 0) for name in shards]
    return max(loads) / (sum(loads) / len(loads))


def movement(before: Sequence[Any], after: Sequence[Any], new_shard: str) -> tuple[float, bool]:
    moved = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    return len(moved) / len(before), all(new == new_shard for _, new in moved)


def weight_error(owners: Sequence[Any], weights: dict[str, int]) -> tuple[float, dict[str, float]]:
    counts = Counter(owners)
    total_weight = sum(weights.values())
    shares = {name: counts.get(name, 0) / len(owners) for name in weights}
    errors = [abs(shares[name] - w / total_weight) / (w / total_weight) for name, w in weights.items()]
    return max(errors), shares


def verdict(ok: bool) -> str:
    return "[bold green]PASS[/]" if ok else "[bold red]FAIL[/]"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, default=1_000_000, help="number of keys (default 1,000,000)")
    parser.add_argument("--shards", type=int, default=10, help="number of equal shards (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions; the best counts (default 3)")
    args = parser.parse_args(argv)
    console = Console()
    if not console.is_terminal:  # piped or captured: don't squeeze the table into 80 columns
        console = Console(width=120)

    names = [f"s{index}" for index in range(args.shards)]
    grown = [*names, f"s{args.shards}"]
    weights = {"w1": 1, "w2": 2, "w3": 3, "w4": 4}

    ours = HashRouter.create(names)
    ring = HashRing(names)

    progress = Progress(
        TextColumn("{task.description:<42}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with progress:
        steps = 2 * args.repeat + 7
        task = progress.add_task("generating keys", total=steps)

        def step(description: str | None = None) -> None:
            progress.advance(task)
            if description:
                progress.update(task, description=description)

        keys = make_keys(args.keys)
        step("timing HashRouter.shard_for")
        ours_rate = best_rate(ours.shard_for, keys, args.repeat, step)
        progress.update(task, description="timing uhashring get_node")
        ring_rate = best_rate(ring.get_node, keys, args.repeat, step)

        progress.update(task, description=f"balance on {args.shards} shards (ours)")
        ours_owners = assign(ours.shard_for, keys)
        step(f"balance on {args.shards} shards (uhashring)")
        ring_owners = assign(ring.get_node, keys)
        step(f"adding shard {grown[-1]} (ours)")
        ours_grown = ours.rebalanced(grown)
        ours_moved, ours_all_new = movement(ours_owners, assign(ours_grown.shard_for, keys), grown[-1])
        planned = sum(move.share for move in ours.moves_to(ours_grown))
        step(f"adding shard {grown[-1]} (uhashring)")
        ring_moved, ring_all_new = movement(ring_owners, assign(HashRing(grown).get_node, keys), grown[-1])
        step("weights 1,2,3,4 (ours)")
        ours_werr, ours_shares = weight_error(assign(HashRouter.create(weights).shard_for, keys), weights)
        step("weights 1,2,3,4 (uhashring)")
        ring_nodes = {name: {"weight": weight} for name, weight in weights.items()}
        ring_werr, ring_shares = weight_error(assign(HashRing(ring_nodes).get_node, keys), weights)
        step("done")

    ours_balance = max_over_mean(ours_owners, names)
    ring_balance = max_over_mean(ring_owners, names)

    ideal = 1 / (args.shards + 1)
    ratio = ours_rate / ring_rate
    checks = {
        "lookups": ratio >= LOOKUP_RATIO_TARGET,
        "balance": ours_balance <= BALANCE_TARGET,
        "moved": ours_moved <= MOVE_TARGET * ideal and ours_all_new,
        "weights": ours_werr <= WEIGHT_TARGET,
    }

    table = Table(
        title=f"Hash routers: {args.keys:,} string keys, {args.shards} shards, best of {args.repeat}",
        show_lines=True,
    )
    table.add_column("measure")
    table.add_column("HashRouter (polystore)", justify="right")
    table.add_column("uhashring HashRing", justify="right")
    table.add_column("ratio / ideal", justify="right")
    table.add_column("target")
    table.add_column("", justify="center")
    table.add_row(
        "lookups/s",
        f"{ours_rate:,.0f}",
        f"{ring_rate:,.0f}",
        f"{ratio:.2f}x",
        f">= {LOOKUP_RATIO_TARGET:.0f}x uhashring",
        verdict(checks["lookups"]),
    )
    table.add_row(
        f"max/mean load ({args.shards} shards)",
        f"{ours_balance:.4f}",
        f"{ring_balance:.4f}",
        "1.0000",
        f"<= {BALANCE_TARGET}",
        verdict(checks["balance"]),
    )
    table.add_row(
        f"moved on adding {grown[-1]}",
        f"{ours_moved:.4f} ({ours_moved / ideal:.3f}x ideal)\nplanned {planned:.4f}",
        f"{ring_moved:.4f} ({ring_moved / ideal:.3f}x ideal)",
        f"{ideal:.4f}",
        f"<= {MOVE_TARGET} x ideal",
        verdict(checks["moved"]),
    )
    table.add_row(
        f"all moved keys onto {grown[-1]}",
        "yes" if ours_all_new else "no",
        "yes" if ring_all_new else "no",
        "",
        "yes",
        verdict(ours_all_new),
    )
    total = sum(weights.values())
    table.add_row(
        "weights 1,2,3,4: share (expected)",
        "\n".join(f"{name}: {ours_shares[name]:.4f} ({w / total:.2f})" for name, w in weights.items()),
        "\n".join(f"{name}: {ring_shares[name]:.4f} ({w / total:.2f})" for name, w in weights.items()),
        "",
        "",
        "",
    )
    table.add_row(
        "weights: max relative error",
        f"{ours_werr:.2%}",
        f"{ring_werr:.2%}",
        "0%",
        f"<= {WEIGHT_TARGET:.0%}",
        verdict(checks["weights"]),
    )
    console.print(table)
    failed = [name for name, ok in checks.items() if not ok]
    console.print("all targets met" if not failed else f"targets missed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
