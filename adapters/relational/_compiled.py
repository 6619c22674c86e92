"""``Compiled``: a statement compiled once and run on a raw DBAPI cursor (the hot path).

SQLAlchemy re-enters its execution machinery (events, result metadata, context
objects) on every call, which costs more than SQLite itself for a point read. Compiling
once and applying SQLAlchemy's own bind and result processors keeps the exact same
types and SQL while skipping that per-call work.
"""

from __future__ import annotations

import operator
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler

from adapters.base import Row

__all__ = ["NOW", "Compiled"]

NOW: Final = "_ps_now"
"""The bind parameter the compiled statements compare ``_ps_expires`` with."""

_Processor = Callable[[Any], Any] | None


class Compiled:
    """One statement's SQL, its binds in driver order and its result processors."""

    __slots__ = ("binds", "columns", "converters", "dialect", "getter", "positional", "results", "sql")

    def __init__(self, stmt: sa.ClauseElement, dialect: sa.Dialect, columns: Sequence[sa.Column[Any]] = ()) -> None:
        compiled = typing.cast(SQLCompiler, stmt.compile(dialect=dialect))
        self.sql = compiled.string
        self.positional = bool(compiled.positional)
        names = list(compiled.positiontup or ()) if self.positional else list(compiled.binds)
        self.binds: list[tuple[str, _Processor]] = [
            (name, _bind_processor(compiled.binds[name].type, dialect)) for name in names
        ]
        # Fast parameter building: pick all values in one C call, then convert only the
        # few columns whose type has a bind processor.
        self.getter = operator.itemgetter(*names) if names else None
        self.converters = [(index, proc) for index, (_, proc) in enumerate(self.binds) if proc is not None]
        self.dialect = dialect
        self.columns = list(columns)
        self.results: list[tuple[str, _Processor]] | None = None

    def params(self, values: Mapping[str, Any]) -> Any:
        """The driver parameters of one execution, picked from ``values`` by bind name."""
        if self.positional and self.getter is not None:
            picked = self.getter(values)
            if len(self.binds) == 1:
                picked = (picked,)
            if not self.converters:
                return picked
            converted = list(picked)
            for index, proc in self.converters:
                converted[index] = proc(converted[index])
            return converted
        return {name: values[name] if proc is None else proc(values[name]) for name, proc in self.binds}

    def many(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """``params`` of every row, for ``executemany``: one C-level ``map`` when the
        statement is positional, has several binds and converts none (SQLite's upserts)."""
        if self.positional and self.getter is not None and len(self.binds) > 1 and not self.converters:
            return list(map(self.getter, rows))
        return [self.params(row) for row in rows]

    def row(self, raw: Sequence[Any], description: Sequence[Any]) -> Row:
        """A fetched tuple as a row, through the columns' result processors."""
        results = self.results
        if results is None:
            # Some processors depend on the driver's type code (psycopg numerics), which
            # only the first result tells; it is the same for every later one.
            results = self.results = [
                (column.name, column.type.dialect_impl(self.dialect).result_processor(self.dialect, info[1]))
                for column, info in zip(self.columns, description, strict=True)
            ]
        return {name: value if proc is None else proc(value) for (name, proc), value in zip(results, raw, strict=True)}


def _bind_processor(type_: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> _Processor:
    """SQLAlchemy's bind processor for ``type_``, minus one that changes nothing stored.

    sqlite3 binds a Python bool as the integer 1/0, exactly what SQLAlchemy's Boolean
    processor would produce (its strictness is redundant: rows are validated entities),
    so the hot path skips that call for every boolean of every row.
    """
    impl = type_.dialect_impl(dialect)
    if dialect.name == "sqlite" and isinstance(impl, sa.Boolean):
        return None
    return impl.bind_processor(dialect)
