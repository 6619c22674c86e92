"""The ``polystore`` app: every command group registered on one typer app, and ``main``.

Each group lives in a module of its own (``_status``, ``_saga``, ``_rebalance``,
``_demo``) and imports only the shared helpers of ``_common`` and the drawing modules,
never another group: this module is the only one that knows them all.
"""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli._common import console, error_console, errors
from toolkit.cli._demo import demo
from toolkit.cli._rebalance import rebalance_app
from toolkit.cli._saga import saga_app
from toolkit.cli._status import route, status
from toolkit.errors import ConfigError

__all__ = ["app", "main"]

app = typer.Typer(
    name="polystore",
    help="Polyglot persistence and sharding: see where your data lives, and move it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def init(
    path: Annotated[Path, typer.Argument(help="Where to write the example config.")] = Path("polystore.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example polystore.toml."""
    with errors():
        if path.exists() and not force:
            raise ConfigError("already exists (use --force to overwrite)", file=str(path))
        text = resources.files("toolkit").joinpath("templates/polystore.toml").read_text(encoding="utf-8")
        path.write_text(text, encoding="utf-8")
        console.print(f"wrote [cyan]{path}[/]: three example stores (hash, range, directory) on SQLite.")
        console.print("Next: [bold]polystore status[/] shows them; edit the shard URLs to point at your servers.")


# The order of ``polystore --help``: first steps, then the everyday views, then the groups.
for command in (init, demo, status, route):
    app.command()(command)
app.add_typer(saga_app, name="saga")
app.add_typer(rebalance_app, name="rebalance")


def main() -> None:
    """Console-script entry point."""
    if os.environ.get("NO_COLOR"):
        console.no_color = True
        error_console.no_color = True
    try:
        app()
    except KeyboardInterrupt:
        error_console.print("interrupted")
        sys.exit(130)
