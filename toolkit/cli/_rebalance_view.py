"""How a rebalance looks: its plan, its summary and live progress bars (rich).

Shared by ``polystore rebalance`` and the demo, which runs the real rebalancer and
shows it the same way. No logic lives here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
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

from sharding.rebalance import Plan, ProgressEvent, Summary, span_text
from toolkit.cli._render import bar

__all__ = ["RebalanceBars", "plan_table", "rebalance_bars", "summary_table"]


def plan_table(plan: Plan) -> Table:
    """Each move with its rows and a bar; the caption says how much of the store moves."""
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
    """What a rebalance did, move by move: copied, verified, repaired and deleted rows."""
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
    """The speed of the current step, in rows (rich's own column counts "it")."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "", style="magenta")


class RebalanceBars:
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


@contextmanager
def rebalance_bars(console: Console) -> Iterator[RebalanceBars]:
    """Live bars on ``console`` for one rebalance run: pass what this yields as the
    ``Rebalancer``'s ``progress``. The last step's bar is closed when the block ends."""
    with _progress(console) as progress:
        drawing = RebalanceBars(progress)
        yield drawing
        drawing.close()


def _progress(console: Console) -> Progress:
    """Step, bar, count, rows/s, elapsed and ETA."""
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
