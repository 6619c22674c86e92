"""The stack's PostgreSQL: two databases, each test's shards in schemas of their own."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tests.backends import Backend, shard_index
from tests.servers import postgres_urls, require


def engine_for(url: str) -> sa.Engine:
    """A plain SQLAlchemy engine on a shard database (psycopg 3), for setup and cleanup."""
    return sa.create_engine(url.split("?")[0].replace("postgresql://", "postgresql+psycopg://"))


def require_postgres(urls: list[str]) -> None:
    """The first shard database answers SELECT 1, or the test fails naming the server."""

    def probe() -> None:
        engine = engine_for(urls[0])
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()

    require("postgres", probe)


class Postgres(Backend):
    name = "postgres"
    scheme = "postgresql"
    marker = "postgres"

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
            engine = engine_for(base)
            try:
                with engine.begin() as connection:
                    connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                engine.dispose()
