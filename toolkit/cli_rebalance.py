"""``polystore rebalance``: plan, execute, resume, abort and inspect topology changes.

Thin over ``sharding.rebalance`` (``plan_rebalance``, ``Rebalancer``), which tests call
directly. ``rebalance --to FILE`` is the callback of this sub-app (typer's
``invoke_without_command``), so it works with options and still has subcommands.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, Group
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from toolkit.errors import ConfigError, ToolkitError, TopologyError
from toolkit.render import bar, print_error

if TYPE_CHECKING:
    from sharding.rebalance import Plan, ProgressEvent, Summary
    from toolkit.facade import Toolkit

__all__ = ["plan_table", "rebalance_app", "summary_table"]

rebalance_app = typer.Typer(
    help="Move a store's rows to a new topology: online, verified, resumable.",
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
error_console = Console(stderr=True)

# The same two as in toolkit.cli, which imports this module (so this cannot import it).
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="polystore.toml to use (default: as for every command).", dir_okay=False),
]


@contextmanager
def _errors() -> Iterator[None]:
    """ToolkitError -> one red line on stderr, exit 1."""
    try:
        yield
    except ToolkitError as exc:
        print_error(error_console, str(exc))
        raise typer.Exit(1) from None


StoreOption = Annotated[str | None, typer.Option("--store", "-s", help="Only this store.")]


# -- drawing ----------------------------------------------------------------------------


def plan_table(plan: Plan) -> Table:
    """Each move with its rows and a bar; the caption says how much of the store moves."""
    from sharding.rebalance import span_text

    largest = max((move.rows for move in plan.moves), default=0)
    table = Table(
        title=f"rebalance plan · store [bold]{plan.store}[/] · epoch {plan.from_epoch} → {plan.from_epoch + 1}",
        title_justify="left",
    )
    for name, justify in (("#", "right"), ("from", "left"), ("to", "left"), ("span", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("est. rows", justify="right")
    table.add_column("share", justify="right")
    table.add_column("")
    for move in plan.moves:
        table.add_row(
            str(move.index),
            move.source,
            move.target,
            span_text(move.span),
            f"{move.rows:,}",
            f"{move.share:.2%}",
            bar(move.rows, largest, 20),
        )
    changes = []
    if plan.added_shards:
        changes.append(f"adds {', '.join(plan.added_shards)}")
    if plan.removed_shards:
        changes.append(f"removes {', '.join(plan.removed_shards)}")
    entities = ", ".join(schema.name for schema in plan.schemas) or "none recorded"
    table.caption = (
        f"{len(plan.moves)} moves · {plan.moved_rows:,} of {plan.total_rows:,} rows ({plan.moved_share:.2%}) · "
        f"entities: {entities}" + (f" · {'; '.join(changes)}" if changes else "")
    )
    return table


def summary_table(summary: Summary) -> Table:
    table = Table(
        title=f"rebalance {summary.id[:12]} · store [bold]{summary.store}[/] · {summary.state}",
        title_justify="left",
    )
    # A move's checksum is kept only for single-entity stores: no column of blanks otherwise.
    checksums = any(move.checksum for move in summary.moves)
    names = ("#", "from", "to", "span", "copied", "verified", "repaired", "deleted") + (
        ("checksum",) if checksums else ()
    )
    for name in names:
        table.add_column(name, justify="left" if name in ("from", "to", "span", "checksum") else "right")
    for move in summary.moves:
        cells = [
            str(move.index),
            move.source,
            move.target,
            move.span,
            f"{move.copied:,}",
            f"{move.rows:,}",
            f"{move.repaired:,}",
            f"{move.deleted:,}",
        ]
        table.add_row(*cells, *((move.checksum[:12],) if checksums else ()))
    caption = f"{summary.copied:,} copied · {summary.repaired:,} repaired · {summary.deleted:,} deleted from sources"
    if summary.seconds:
        caption += f" · {summary.seconds:.1f}s (writes of moving keys fenced {summary.fence_seconds:.2f}s)"
    if summary.error:
        caption += f" · last error: {summary.error}"
    table.caption = caption
    return table


class _RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "", style="magenta")


class _Bars:
    """A ``Progress`` callback drawing one rich bar per step, with rows/s and an ETA."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind == "phase":
            self._finish()
            self.task = self.progress.add_task(event.phase, total=event.total or None)
        elif event.kind == "rows" and self.task is not None:
            self.progress.advance(self.task, event.rows)

    def _finish(self) -> None:
        """Close the previous step's bar at what it really did (estimates are estimates)."""
        if self.task is not None:
            done = max(int(self.progress.tasks[-1].completed), 1)
            self.progress.update(self.task, total=done, completed=done)
            self.progress.stop_task(self.task)

    def close(self) -> None:
        self._finish()
        self.task = None


def _bars() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RowsPerSecond(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


# -- commands ---------------------------------------------------------------------------


def _open(config: Path | None) -> Toolkit:
    from toolkit.facade import Toolkit

    return Toolkit(config)


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


@rebalance_app.callback(invoke_without_command=True)
def rebalance(
    ctx: typer.Context,
    to: Annotated[
        Path | None, typer.Option("--to", help="The target topology: a polystore.toml-style file.", dir_okay=False)
    ] = None,
    store: StoreOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan (and summary) as JSON.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100_000, help="Rows per batch.")] = 1000,
    parallel: Annotated[int, typer.Option("--parallel", min=1, max=64, help="Units moved at once.")] = 1,
    settle: Annotated[
        float, typer.Option("--settle", min=0.0, help="Seconds every process gets to see a new phase.")
    ] = 1.0,
    config: ConfigOption = None,
) -> None:
    """Plan (--dry-run) or execute a move of a store to the topology in --to."""
    if ctx.invoked_subcommand is not None:
        return
    if to is None:
        console.print(ctx.get_help())
        raise typer.Exit(2)
    from sharding.rebalance import RebalanceOptions, Rebalancer, plan_rebalance
    from toolkit.config import load_config

    with _errors(), _open(config) as toolkit:
        target = load_config(to)
        plans = plan_rebalance(toolkit, target, store)
        if as_json and dry_run:
            _print_json([plan.to_json() for plan in plans])
            return
        if not as_json:
            console.print(Group(*(plan_table(plan) for plan in plans)))
        if dry_run:
            return
        plans = [plan for plan in plans if plan.moves]
        if not plans:
            console.print("nothing moves: the stores already match the target.")
            return
        if not yes and not typer.confirm(f"move {sum(p.moved_rows for p in plans):,} rows?", default=False):
            raise typer.Exit(1)
        options = RebalanceOptions(batch_size=batch_size, parallel=parallel, settle=settle)
        summaries = []
        for plan in plans:
            with _bars() as bars:
                drawing = _Bars(bars)
                rebalancer = Rebalancer(toolkit, options=options, progress=drawing)
                summaries.append(rebalancer.run(rebalancer.start(plan)))
                drawing.close()
        _show_summaries(summaries, as_json)


def _show_summaries(summaries: list[Summary], as_json: bool) -> None:
    if as_json:
        from dataclasses import asdict

        _print_json([asdict(summary) for summary in summaries])
    else:
        console.print(Group(*(summary_table(summary) for summary in summaries)))


def _pick(toolkit: Toolkit, ident: str | None, store: str | None) -> list[str]:
    from sharding.rebalance._journal import Journal

    journal = Journal(toolkit.catalog)
    if ident is not None:
        matches = [record.id for record in journal.latest(store) if record.id.startswith(ident)]
        if len(matches) != 1:
            raise TopologyError(f"rebalance {ident!r}: {'no match' if not matches else 'ambiguous prefix'}")
        return matches
    unfinished = [record.id for record in journal.unfinished(store)]
    if not unfinished:
        raise ConfigError("no unfinished rebalance" + (f" of store {store!r}" if store else ""))
    return unfinished


@rebalance_app.command()
def status(
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many recent rebalances.")] = 10,
    config: ConfigOption = None,
) -> None:
    """Recent rebalances: their step, per-move counts and checksums."""
    from sharding.rebalance import Rebalancer
    from sharding.rebalance._journal import Journal

    with _errors(), _open(config) as toolkit:
        records = Journal(toolkit.catalog).latest(store)[:limit]
        rebalancer = Rebalancer(toolkit)
        summaries = [rebalancer.summary(record.id) for record in records]
        if not summaries and not as_json:
            console.print("no rebalances yet.")
            return
        _show_summaries(summaries, as_json)


@rebalance_app.command()
def resume(
    ident: Annotated[
        str | None, typer.Argument(help="Rebalance id (or prefix); default: every unfinished one.")
    ] = None,
    store: StoreOption = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100_000)] = 1000,
    parallel: Annotated[int, typer.Option("--parallel", min=1, max=64)] = 1,
    settle: Annotated[float, typer.Option("--settle", min=0.0)] = 1.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOption = None,
) -> None:
    """Continue a rebalance from the step it stopped at (after a crash or kill)."""
    from sharding.rebalance import RebalanceOptions, Rebalancer

    with _errors(), _open(config) as toolkit:
        options = RebalanceOptions(batch_size=batch_size, parallel=parallel, settle=settle)
        summaries = []
        for found in _pick(toolkit, ident, store):
            with _bars() as bars:
                drawing = _Bars(bars)
                summaries.append(Rebalancer(toolkit, options=options, progress=drawing).run(found))
                drawing.close()
        _show_summaries(summaries, as_json)


@rebalance_app.command()
def abort(
    ident: Annotated[str | None, typer.Argument(help="Rebalance id (or prefix); default: the unfinished one.")] = None,
    store: StoreOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    settle: Annotated[float, typer.Option("--settle", min=0.0)] = 1.0,
    config: ConfigOption = None,
) -> None:
    """Go back to the old topology and delete the copies (only before cut-over)."""
    from sharding.rebalance import RebalanceOptions, Rebalancer

    with _errors(), _open(config) as toolkit:
        found = _pick(toolkit, ident, store)
        if len(found) > 1:
            raise TopologyError(f"{len(found)} unfinished rebalances: name one ({', '.join(found)})")
        if not yes and not typer.confirm(f"abort rebalance {found[0]}?", default=False):
            raise typer.Exit(1)
        started = time.monotonic()
        summary = Rebalancer(toolkit, options=RebalanceOptions(settle=settle)).abort(found[0])
        summary.seconds = time.monotonic() - started
        _show_summaries([summary], False)
