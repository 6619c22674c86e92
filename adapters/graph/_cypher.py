"""Pieces of Cypher text: identifiers, parameters, lexicographic bounds, relationship patterns.

Every value is a query parameter. Only validated identifiers (labels, property names,
relationship types), always backticked, and validated integers (traversal depths, which
Cypher cannot parameterise) are written into query text: these helpers are the only
places that do it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

from adapters.base import Direction
from sharding.core.errors import QueryError

__all__ = [
    "IDENT",
    "PREFIX",
    "Params",
    "check_depth",
    "columns",
    "ident",
    "lex",
    "pattern",
    "tick",
]

IDENT: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""Labels, property names and relationship types that go into query text."""

PREFIX: Final = re.compile(r"^[A-Za-z0-9_]*$")
"""A namespace or shard prefix: it becomes the start of a label."""


def tick(name: str) -> str:
    """Backtick an identifier (already validated; doubled backticks for safety)."""
    return "`" + name.replace("`", "``") + "`"


def ident(name: str, what: str) -> str:
    """``name`` if it may go into query text as a ``what``; a QueryError otherwise."""
    if not isinstance(name, str) or not IDENT.match(name):
        raise QueryError(f"{what} {name!r} must be letters, digits and _ (not starting with a digit)")
    return name


def columns(variable: str, names: Iterable[str]) -> str:
    """``v.`a`, v.`b```: properties of one node, comma separated (orders, index fields)."""
    return ", ".join(f"{variable}.{tick(name)}" for name in names)


class Params:
    """Collects query parameters under fresh names (``p0``, ``p1``...)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"${name}"


def lex(columns: Sequence[str], params: Sequence[str], op: str) -> str:
    """``(c1, c2...) op (p1, p2...)`` in lexicographic order; ``op`` is >, >=, < or <=.

    Spelled out column by column, so that the planner can seek the first column's index."""
    strict = op[0]
    parts = []
    for index, (column, param) in enumerate(zip(columns, params, strict=True)):
        equal = [f"{c} = {p}" for c, p in zip(columns[:index], params[:index], strict=True)]
        parts.append(" AND ".join([*equal, f"{column} {strict} {param}"]))
    if op.endswith("="):
        parts.append(" AND ".join(f"{c} = {p}" for c, p in zip(columns, params, strict=True)))
    return "(" + " OR ".join(f"({part})" for part in parts) + ")"


def pattern(direction: Direction, type: str | None = None, variable: str = "") -> str:
    """A relationship pattern in ``direction`` (``-[r:`T`]->``, ``<-[r]-``, ``-[]-``...),
    of ``type`` (validated) if given."""
    arrows = {"out": ("-", "->"), "in": ("<-", "-"), "both": ("-", "-")}
    if direction not in arrows:
        raise QueryError(f"direction must be 'out', 'in' or 'both', not {direction!r}")
    inside = f"{variable}:{tick(ident(type, 'relationship type'))}" if type else variable
    left, right = arrows[direction]
    return f"{left}[{inside}]{right}"


def check_depth(value: Any, what: str, *, minimum: int) -> int:
    """Depths go into query text (Cypher cannot parameterise them): plain ints only."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise QueryError(f"{what} must be an integer >= {minimum}, not {value!r}")
    return value
