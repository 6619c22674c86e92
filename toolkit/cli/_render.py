"""Drawing reports for people: tables and bars with rich. No logic lives here.

The status and route views, and the bars every other view (rebalance, demo) reuses.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from toolkit.cli._reports import Route, StoreStatus
from toolkit.resilience import StoreHealth

__all__ = ["bar", "distribution_table", "resilience_tables", "route_panel", "status_tables"]

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


_BREAKER_STYLES = {"closed": "green", "open": "bold red", "half-open": "yellow"}


def resilience_tables(healths: list[StoreHealth]) -> Group:
    """The guard of every store, as this process sees it: a breaker per shard, then the
    store-wide bulkhead, throttle and retry counters."""
    breakers = Table(title="circuit breakers (this process)", title_justify="left")
    for name in ("store", "shard", "state", "failures", "opened", "refused"):
        breakers.add_column(name, justify="right" if name in ("failures", "opened", "refused") else "left")
    guards = Table(title="bulkheads and throttles (this process)", title_justify="left")
    for name in ("store", "in use", "peak", "full", "throttle", "admitted", "limited", "retries"):
        guards.add_column(name, justify="left" if name in ("store", "throttle") else "right")
    for health in healths:
        for index, shard in enumerate(health.shards):
            if shard.breaker is None:
                cells: list[str | Text] = [Text("off"), "-", "-", "-"]
            else:
                stats = shard.breaker
                label = stats.state.value + (f" {stats.retry_after:.1f}s" if stats.retry_after else "")
                cells = [Text(label, style=_BREAKER_STYLES[stats.state.value])]
                cells += [str(stats.failures), str(stats.opened), str(stats.rejected)]
            breakers.add_row(health.store if index == 0 else "", shard.shard, *cells)
        bulkhead = ["off", "-", "-"]
        if health.bulkhead is not None:
            b = health.bulkhead
            bulkhead = [f"{b.in_use}/{b.limit}", str(b.peak), str(b.rejected)]
        throttle = ["off", "-", "-"]
        if health.throttle is not None:
            t = health.throttle
            throttle = [f"{t.rate:g}/s {t.algorithm}", str(t.admitted), str(t.rejected)]
        guards.add_row(health.store, *bulkhead, *throttle, str(health.retries))
    breakers.caption = "failures: unhealthy ones in the window; refused: calls failed fast while open"
    guards.caption = "in use/peak/full: calls in flight, most at once, refused; limited: refused by the throttle"
    return Group(breakers, guards)


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
