"""MongoDB, Redis, Cassandra and Neo4j for bench/overhead.py: the repository against the raw driver.

Each baseline opens its own client and writes into the collection, keys, table or label
the adapter created, in the adapter's stored layout (checked: the repository reads the
baseline's rows back equal). Anything the layout needs that is not the driver's work
(encoded keys, tokens, encoded values) is computed before timing; polystore computes it
inside its timing, which is exactly the overhead being measured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _overhead_common import Context, Suite, Unreachable, each, endpoint, fill_and_check, polystore_side

from toolkit.config import RouterConfig, ShardConfig, StoreConfig

FERRETDB_BULK_BATCH = 8
"""Replacements per ``bulk_write`` on FerretDB, both sides (the adapter's default there)."""


def _store(url: str, options: dict[str, Any]) -> StoreConfig:
    kinds = {"mongodb": "document", "redis": "keyvalue", "cassandra": "column", "bolt": "graph"}
    return StoreConfig("bench", kinds[url.partition("://")[0]], (ShardConfig("s0", url),), RouterConfig(), options)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:120] if text else ''}"


def _reach(suite: Suite, probe: Callable[[], object], close: Callable[[], object], server: str) -> None:
    """Probe the baseline's fresh client: a server that does not answer makes the backend
    unreachable (the client closed); one that does is the suite's server, its client
    closed at cleanup."""
    try:
        probe()
    except Exception as exc:
        close()
        raise Unreachable(_first_line(exc)) from exc
    suite.server = server
    suite.cleanups.append(close)


# -- MongoDB (pymongo) ---------------------------------------------------------------


def build_mongo(ctx: Context, suite: Suite) -> None:
    try:
        import pymongo
        from pymongo import ReplaceOne
    except ImportError as exc:
        raise Unreachable(f"pymongo is not installed ({exc})") from exc
    url = endpoint("mongo", "shards", "POLYSTORE_MONGO_URL")[0]
    client: Any = pymongo.MongoClient(
        url, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000, socketTimeoutMS=30000
    )  # a socket timeout: a server that accepts but never answers must not hang the run
    _reach(suite, lambda: client.admin.command("ping"), client.close, url.partition("://")[2])
    database = client.get_default_database()

    def drop_namespace() -> None:
        for name in database.list_collection_names():
            if name.startswith(ctx.namespace):
                database.drop_collection(name)

    suite.cleanups.append(drop_namespace)
    # A socket timeout on the repository's client too: a server that stops answering
    # fails the run instead of hanging it.
    options: dict[str, Any] = {"namespace": ctx.namespace, "connect_timeout": 5, "timeout": 30}
    # FerretDB takes small batches (more than 100 replacements in one command deadlock
    # FerretDB 1.24, see adapters/document): the bench sets the batch size on both sides
    # there, so that they are equal by construction; MongoDB takes everything in one call.
    ferretdb = "ferretdbVersion" in client.admin.command("buildInfo")
    if ferretdb:
        options["bulk_batch"] = FERRETDB_BULK_BATCH
    _, repo, entities = polystore_side(ctx, suite, _store(url, options))
    collection = database[f"{ctx.namespace}account"]
    batch = FERRETDB_BULK_BATCH if ferretdb else len(ctx.data)
    docs = [
        {"_id": row["id"], "name": row["name"], "balance": row["balance"], "active": row["active"], "_ps_token": tok}
        for row, tok in zip(ctx.data, ctx.tokens(), strict=True)
    ]

    def put_many(lo: int, hi: int) -> None:
        chosen = docs[lo:hi]
        for start in range(0, len(chosen), batch):
            requests = [ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in chosen[start : start + batch]]
            collection.bulk_write(requests, ordered=False)

    suite.contenders["pymongo"] = {
        "get": each(docs, lambda doc: collection.find_one({"_id": doc["_id"]})),
        "put": each(docs, lambda doc: collection.replace_one({"_id": doc["_id"]}, doc, upsert=True)),
        "put_many": put_many,
    }
    fill_and_check(suite, repo, entities, ("pymongo",))
    suite.notes.append(
        f"mongo batch: unordered bulk_write of ReplaceOne(upsert) (insert_many cannot upsert), {batch} per"
        " command on both sides (FerretDB: the adapter's bulk_batch; MongoDB: everything in one call)"
    )


# -- Redis (redis-py) ----------------------------------------------------------------


def build_redis(ctx: Context, suite: Suite) -> None:
    try:
        import redis

        from adapters.keyvalue import Layout, parse_url
    except ImportError as exc:
        raise Unreachable(f"redis-py is not installed ({exc})") from exc
    url = endpoint("redis", "shards", "POLYSTORE_REDIS_URL")[0]
    client: Any = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
    _reach(suite, client.ping, client.close, url.partition("://")[2])

    def drop_namespace() -> None:
        for key in client.scan_iter(match=f"*{ctx.namespace}*", count=1000):
            client.delete(key)

    suite.cleanups.append(drop_namespace)
    adapter, repo, entities = polystore_side(ctx, suite, _store(url, {"namespace": ctx.namespace}))
    # The adapter's public layout helper, used only here, before timing, to mirror its keys
    # and encodings byte for byte: the baselines then store exactly what it stores. The
    # namespace is new, so the entity has the default bucket count of a fresh entity.
    target = parse_url(url)
    buckets = adapter.options.buckets(cluster=target.cluster)
    layout = Layout.of(adapter.options.namespace + target.prefix, repo.schema, buckets, True)
    prepared = []
    for row, tok in zip(ctx.data, ctx.tokens(), strict=True):
        full = {**row, "_ps_token": tok}
        (row_key, index_key, key_index_key), keyhex, suffix = layout.keys_of(row["id"])
        pairs, tokenhex = layout.encode(full)
        ordered = layout.ordered_shard_key(full)
        mapping = dict(zip(pairs[::2], pairs[1::2], strict=True))
        mapping[b"_ps_k"] = ordered
        prepared.append((row_key, mapping, index_key, tokenhex + keyhex, key_index_key, ordered + suffix))

    def write_hash(pipe: Any, item: tuple[Any, ...]) -> None:
        row_key, mapping, *_ = item
        pipe.hset(row_key, mapping=mapping)

    def write_row(pipe: Any, item: tuple[Any, ...]) -> None:
        row_key, mapping, index_key, member, key_index_key, key_member = item
        pipe.delete(row_key)
        pipe.hset(row_key, mapping=mapping)
        pipe.zadd(index_key, {member: 0})
        pipe.zadd(key_index_key, {key_member: 0})

    def put_layout(item: tuple[Any, ...]) -> None:
        pipe = client.pipeline(transaction=True)
        write_row(pipe, item)
        pipe.execute()

    def batches(write: Callable[[Any, tuple[Any, ...]], None]) -> Callable[[int, int], None]:
        """Non-transactional pipelines of 500 items, each written by ``write``."""

        def run(lo: int, hi: int) -> None:
            chosen = prepared[lo:hi]
            for start in range(0, len(chosen), 500):
                pipe = client.pipeline(transaction=False)
                for item in chosen[start : start + 500]:
                    write(pipe, item)
                pipe.execute()

        return run

    suite.contenders["redis-py HSET"] = {
        "get": each(prepared, lambda item: client.hgetall(item[0])),
        "put": each(prepared, lambda item: client.hset(item[0], mapping=item[1])),
        "put_many": batches(write_hash),
    }
    suite.contenders["redis-py MULTI row+index"] = {"put": each(prepared, put_layout), "put_many": batches(write_row)}
    fill_and_check(suite, repo, entities, ("redis-py HSET", "redis-py MULTI row+index"))
    suite.notes.append(
        "redis: 'HSET' writes the row hash only (HGETALL reads it); 'MULTI row+index' writes the adapter's"
        " whole layout (DEL+HSET row, ZADD token index, ZADD shard-key index) atomically, as its Lua script"
        " does; batches are non-transactional pipelines of 500, like the adapter's EVALSHA pipelines"
    )


# -- Cassandra (cassandra-driver) ----------------------------------------------------


def build_cassandra(ctx: Context, suite: Suite) -> None:
    try:
        from cassandra import ConsistencyLevel
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.concurrent import execute_concurrent_with_args
        from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
        from cassandra.query import tuple_factory

        from adapters.column import CONCURRENCY, skey_prefix
    except ImportError as exc:
        raise Unreachable(f"cassandra-driver is not installed ({exc})") from exc
    point = endpoint("cassandra", "contact_points", "POLYSTORE_CASSANDRA_URL")[0]
    point = point.partition("://")[2].partition("/")[0] if "://" in point else point
    host, _, port = point.rpartition(":")
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
        consistency_level=ConsistencyLevel.LOCAL_QUORUM,  # the adapter's default consistency
        request_timeout=20,
        row_factory=tuple_factory,
    )
    cluster = Cluster(
        contact_points=[host], port=int(port), connect_timeout=5, execution_profiles={EXEC_PROFILE_DEFAULT: profile}
    )
    try:
        session = cluster.connect()
    except Exception as exc:
        cluster.shutdown()
        raise Unreachable(_first_line(exc)) from exc
    suite.server = f"{point} keyspace polystore_bench"
    suite.cleanups.append(cluster.shutdown)
    url = f"cassandra://{point}/polystore_bench"
    _, repo, entities = polystore_side(ctx, suite, _store(url, {"namespace": ctx.namespace, "request_timeout": 20}))
    table = f"polystore_bench.{ctx.namespace.lower()}account"
    columns = 'id, name, balance, active, "_ps_token", "_ps_skey", "_ps_expires"'  # CQL quotes names starting _
    insert = session.prepare(f"INSERT INTO {table} ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?)")
    select = session.prepare(f"SELECT {columns} FROM {table} WHERE id = ?")
    params = [
        (row["id"], row["name"], row["balance"], row["active"], tok, skey_prefix(row["id"]), None)
        for row, tok in zip(ctx.data, ctx.tokens(), strict=True)
    ]

    suite.contenders["cassandra-driver"] = {
        "get": each(params, lambda row: session.execute(select, (row[0],)).one()),
        "put": each(params, lambda row: session.execute(insert, row)),
        "put_many": lambda lo, hi: execute_concurrent_with_args(
            session, insert, params[lo:hi], concurrency=CONCURRENCY
        ),
    }
    fill_and_check(suite, repo, entities, ("cassandra-driver",))
    suite.notes.append(
        f"cassandra: prepared statements, LOCAL_QUORUM, tuple rows; batch = execute_concurrent_with_args"
        f" at the adapter's concurrency ({CONCURRENCY})"
    )


# -- Neo4j (neo4j driver) ------------------------------------------------------------


def build_neo4j(ctx: Context, suite: Suite) -> None:
    try:
        import neo4j
    except ImportError as exc:
        raise Unreachable(f"the neo4j driver is not installed ({exc})") from exc
    url = endpoint("neo4j", "shards", "POLYSTORE_NEO4J_URL")[0]
    driver = neo4j.GraphDatabase.driver(url, auth=None, connection_timeout=5)
    _reach(suite, driver.verify_connectivity, driver.close, url.partition("://")[2])
    _, repo, entities = polystore_side(ctx, suite, _store(url, {"namespace": ctx.namespace}))
    label = f"`{ctx.namespace}account`"
    props = [{**row, "_ps_token": tok} for row, tok in zip(ctx.data, ctx.tokens(), strict=True)]
    read = f"MATCH (n:{label} {{id: $id}}) RETURN properties(n) AS p"
    write = f"MERGE (n:{label} {{id: $id}}) SET n = $props"
    batch = f"UNWIND $rows AS row MERGE (n:{label} {{id: row.id}}) SET n = row"

    def read_one(tx: Any, key: int) -> Any:
        return tx.run(read, id=key).single()

    def write_one(tx: Any, item: dict[str, Any]) -> Any:
        return tx.run(write, id=item["id"], props=item).consume()

    def get(row: dict[str, Any]) -> None:
        with driver.session() as session:
            session.execute_read(read_one, row["id"])

    def put(row: dict[str, Any]) -> None:
        with driver.session() as session:
            session.execute_write(write_one, row)

    def put_many(lo: int, hi: int) -> None:
        with driver.session() as session:
            session.execute_write(lambda tx: tx.run(batch, rows=props[lo:hi]).consume())

    suite.contenders["neo4j driver"] = {"get": each(props, get), "put": each(props, put), "put_many": put_many}
    fill_and_check(suite, repo, entities, ("neo4j driver",))
    suite.notes.append("neo4j: a session and a managed transaction per operation, as the adapter does; batch = UNWIND")
