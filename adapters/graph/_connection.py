"""Where a shard lives and how the adapter reaches it: typed options, the URL, shared drivers.

One driver per server (and auth and settings) per process, shared (reference-counted)
by the adapters of every shard on it: shards that share a server through ``?prefix=``
share its connection pool, and the driver closes when the last adapter using it does.
The URL parameter ``?prefix=NAME`` isolates shards that share one server (Community
Edition has a single user database), and ``?database=NAME`` picks a database on
Enterprise; both are taken off the URL before the driver sees it.
"""

from __future__ import annotations

import threading
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import neo4j
import neo4j.exceptions as nx
from pydantic import Field

from adapters._options import AdapterOptions
from adapters._shared import SharedClients
from adapters.graph._cypher import PREFIX
from adapters.graph._errors import message
from adapters.registry import redact_url
from sharding.core.errors import ConfigError

__all__ = ["DriverLease", "GraphOptions", "parse_url"]


class GraphOptions(AdapterOptions):
    """``[stores.NAME.options]`` of a Neo4j store."""

    connect_timeout: float = Field(default=10, ge=0)
    """Seconds to wait for a new Bolt connection (the driver's ``connection_timeout``)."""
    acquire_timeout: float = Field(default=30, ge=0)
    """Seconds to wait for a pooled connection when all are busy: past it, a call fails
    with ``StoreTimeout`` instead of queueing without end."""
    retry_time: float = Field(default=5, ge=0)
    """Seconds the driver keeps retrying a managed transaction's transient failure
    (``max_transaction_retry_time``); 0 leaves retrying to the caller."""
    pool_size: int = Field(default=50, ge=1)
    """Bolt connections per server (shared by the shards on it), not per shard."""
    index_timeout: float = Field(default=300, ge=0)
    """Seconds ``ensure`` waits for a new index to come online: a scan forces the token
    index, so it must be usable before the first write."""


def parse_url(url: str) -> tuple[str, tuple[str, str] | None, str, str | None]:
    """(driver URL, auth, shard prefix, database) from a shard URL."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    prefix = query.pop("prefix", "")
    database = query.pop("database", None) or None
    if not PREFIX.match(prefix):
        raise ConfigError(f"{redact_url(url)}: prefix= must be letters, digits and _")
    auth = None
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        auth = (unquote(user), unquote(password))
    driver_url = urlunsplit((parts.scheme, netloc, "", urlencode(query), ""))
    return driver_url, auth, prefix, database


_DRIVERS: Final[SharedClients[neo4j.Driver]] = SharedClients(lambda driver: driver.close())


class DriverLease:
    """One adapter's use of its server's shared driver: taken when built, given back once."""

    def __init__(self, url: str, options: GraphOptions) -> None:
        self.server, auth, self.prefix, self.database = parse_url(url)
        settings: dict[str, Any] = {
            "connection_timeout": float(options.connect_timeout),
            "connection_acquisition_timeout": float(options.acquire_timeout),
            "max_transaction_retry_time": float(options.retry_time),
            "max_connection_pool_size": options.pool_size,
        }
        self._key = (self.server, auth, tuple(sorted(settings.items())))
        self._lock = threading.Lock()
        try:
            self.driver = _DRIVERS.acquire(
                self._key, lambda: neo4j.GraphDatabase.driver(self.server, auth=auth, **settings)
            )
        except nx.ConfigurationError as exc:
            raise ConfigError(f"{redact_url(url)}: {message(exc)}") from exc
        except (ValueError, nx.GqlError) as exc:
            raise ConfigError(f"{redact_url(url)}: {exc}") from exc
        self._held = True

    def release(self) -> None:
        """Give the driver back (the last user closes it); safe to call twice."""
        with self._lock:
            held, self._held = self._held, False
        if held:
            _DRIVERS.release(self._key)
