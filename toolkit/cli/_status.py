"""``polystore status`` and ``polystore route``: where the data is, and where a key goes.

Thin over the plain functions of ``_reports`` (which tests call directly), drawn by
``_render``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.cli._common import ConfigOption, console, errors, open_toolkit
from toolkit.cli._render import resilience_tables, route_panel, status_tables
from toolkit.cli._reports import KEY_TYPES, explain_route, parse_key, store_status
from toolkit.errors import ConfigError

__all__ = ["route", "status"]


def status(
    config: ConfigOption = None,
    store: Annotated[list[str] | None, typer.Option("--store", "-s", help="Only these stores.")] = None,
) -> None:
    """Every store's shards: reachable or not, row counts, distribution and resilience guard."""
    with errors():
        with open_toolkit(config) as toolkit:
            statuses = store_status(toolkit, store)
            if not statuses:
                console.print("no stores yet: declare some in polystore.toml (`polystore init`) or use the library.")
                return
            console.print(status_tables(statuses))
            healths = [status_.resilience for status_ in statuses if status_.resilience is not None]
            if healths:
                console.print(resilience_tables(healths))
        if any(not shard.reachable for status_ in statuses for shard in status_.shards):
            raise typer.Exit(1)


def route(
    key: Annotated[str, typer.Argument(help="The shard key to route.")],
    store: Annotated[str, typer.Option("--store", "-s", help="The store whose router decides.")],
    key_type: Annotated[
        str, typer.Option("--key-type", "-t", help=f"How to read KEY: {', '.join(KEY_TYPES)}.")
    ] = "str",
    config: ConfigOption = None,
) -> None:
    """Which shard owns a key, and why (token, slot, range or directory entry)."""
    with errors():
        typed = parse_key(key, key_type)
        with open_toolkit(config) as toolkit:
            if store not in toolkit.store_names:
                raise ConfigError(f"no store {store!r} (stores: {', '.join(toolkit.store_names) or 'none'})")
            console.print(route_panel(explain_route(toolkit, store, typed)))
