"""The checkout example on the stack's servers: a Toolkit per namespace, probes, cleanup."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import sqlalchemy as sa

from tests.backends.cassandra import Cassandra
from tests.backends.mongo import Mongo, drop_collections, mongo_client
from tests.backends.neo4j import Neo4j, sweep
from tests.backends.postgres import Postgres, drop_tables
from tests.backends.redis import Redis, clear_redis
from tests.servers import ROOT
from toolkit import Toolkit
from toolkit.config import parse_config

CONFIG = ROOT / "examples" / "checkout" / "polystore.toml"


def require_all() -> None:
    """Fail (never skip) unless all five servers answer, each within seconds."""
    for backend in (Postgres, Redis, Mongo, Cassandra, Neo4j):
        backend(Path(".")).connect()


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


def _drop_collections(url: str, prefix: str) -> None:
    """Drop the collections whose names start with ``prefix`` in the shard's database."""
    with closing(mongo_client(url)) as client:
        drop_collections(client.get_default_database(), prefix)


def fresh_namespace(prefix: str) -> Iterator[str]:
    """The body of a ``namespace`` fixture: check the servers, yield a new namespace
    starting with ``prefix`` (which says whose test left it, should cleanup fail), clean up."""
    require_all()
    name = f"{prefix}{uuid.uuid4().hex[:8]}_"
    yield name
    cleanup_checkout(name)


def cleanup_checkout(namespace: str) -> None:
    """Drop everything the namespace created on every server, and its sagas in the catalog."""
    from examples.checkout.app import OrderEvent, Purchase

    toolkit = checkout_toolkit(namespace)
    try:
        for url in toolkit.store("checkout_orders").shard_urls.values():
            drop_tables(url, namespace)
        for url in toolkit.store("checkout_stock").shard_urls.values():
            clear_redis(url, f"*{namespace}*")
        for url in toolkit.store("checkout_documents").shard_urls.values():
            _drop_collections(url, namespace)
        events = toolkit.store("checkout_events")
        schema = toolkit.repository(OrderEvent).schema
        for shard in events.router.shards:  # the contract's own drop: Cassandra DDL needs no driver here
            adapter = events.adapter(shard)
            adapter.ensure(schema, with_token=True)
            adapter.drop(schema)
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
