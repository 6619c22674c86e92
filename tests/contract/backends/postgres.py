"""The stack's PostgreSQL: two databases, each test's shards in schemas of their own."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tests.contract.backends import ContractBackend
from tests.servers import postgres_urls, require
from toolkit import Toolkit


def require_postgres(urls: list[str]) -> None:
    """The first shard database answers SELECT 1, or the test fails naming the server."""

    def probe() -> None:
        engine = sa.create_engine(urls[0].replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()

    require("postgres", probe)


class PostgresBackend(ContractBackend):
    name = "postgres"
    scheme = "postgresql"
    marker = "postgres"

    def connect(self) -> None:
        _, self.urls = postgres_urls()
        require_postgres(self.urls)

    def shard_url(self, index: int) -> str:
        """Databases are reused round-robin; every shard gets its own schema."""
        return f"{self.urls[index % len(self.urls)]}?schema={self.prefix}s{index}"

    def options(self) -> dict[str, Any]:
        return {"pool_size": 2, "namespace": self.prefix}

    def cleanup(self, toolkit: Toolkit) -> None:
        for store in toolkit._stores.values():
            for shard in store.router.shards:
                adapter: Any = store.adapter(shard)
                with adapter.engine.begin() as connection:
                    connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{adapter.schema}" CASCADE')
