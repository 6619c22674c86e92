"""Drawing reports for people: tables and bars with rich. No logic lives here."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from toolkit.reports import Route, StoreStatus

__all__ = ["bar", "distribution_table", "route_panel", "status_tables"]

_BAR_WIDTH = 30


def bar(value: int, largest: int, width: int = _BAR_WIDTH) -> Text:
    """A horizontal bar, ``value`` out of ``largest``, drawn with eighth blocks."""
    if largest <= 0:
        return Text("")
    eighths = round(value / largest * width * 8)
    full, rest = divmod(eighths, 8)
    return Text("█" * full + ("▏▎▍▌▋▊▉"[rest - 1] if rest else ""), style="cyan")


def distribution_table(title: str, counts: Mapping[str, int]) -> Table:
    """Rows per shard with their share and a bar: how evenly a store is spread."""
    total = sum(counts.values())
    largest = max(counts.values(), default=0)
    table = Table(title=title, title_justify="left")
    table.add_column("shard")
    table.add_column("rows", justify="right")
    table.add_column("share", justify="right")
    table.add_column("distribution")
    for shard, count in counts.items():
        share = f"{count / total:.1%}" if total else "-"
        table.add_row(shard, f"{count:,}", share, bar(count, largest))
    if len(counts) > 1 and total:
        mean = total / len(counts)
        table.caption = f"{total:,} rows; max/mean {largest / mean:.3f}"
    return table


def status_tables(statuses: list[StoreStatus]) -> Group:
    """One table per store: shards, reachability, rows and distribution."""
    parts = []
    for status in statuses:
        largest = max((shard.rows for shard in status.shards), default=0)
        table = Table(
            title=f"store [bold]{status.name}[/] · {status.kind} · {status.router} router · epoch {status.epoch}",
            title_justify="left",
        )
        table.add_column("shard")
        table.add_column("server")
        table.add_column("state")
        table.add_column("rows", justify="right")
        table.add_column("tables")
        table.add_column("distribution")
        for shard in status.shards:
            state = Text("up", style="green") if shard.reachable else Text("DOWN", style="bold red")
            tables = ", ".join(f"{name}={count:,}" for name, count in shard.tables.items()) or "-"
            if shard.error:
                tables = Text(shard.error, style="red")  # type: ignore[assignment]
            table.add_row(shard.name, shard.url, state, f"{shard.rows:,}", tables, bar(shard.rows, largest))
        table.caption = f"{status.rows:,} rows in {len(status.shards)} shards"
        parts.append(table)
    return Group(*parts)


def route_panel(route: Route) -> Panel:
    """Which shard owns a key, and why."""
    lines = Text()
    lines.append(f"store {route.store} (epoch {route.epoch}), {route.router} router\n")
    lines.append(f"key {route.key!r} ({type(route.key).__name__}), encoded {route.encoded.hex()}\n")
    for reason in route.reasons:
        lines.append(f"· {reason}\n")
    lines.append("→ shard ")
    lines.append(route.shard, style="bold green")
    return Panel(lines, title="polystore route", expand=False)


def print_error(console: Console, message: str) -> None:
    """The one red line every ToolkitError becomes on the command line."""
    console.print(Text(f"error: {message}", style="bold red"), soft_wrap=True)
