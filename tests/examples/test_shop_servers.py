"""The shop, unchanged, on the stack's real servers: only the configuration differs.

It loads ``examples/shop/polystore.stack.toml`` as a user would, with two environment
variables the file reads: ``SHOP_NAMESPACE`` (a prefix unique to this run, so concurrent
tests never share a table, collection, key or label) and ``SHOP_CATALOG`` (a catalog of
its own, so no other run's topology of the same store names is seen).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from examples.shop import ENTITIES, STACK_CONFIG, build
from tests.examples.shop_checks import exercise
from tests.integration.test_five_backends import _ping_all
from toolkit import Toolkit
from toolkit.config import load_config, sqlite_url

pytestmark = [pytest.mark.postgres, pytest.mark.mongo, pytest.mark.redis, pytest.mark.cassandra, pytest.mark.neo4j]


@pytest.fixture
def stack_toolkit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Toolkit]:
    _ping_all()
    namespace = f"shop{uuid.uuid4().hex[:8]}_"
    monkeypatch.setenv("SHOP_NAMESPACE", namespace)
    monkeypatch.setenv("SHOP_CATALOG", sqlite_url(tmp_path / "catalog.db"))
    toolkit = Toolkit(load_config(STACK_CONFIG))
    try:
        yield toolkit
    finally:
        try:
            drop_namespace(toolkit, namespace)
        finally:
            toolkit.close()


def test_the_shop_runs_on_the_real_servers(stack_toolkit: Toolkit) -> None:
    placements = exercise(build(stack_toolkit), "srv")
    schemes = {
        p.store: stack_toolkit.store(p.store).shard_urls["s0" if p.store != "ledger" else "y2024"] for p in placements
    }
    assert {store: url.split(":", 1)[0] for store, url in schemes.items()} == {
        "customers": "postgresql",
        "ledger": "postgresql",
        "sellers": "postgresql",
        "products": "mongodb",
        "carts": "redis",
        "inventory": "redis",
        "events": "cassandra",
        "social": "bolt",
    }


def drop_namespace(toolkit: Toolkit, namespace: str) -> None:
    """Everything the shop created under ``namespace``, on every shard of every store."""
    for store_name in toolkit.config.stores:
        store = toolkit.store(store_name)
        for shard in store.router.shards:
            adapter: Any = store.adapter(shard)
            if store.kind == "relational":
                with adapter.engine.begin() as connection:
                    schema = adapter.schema or connection.execute(sa.text("SELECT current_schema()")).scalar()
                    tables = connection.execute(
                        sa.text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}
                    ).scalars()
                    for table in [t for t in tables if t.startswith(namespace)]:
                        connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{schema}"."{table}" CASCADE')
            elif store.kind == "keyvalue":
                for key in adapter.client.scan_iter(match=f"*{namespace}*"):
                    adapter.client.delete(key)
            elif store.kind == "document":
                for collection in adapter.database.list_collection_names():
                    if collection.startswith(namespace):
                        adapter.database.drop_collection(collection)
            else:  # column and graph: the adapter drops an entity's table or label
                for entity in ENTITIES:
                    schema_ = entity.__schema__
                    if schema_.store == store_name:
                        adapter.drop(schema_)
