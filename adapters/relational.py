"""The relational adapter: SQLAlchemy Core over SQLite (the embedded default),
PostgreSQL (psycopg 3) and MySQL/MariaDB.

Design choices, and why:

* Tables come from the entity declaration: scalar fields become typed columns, nested
  fields one JSON column each (JSONB on PostgreSQL), the key the primary key.
* Strings use the byte-order ``"C"`` collation on PostgreSQL, so ``ORDER BY`` and range
  filters agree with Python's ordering (which the fan-out merge and the range router
  rely on); SQLite's default BINARY collation already does.
* Upserts are the dialect's own (``ON CONFLICT DO UPDATE`` / ``ON DUPLICATE KEY``): one
  round trip, idempotent, safe to repeat during a rebalance copy.
* Hash-routed tables carry ``_ps_token`` (BIGINT, indexed with the key): reading a token
  range is an index range scan, not a full scan.
* Statements are built once per table and reused, so SQLAlchemy's compiled cache hits.
* Every SQLAlchemy/DBAPI exception is translated into ``toolkit.errors`` here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import operator
import re
import threading
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine
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

from adapters.base import TOKEN_FIELD, Adapter, Capability, Filter, Query, Row, ShardInfo
from adapters.registry import redact_url
from sharding.base import KeyRange, TokenRange
from toolkit.errors import (
    ConfigError,
    DuplicateKeyError,
    QueryError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from toolkit.model import EntitySchema, FieldSpec

__all__ = ["RelationalAdapter", "translate_errors"]

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

_IN_CHUNK = 500
"""Keys per ``IN (...)`` list: below every backend's parameter limit."""


def _sqlalchemy_url(url: str) -> tuple[str, str | None]:
    """The SQLAlchemy URL (with the driver polystore uses) and the ``schema`` parameter.

    ``?schema=NAME`` puts a shard's tables in a schema of its own, so several shards
    can share one PostgreSQL database.
    """
    parsed = sa.engine.make_url(url)
    schema = parsed.query.get("schema")
    if isinstance(schema, tuple):
        schema = schema[-1]
    parsed = parsed.difference_update_query(["schema"])
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend in ("mysql", "mariadb") and "+" not in parsed.drivername:
        parsed = parsed.set(drivername="mysql+pymysql")
    return parsed.render_as_string(hide_password=False), schema


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Datetimes stored as UTC instants on every dialect.

    Naive values are taken as UTC; values come back timezone-aware in UTC. On SQLite
    (which has no datetime type) they are fixed-width ISO strings, so text order is
    time order and range filters and ORDER BY stay correct.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(26))
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, not {type(value).__name__}")
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")
        return value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]
        return value.astimezone(dt.UTC)  # type: ignore[no-any-return]


def _column_type(spec: FieldSpec, *, keyish: bool) -> sa.types.TypeEngine[Any]:
    string: sa.types.TypeEngine[Any] = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
    if keyish:  # MySQL cannot index TEXT without a length
        string = string.with_variant(sa.String(255, collation="utf8mb4_bin"), "mysql", "mariadb")
    types: dict[str, sa.types.TypeEngine[Any]] = {
        "str": string,
        "int": sa.BigInteger(),
        "float": sa.Double(),
        "bool": sa.Boolean(),
        "bytes": sa.LargeBinary(),
        "datetime": UTCDateTime(),
        "date": sa.Date(),
        "decimal": sa.Numeric(asdecimal=True),
        "uuid": sa.Uuid(),
        "json": sa.JSON().with_variant(pg_dialect.JSONB(), "postgresql"),
    }
    return types[spec.type]


_Processor = Callable[[Any], Any] | None


class _Compiled:
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
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names
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


@dataclass(frozen=True, slots=True)
class _TableSet:
    """A table and the statements reused for it."""

    table: sa.Table
    key_columns: tuple[sa.Column[Any], ...]
    shard_columns: tuple[sa.Column[Any], ...]
    data_columns: tuple[str, ...]
    with_token: bool
    get_stmt: sa.Select[Any]
    delete_stmt: sa.Delete
    upsert_stmt: Any
    fast_get: _Compiled
    fast_delete: _Compiled
    fast_upsert: _Compiled | None

    def key_clause(self, key: Any) -> sa.ColumnElement[bool]:
        if len(self.key_columns) == 1:
            clause: sa.ColumnElement[bool] = self.key_columns[0] == key
            return clause
        return sa.and_(*(column == part for column, part in zip(self.key_columns, key, strict=True)))

    def keys_clause(self, keys: Sequence[Any]) -> sa.ColumnElement[bool]:
        if len(self.key_columns) == 1:
            return self.key_columns[0].in_(keys)
        return sa.tuple_(*self.key_columns).in_([tuple(key) for key in keys])


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


class RelationalAdapter(Adapter):
    """One shard in one SQL database. See the module docstring."""

    capabilities: ClassVar[Capability] = Capability.TRANSACTIONS

    def __init__(self, url: str, *, store: str, shard: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, store=store, shard=shard, options=options)
        # ``namespace``: a prefix for every table, so several apps (or tests) share a database.
        self._prefix = str(self.options.get("namespace", ""))
        self.engine = self._create_engine()
        self.dialect = self.engine.dialect.name
        self._metadata = sa.MetaData()
        self._tables: dict[str, _TableSet] = {}
        self._lock = threading.Lock()

    def _create_engine(self) -> Engine:
        url, self.schema = _sqlalchemy_url(self.url)
        if self.schema is not None and (url.startswith("sqlite") or not _SCHEMA_NAME.match(self.schema)):
            raise ConfigError(f"{redact_url(self.url)}: schema= is for PostgreSQL/MySQL and must be a plain name")
        kwargs: dict[str, Any] = {}
        pool_size = self.options.get("pool_size")
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {
                "check_same_thread": False,
                "timeout": float(self.options.get("busy_timeout", 30)),
            }
        elif pool_size is not None:
            kwargs["pool_size"] = int(pool_size)
        connect_timeout = self.options.get("connect_timeout", 10)
        if url.startswith("postgresql"):
            kwargs["connect_args"] = {"connect_timeout": int(connect_timeout)}
        with translate_errors(self.store, self.shard):
            engine = sa.create_engine(url, **kwargs)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        return engine

    # -- schema ----------------------------------------------------------------------
    def _table_name(self, schema: EntitySchema) -> str:
        return f"{self._prefix}{schema.name}"

    def ensure(self, schema: EntitySchema, *, with_token: bool) -> None:
        name = self._table_name(schema)
        with self._lock:
            if name in self._tables:
                return
            keyish = set(schema.key) | set(schema.shard_key) | {field for index in schema.indexes for field in index}
            columns: list[sa.Column[Any]] = [
                sa.Column(
                    spec.name,
                    _column_type(spec, keyish=spec.name in keyish),
                    primary_key=spec.name in schema.key,
                    nullable=spec.nullable and spec.name not in schema.key,
                )
                for spec in schema.fields
            ]
            if with_token:
                columns.append(sa.Column(TOKEN_FIELD, sa.BigInteger(), nullable=False))
            table = sa.Table(name, self._metadata, *columns, schema=self.schema)
            key_columns = tuple(table.c[field] for field in schema.key)
            if with_token:
                sa.Index(f"ix_{name}_ps_token", table.c[TOKEN_FIELD], *key_columns)
            if schema.shard_key != schema.key:
                sa.Index(f"ix_{name}_ps_shard", *(table.c[field] for field in schema.shard_key))
            for index in schema.indexes:
                sa.Index(f"ix_{name}_{'_'.join(index)}", *(table.c[field] for field in index))
            with translate_errors(self.store, self.shard):
                if self.schema is not None:
                    with self.engine.begin() as connection:
                        connection.execute(sa.schema.CreateSchema(self.schema, if_not_exists=True))
                self._metadata.create_all(self.engine, tables=[table], checkfirst=True)
            data_columns = tuple(column.name for column in table.columns)
            get_stmt = sa.select(table).where(
                sa.and_(*(column == sa.bindparam(f"k_{column.name}") for column in key_columns))
            )
            delete_stmt = table.delete().where(
                sa.and_(*(column == sa.bindparam(f"k_{column.name}") for column in key_columns))
            )
            upsert_stmt = self._upsert_statement(table, key_columns)
            dialect = self.engine.dialect
            self._tables[name] = _TableSet(
                table=table,
                key_columns=key_columns,
                shard_columns=tuple(table.c[field] for field in schema.shard_key),
                data_columns=data_columns,
                with_token=with_token,
                get_stmt=get_stmt,
                delete_stmt=delete_stmt,
                upsert_stmt=upsert_stmt,
                fast_get=_Compiled(get_stmt, dialect, list(table.columns)),
                fast_delete=_Compiled(delete_stmt, dialect),
                fast_upsert=_Compiled(upsert_stmt, dialect) if upsert_stmt is not None else None,
            )

    def _upsert_statement(self, table: sa.Table, key_columns: tuple[sa.Column[Any], ...]) -> Any:
        non_key = [column for column in table.columns if column not in key_columns]
        if self.dialect == "sqlite":
            insert = sqlite_dialect.insert(table)
            return (
                insert.on_conflict_do_update(
                    index_elements=list(key_columns), set_={c.name: insert.excluded[c.name] for c in non_key}
                )
                if non_key
                else insert.on_conflict_do_nothing(index_elements=list(key_columns))
            )
        if self.dialect == "postgresql":
            pg_insert = pg_dialect.insert(table)
            return (
                pg_insert.on_conflict_do_update(
                    index_elements=list(key_columns),
                    set_={c.name: pg_insert.excluded[c.name] for c in non_key},
                )
                if non_key
                else pg_insert.on_conflict_do_nothing(index_elements=list(key_columns))
            )
        if self.dialect in ("mysql", "mariadb"):
            my_insert = mysql_dialect.insert(table)
            target = non_key or list(key_columns)
            return my_insert.on_duplicate_key_update({c.name: my_insert.inserted[c.name] for c in target})
        return None  # generic fallback: delete + insert in one transaction

    def _tableset(self, schema: EntitySchema) -> _TableSet:
        found = self._tables.get(self._table_name(schema))
        if found is None:
            raise StoreError(f"table for {schema.name!r} not ensured", store=self.store, shard=self.shard)
        return found

    def drop(self, schema: EntitySchema) -> None:
        name = self._table_name(schema)
        with self._lock, translate_errors(self.store, self.shard):
            table = self._tables.pop(name, None)
            if table is not None:
                table.table.drop(self.engine, checkfirst=True)
                self._metadata.remove(table.table)
            else:
                sa.Table(name, sa.MetaData(), schema=self.schema).drop(self.engine, checkfirst=True)

    # -- health ----------------------------------------------------------------------
    def ping(self) -> None:
        with translate_errors(self.store, self.shard), self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    def describe(self) -> ShardInfo:
        try:
            with translate_errors(self.store, self.shard), self.engine.connect() as connection:
                names = sa.inspect(connection).get_table_names(schema=self.schema)
                counts = {}
                for name in sorted(names):
                    if self._prefix and not name.startswith(self._prefix):
                        continue
                    table = sa.table(name, schema=self.schema)
                    counts[name.removeprefix(self._prefix)] = int(
                        connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                    )
                return ShardInfo(reachable=True, tables=counts, server=f"{self.dialect} {redact_url(self.url)}")
        except StoreError as exc:
            return ShardInfo(reachable=False, error=str(exc), server=redact_url(self.url))

    def close(self) -> None:
        self.engine.dispose()

    # -- the hot path ----------------------------------------------------------------
    @contextlib.contextmanager
    def _raw(self, key: Any = None, *, write: bool = False) -> Iterator[Any]:
        """A pooled DBAPI cursor; commits a write, and maps driver errors like SQLAlchemy does."""
        dialect = self.engine.dialect
        dbapi_error = dialect.loaded_dbapi.Error
        with translate_errors(self.store, self.shard, key):
            raw = self.engine.raw_connection()
            cursor = None
            try:
                cursor = raw.cursor()
                yield cursor
                if write:
                    raw.commit()
            except dbapi_error as exc:
                disconnected = dialect.is_disconnect(exc, raw.dbapi_connection, cursor)
                if disconnected:
                    raw.invalidate(exc)
                else:
                    with contextlib.suppress(dbapi_error):
                        raw.rollback()
                raise DBAPIError.instance(
                    None, None, exc, dbapi_error, connection_invalidated=disconnected, dialect=dialect
                ) from exc
            finally:
                if cursor is not None:
                    with contextlib.suppress(dbapi_error):
                        cursor.close()
                raw.close()

    # -- rows ------------------------------------------------------------------------
    @staticmethod
    def _key_params(tables: _TableSet, key: Any) -> dict[str, Any]:
        if len(tables.key_columns) == 1:
            return {f"k_{tables.key_columns[0].name}": key}
        return {f"k_{column.name}": part for column, part in zip(tables.key_columns, key, strict=True)}

    def _row_params(self, tables: _TableSet, row: Row) -> dict[str, Any]:
        try:
            return {name: row[name] for name in tables.data_columns}
        except KeyError as exc:
            raise QueryError(f"row for {tables.table.name} lacks field {exc.args[0]!r}") from None

    def put(self, schema: EntitySchema, row: Row) -> None:
        tables = self._tableset(schema)
        params = self._row_params(tables, row)
        if tables.fast_upsert is None:
            with translate_errors(self.store, self.shard, schema.key_of(row)), self.engine.begin() as connection:
                self._upsert(connection, tables, [params])
            return
        with self._raw(schema.key_of(row), write=True) as cursor:
            cursor.execute(tables.fast_upsert.sql, tables.fast_upsert.params(params))

    def put_many(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        if not rows:
            return 0
        tables = self._tableset(schema)
        fast = tables.fast_upsert
        if fast is None:
            unique = {schema.key_of(row): self._row_params(tables, row) for row in rows}
            with translate_errors(self.store, self.shard), self.engine.begin() as connection:
                self._upsert(connection, tables, list(unique.values()))
            return len(unique)
        # Executed in order, so the last write of a key within one batch wins, as with puts.
        with self._raw(write=True) as cursor:
            cursor.executemany(fast.sql, [fast.params(row) for row in rows])
        if len(schema.key) == 1:
            return len(set(map(operator.itemgetter(schema.key[0]), rows)))
        return len({schema.key_of(row) for row in rows})

    def _upsert(self, connection: Connection, tables: _TableSet, params: list[dict[str, Any]]) -> None:
        if tables.upsert_stmt is not None:
            connection.execute(tables.upsert_stmt, params)
            return
        for row in params:
            key = tuple(row[column.name] for column in tables.key_columns)
            connection.execute(tables.table.delete().where(tables.key_clause(key if len(key) > 1 else key[0])))
        connection.execute(tables.table.insert(), params)

    def get(self, schema: EntitySchema, key: Any) -> Row | None:
        tables = self._tableset(schema)
        fast = tables.fast_get
        with self._raw(key) as cursor:
            cursor.execute(fast.sql, fast.params(self._key_params(tables, key)))
            found = cursor.fetchone()
            return fast.row(found, cursor.description) if found is not None else None

    def get_many(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        tables = self._tableset(schema)
        rows: list[Row] = []
        with translate_errors(self.store, self.shard), self.engine.connect() as connection:
            for start in range(0, len(keys), _IN_CHUNK):
                chunk = keys[start : start + _IN_CHUNK]
                result = connection.execute(sa.select(tables.table).where(tables.keys_clause(chunk)))
                rows.extend(dict(row) for row in result.mappings())
        return rows

    def delete(self, schema: EntitySchema, key: Any) -> bool:
        tables = self._tableset(schema)
        fast = tables.fast_delete
        with self._raw(key, write=True) as cursor:
            cursor.execute(fast.sql, fast.params(self._key_params(tables, key)))
            return bool(cursor.rowcount)

    def delete_many(self, schema: EntitySchema, keys: Sequence[Any]) -> int:
        tables = self._tableset(schema)
        deleted = 0
        with translate_errors(self.store, self.shard), self.engine.begin() as connection:
            for start in range(0, len(keys), _IN_CHUNK):
                chunk = list(dict.fromkeys(keys[start : start + _IN_CHUNK]))
                deleted += connection.execute(tables.table.delete().where(tables.keys_clause(chunk))).rowcount
        return deleted

    # -- queries ---------------------------------------------------------------------
    def _column(self, schema: EntitySchema, tables: _TableSet, field: str) -> sa.Column[Any]:
        if field not in tables.table.c or field == TOKEN_FIELD:
            raise QueryError(f"{schema.name}: unknown field {field!r} (fields: {', '.join(schema.field_names)})")
        if schema.field(field).type == "json":
            raise QueryError(
                f"{schema.name}.{field}: is a nested (JSON) field; filtering and ordering on it needs the "
                "document kind's nested filters"
            )
        return tables.table.c[field]

    def _where(
        self, schema: EntitySchema, tables: _TableSet, filters: Sequence[Filter]
    ) -> list[sa.ColumnElement[bool]]:
        clauses: list[sa.ColumnElement[bool]] = []
        for item in filters:
            column = self._column(schema, tables, item.field)
            value = item.value
            if item.op == "eq":
                clauses.append(column.is_(None) if value is None else column == value)
            elif item.op == "ne":
                # Python semantics: null != 'x' is true, so nulls are kept.
                clauses.append(column.is_not(None) if value is None else sa.or_(column != value, column.is_(None)))
            elif item.op == "in":
                values = list(value)
                has_null = None in values
                values = [v for v in values if v is not None]
                clause = column.in_(values) if values else sa.false()
                clauses.append(sa.or_(clause, column.is_(None)) if has_null else clause)
            elif value is None:
                clauses.append(sa.false())
            elif item.op == "lt":
                clauses.append(column < value)
            elif item.op == "le":
                clauses.append(column <= value)
            elif item.op == "gt":
                clauses.append(column > value)
            else:
                clauses.append(column >= value)
        return clauses

    def _order(self, schema: EntitySchema, tables: _TableSet, query: Query) -> list[Any]:
        order: list[Any] = []
        seen: set[str] = set()
        for item in query.order_by:
            column = self._column(schema, tables, item.field)
            seen.add(item.field)
            order.append(column.desc().nulls_last() if item.descending else column.asc().nulls_first())
        order.extend(column.asc() for column in tables.key_columns if column.name not in seen)
        return order

    def find(self, schema: EntitySchema, query: Query) -> list[Row]:
        tables = self._tableset(schema)
        stmt = sa.select(tables.table).where(*self._where(schema, tables, query.filters))
        stmt = stmt.order_by(*self._order(schema, tables, query))
        if query.limit is not None:
            stmt = stmt.limit(query.limit)
        with translate_errors(self.store, self.shard), self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(stmt).mappings()]

    def count(self, schema: EntitySchema, filters: Sequence[Filter] = ()) -> int:
        tables = self._tableset(schema)
        stmt = sa.select(sa.func.count()).select_from(tables.table).where(*self._where(schema, tables, filters))
        with translate_errors(self.store, self.shard), self.engine.connect() as connection:
            return int(connection.execute(stmt).scalar_one())

    def scan(
        self,
        schema: EntitySchema,
        *,
        tokens: TokenRange | None = None,
        keys: KeyRange | None = None,
        batch_size: int = 500,
    ) -> Iterator[list[Row]]:
        tables = self._tableset(schema)
        table = tables.table
        if batch_size < 1:
            raise QueryError(f"batch_size must be positive, not {batch_size}")
        bounds: list[sa.ColumnElement[bool]] = []
        order_columns: list[sa.Column[Any]] = list(tables.key_columns)
        if tokens is not None:
            if not tables.with_token:
                raise QueryError(f"{schema.name}: a token range scan needs a hash-routed store")
            token = table.c[TOKEN_FIELD]
            bounds += [token >= tokens.start, token < tokens.end]
            order_columns = [token, *tables.key_columns]
        if keys is not None:
            shard = sa.tuple_(*tables.shard_columns) if len(tables.shard_columns) > 1 else tables.shard_columns[0]
            if keys.lower is not None:
                bounds.append(shard >= keys.lower)
            if keys.upper is not None:
                bounds.append(shard < keys.upper)
        position: tuple[Any, ...] | None = None
        while True:
            stmt = sa.select(table).where(*bounds)
            if position is not None:
                after = (
                    sa.literal(value, type_=column.type) for value, column in zip(position, order_columns, strict=True)
                )
                stmt = stmt.where(sa.tuple_(*order_columns) > sa.tuple_(*after))
            stmt = stmt.order_by(*order_columns).limit(batch_size)
            with translate_errors(self.store, self.shard), self.engine.connect() as connection:
                batch = [dict(row) for row in connection.execute(stmt).mappings()]
            if not batch:
                return
            yield batch
            if len(batch) < batch_size:
                return
            position = tuple(batch[-1][column.name] for column in order_columns)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside a writer; NORMAL sync is durable across app crashes."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
