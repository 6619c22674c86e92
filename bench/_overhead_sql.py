"""SQLite and PostgreSQL for bench/overhead.py: the repository against Core and the DBAPI driver.

Both baselines use the very table the relational adapter created (same columns, same
indexes, the hidden ``_ps_token`` and ``_ps_expires``), so every contender does the same
I/O. The DBAPI baselines are the lean way to use the driver: one statement per single
operation in autocommit (a lone upsert is atomic without BEGIN/COMMIT), ``executemany``
inside one transaction for the batch. The Core baselines are idiomatic SQLAlchemy:
``engine.connect()`` for a read, ``engine.begin()`` for a write, a reused statement.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import sqlalchemy as sa
from _overhead_common import Context, Op, Suite, Unreachable, each, endpoint, fill_and_check, polystore_side
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from adapters.sqlengine import sqlite_pragmas
from toolkit.config import RouterConfig, ShardConfig, StoreConfig, sqlite_url

COLUMNS = ("id", "name", "balance", "active", "_ps_token")


def _params(ctx: Context) -> list[tuple[Any, ...]]:
    return [
        (row["id"], row["name"], row["balance"], row["active"], tok)
        for row, tok in zip(ctx.data, ctx.tokens(), strict=True)
    ]


def _upsert_sql(table: str, mark: str) -> str:
    """The upsert the adapter runs, by hand: every column, ``_ps_expires`` cleared."""
    marks = ", ".join(mark for _ in COLUMNS)
    updates = ", ".join(f"{column} = excluded.{column}" for column in COLUMNS[1:])
    return (
        f'INSERT INTO "{table}" ({", ".join(COLUMNS)}, _ps_expires) VALUES ({marks}, NULL)'
        f" ON CONFLICT (id) DO UPDATE SET {updates}, _ps_expires = NULL"
    )


def _core(suite: Suite, engine: sa.Engine, table_name: str, ctx: Context, dialect: Any) -> None:
    """Register the SQLAlchemy Core baseline on ``engine`` over the adapter's table."""
    suite.cleanups.append(engine.dispose)
    table = sa.Table(table_name, sa.MetaData(), autoload_with=engine)
    insert = dialect.insert(table)
    upsert = insert.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={**{c: insert.excluded[c] for c in COLUMNS[1:]}, "_ps_expires": sa.null()},
    )
    select = sa.select(*(table.c[c] for c in COLUMNS)).where(table.c.id == sa.bindparam("k"))
    params = [dict(zip(COLUMNS, row, strict=True)) for row in _params(ctx)]

    def get(row: dict[str, Any]) -> None:
        with engine.connect() as connection:
            connection.execute(select, {"k": row["id"]}).first()

    def put(row: dict[str, Any]) -> None:
        with engine.begin() as connection:
            connection.execute(upsert, row)

    def put_many(lo: int, hi: int) -> None:
        with engine.begin() as connection:
            connection.execute(upsert, params[lo:hi])

    suite.contenders["sqlalchemy core"] = {"get": each(params, get), "put": each(params, put), "put_many": put_many}


def _dbapi(connection: Any, select: str, upsert: str, params: list[tuple[Any, ...]], put_many: Op) -> dict[str, Op]:
    """The DBAPI baseline: one autocommit statement per single operation, ``put_many`` for the batch."""
    return {
        "get": each(params, lambda row: connection.execute(select, (row[0],)).fetchone()),
        "put": each(params, lambda row: connection.execute(upsert, row)),
        "put_many": put_many,
    }


def build_sqlite(ctx: Context, suite: Suite) -> None:
    path = ctx.tmp / "store.db"
    suite.server = f"SQLite file {path.name} (WAL, synchronous=NORMAL)"
    store = StoreConfig(
        "bench", "relational", (ShardConfig("s0", sqlite_url(path)),), RouterConfig(), {"namespace": ctx.namespace}
    )
    _, repo, entities = polystore_side(ctx, suite, store)
    table_name = f"{ctx.namespace}account"

    engine = sa.create_engine(sqlite_url(path), connect_args={"check_same_thread": False})
    sa.event.listen(engine, "connect", sqlite_pragmas)  # the adapter's PRAGMAs: the same I/O
    _core(suite, engine, table_name, ctx, sqlite_dialect)

    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    suite.cleanups.append(connection.close)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    upsert = _upsert_sql(table_name, "?")
    select = f'SELECT {", ".join(COLUMNS)} FROM "{table_name}" WHERE id = ?'
    params = _params(ctx)

    def put_many(lo: int, hi: int) -> None:
        connection.execute("BEGIN")
        connection.executemany(upsert, params[lo:hi])
        connection.execute("COMMIT")

    suite.contenders["sqlite3"] = _dbapi(connection, select, upsert, params, put_many)
    fill_and_check(suite, repo, entities, ("sqlalchemy core", "sqlite3"))


def build_postgres(ctx: Context, suite: Suite) -> None:
    try:
        import psycopg
    except ImportError as exc:
        raise Unreachable(f"psycopg is not installed ({exc})") from exc
    url = endpoint("postgres", "shards", "POLYSTORE_POSTGRES_URL")[0]
    try:
        connection = psycopg.connect(url, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        raise Unreachable(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    suite.server = url.rpartition("@")[2]
    suite.cleanups.append(connection.close)
    store = StoreConfig(
        "bench",
        "relational",
        (ShardConfig("s0", url),),
        RouterConfig(),
        {"namespace": ctx.namespace, "pool_size": 2},
    )
    _, repo, entities = polystore_side(ctx, suite, store)
    table_name = f"{ctx.namespace}account"

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=2)
    _core(suite, engine, table_name, ctx, pg_dialect)

    upsert = _upsert_sql(table_name, "%s")
    select = f'SELECT {", ".join(COLUMNS)} FROM "{table_name}" WHERE id = %s'
    params = _params(ctx)

    def put_many(lo: int, hi: int) -> None:
        with connection.transaction(), connection.cursor() as cursor:
            cursor.executemany(upsert, params[lo:hi])

    suite.contenders["psycopg"] = _dbapi(connection, select, upsert, params, put_many)
    fill_and_check(suite, repo, entities, ("sqlalchemy core", "psycopg"))
