"""One smoke test per server of the stack, through each server's official Python driver.

Each test writes and reads back under a unique name (table, key, keyspace, label,
collection) and removes it afterwards, so the tests can run in any order, in
parallel, and against servers that other tests use.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.servers import connect, endpoint, need

pytestmark = pytest.mark.servers


@pytest.mark.postgres
def test_postgres_write_read_on_every_shard_database(unique: str) -> None:
    psycopg = need("psycopg")
    urls = endpoint("postgres")
    assert len(urls) >= 1
    for i, url in enumerate(urls):
        conn = connect("postgres", lambda url=url: psycopg.connect(url, connect_timeout=5, autocommit=True))
        table = f"smoke_{unique}_{i}"
        try:
            with conn.transaction():
                conn.execute(f'CREATE TABLE "{table}" (id integer PRIMARY KEY, v text NOT NULL)')
                conn.execute(
                    f'INSERT INTO "{table}" (id, v) VALUES (%s, %s), (%s, %s)',
                    (1, "one'; DROP TABLE x; --", 2, f"shard{i}"),
                )
            rows = conn.execute(f'SELECT id, v FROM "{table}" ORDER BY id').fetchall()
            assert rows == [(1, "one'; DROP TABLE x; --"), (2, f"shard{i}")]
            db = conn.execute("SELECT current_database()").fetchone()[0]
            assert db == urlsplit(url).path.lstrip("/")
        finally:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
            conn.close()


@pytest.mark.postgres
def test_postgres_catalog_database_answers() -> None:
    psycopg = need("psycopg")
    (url,) = endpoint("postgres-catalog")
    conn = connect("postgres-catalog", lambda: psycopg.connect(url, connect_timeout=5))
    try:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        conn.close()


@pytest.mark.redis
def test_redis_standalone_set_get_on_every_instance(unique: str) -> None:
    redis = need("redis")
    for i, url in enumerate(endpoint("redis")):
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        connect("redis", client.ping)
        key = f"smoke:{unique}:{i}"
        try:
            assert client.set(key, f"value-{i}", ex=60)
            assert client.get(key) == f"value-{i}".encode()
        finally:
            client.delete(key)
            client.close()


@pytest.mark.redis
def test_redis_cluster_set_get_across_slots(unique: str) -> None:
    need("redis")
    from redis.cluster import ClusterNode, RedisCluster

    nodes = [urlsplit(u) for u in endpoint("redis-cluster")]
    startup = [ClusterNode(n.hostname, n.port) for n in nodes]
    client = connect(
        "redis-cluster",
        lambda: RedisCluster(startup_nodes=startup, socket_timeout=5, socket_connect_timeout=5),
    )
    keys = [f"smoke:{unique}:{i}" for i in range(32)]
    try:
        assert client.cluster_info()["cluster_state"] == "ok"
        for k in keys:
            client.set(k, k[::-1], ex=60)
        assert [client.get(k) for k in keys] == [k[::-1].encode() for k in keys]
        owners = {client.get_node_from_key(k).port for k in keys}
        assert len(owners) == len(startup), f"32 keys should spread over every master, got {owners}"
    finally:
        for k in keys:
            client.delete(k)
        client.close()


@pytest.mark.cassandra
def test_cassandra_keyspace_table_insert_select(unique: str) -> None:
    need("cassandra")
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    (url,) = endpoint("cassandra")[:1]
    parts = urlsplit(url)
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=30)
    cluster = Cluster(
        [parts.hostname],
        port=parts.port or 9042,
        connect_timeout=10,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    session = connect("cassandra", cluster.connect)
    ks = f"smoke_{unique}"
    try:
        session.execute(
            f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        )
        session.execute(f"CREATE TABLE {ks}.events (p text, c int, v text, PRIMARY KEY (p, c))")
        insert = session.prepare(f"INSERT INTO {ks}.events (p, c, v) VALUES (?, ?, ?)")
        for c in range(3):
            session.execute(insert, ("part", c, f"v{c}"))
        rows = session.execute(f"SELECT c, v FROM {ks}.events WHERE p = %s AND c >= %s", ("part", 1))
        assert [(r.c, r.v) for r in rows] == [(1, "v1"), (2, "v2")]
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}")
        cluster.shutdown()


@pytest.mark.neo4j
def test_neo4j_create_match_on_every_server(unique: str) -> None:
    neo4j = need("neo4j")
    label = f"Smoke_{unique}"
    for i, url in enumerate(endpoint("neo4j")):
        with neo4j.GraphDatabase.driver(url, auth=None, connection_timeout=10) as driver:
            connect("neo4j", driver.verify_connectivity)
            _neo4j_round_trip(driver, label, i)


def _neo4j_round_trip(driver: Any, label: str, i: int) -> None:
    try:
        driver.execute_query(
            f"CREATE (:{label} {{name: $a}})-[:KNOWS]->(:{label} {{name: $b}})",
            a=f"alice{i}",
            b=f"bob{i}",
        )
        records, _, _ = driver.execute_query(f"MATCH (x:{label})-[:KNOWS]->(y:{label}) RETURN x.name AS x, y.name AS y")
        assert [(r["x"], r["y"]) for r in records] == [(f"alice{i}", f"bob{i}")]
    finally:
        driver.execute_query(f"MATCH (n:{label}) DETACH DELETE n")


@pytest.mark.mongo
def test_mongo_insert_find_on_every_database(unique: str) -> None:
    pymongo = need("pymongo")
    for i, url in enumerate(endpoint("mongo")):
        client = pymongo.MongoClient(url, serverSelectionTimeoutMS=5000)
        connect("mongo", lambda client=client: client.admin.command("ping"))
        db = client.get_default_database()
        coll = db[f"smoke_{unique}"]
        try:
            coll.insert_many([{"_id": n, "shard": i, "tags": ["a", "b"]} for n in range(3)])
            assert coll.find_one({"_id": 1}) == {"_id": 1, "shard": i, "tags": ["a", "b"]}
            assert coll.count_documents({"shard": i}) == 3
        finally:
            coll.drop()
            client.close()
