"""Where a shard lives and how the adapter reaches it: the URL and shared clients.

``redis://``/``rediss://``/``unix://`` name one standalone server (redis-py parses the
URL); ``redis-cluster://[user:pass@]host:port[,host:port...][?ssl=true]`` lists a
cluster's startup nodes. ``?prefix=`` is polystore's own and is taken off the URL: it
lets several logical shards share one server or cluster.

One client per server and settings per process, shared (reference-counted) by the
adapters of every shard on it: a store whose eight shards are prefixes of one cluster
opens one set of pools, not eight, and the client closes with its last adapter.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from adapters._shared import SharedClients
from adapters.keyvalue._options import NAME, KeyValueOptions
from adapters.registry import redact_url
from sharding.core.errors import ConfigError

__all__ = ["CLIENTS", "Client", "RedisTarget", "client_key", "open_client", "parse_url"]

Client: TypeAlias = "redis.Redis | RedisCluster"


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """What a shard URL says: standalone or cluster, where, and the key prefix."""

    cluster: bool
    url: str
    """For standalone: the URL redis-py parses (without ``prefix``)."""
    nodes: tuple[tuple[str, int], ...] = ()
    """For a cluster: the startup nodes."""
    username: str | None = None
    password: str | None = None
    prefix: str = ""
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def ssl(self) -> bool:
        """Whether a cluster URL asks for TLS (``?ssl=true``)."""
        return self.params.get("ssl", "").lower() in ("1", "true", "yes")


def parse_url(url: str) -> RedisTarget:
    """Split a shard URL; ``?prefix=`` (letters, digits, ``_.:-``) is polystore's own.

    ``redis-cluster://[user:pass@]host:port[,host:port...]`` lists startup nodes.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    prefix = query.pop("prefix", "")
    if not NAME.match(prefix):
        raise ConfigError(f"{redact_url(url)}: prefix may hold only letters, digits and _.:-")
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        rest = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
        return RedisTarget(cluster=False, url=rest, prefix=prefix, params=query)
    if scheme != "redis-cluster":
        raise ConfigError(f"{redact_url(url)}: expected redis://, rediss:// or redis-cluster://")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{redact_url(url)}: cluster nodes are host:port, separated by commas")
        nodes.append((host.strip("[]"), int(port)))
    return RedisTarget(
        cluster=True,
        url=url,
        nodes=tuple(nodes),
        username=unquote(username) or None,
        password=unquote(password) or None,
        prefix=prefix,
        params=query,
    )


def open_client(target: RedisTarget, options: KeyValueOptions) -> Client:
    """A new redis-py client for ``target`` (a cluster client contacts its nodes now)."""
    common: dict[str, Any] = {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.connect_timeout,
        "decode_responses": False,
    }
    if options.pool_size is not None:
        common["max_connections"] = options.pool_size
    if target.cluster:
        nodes = [ClusterNode(host, port) for host, port in target.nodes]  # type: ignore[no-untyped-call]
        if target.ssl:
            common["ssl"] = True
        return RedisCluster(startup_nodes=nodes, username=target.username, password=target.password, **common)
    retry = Retry(NoBackoff(), options.retries)
    return redis.Redis.from_url(target.url, retry=retry, **common)


def client_key(target: RedisTarget, options: KeyValueOptions) -> Hashable:
    """What makes two shards' clients interchangeable: the server and the client settings
    (not the key prefix, which the adapter applies itself)."""
    where = (target.nodes, target.username, target.password, target.ssl) if target.cluster else (target.url,)
    settings = (options.socket_timeout, options.connect_timeout, options.pool_size, options.retries)
    return (target.cluster, *where, *settings)


CLIENTS: SharedClients[Client] = SharedClients(lambda client: client.close())
"""The clients of this process, one per ``client_key``."""
