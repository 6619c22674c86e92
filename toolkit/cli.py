"""The ``polystore`` command: thin wiring of plain functions (reports, demo) to typer.

Every ``ToolkitError`` becomes one red line and exit code 1; a traceback (which could
carry connection strings) is never printed for them. Usage errors exit with 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from toolkit.cli_rebalance import rebalance_app
from toolkit.cli_saga import saga_app
from toolkit.errors import ConfigError, ToolkitError

__all__ = ["app", "main"]

app = typer.Typer(
    name="polystore",
    help="Polyglot persistence and sharding: see where your data lives, and move it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(saga_app, name="saga")
app.add_typer(rebalance_app, name="rebalance")
console = Console()
error_console = Console(stderr=True)


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="polystore.toml to use (default: $POLYSTORE_CONFIG, ./polystore.toml, else the embedded default).",
        dir_okay=False,
    ),
]


@contextmanager
def _errors() -> Iterator[None]:
    """ToolkitError -> one red line on stderr, exit 1."""
    try:
        yield
    except ToolkitError as exc:
        from toolkit.render import print_error

        print_error(error_console, str(exc))
        raise typer.Exit(1) from None


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the example config.")] = Path("polystore.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example polystore.toml."""
    with _errors():
        if path.exists() and not force:
            raise ConfigError("already exists (use --force to overwrite)", file=str(path))
        text = resources.files("toolkit").joinpath("templates/polystore.toml").read_text(encoding="utf-8")
        path.write_text(text, encoding="utf-8")
        console.print(f"wrote [cyan]{path}[/]: three example stores (hash, range, directory) on SQLite.")
        console.print("Next: [bold]polystore status[/] shows them; edit the shard URLs to point at your servers.")


@app.command()
def demo(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where the demo's SQLite files go (default: a new temp dir).")
    ] = None,
    customers: Annotated[int, typer.Option(min=10, max=1_000_000, help="How many customers to seed.")] = 600,
) -> None:
    """Run the shop example on the embedded default: what went where, a saga, a rebalance."""
    from toolkit.demo import run_demo

    with _errors():
        run_demo(console, data_dir, customers=customers)


@app.command()
def status(
    config: ConfigOption = None,
    store: Annotated[list[str] | None, typer.Option("--store", "-s", help="Only these stores.")] = None,
) -> None:
    """Every store's shards: reachable or not, row counts, distribution and resilience guard."""
    from toolkit.facade import Toolkit
    from toolkit.render import resilience_tables, status_tables
    from toolkit.reports import store_status

    with _errors():
        with Toolkit(config) as toolkit:
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


@app.command()
def route(
    key: Annotated[str, typer.Argument(help="The shard key to route.")],
    store: Annotated[str, typer.Option("--store", "-s", help="The store whose router decides.")],
    key_type: Annotated[
        str, typer.Option("--key-type", "-t", help="How to read KEY: str, int, uuid, bytes, date, datetime, decimal.")
    ] = "str",
    config: ConfigOption = None,
) -> None:
    """Which shard owns a key, and why (token, slot, range or directory entry)."""
    from toolkit.facade import Toolkit
    from toolkit.render import route_panel
    from toolkit.reports import explain_route, parse_key

    with _errors():
        typed = parse_key(key, key_type)
        with Toolkit(config) as toolkit:
            if store not in toolkit.store_names:
                raise ConfigError(f"no store {store!r} (stores: {', '.join(toolkit.store_names) or 'none'})")
            console.print(route_panel(explain_route(toolkit, store, typed)))


def main() -> None:
    """Console-script entry point."""
    if os.environ.get("NO_COLOR"):
        console.no_color = True
    try:
        app()
    except KeyboardInterrupt:
        error_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
