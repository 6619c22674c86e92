"""What the relational adapter's modules share: the compiled hot-path statement, the
per-table statement set, the error translation, and ``SqlHost``, the attributes and
helpers the capability mixins (``_sql_capabilities``, ``_sql_graph``) rely on.

Private: import ``adapters.relational``.
"""

from __future__ import annotations

import contextlib
import operator
import threading
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    NoSuchTableError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.sql.compiler import SQLCompiler

from adapters.base import Row
from sharding.core.errors import DuplicateKeyError, StoreError, StoreTimeout, StoreUnavailable, UnsupportedCapability
from sharding.core.model import EntitySchema

if TYPE_CHECKING:
    from adapters._sql_graph import EdgeTable

__all__ = [
    "DRIVER_ERRORS",
    "EXPIRES_FIELD",
    "NOW",
    "Compiled",
    "SqlHost",
    "TableSet",
    "translate_errors",
]

EXPIRES_FIELD: Final = "_ps_expires"
"""The hidden column holding a row's expiry (epoch seconds), NULL if it never expires."""

NOW: Final = "_ps_now"
"""The bind parameter the compiled statements compare ``_ps_expires`` with."""

_Processor = Callable[[Any], Any] | None


class Compiled:
    """A statement compiled once and run on a raw DBAPI connection: the hot path.

    SQLAlchemy re-enters its execution machinery (events, result metadata, context
    objects) on every call, which costs more than SQLite itself for a point read.
    Compiling once and applying SQLAlchemy's own bind and result processors keeps the
    exact same types and SQL while skipping that per-call work.
    """

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


@dataclass(frozen=True, slots=True)
class TableSet:
    """A table and the statements reused for it."""

    table: sa.Table
    key_columns: tuple[sa.Column[Any], ...]
    shard_columns: tuple[sa.Column[Any], ...]
    data_columns: tuple[str, ...]
    read_columns: tuple[sa.Column[Any], ...]
    with_token: bool
    get_stmt: sa.Select[Any]
    delete_stmt: sa.Delete
    upsert_stmt: Any
    upsert_ttl_stmt: Any
    fast_get: Compiled
    fast_delete: Compiled
    fast_upsert: Compiled | None
    fast_upsert_ttl: Compiled | None
    fast_purge: Compiled

    @property
    def expires(self) -> sa.Column[Any]:
        return self.table.c[EXPIRES_FIELD]

    def live(self, now: float | None = None) -> sa.ColumnElement[bool]:
        """Not expired at ``now`` (a literal parameter; default: the bound ``_ps_now``)."""
        moment: Any = sa.bindparam(NOW, type_=sa.Double()) if now is None else sa.literal(now, sa.Double())
        return sa.or_(self.expires.is_(None), self.expires > moment)

    def select(self) -> sa.Select[Any]:
        return sa.select(*self.read_columns)

    def key_clause(self, key: Any) -> sa.ColumnElement[bool]:
        if len(self.key_columns) == 1:
            clause: sa.ColumnElement[bool] = self.key_columns[0] == key
            return clause
        return sa.and_(*(column == part for column, part in zip(self.key_columns, key, strict=True)))

    def keys_clause(self, keys: Sequence[Any]) -> sa.ColumnElement[bool]:
        if len(self.key_columns) == 1:
            return self.key_columns[0].in_(keys)
        return sa.tuple_(*self.key_columns).in_([tuple(key) for key in keys])


DRIVER_ERRORS: tuple[type[Exception], ...] = (
    IntegrityError,
    PoolTimeoutError,
    OperationalError,
    InterfaceError,
    NoSuchTableError,
    DBAPIError,
    SQLAlchemyError,
)
"""Every SQLAlchemy exception class ``translate_errors`` maps (DBAPI errors arrive wrapped in them)."""


@contextlib.contextmanager
def translate_errors(store: str, shard: str, key: Any = None) -> Iterator[None]:
    """Turn SQLAlchemy/DBAPI exceptions into the toolkit's hierarchy (see errors.py)."""
    try:
        yield
    except IntegrityError as exc:
        raise DuplicateKeyError(_first_line(exc), store=store, shard=shard, key=key) from exc
    except PoolTimeoutError as exc:
        raise StoreTimeout(
            f"no connection free in time: {_first_line(exc)}", store=store, shard=shard, key=key
        ) from exc
    except (OperationalError, InterfaceError) as exc:
        text = _first_line(exc)
        lowered = text.lower()
        if "locked" in lowered or "timeout" in lowered or "timed out" in lowered:
            raise StoreTimeout(text, store=store, shard=shard, key=key) from exc
        if exc.connection_invalidated or "connect" in lowered or "closed" in lowered or "unable to open" in lowered:
            raise StoreUnavailable(text, store=store, shard=shard, key=key) from exc
        raise StoreError(text, store=store, shard=shard, key=key, retryable=False) from exc
    except NoSuchTableError as exc:
        raise StoreError(f"no such table {exc}", store=store, shard=shard, key=key) from exc
    except DBAPIError as exc:
        raise StoreError(
            _first_line(exc), store=store, shard=shard, key=key, retryable=bool(exc.connection_invalidated)
        ) from exc
    except SQLAlchemyError as exc:
        raise StoreError(_first_line(exc), store=store, shard=shard, key=key) from exc


def _first_line(exc: BaseException) -> str:
    """The driver's message without the SQL and parameters SQLAlchemy appends."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__


class SqlHost:
    """What the capability mixins need from ``RelationalAdapter`` (which provides all of it)."""

    store: str
    shard: str
    engine: Engine
    dialect: str
    schema: str | None
    _tables: dict[str, TableSet]
    _lock: threading.Lock
    _edge_name: str
    _edges: EdgeTable | None
    _detach: Compiled | None

    def _table_name(self, schema: EntitySchema) -> str:
        raise NotImplementedError

    def _tableset(self, schema: EntitySchema) -> TableSet:
        raise NotImplementedError

    def _raw(self, key: Any = None, *, write: bool = False) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def _row_params(self, tables: TableSet, row: Row) -> dict[str, Any]:
        raise NotImplementedError

    def ensure(self, schema: EntitySchema, *, with_token: bool) -> None:
        raise NotImplementedError

    def get_many(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        raise NotImplementedError

    def _require_dialect(self, capability: str, needs: str) -> None:
        if self.dialect not in ("sqlite", "postgresql"):
            raise self._unsupported(f"{capability} (needs {needs})")

    def _unsupported(self, what: str) -> UnsupportedCapability:
        return UnsupportedCapability(
            f"{what} is implemented for SQLite and PostgreSQL, not {self.dialect}", store=self.store, shard=self.shard
        )
