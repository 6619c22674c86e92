"""The three descriptions of the stack agree: stack/endpoints.toml (what stack/stack
starts), docker-compose.yml (the same servers as containers) and
examples/polystore.stack.toml (a configuration pointing at them).

The pure tests need no server. The `servers` test connects with the raw drivers to
every URL of the example configuration.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import tomllib
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.servers import ROOT, connect, endpoints, need

KIND_OF_IMAGE = {
    "postgres": "relational",
    "mongo": "document",
    "redis": "keyvalue",
    "cassandra": "column",
    "neo4j": "graph",
}


def compose() -> dict[str, Any]:
    with open(ROOT / "docker-compose.yml") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


def example() -> dict[str, Any]:
    with open(ROOT / "examples" / "polystore.stack.toml", "rb") as f:
        return tomllib.load(f)


def hostport(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"x://{url}")
    assert parts.hostname, f"{url!r} names no host"
    assert parts.port, f"{url!r} names no port"
    return parts.hostname, parts.port


def endpoint_ports() -> dict[str, set[int]]:
    ep = endpoints()
    return {
        "postgres": {hostport(u)[1] for u in [ep["postgres"]["catalog"], *ep["postgres"]["shards"]]},
        "redis": {hostport(u)[1] for u in ep["redis"]["shards"] + ep["redis"]["cluster"]},
        "cassandra": {hostport(u)[1] for u in ep["cassandra"]["contact_points"]},
        "neo4j": {hostport(u)[1] for u in ep["neo4j"]["shards"]},
        "mongo": {hostport(u)[1] for u in ep["mongo"]["shards"]},
    }


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of each `ports:` entry."""
    out = []
    for entry in service.get("ports", []):
        assert isinstance(entry, str), f"use the short 'IP:HOST:CONTAINER' form, found {entry!r}"
        ip, host, container = entry.split(":")
        out.append((ip, int(host), int(container.split("/")[0])))
    return out


def image_family(service: dict[str, Any]) -> str:
    return str(service["image"]).split(":")[0].split("/")[-1]


def test_endpoints_are_all_on_loopback() -> None:
    ep = endpoints()
    urls = [
        ep["postgres"]["catalog"],
        *ep["postgres"]["shards"],
        *ep["redis"]["shards"],
        *ep["redis"]["cluster"],
        *ep["cassandra"]["contact_points"],
        *ep["neo4j"]["shards"],
        *ep["mongo"]["shards"],
    ]
    assert {hostport(u)[0] for u in urls} == {"127.0.0.1"}
    ports = [p for ps in endpoint_ports().values() for p in ps]
    assert len(ports) == len(set(ports)), "two services share a port"


def test_compose_publishes_exactly_the_endpoint_ports_per_service_family() -> None:
    services = compose()["services"]
    by_family: dict[str, set[int]] = {}
    for name, svc in services.items():
        for ip, host, _ in published(svc):
            assert ip == "127.0.0.1", f"{name} publishes on {ip}, not loopback"
            by_family.setdefault(image_family(svc), set()).add(host)
    assert by_family == endpoint_ports()


def test_compose_container_ports_are_the_servers_defaults() -> None:
    defaults = {"postgres": 5432, "mongo": 27017, "cassandra": 9042, "neo4j": 7687}
    for name, svc in compose()["services"].items():
        family = image_family(svc)
        for _, host, container in published(svc):
            if family == "redis":
                # cluster nodes listen on their published port (see the compose comment)
                assert container in (6379, host), name
            else:
                assert container == defaults[family], name


def test_compose_redis_cluster_nodes_announce_the_published_ports() -> None:
    services = compose()["services"]
    cluster_ports = {hostport(u)[1] for u in endpoints()["redis"]["cluster"]}
    nodes = {n: s for n, s in services.items() if "--cluster-enabled" in s.get("command", [])}
    announced = set()
    for name, svc in nodes.items():
        cmd = svc["command"]
        port = int(cmd[cmd.index("--port") + 1])
        assert cmd[cmd.index("--cluster-announce-ip") + 1] == "127.0.0.1", name
        announced.add(port)
        if "ports" not in svc:
            assert svc["network_mode"] == "service:redis-cluster-1", name
    assert announced == cluster_ports
    create = services["redis-cluster-create"]["command"][0]
    for port in cluster_ports:
        assert f"127.0.0.1:{port}" in create


def test_compose_profiles_put_every_service_in_all_and_its_kind() -> None:
    for name, svc in compose()["services"].items():
        kind = KIND_OF_IMAGE[image_family(svc)]
        assert sorted(svc["profiles"]) == sorted([kind, "all"]), name


def test_compose_credentials_match_the_endpoints() -> None:
    svc = compose()["services"]
    cat = urlsplit(endpoints()["postgres"]["catalog"])
    env = svc["postgres"]["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == (cat.username, cat.password)
    assert env["POSTGRES_DB"] == cat.path.lstrip("/")
    init = (ROOT / "stack" / "docker" / "postgres-init.sql").read_text()
    for url in endpoints()["postgres"]["shards"]:
        assert f"CREATE DATABASE {urlsplit(url).path.lstrip('/')};" in init
    for name in ("neo4j-s0", "neo4j-s1"):
        assert svc[name]["environment"]["NEO4J_AUTH"] == "none"


def test_example_config_points_at_the_endpoints() -> None:
    cfg = example()
    ep = endpoints()
    assert cfg["catalog"]["url"] == ep["postgres"]["catalog"]
    stores = cfg["stores"]
    assert {s["kind"] for s in stores.values()} == set(KIND_OF_IMAGE.values())
    ports = endpoint_ports()
    scheme_family = {
        "postgresql": "postgres",
        "mongodb": "mongo",
        "redis": "redis",
        "redis-cluster": "redis",
        "cassandra": "cassandra",
        "bolt": "neo4j",
    }
    for name, store in stores.items():
        for shard, url in store["shards"].items():
            family = scheme_family[urlsplit(url).scheme]
            host, port = hostport(url)
            assert host == "127.0.0.1", f"stores.{name}.shards.{shard}"
            assert port in ports[family], f"stores.{name}.shards.{shard}"
    assert sorted(stores["users"]["shards"].values()) == sorted(ep["postgres"]["shards"])
    assert sorted(stores["sessions"]["shards"].values()) == sorted(ep["redis"]["shards"])
    assert sorted(stores["social"]["shards"].values()) == sorted(ep["neo4j"]["shards"])
    assert sorted(stores["products"]["shards"].values()) == sorted(ep["mongo"]["shards"])


def _load_stack_script() -> ModuleType:
    path = ROOT / "stack" / "stack"
    loader = importlib.machinery.SourceFileLoader("polystore_stack_script", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # dataclasses look their module up there
    try:
        loader.exec_module(module)
    finally:
        del sys.modules[loader.name]
    return module


def test_stack_script_reads_its_ports_from_endpoints() -> None:
    ep = _load_stack_script().EP
    ports = endpoint_ports()
    assert {ep.pg_port} == ports["postgres"]
    assert set(ep.redis_ports) | set(ep.cluster_ports) == ports["redis"]
    assert {ep.cassandra_port} == ports["cassandra"]
    assert set(ep.neo4j_ports) == ports["neo4j"]
    assert {ep.mongo_port} == ports["mongo"]
    assert set(ep.pg_databases) == {
        urlsplit(u).path.lstrip("/") for u in [endpoints()["postgres"]["catalog"], *endpoints()["postgres"]["shards"]]
    }


def test_example_config_loads_with_the_toolkit_parser() -> None:
    config = need("toolkit.config")
    loaded = config.load_config(ROOT / "examples" / "polystore.stack.toml")
    assert set(loaded.stores) == set(example()["stores"])


# ------------------------------------------------------------------ with servers


def _example_urls() -> list[Any]:
    cfg = example()
    marks = {
        "postgresql": pytest.mark.postgres,
        "mongodb": pytest.mark.mongo,
        "redis": pytest.mark.redis,
        "redis-cluster": pytest.mark.redis,
        "cassandra": pytest.mark.cassandra,
        "bolt": pytest.mark.neo4j,
    }
    out = [pytest.param(cfg["catalog"]["url"], marks=[pytest.mark.servers, marks["postgresql"]], id="catalog")]
    for name, store in cfg["stores"].items():
        for shard, url in store["shards"].items():
            scheme = urlsplit(url).scheme
            out.append(pytest.param(url, marks=[pytest.mark.servers, marks[scheme]], id=f"{name}.{shard}"))
    return out


def _probe(url: str) -> None:
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme == "postgresql":
        import psycopg

        connect("postgres", lambda: psycopg.connect(url, connect_timeout=5).close())
    elif scheme == "redis":
        import redis

        plain = redis.Redis.from_url(url, socket_connect_timeout=5)
        connect("redis", plain.ping)
        plain.close()
    elif scheme == "redis-cluster":
        from redis.cluster import RedisCluster

        host, port = hostport(url)
        cluster_client = connect(
            "redis-cluster",
            lambda: RedisCluster(host=host, port=port, socket_connect_timeout=5),
        )
        assert cluster_client.cluster_info()["cluster_state"] == "ok"
        cluster_client.close()
    elif scheme == "mongodb":
        import pymongo

        mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(url, serverSelectionTimeoutMS=5000)
        connect("mongo", lambda: mongo.get_default_database().command("ping"))
        mongo.close()
    elif scheme == "cassandra":
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import RoundRobinPolicy

        profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy())
        cluster = Cluster(
            [parts.hostname],
            port=parts.port,
            connect_timeout=10,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        )
        session = connect("cassandra", cluster.connect)
        row = session.execute("SELECT release_version FROM system.local").one()
        assert row.release_version.startswith("5.0")
        cluster.shutdown()
    elif scheme == "bolt":
        import neo4j

        with neo4j.GraphDatabase.driver(url, auth=None, connection_timeout=10) as driver:
            connect("neo4j", driver.verify_connectivity)
    else:  # pragma: no cover - test_example_config_points_at_the_endpoints guards this
        raise AssertionError(f"no probe for {url}")


@pytest.mark.parametrize("url", _example_urls())
def test_every_example_url_answers(url: str) -> None:
    _probe(url)
