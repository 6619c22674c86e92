"""What polystore's repository costs on top of each backend's raw driver, side by side in one run.

For every backend (SQLite, PostgreSQL, MongoDB, Redis, Cassandra, Neo4j) the repository's
``get``, ``put`` and ``put_many`` run against the raw driver doing the same work on the
same stored layout (the adapter's own table, collection, keys or label):

* sqlite: ``sqlite3`` and SQLAlchemy Core;  postgres: ``psycopg`` and SQLAlchemy Core;
* mongo: ``find_one`` / ``replace_one(upsert)`` / ``bulk_write`` of ReplaceOne, in the
  adapter's batch size on both sides (8 on FerretDB, whose 1.24 deadlocks on larger
  replacing batches; everything at once on MongoDB);
* redis: ``HGETALL`` / ``HSET`` (row only) and a MULTI writing the whole layout, batches
  as pipelines;
* cassandra: prepared SELECT / INSERT, ``execute_concurrent_with_args``;
* neo4j: ``MATCH`` / ``MERGE`` with parameters, ``UNWIND`` for the batch.

Single operations report the time ratio (polystore time / driver time; target <= 1.2x),
batches the throughput ratio (polystore rows/s / driver rows/s; target >= 0.9x). The
contenders of one operation take turns in small back-to-back slices, so drift on a shared
machine hits them alike; ops/s come from each slice's best round, the ratio is the median
of the back-to-back pairs (see ``measure``). A backend whose
server does not answer is reported as unreachable. Every run writes under a fresh
namespace and removes what it wrote. Nothing here is asserted: compare within one run.

What the setup left on the heap (the drivers' metadata, the rows, the prepared
baselines: 75,000-90,000 objects) is frozen out of the garbage collector while a backend
is measured (``gc.freeze``). A full collection walks that heap in 30-80 ms on this
machine (measured: Redis 27-31, Neo4j 44-51, Cassandra 56-78) and lands on whichever
contender happened to allocate last, several times a whole slice of Redis gets: noise
from the bench's own heap, not a cost of either side. Each contender still pays the
young collections its own allocations cause.

    python bench/overhead.py [--backends sqlite,postgres,mongo,redis,cassandra,neo4j] [--rows 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _overhead_common import OPERATIONS, POLYSTORE, Context, Op, Suite, Unreachable, rows
from _overhead_servers import build_cassandra, build_mongo, build_neo4j, build_redis
from _overhead_sql import build_postgres, build_sqlite

BUILDERS: dict[str, Callable[[Context, Suite], None]] = {
    "sqlite": build_sqlite,
    "postgres": build_postgres,
    "mongo": build_mongo,
    "redis": build_redis,
    "cassandra": build_cassandra,
    "neo4j": build_neo4j,
}
SLICES = 10
"""Single operations are timed in this many slices per round, each a back-to-back pair."""
BATCH_ROUNDS = 3
"""``put_many`` is one pair per round, so it runs at least this many times ``--repeat``
rounds: a median of three pairs is too easily moved by one burst of a shared machine."""
BATCH_BUDGET = 3.0
"""Seconds of ``put_many`` pairs per backend: a fast backend (one SQLite batch takes a
few ms) keeps adding pairs until this is spent, up to ``BATCH_MAX_ROUNDS`` times
``--repeat``, since nine pairs of so short a batch are still at the mercy of the noise
of a shared machine (measured: single pairs scatter from 0.5x to 1.8x); a slow one stops
at the minimum."""
BATCH_MAX_ROUNDS = 30
SINGLE_TARGET = 1.2
"""Single operations: polystore's time at most this multiple of the driver's."""
BATCH_TARGET = 0.9
"""Batches: polystore's throughput at least this fraction of the driver's own batch."""


@dataclass(slots=True)
class Outcome:
    """One backend's result: best seconds per operation per contender, or why there is none."""

    backend: str
    server: str = ""
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    ratios: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def timed(operation: Op, lo: int, hi: int) -> float:
    start = time.perf_counter()
    operation(lo, hi)
    return time.perf_counter() - start


def measure(
    suite: Suite, rows_count: int, repeat: int, advance: Callable[[str], None]
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """(best seconds, paired ratio) per operation and contender.

    Contenders take turns in small slices (``SLICES`` per round for single operations,
    the whole batch for ``put_many``, which gets ``BATCH_ROUNDS`` times as many rounds,
    and more within ``BATCH_BUDGET``),
    in an order that flips every slice, so the noise of a shared machine lands on both
    sides of each pair alike. The seconds are the sum over slices of each slice's best
    round; the ratio is the median, over all pairs measured back to back, of polystore's
    time over the baseline's (for
    ``put_many`` inverted into a throughput ratio): robust to a burst that hits one slice.
    """
    best: dict[str, dict[str, float]] = {}
    ratios: dict[str, dict[str, float]] = {}
    for operation in OPERATIONS:
        runners = [(name, ops[operation]) for name, ops in suite.contenders.items() if operation in ops]
        step = rows_count if operation == "put_many" else max(1, -(-rows_count // SLICES))
        bounds = [(lo, min(lo + step, rows_count)) for lo in range(0, rows_count, step)]
        slices: dict[str, list[float]] = {name: [float("inf")] * len(bounds) for name, _ in runners}
        pairs: dict[str, list[float]] = {name: [] for name, _ in runners if name != POLYSTORE}
        flip = False
        batch = operation == "put_many"
        rounds = repeat * BATCH_ROUNDS if batch else repeat
        ceiling = repeat * BATCH_MAX_ROUNDS if batch else repeat
        deadline = time.perf_counter() + BATCH_BUDGET
        round_number = 0
        while round_number < rounds or (round_number < ceiling and time.perf_counter() < deadline):
            if round_number < rounds and round_number % (rounds // repeat) == 0:
                advance(f"{suite.backend} {operation} (round {round_number + 1}/{rounds})")
            round_number += 1
            for index, (lo, hi) in enumerate(bounds):
                sample: dict[str, float] = {}
                for name, op in reversed(runners) if flip else runners:
                    sample[name] = timed(op, lo, hi)
                flip = not flip
                for name, seconds in sample.items():
                    slices[name][index] = min(slices[name][index], seconds)
                for name in pairs:
                    ratio = sample[POLYSTORE] / sample[name]
                    pairs[name].append(1 / ratio if operation == "put_many" else ratio)
        best[operation] = {name: sum(values) for name, values in slices.items()}
        ratios[operation] = {name: statistics.median(values) for name, values in pairs.items()}
    return best, ratios


def run_backend(name: str, ctx: Context, repeat: int, advance: Callable[[str], None]) -> Outcome:
    """Build, measure and clean up one backend; an unreachable server becomes an outcome, not a crash."""
    outcome = Outcome(name)
    ctx.tmp.mkdir(parents=True, exist_ok=True)
    advance(f"{name}: connecting and loading {len(ctx.data)} rows")
    suite = Suite(name)
    try:
        BUILDERS[name](ctx, suite)
    except Exception as exc:  # reported in the table; the other backends still run
        failures = suite.cleanup()
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        kind = "unreachable" if isinstance(exc, Unreachable) else f"setup failed: {type(exc).__name__}"
        outcome.error = f"{kind}: {first}"
        outcome.notes = [f"cleanup failed: {failure}" for failure in failures]
        return outcome
    outcome.server = suite.server
    outcome.notes = suite.notes
    gc.collect()
    gc.freeze()  # the setup's heap: see the module docstring
    try:
        outcome.seconds, outcome.ratios = measure(suite, len(ctx.data), repeat, advance)
    except Exception as exc:  # a backend failing mid-run is reported; the others still run
        outcome.error = f"failed while measuring: {type(exc).__name__}: {exc}"
    finally:
        gc.unfreeze()
        advance(f"{name}: cleaning up")
        failures = suite.cleanup()
        outcome.notes = [*outcome.notes, *(f"cleanup failed: {failure}" for failure in failures)]
    return outcome


def ratio_row(operation: str, rows_count: int, ours: float, theirs: float, ratio: float) -> tuple[str, str, str, bool]:
    """(polystore ops/s, driver ops/s, ratio text, target met) from best seconds and the paired ratio."""
    if operation == "put_many":
        met = ratio >= BATCH_TARGET  # throughput ratio: polystore rows/s over the driver's
        text = f"{ratio:.3f}x thr"
    else:
        met = ratio <= SINGLE_TARGET  # time ratio: polystore time over the driver's
        text = f"{ratio:.3f}x time"
    return f"{rows_count / ours:,.0f}", f"{rows_count / theirs:,.0f}", text, met


def render(outcomes: list[Outcome], rows_count: int, repeat: int, console: Console) -> None:
    table = Table(
        title=f"polystore repository vs raw drivers: {rows_count} rows per backend, best of {repeat}, one shard each",
        caption=f"ops/s: best round per slice, summed; ratio: median of back-to-back pairs. Single ops: "
        f"time ratio, target <= {SINGLE_TARGET}x; put_many: throughput ratio, target >= {BATCH_TARGET}x",
    )
    for column, justify in (
        ("backend", "left"),
        ("operation", "left"),
        ("baseline", "left"),
        ("polystore ops/s", "right"),
        ("baseline ops/s", "right"),
        ("ratio", "right"),
        ("target", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for outcome in outcomes:
        if not outcome.seconds:
            table.add_row(outcome.backend, "-", "-", "-", "-", "-", f"[yellow]{outcome.error or 'no result'}")
            table.add_section()
            continue
        for operation in OPERATIONS:
            times = outcome.seconds.get(operation, {})
            ours = times.get(POLYSTORE)
            for baseline, theirs in times.items():
                if baseline == POLYSTORE or ours is None:
                    continue
                paired = outcome.ratios[operation][baseline]
                mine, other, ratio, met = ratio_row(operation, rows_count, ours, theirs, paired)
                verdict = "[green]PASS" if met else "[red]MISS"
                table.add_row(outcome.backend, operation, baseline, mine, other, ratio, verdict)
        if outcome.error:
            table.add_row(outcome.backend, "-", "-", "-", "-", "-", f"[yellow]{outcome.error}")
        table.add_section()
    console.print(table)
    for outcome in outcomes:
        if outcome.server:
            console.print(f"[dim]{outcome.backend}: {outcome.server}")
        for note in dict.fromkeys(outcome.notes):
            console.print(f"[dim]  {note}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--backends",
        default=",".join(BUILDERS),
        help=f"comma-separated, from {','.join(BUILDERS)} (default: all; unreachable ones are reported)",
    )
    parser.add_argument("--rows", type=int, default=500, help="rows (and single operations) per backend (default 500)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per measurement; the best counts (default 3)")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = [name for name in names if name not in BUILDERS]
    if unknown or not names or args.rows < 1 or args.repeat < 1:
        parser.error(f"unknown backends {unknown}" if unknown else "need a backend, --rows >= 1, --repeat >= 1")
    console = Console() if sys.stdout.isatty() else Console(width=170)
    namespace = f"ovh{uuid.uuid4().hex[:8]}_"
    data = rows(args.rows)
    outcomes: list[Outcome] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with tempfile.TemporaryDirectory() as tmp, Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("starting", total=len(names) * (len(OPERATIONS) * args.repeat + 2))
        for name in names:
            done_before = progress.tasks[0].completed

            def advance(description: str) -> None:
                progress.update(task, description=description, advance=1)

            outcome = run_backend(name, Context(data, namespace, Path(tmp) / name), args.repeat, advance)
            outcomes.append(outcome)
            # An unreachable backend skips its steps: keep the bar honest.
            progress.update(task, completed=done_before + len(OPERATIONS) * args.repeat + 2)
    render(outcomes, args.rows, args.repeat, console)
    leftovers = any(note.startswith("cleanup failed") for outcome in outcomes for note in outcome.notes)
    console.print(f"namespace of this run: {namespace} ({'NOT fully removed, see above' if leftovers else 'removed'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
