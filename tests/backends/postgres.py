"""The stack's PostgreSQL: two databases, each test's shards in schemas of their own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from tests.backends import Backend, shard_index
from tests.servers import postgres_urls, require


def engine_for(url: str) -> sa.Engine:
    """A plain SQLAlchemy engine on a shard database (psycopg 3), for setup and cleanup."""
    return sa.create_engine(url.split("?")[0].replace("postgresql://", "postgresql+psycopg://"))


@contextmanager
def transaction_on(url: str) -> Iterator[sa.Connection]:
    """A transaction on a throwaway engine (disposed after): setup, probes and cleanup."""
    engine = engine_for(url)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def drop_tables(url: str, prefix: str) -> None:
    """Drop the tables whose names start with ``prefix`` in the shard's schema (its
    ``?schema=``, else the database's current schema): a test's cleanup."""
    base, _, schema = url.partition("?schema=")
    with transaction_on(base) as connection:
        schema = schema or connection.execute(sa.text("SELECT current_schema()")).scalar_one()
        tables = connection.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}
        ).scalars()
        for table in [t for t in tables if t.startswith(prefix)]:
            connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{schema}"."{table}" CASCADE')


def require_postgres(urls: list[str]) -> None:
    """The first shard database answers SELECT 1, or the test fails naming the server."""

    def probe() -> None:
        with transaction_on(urls[0]) as connection:
            connection.execute(sa.text("SELECT 1"))

    require("postgres", probe)


class Postgres(Backend, name="postgres", scheme="postgresql", marker="postgres"):
    def connect(self) -> None:
        _, self.urls = postgres_urls()
        require_postgres(self.urls)

    def _url(self, shard: str) -> str:
        """Databases are reused round-robin; every shard gets its own schema."""
        return f"{self.urls[shard_index(shard) % len(self.urls)]}?schema={self.prefix}{shard}"

    def options(self) -> dict[str, Any]:
        return {"pool_size": 2, "namespace": self.prefix}

    def cleanup(self) -> None:
        for url in set(self.made.values()):
            base, _, schema = url.partition("?schema=")
            with transaction_on(base) as connection:
                connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
