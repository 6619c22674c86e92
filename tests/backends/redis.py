"""The stack's Redis: two standalone instances, and the three-master Redis Cluster.

Standalone shards alternate between the two instances; further shards use database 1,
2... of them. Cluster shards are logical: every shard is the whole cluster with a key
prefix of its own (``?prefix=sN_``), each entity's rows spread over all masters by hash
tags. Every test writes under a fresh namespace, and cleanup deletes its keys.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

import redis
from redis.cluster import RedisCluster as ClusterClient

from tests.backends import Backend, shard_index
from tests.servers import endpoint, require


def redis_urls() -> list[str]:
    """The standalone instances (``POLYSTORE_REDIS_URL``, comma-separated, overrides)."""
    return endpoint("redis")


def redis_cluster_url() -> str:
    """A ``redis-cluster://`` URL naming every node of the stack's cluster."""
    hosts = ",".join(url.split("://", 1)[-1].rstrip("/") for url in endpoint("redis-cluster"))
    return f"redis-cluster://{hosts}"


def require_redis(urls: list[str]) -> None:
    """Every standalone instance answers PING, or the test fails naming the server."""

    def probe() -> None:
        for url in urls:
            with closing(redis.Redis.from_url(url, socket_connect_timeout=3)) as client:
                client.ping()

    require("redis", probe)


def cluster_client(url: str) -> ClusterClient:
    """A cluster client on the first node of a ``redis-cluster://`` URL."""
    host, _, port = url.split("://", 1)[1].split("?")[0].split(",")[0].rpartition(":")
    return ClusterClient(host=host, port=int(port), socket_connect_timeout=3)


def delete_matching(client: Any, pattern: str) -> None:
    """Delete every key matching ``pattern`` (on every master, for a cluster client)."""
    for key in list(client.scan_iter(match=pattern, count=1000)):
        client.delete(key)


def clear_redis(url: str, pattern: str) -> None:
    """Delete every key matching ``pattern`` on one standalone instance (a test's cleanup)."""
    with closing(redis.Redis.from_url(url, socket_connect_timeout=3)) as client:
        delete_matching(client, pattern)


class Redis(Backend, name="redis", scheme="redis", kind="keyvalue", marker="redis"):
    def connect(self) -> None:
        self.urls = redis_urls()
        require_redis(self.urls)

    def _url(self, shard: str) -> str:
        """Shards 0 and 1 on the two instances; further shards in database 1, 2... of them."""
        index = shard_index(shard)
        url = self.urls[index % len(self.urls)]
        base = url.rpartition("/")[0] if url.count("/") > 2 else url
        return f"{base}/{index // len(self.urls)}"

    def cleanup(self) -> None:
        for url in set(self.made.values()):
            clear_redis(url, f"*{self.prefix}*")


class RedisCluster(Backend, name="redis_cluster", scheme="redis-cluster", kind="keyvalue", marker="redis"):
    def connect(self) -> None:
        self.cluster = redis_cluster_url()

        def probe() -> None:
            with closing(cluster_client(self.cluster)) as client:
                client.ping()

        require("redis-cluster", probe)

    def _url(self, shard: str) -> str:
        return f"{self.cluster}?prefix={shard}_"

    def options(self) -> dict[str, Any]:
        # 16 index buckets (default 64) still spread every entity over all three masters
        # and keep the many small per-test entities cheap to create and drop.
        return {"namespace": self.prefix, "index_buckets": 16}

    def cleanup(self) -> None:
        if not self.made:
            return
        with closing(cluster_client(self.cluster)) as client:
            delete_matching(client, f"*{self.prefix}*")
