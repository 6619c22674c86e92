"""Saga tests: an embedded toolkit per test, and policies that do not make tests wait."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit import Entity, Toolkit
from toolkit.saga import LeasePolicy, RetryPolicy

FAST = RetryPolicy(max_attempts=3, initial_interval=0.001, max_interval=0.005)
FAST_COMP = RetryPolicy(max_attempts=3, initial_interval=0.001, max_interval=0.005, retry_all=True)
SHORT_LEASE = LeasePolicy(ttl=2.0, heartbeat=0.5, margin=0.2, wait_interval=0.01)


class Item(Entity, store="saga_items", key="id"):
    id: str
    value: int = 0


class Counter(Entity, store="saga_counters", key="id"):
    id: str
    n: int = 0


@pytest.fixture
def toolkit(tmp_path: Path) -> Iterator[Toolkit]:
    with Toolkit.embedded(tmp_path / "data") as built:
        built.sagas.lease = SHORT_LEASE
        yield built


def _postgres_catalog() -> Iterator[str]:
    """A catalog of the test's own: a fresh schema in the stack's catalog database."""
    import uuid

    import sqlalchemy as sa

    from tests.backends.postgres import Postgres
    from tests.servers import postgres_urls

    Postgres(Path(".")).connect()
    url, _ = postgres_urls()
    schema = f"saga_t_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog_toolkit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Toolkit]:
    """An embedded toolkit whose catalog (and so the saga log) is SQLite or PostgreSQL."""
    from toolkit.config import CatalogConfig, Config

    data = tmp_path / "data"
    if request.param == "sqlite":
        with Toolkit.embedded(data) as built:
            yield built
        return
    for url in _postgres_catalog():
        embedded = Config.embedded_default(data)
        with Toolkit(Config(catalog=CatalogConfig(url), stores={}, data_dir=embedded.data_dir)) as built:
            yield built
