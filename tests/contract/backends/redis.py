"""The stack's Redis: two standalone instances, and the three-master Redis Cluster.

Standalone shards alternate between the two instances, and a third shard uses a second
database of the first instance. Cluster shards are logical: every shard is the whole
cluster with a key prefix of its own (``?prefix=sN_``), each entity's rows spread over
all masters by hash tags. Every test writes under a fresh namespace.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import RedisCluster

from tests.contract.backends import ContractBackend
from tests.servers import endpoint, require
from toolkit import Toolkit


def redis_urls() -> list[str]:
    """The standalone instances (``POLYSTORE_REDIS_URL``, comma-separated, overrides)."""
    return endpoint("redis")


def require_redis(urls: list[str]) -> None:
    """Every standalone instance answers PING, or the test fails naming the server."""

    def probe() -> None:
        for url in urls:
            client = redis.Redis.from_url(url, socket_connect_timeout=3)
            try:
                client.ping()
            finally:
                client.close()

    require("redis", probe)


def redis_cluster_url() -> str:
    """A ``redis-cluster://`` URL naming every node of the stack's cluster."""
    hosts = ",".join(url.split("://", 1)[-1].rstrip("/") for url in endpoint("redis-cluster"))
    return f"redis-cluster://{hosts}"


class RedisBackend(ContractBackend):
    name = "redis"
    scheme = "redis"
    kind = "keyvalue"
    marker = "redis"

    def connect(self) -> None:
        self.urls = redis_urls()
        require_redis(self.urls)

    def shard_url(self, index: int) -> str:
        """Shards 0 and 1 on the two instances; further shards in database 1, 2... of them."""
        url = self.urls[index % len(self.urls)]
        base, _, _ = url.rpartition("/") if url.count("/") > 2 else (url, "", "")
        return f"{base}/{index // len(self.urls)}"

    def options(self) -> dict[str, Any]:
        return {"namespace": self.prefix}

    def cleanup(self, toolkit: Toolkit) -> None:
        super().cleanup(toolkit)
        for store in toolkit._stores.values():
            for shard in store.router.shards:
                adapter: Any = store.adapter(shard)
                for key in adapter.client.scan_iter(match=f"*{self.prefix}*"):
                    adapter.client.delete(key)


class RedisClusterBackend(ContractBackend):
    name = "redis_cluster"
    scheme = "redis-cluster"
    kind = "keyvalue"
    marker = "redis"

    def connect(self) -> None:
        self.url = redis_cluster_url()

        def probe() -> None:
            host, _, port = self.url.split("://", 1)[1].split(",")[0].rpartition(":")
            client = RedisCluster(host=host, port=int(port), socket_connect_timeout=3)
            try:
                client.ping()
            finally:
                client.close()

        require("redis-cluster", probe)

    def shard_url(self, index: int) -> str:
        return f"{self.url}?prefix=s{index}_"

    def options(self) -> dict[str, Any]:
        # 16 index buckets (default 64) still spread every entity over all three masters
        # and keep the many small per-test entities cheap to create and drop.
        return {"namespace": self.prefix, "index_buckets": 16}

    def cleanup(self, toolkit: Toolkit) -> None:
        super().cleanup(toolkit)
        for store in toolkit._stores.values():
            for shard in store.router.shards:
                adapter: Any = store.adapter(shard)
                for key in adapter.client.scan_iter(match=f"*{self.prefix}*"):
                    adapter.client.delete(key)
