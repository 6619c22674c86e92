"""The same application, unchanged, on five real servers: only the config differs."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.integration.app import cleanup, config, exercise
from tests.servers import endpoint, require
from toolkit import Toolkit
from toolkit.config import sqlite_url

pytestmark = [pytest.mark.postgres, pytest.mark.mongo, pytest.mark.redis, pytest.mark.cassandra, pytest.mark.neo4j]


def _ping_all() -> None:
    import pymongo
    import redis
    from cassandra.cluster import Cluster
    from neo4j import GraphDatabase

    def postgres() -> None:
        engine = sa.create_engine(endpoint("postgres")[0].replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()

    def mongo() -> None:
        with pymongo.MongoClient(endpoint("mongo")[0], serverSelectionTimeoutMS=3000) as client:
            client.admin.command("ping")

    def redis_() -> None:
        redis.Redis.from_url(endpoint("redis")[0], socket_timeout=3).ping()

    def cassandra() -> None:
        host, _, port = endpoint("cassandra")[0].removeprefix("cassandra://").partition(":")
        cluster = Cluster([host], port=int(port or 9042), connect_timeout=5)
        cluster.connect().shutdown()
        cluster.shutdown()

    def neo4j() -> None:
        with GraphDatabase.driver(endpoint("neo4j")[0]) as driver:
            driver.verify_connectivity()

    for service, probe in [
        ("postgres", postgres),
        ("mongo", mongo),
        ("redis", redis_),
        ("cassandra", cassandra),
        ("neo4j", neo4j),
    ]:
        require(service, probe)


def test_the_app_runs_on_five_real_backends(tmp_path: Path) -> None:
    _ping_all()
    run = f"app{uuid.uuid4().hex[:8]}_"
    cassandra = endpoint("cassandra")[0].removeprefix("cassandra://")
    shards = {
        "customers": [f"{url}?schema={run}s{i}" for i, url in enumerate(endpoint("postgres")[:2])],
        "profiles": endpoint("mongo")[:2],
        "sessions": endpoint("redis")[:2],
        "events": [f"cassandra://{cassandra}/polystore_app{i}" for i in range(2)],
        "social": endpoint("neo4j")[:2],
    }
    toolkit = Toolkit(config(shards, sqlite_url(tmp_path / "catalog.db"), tmp_path, run))
    try:
        exercise(toolkit)
        assert [toolkit.store(name).shard_urls["s0"].split(":", 1)[0] for name in shards] == [
            "postgresql",
            "mongodb",
            "redis",
            "cassandra",
            "bolt",
        ]
    finally:
        try:
            cleanup(toolkit)
            for i, url in enumerate(endpoint("postgres")[:2]):
                engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
                with engine.begin() as connection:
                    connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{run}s{i}" CASCADE')
                engine.dispose()
        finally:
            toolkit.close()
