"""``polystore rebalance``: plan, execute, resume, abort and inspect topology changes.

Thin over ``sharding.rebalance`` (``plan_rebalance``, ``Rebalancer``), which tests call
directly; drawing is in ``_rebalance_view``. ``rebalance --to FILE`` is the callback of
this sub-app (typer's ``invoke_without_command``), so it works with options and still
has subcommands.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group

from sharding.rebalance import RebalanceOptions, Rebalancer, Summary, plan_rebalance
from toolkit.cli._common import ConfigOption, console, errors, open_toolkit, print_json, sub_app
from toolkit.cli._rebalance_view import plan_table, rebalance_bars, summary_table
from toolkit.config import load_config
from toolkit.errors import ConfigError, TopologyError

__all__ = ["rebalance_app"]

rebalance_app = sub_app("Move a store's rows to a new topology: online, verified, resumable.")

StoreOption = Annotated[str | None, typer.Option("--store", "-s", help="Only this store.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", min=1, max=100_000, help="Rows per batch.")]
ParallelOption = Annotated[int, typer.Option("--parallel", min=1, max=64, help="Units moved at once.")]
SettleOption = Annotated[
    float, typer.Option("--settle", min=0.0, help="Seconds every process gets to see a new phase.")
]


@rebalance_app.callback(invoke_without_command=True)
def rebalance(
    ctx: typer.Context,
    to: Annotated[
        Path | None, typer.Option("--to", help="The target topology: a polystore.toml-style file.", dir_okay=False)
    ] = None,
    store: StoreOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan (and summary) as JSON.")] = False,
    yes: YesOption = False,
    batch_size: BatchSizeOption = 1000,
    parallel: ParallelOption = 1,
    settle: SettleOption = 1.0,
    config: ConfigOption = None,
) -> None:
    """Plan (--dry-run) or execute a move of a store to the topology in --to."""
    if ctx.invoked_subcommand is not None:
        return
    if to is None:
        console.print(ctx.get_help())
        raise typer.Exit(2)
    with errors(), open_toolkit(config) as toolkit:
        target = load_config(to)
        plans = plan_rebalance(toolkit, target, store)
        if as_json and dry_run:
            print_json([plan.to_json() for plan in plans])
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
            with rebalance_bars(console) as drawing:
                rebalancer = Rebalancer(toolkit, options=options, progress=drawing)
                summaries.append(rebalancer.run(rebalancer.start(plan)))
        _show_summaries(summaries, as_json)


def _show_summaries(summaries: list[Summary], as_json: bool) -> None:
    if as_json:
        print_json([dataclasses.asdict(summary) for summary in summaries])
    else:
        console.print(Group(*(summary_table(summary) for summary in summaries)))


def _pick(rebalancer: Rebalancer, ident: str | None, store: str | None) -> list[str]:
    """The rebalance an id (or prefix) names, or every unfinished one (of ``store``)."""
    journal = rebalancer.journal
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
    with errors(), open_toolkit(config) as toolkit:
        rebalancer = Rebalancer(toolkit)
        records = rebalancer.journal.latest(store)[:limit]
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
    batch_size: BatchSizeOption = 1000,
    parallel: ParallelOption = 1,
    settle: SettleOption = 1.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOption = None,
) -> None:
    """Continue a rebalance from the step it stopped at (after a crash or kill)."""
    with errors(), open_toolkit(config) as toolkit:
        options = RebalanceOptions(batch_size=batch_size, parallel=parallel, settle=settle)
        summaries = []
        for found in _pick(Rebalancer(toolkit, options=options), ident, store):
            with rebalance_bars(console) as drawing:
                summaries.append(Rebalancer(toolkit, options=options, progress=drawing).run(found))
        _show_summaries(summaries, as_json)


@rebalance_app.command()
def abort(
    ident: Annotated[str | None, typer.Argument(help="Rebalance id (or prefix); default: the unfinished one.")] = None,
    store: StoreOption = None,
    yes: YesOption = False,
    settle: SettleOption = 1.0,
    config: ConfigOption = None,
) -> None:
    """Go back to the old topology and delete the copies (only before cut-over)."""
    with errors(), open_toolkit(config) as toolkit:
        found = _pick(Rebalancer(toolkit), ident, store)
        if len(found) > 1:
            raise TopologyError(f"{len(found)} unfinished rebalances: name one ({', '.join(found)})")
        if not yes and not typer.confirm(f"abort rebalance {found[0]}?", default=False):
            raise typer.Exit(1)
        started = time.monotonic()
        summary = Rebalancer(toolkit, options=RebalanceOptions(settle=settle)).abort(found[0])
        summary.seconds = time.monotonic() - started
        _show_summaries([summary], False)
