"""The checkout example on the stack's servers: a Toolkit per namespace, probes, cleanup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.contract.backends.cassandra import CassandraBackend
from tests.contract.backends.mongo import mongo_urls
from tests.contract.backends.neo4j import Neo4jBackend, sweep
from tests.contract.backends.postgres import PostgresBackend
from tests.contract.backends.redis import RedisBackend
from tests.servers import ROOT, require
from toolkit import Toolkit
from toolkit.config import parse_config

CONFIG = ROOT / "examples" / "checkout" / "polystore.toml"


def require_all() -> None:
    """Fail (never skip) unless all five servers answer, each within seconds."""
    for backend in (PostgresBackend, RedisBackend, CassandraBackend, Neo4jBackend):
        backend(Path(".")).connect()

    def ping_mongo() -> None:  # with a socket timeout: a server that accepts but never answers fails fast
        import pymongo

        client: Any = pymongo.MongoClient(
            mongo_urls()[0], serverSelectionTimeoutMS=3000, socketTimeoutMS=5000, connectTimeoutMS=3000
        )
        try:
            client.admin.command("ping")
        finally:
            client.close()

    require("mongo", ping_mongo)


GRAPH_NAMESPACE = "sagatest_"
"""Neo4j labels stay the same across runs: creating a label's constraint and indexes takes
Neo4j seconds (tens of seconds on a busy machine), so tests share the labels and keep
apart by keys (every order id starts with the run's namespace)."""


def checkout_toolkit(namespace: str) -> Toolkit:
    """The example's polystore.toml with ``CHECKOUT_NAMESPACE`` set to ``namespace``."""
    import dataclasses
    import os

    config = parse_config(
        CONFIG.read_text(encoding="utf-8"),
        file=str(CONFIG),
        base_dir=CONFIG.parent,
        env={**os.environ, "CHECKOUT_NAMESPACE": namespace},
    )
    stores = dict(config.stores)
    stores["checkout_purchases"] = dataclasses.replace(
        stores["checkout_purchases"], options={"namespace": GRAPH_NAMESPACE}
    )
    return Toolkit(dataclasses.replace(config, stores=stores))


def cleanup_checkout(namespace: str) -> None:
    """Drop everything the namespace created on every server, and its sagas in the catalog."""
    from examples.checkout.app import OrderEvent, Purchase

    toolkit = checkout_toolkit(namespace)
    try:
        for name in ("checkout_orders", "checkout_stock", "checkout_documents", "checkout_events"):
            store = toolkit.store(name)
            for shard in store.router.shards:
                adapter: Any = store.adapter(shard)
                if name == "checkout_orders":
                    with adapter.engine.begin() as connection:
                        tables = connection.execute(
                            sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
                        ).scalars()
                        for table in [t for t in tables if t.startswith(namespace)]:
                            connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}" CASCADE')
                elif name == "checkout_stock":
                    for key in adapter.client.scan_iter(match=f"*{namespace}*"):
                        adapter.client.delete(key)
                elif name == "checkout_documents":
                    for collection in adapter.database.list_collection_names():
                        if collection.startswith(namespace):
                            adapter.database.drop_collection(collection)
                else:
                    adapter.ensure(toolkit.repository(OrderEvent).schema, with_token=True)
                    adapter.drop(toolkit.repository(OrderEvent).schema)
        purchases = toolkit.repository(Purchase)
        mine = purchases.find({"id": {"ge": namespace, "lt": namespace + "\uffff"}})
        purchases.delete_many([purchase.id for purchase in mine])
        for url in set(toolkit.store("checkout_purchases").shard_urls.values()):
            sweep(url.split("?")[0], namespace)  # labels of runs with the file's own namespace (the script)
        with toolkit.catalog.engine.begin() as connection:
            ids = sa.text("SELECT id FROM ps_saga WHERE idempotency_key LIKE :k")
            pattern = {"k": f"%{namespace}%"}
            connection.execute(sa.text(f"DELETE FROM ps_saga_event WHERE saga_id IN ({ids.text})"), pattern)
            connection.execute(sa.text("DELETE FROM ps_saga WHERE idempotency_key LIKE :k"), pattern)
    finally:
        toolkit.close()
