"""The shop, unchanged, on the stack's real servers: only the configuration differs.

It loads the shop's ``polystore.stack.toml`` (``toolkit/demo/shop/``) as a user would, with two environment
variables the file reads: ``SHOP_NAMESPACE`` (a prefix unique to this run, so concurrent
tests never share a table, collection, key or label) and ``SHOP_CATALOG`` (a catalog of
its own, so no other run's topology of the same store names is seen).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.backends.cassandra import Cassandra
from tests.backends.mongo import Mongo, drop_collections, mongo_client
from tests.backends.neo4j import Neo4j
from tests.backends.postgres import Postgres, drop_tables
from tests.backends.redis import Redis, clear_redis
from tests.examples.shop_checks import exercise
from toolkit import Toolkit
from toolkit.config import load_config, sqlite_url
from toolkit.demo.shop import ENTITIES, STACK_CONFIG, build

pytestmark = [pytest.mark.postgres, pytest.mark.mongo, pytest.mark.redis, pytest.mark.cassandra, pytest.mark.neo4j]


@pytest.fixture
def stack_toolkit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Toolkit]:
    for backend in (Postgres, Mongo, Redis, Cassandra, Neo4j):
        backend(tmp_path).connect()  # each server answers, or the test fails naming it
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
    """Everything the shop created under ``namespace``, on every shard of every store.

    Tables, keys and collections go through the drivers (the schemas and databases are
    shared with other runs, so only this run's prefix goes); column and graph entities
    through the adapter contract's ``drop``.
    """
    for store_name, config in toolkit.config.stores.items():
        store = toolkit.store(store_name)
        for shard in config.shards:
            if store.kind == "relational":
                drop_tables(shard.url, namespace)
            elif store.kind == "keyvalue":
                clear_redis(shard.url, f"*{namespace}*")
            elif store.kind == "document":
                with closing(mongo_client(shard.url)) as client:
                    drop_collections(client[urlsplit(shard.url).path.lstrip("/")], namespace)
            else:  # column and graph: the adapter drops an entity's table or label
                for entity in ENTITIES:
                    if entity.__schema__.store == store_name:
                        store.adapter(shard.name).drop(entity.__schema__)
