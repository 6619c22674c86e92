"""SQLAlchemy engines the way polystore opens them: for the relational adapter and the catalog.

Both the relational adapter (a shard) and the catalog (polystore's own metadata) talk
SQL through SQLAlchemy; they must agree on the driver a URL means (psycopg 3 for
``postgresql://``) and on SQLite's connection settings (WAL, so that readers run beside
a writer). This module is that agreement, so neither reaches into the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

__all__ = ["create_sql_engine", "sqlalchemy_url", "sqlite_pragmas"]


def sqlalchemy_url(url: str) -> tuple[str, str | None]:
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


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside a writer; NORMAL sync is durable across app crashes."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_sql_engine(
    url: str,
    *,
    busy_timeout: float = 30.0,
    pool_size: int | None = None,
    connect_timeout: int = 10,
    make_dirs: bool = False,
) -> Engine:
    """An engine for a SQLAlchemy URL (already translated by ``sqlalchemy_url``).

    SQLite gets WAL and a ``busy_timeout`` (seconds a writer waits for a lock), and with
    ``make_dirs`` the file's directory is created; PostgreSQL a ``connect_timeout``.
    """
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        path = url.partition(":///")[2].partition("?")[0]
        if make_dirs and path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": busy_timeout}
    else:
        if pool_size is not None:
            kwargs["pool_size"] = pool_size
        if url.startswith("postgresql"):
            kwargs["connect_args"] = {"connect_timeout": connect_timeout}
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", sqlite_pragmas)
    return engine
