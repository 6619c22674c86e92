"""Where the rebalance tests put their shards: SQLite files, or the stack's servers.

Each server-backed layout isolates the test (a PostgreSQL schema per shard, a
collection prefix on the MongoDB-wire server) and drops what it made afterwards.
An unreachable server fails the test (``tests.servers.require``); it is never skipped.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.servers import postgres_urls, require


class Layout:
    """Shard URLs by name for one test, and the store options that isolate it."""

    name = "sqlite"
    kind = "relational"

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.prefix = f"t{uuid.uuid4().hex[:8]}_"

    def connect(self) -> None:
        """Fail the test if the server is not there."""

    def url(self, shard: str) -> str:
        return f"sqlite:///{self.tmp / (shard + '.db')}"

    def shards(self, count: int, prefix: str = "s") -> dict[str, str]:
        return {f"{prefix}{i}": self.url(f"{prefix}{i}") for i in range(count)}

    def options(self) -> str:
        return ""

    def cleanup(self) -> None:
        """Drop what the test made on the servers."""


class Postgres(Layout):
    name = "postgres"

    def connect(self) -> None:
        from tests.contract.backends.postgres import require_postgres

        _, self.urls = postgres_urls()
        require_postgres(self.urls)
        self.made: list[tuple[str, str]] = []

    def url(self, shard: str) -> str:
        base = self.urls[int(shard.lstrip("abcdefghijklmnopqrstuvwxyz") or 0) % len(self.urls)]
        self.made.append((base, f"{self.prefix}{shard}"))
        return f"{base}?schema={self.prefix}{shard}"

    def options(self) -> str:
        return "pool_size = 4"

    def cleanup(self) -> None:
        for base, schema in set(self.made):
            engine = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://"))
            try:
                with engine.begin() as connection:
                    connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                engine.dispose()


class Mongo(Layout):
    name = "mongo"
    kind = "document"

    def connect(self) -> None:
        from tests.contract.backends.mongo import _with_database, mongo_urls, require_mongo

        self.urls = mongo_urls()
        self._with_database = _with_database
        require_mongo(self.urls)

    def url(self, shard: str) -> str:
        return self._with_database(self.urls[0], f"polystore_{shard}")

    def options(self) -> str:
        return f'namespace = "{self.prefix}"'

    def cleanup(self) -> None:
        import pymongo

        client: Any = pymongo.MongoClient(self.urls[0], serverSelectionTimeoutMS=3000)
        try:
            for database in client.list_database_names():
                if not database.startswith("polystore_"):
                    continue
                for name in client[database].list_collection_names():
                    if name.startswith(self.prefix):
                        client[database].drop_collection(name)
        finally:
            client.close()


class Redis(Layout):
    name = "redis"
    kind = "keyvalue"

    def connect(self) -> None:
        from tests.contract.backends.redis import redis_urls, require_redis

        self.urls = redis_urls()
        require_redis(self.urls)

    def url(self, shard: str) -> str:
        index = int(shard.lstrip("abcdefghijklmnopqrstuvwxyz") or 0)
        base = self.urls[index % len(self.urls)].rsplit("/", 1)[0]
        return f"{base}/{index // len(self.urls) + 1}"

    def options(self) -> str:
        return f'namespace = "{self.prefix}"'

    def cleanup(self) -> None:
        import redis

        for url in self.urls:
            base = url.rsplit("/", 1)[0]
            for database in range(1, 4):
                client = redis.Redis.from_url(f"{base}/{database}", socket_connect_timeout=3)
                try:
                    keys = list(client.scan_iter(match=f"*{self.prefix}*"))
                    if keys:
                        client.delete(*keys)
                finally:
                    client.close()


class Cassandra(Layout):
    """One keyspace per shard (``polystore_c<N>``, kept between runs, as the contract
    suite does) and a table prefix per test; cleanup drops the test's tables."""

    name = "cassandra"
    kind = "column"

    def connect(self) -> None:
        from tests.contract.backends.cassandra import cassandra_points

        self.points = cassandra_points()
        self.keyspaces: set[str] = set()

        def probe() -> None:
            from adapters.column import ColumnAdapter

            adapter = ColumnAdapter(self.url("s0"), store="probe", shard="probe")
            try:
                adapter.ping()
            finally:
                adapter.close()

        require("cassandra", probe)

    def url(self, shard: str) -> str:
        index = int(shard.lstrip("abcdefghijklmnopqrstuvwxyz") or 0)
        keyspace = f"polystore_c{index}"
        if hasattr(self, "keyspaces"):
            self.keyspaces.add(keyspace)
        return f"cassandra://{self.points}/{keyspace}"

    def options(self) -> str:
        return f'namespace = "{self.prefix}"'

    def cleanup(self) -> None:
        from cassandra.cluster import Cluster

        host, _, port = self.points.split(",")[0].partition(":")
        cluster = Cluster([host], port=int(port or 9042))
        try:
            session = cluster.connect()
            for keyspace in sorted(self.keyspaces):
                rows = session.execute(
                    "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
                )
                for row in rows:
                    if row.table_name.startswith(self.prefix):
                        session.execute(f"DROP TABLE IF EXISTS {keyspace}.{row.table_name}")
        finally:
            cluster.shutdown()


class Neo4j(Layout):
    """The stack's two Neo4j servers, shards round-robin over them, each with its own
    label prefix (``?prefix=``); the test's namespace isolates it; cleanup deletes its
    nodes, constraints and indexes."""

    name = "neo4j"
    kind = "graph"

    def connect(self) -> None:
        from tests.contract.backends.neo4j import neo4j_urls, require_neo4j

        self.urls = neo4j_urls()
        require_neo4j(self.urls)

    def url(self, shard: str) -> str:
        index = int(shard.lstrip("abcdefghijklmnopqrstuvwxyz") or 0)
        return f"{self.urls[index % len(self.urls)]}?prefix={shard}_"

    def options(self) -> str:
        return f'namespace = "{self.prefix}"'

    def cleanup(self) -> None:
        from tests.contract.backends.neo4j import sweep

        for url in dict.fromkeys(self.urls):
            sweep(url, self.prefix)
