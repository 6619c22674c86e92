"""The same application, unchanged, on five real servers: only the config differs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends import Backend
from tests.backends.cassandra import Cassandra
from tests.backends.mongo import Mongo
from tests.backends.neo4j import Neo4j
from tests.backends.postgres import Postgres
from tests.backends.redis import Redis
from tests.integration.app import config, exercise
from toolkit import Toolkit
from toolkit.config import sqlite_url

pytestmark = [pytest.mark.postgres, pytest.mark.mongo, pytest.mark.redis, pytest.mark.cassandra, pytest.mark.neo4j]


def test_the_app_runs_on_five_real_backends(tmp_path: Path) -> None:
    backends: dict[str, Backend] = {
        "customers": Postgres(tmp_path),
        "profiles": Mongo(tmp_path),
        "sessions": Redis(tmp_path),
        "events": Cassandra(tmp_path),
        "social": Neo4j(tmp_path),
    }
    for backend in backends.values():
        backend.connect()
    toolkit = Toolkit(config(backends, sqlite_url(tmp_path / "catalog.db"), tmp_path))
    try:
        exercise(toolkit)
        assert [toolkit.store(name).shard_urls["s0"].split(":", 1)[0] for name in backends] == [
            "postgresql",
            "mongodb",
            "redis",
            "cassandra",
            "bolt",
        ]
    finally:
        toolkit.close()
        for backend in backends.values():
            backend.cleanup()
