"""What every command shares: the consoles, the ``--config`` option and how errors look.

Kept in one module that imports no command, so that every command group uses the same
helpers without importing another group (no cycles, nothing copied).

A ``ToolkitError`` is one red line on stderr and exit code 1: a traceback could carry a
connection string, and a person wants the sentence, not the stack. Usage errors (a
missing option, a value out of range) are click's, with exit code 2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from toolkit.errors import ToolkitError
from toolkit.facade import Toolkit

__all__ = [
    "ConfigOption",
    "console",
    "error_console",
    "errors",
    "open_toolkit",
    "print_error",
    "print_json",
    "sub_app",
]

console = Console()
"""Where every command draws (``NO_COLOR`` turns its colours off: ``main``)."""
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


def sub_app(help_text: str, *, no_args_is_help: bool = False) -> typer.Typer:
    """A typer app configured as every ``polystore`` command group is: no shell-completion
    commands, and no pretty tracebacks (which would show locals, connection URLs included)."""
    return typer.Typer(
        help=help_text, no_args_is_help=no_args_is_help, add_completion=False, pretty_exceptions_enable=False
    )


def print_error(message: str, *, to: Console = error_console) -> None:
    """The one red line every ToolkitError becomes on the command line."""
    to.print(Text(f"error: {message}", style="bold red"), soft_wrap=True)


@contextmanager
def errors() -> Iterator[None]:
    """ToolkitError -> one red line on stderr, exit 1."""
    try:
        yield
    except ToolkitError as exc:
        print_error(str(exc))
        raise typer.Exit(1) from None


def open_toolkit(config: Path | None) -> Toolkit:
    """The Toolkit of ``--config`` (or the default lookup), for a ``with`` block."""
    return Toolkit(config)


def print_json(data: Any) -> None:
    """``--json`` output: anything json cannot encode (datetimes, decimals) as its str."""
    console.print_json(json.dumps(data, default=str))
