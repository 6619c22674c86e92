"""Rebalances between real servers: embedded SQLite to PostgreSQL (a migration), and the
non-relational kinds through the same adapter contract (keyvalue on Redis, document on
the MongoDB-wire server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sharding.rebalance import RebalanceOptions, Rebalancer, plan_rebalance
from tests.backends import Backend
from tests.backends.cassandra import Cassandra
from tests.backends.mongo import Mongo
from tests.backends.neo4j import Neo4j
from tests.backends.postgres import Postgres
from tests.backends.redis import Redis
from tests.rebalance.helpers import Item, compare, config_text, item, load, reference_of
from toolkit import Toolkit

OPTIONS = RebalanceOptions(batch_size=250, settle=0.05)


def _grow(tmp_path: Path, layout: Backend, rows: int) -> None:
    layout.connect()
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    before = config_text(layout.shards(2), catalog=catalog, kind=layout.kind, options=layout.options())
    after = config_text(layout.shards(3), catalog=catalog, kind=layout.kind, options=layout.options())
    reference = reference_of([item(i) for i in range(rows)])
    try:
        with Toolkit(load(tmp_path, before)) as toolkit:
            toolkit.repository(Item).put_many(reference.values())
            (plan,) = plan_rebalance(toolkit, load(tmp_path, after))
            assert {move.target for move in plan.moves} == {"s2"}
            rebalancer = Rebalancer(toolkit, options=OPTIONS)
            summary = rebalancer.run(rebalancer.start(plan))
            assert summary.state == "done"
            assert summary.copied == summary.deleted > rows // 5
            assert compare(toolkit, reference) == []
            assert toolkit.repository(Item).count() == rows
    finally:
        layout.cleanup()


@pytest.mark.postgres
def test_embedded_sqlite_to_postgres_is_a_migration(tmp_path: Path) -> None:
    postgres = Postgres(tmp_path)
    postgres.connect()
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    options = postgres.options()  # one store, one set of options: the rebalance opens every shard with them
    embedded = config_text({"local": f"sqlite:///{tmp_path / 'local.db'}"}, catalog=catalog, options=options)
    servers = config_text({"p0": postgres.url("p0"), "p1": postgres.url("p1")}, catalog=catalog, options=options)
    reference = reference_of([item(i) for i in range(3000)])
    try:
        with Toolkit(load(tmp_path, embedded)) as toolkit:
            toolkit.repository(Item).put_many(reference.values())
            (plan,) = plan_rebalance(toolkit, load(tmp_path, servers))
            assert plan.removed_shards == ["local"]
            assert plan.moved_share == pytest.approx(1.0)
            rebalancer = Rebalancer(toolkit, options=OPTIONS)
            summary = rebalancer.run(rebalancer.start(plan))
            assert summary.copied == 3000
            assert summary.deleted == 3000
        with Toolkit(load(tmp_path, servers)) as toolkit:
            assert dict(toolkit.catalog.topology("items").shards).keys() == {"p0", "p1"}
            assert compare(toolkit, reference) == []
            counts = toolkit.repository(Item).count_by_shard()
            assert sum(counts.values()) == 3000
            assert min(counts.values()) > 1200
    finally:
        postgres.cleanup()


@pytest.mark.parametrize(
    ("backend", "rows"),
    [
        pytest.param(Postgres, 3000, marks=pytest.mark.postgres),
        pytest.param(Redis, 2000, marks=pytest.mark.redis),
        pytest.param(Mongo, 500, marks=pytest.mark.mongo),
        pytest.param(Cassandra, 1000, marks=pytest.mark.cassandra),
        pytest.param(Neo4j, 1000, marks=pytest.mark.neo4j),
    ],
    ids=["postgres", "redis", "mongo", "cassandra", "neo4j"],
)
def test_rebalance_on(tmp_path: Path, backend: type[Backend], rows: int) -> None:
    _grow(tmp_path, backend(tmp_path), rows=rows)
