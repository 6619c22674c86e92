"""``polystore saga``: list sagas, show one's timeline, recover what dead processes left.

Thin over plain functions (``load_definitions``, the saga log's queries) that tests
call directly; drawing is rich tables.
"""

from __future__ import annotations

import datetime as dt
import importlib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from toolkit.cli._common import ConfigOption, console, errors, open_toolkit, sub_app
from toolkit.errors import ConfigError
from toolkit.saga import Saga, SagaRecord

__all__ = ["load_definitions", "saga_app", "saga_table", "timeline_table"]

saga_app = sub_app(
    "Sagas in the catalog's log: list them, show one's timeline, recover those left in flight.", no_args_is_help=True
)

_STYLES = {
    "running": "yellow",
    "compensating": "magenta",
    "completed": "green",
    "compensated": "cyan",
    "needs_attention": "bold red",
}
"""The saga states (``toolkit.saga.SagaState``) and how they are drawn."""


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if epoch else "-"


def _state(state: str) -> Text:
    return Text(str(state), style=_STYLES.get(str(state), ""))


def saga_table(records: Iterable[SagaRecord]) -> Table:
    """One row per saga: id, name, state, step, key, when, error."""
    table = Table(title="sagas (newest first)", title_justify="left")
    for column in ("id", "name", "state", "step", "key", "updated (UTC)", "error"):
        table.add_column(column, overflow="fold")
    for record in records:
        if record.state in ("completed", "compensated"):
            step = "all done" if record.state == "completed" else "all undone"
        else:
            step = f"{record.phase}: {record.step} {record.steps[record.step]}"
        table.add_row(
            record.id,
            record.name,
            _state(record.state),
            step,
            record.idempotency_key or "-",
            _when(record.updated_at),
            record.error or "",
        )
    return table


def timeline_table(record: SagaRecord) -> Table:
    """A saga's transitions in order, with the step names and errors."""
    holder = f", lease {record.lease_owner} until {_when(record.lease_until)}" if record.lease_owner else ""
    table = Table(
        title=f"saga {record.id} ({record.name}, key {record.idempotency_key or '-'}): {record.state}{holder}",
        title_justify="left",
    )
    for column in ("#", "at (UTC)", "+ms", "transition", "step", "attempt", "detail"):
        table.add_column(column, overflow="fold")
    start = record.events[0].at if record.events else record.created_at
    for event in record.events:
        step = "" if event.step is None or event.step < 0 else f"{event.step} {record.steps[event.step]}"
        table.add_row(
            str(event.seq),
            _when(event.at),
            f"{(event.at - start) * 1000:.1f}",
            Text(event.kind, style="red" if "fail" in event.kind or event.kind == "needs_attention" else ""),
            step,
            "" if event.attempt is None else str(event.attempt),
            event.detail or "",
        )
    return table


def load_definitions(spec: str) -> list[Saga]:
    """``MODULE:OBJECT`` -> sagas. OBJECT is a Saga, an iterable of Sagas, or a callable returning either.

    The current directory is importable, as with ``python -m``.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"--app takes MODULE:OBJECT, not {spec!r}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--app {spec}: cannot import {module_name!r}: {exc}") from None
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigError(f"--app {spec}: {module_name!r} has no {attribute!r}") from None
    if callable(found) and not isinstance(found, Saga):
        found = found()
    sagas = [found] if isinstance(found, Saga) else list(found) if isinstance(found, Iterable) else []
    if not sagas or not all(isinstance(saga, Saga) for saga in sagas):
        raise ConfigError(f"--app {spec}: expected a Saga or a list of Sagas, found {type(found).__name__}")
    return sagas


@saga_app.command("list")
def list_(
    state: Annotated[
        str | None, typer.Option("--state", "-s", help="Only sagas in this state: " + ", ".join(_STYLES))
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many (newest first).")] = 50,
    config: ConfigOption = None,
) -> None:
    """Sagas in the log, newest first, with their state and last error."""
    with errors():
        if state is not None and state not in _STYLES:
            raise ConfigError(f"--state must be one of {', '.join(_STYLES)}, not {state!r}")
        with open_toolkit(config) as toolkit:
            records = toolkit.sagas.list(state, limit=limit)
            counts = toolkit.sagas.log.counts()
        if not records:
            console.print("no sagas" + (f" in state {state}" if state else "") + ".")
            return
        console.print(saga_table(records))
        console.print("  ".join(f"{name}: {count}" for name, count in sorted(counts.items())))


@saga_app.command()
def show(saga_id: Annotated[str, typer.Argument(help="The saga's id.")], config: ConfigOption = None) -> None:
    """One saga: its steps, state, error and the timeline of its transitions."""
    with errors(), open_toolkit(config) as toolkit:
        record = toolkit.sagas.get(saga_id)
        console.print(timeline_table(record))
        if record.error:
            console.print(Text(f"error: {record.error}", style="red"))
        if record.results:
            console.print(f"results: {record.results}")


@saga_app.command()
def recover(
    app: Annotated[str, typer.Option("--app", help="MODULE:OBJECT with the application's saga definitions.")],
    config: ConfigOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Recover at most this many.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list the sagas that would be recovered.")] = False,
) -> None:
    """Finish or compensate every saga whose runner died (its lease ran out)."""
    with errors():
        definitions = load_definitions(app)
        with open_toolkit(config) as toolkit:
            if dry_run:
                waiting = toolkit.sagas.log.expired(toolkit.sagas.clock.now(), limit=limit)
                known = {saga.name for saga in definitions}
                console.print(saga_table(waiting))
                unknown = sorted({record.name for record in waiting} - known)
                console.print(
                    f"{len(waiting)} saga(s) left in flight by a dead runner"
                    + (f"; no definition for: {', '.join(unknown)}" if unknown else "")
                )
                return
            report = toolkit.sagas.recover(definitions, limit=limit)
        table = Table(title=f"recovered {len(report.recovered)} saga(s)", title_justify="left")
        for column in ("id", "name", "state", "error"):
            table.add_column(column, overflow="fold")
        for outcome in report.recovered:
            table.add_row(outcome.id, outcome.name, _state(outcome.state), outcome.error or "")
        console.print(table)
        for saga_id, why in report.skipped:
            console.print(f"[yellow]skipped[/] {saga_id}: {why}")
        if any(outcome.state == "needs_attention" for outcome in report.recovered):
            raise typer.Exit(1)
