"""Where a shard lives and how the adapter reaches it: the URL, and shared sessions.

One ``Cluster``/``Session`` per contact-point set (and credentials and settings),
shared by every adapter in the process and reference counted: many shards on one
cluster are many keyspaces, not many connection pools. The session connects on first
use, so building adapters (and loading a configuration) costs no I/O.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, unquote

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import tuple_factory

from adapters._shared import SharedClients
from adapters.column._errors import ERRORS
from adapters.column._options import CQL_NAME, ColumnOptions
from adapters.registry import redact_url
from sharding.core.errors import ConfigError

__all__ = ["Connection", "SharedSession", "Target", "parse_url"]


@dataclass(frozen=True, slots=True)
class Target:
    """What a URL names: contact points, credentials and the keyspace."""

    points: tuple[tuple[str, int], ...]
    keyspace: str
    username: str | None = None
    password: str | None = None
    query: tuple[tuple[str, str], ...] = ()
    """URL parameters: options, overridden by the store's own."""


def parse_url(url: str) -> Target:
    """``cassandra://[user:pw@]h1[:p1][,h2[:p2]...]/keyspace[?k=v]`` -> its parts."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0].lower() != "cassandra":
        raise ConfigError(f"not a cassandra:// URL: {redact_url(url)!r}")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, _, secret = userinfo.partition(":")
        username, password = unquote(user), unquote(secret)
    points = tuple(_point(part, url) for part in netloc.split(",") if part)
    keyspace = path.strip("/")
    if not points:
        raise ConfigError(f"{redact_url(url)}: no contact point (cassandra://HOST:PORT/KEYSPACE)")
    if not CQL_NAME.match(keyspace):
        raise ConfigError(
            f"{redact_url(url)}: the keyspace must be letters, digits and _ (at most 48), not {keyspace!r}"
        )
    return Target(points, keyspace.lower(), username, password, tuple(parse_qsl(query)))


def _point(text: str, url: str) -> tuple[str, int]:
    host, port = text, "9042"
    if text.startswith("["):  # [IPv6]:port
        host, _, tail = text[1:].partition("]")
        port = tail.removeprefix(":") or port
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{redact_url(url)}: bad contact point {text!r} (HOST:PORT)")
    return host, int(port)


@dataclass
class SharedSession:
    """One cluster's session, and the keyspaces already ensured through it (so that
    every shard on the cluster checks its keyspace once per process)."""

    cluster: Cluster
    session: Session
    keyspaces: set[str] = field(default_factory=set)


def _connect(target: Target, options: ColumnOptions) -> SharedSession:
    policy = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=options.local_dc))
    profile = ExecutionProfile(
        load_balancing_policy=policy,
        consistency_level=options.consistency_level,
        request_timeout=options.request_timeout,
        row_factory=tuple_factory,
    )
    auth = PlainTextAuthProvider(target.username, target.password or "") if target.username is not None else None
    pinned = {"protocol_version": options.protocol_version} if options.protocol_version else {}
    cluster = Cluster(
        **pinned,
        contact_points=list(target.points),
        auth_provider=auth,
        connect_timeout=options.connect_timeout,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    try:
        session = cluster.connect()
    except BaseException:
        cluster.shutdown()
        raise
    return SharedSession(cluster, session)


_SESSIONS: Final[SharedClients[SharedSession]] = SharedClients(lambda shared: shared.cluster.shutdown())


class Connection:
    """One adapter's use of its cluster's shared session: taken on first use, given back once."""

    def __init__(self, target: Target, options: ColumnOptions, *, store: str, shard: str) -> None:
        self.target = target
        self._options = options
        self._where = (store, shard)
        settings = (
            options.consistency_level,
            options.request_timeout,
            options.connect_timeout,
            options.local_dc,
            options.protocol_version,
        )
        self._key = (target.points, target.username, target.password, settings)
        self._lock = threading.Lock()
        self._shared: SharedSession | None = None

    @property
    def shared(self) -> SharedSession:
        """The shared session, connected on first use (thread-safe)."""
        shared = self._shared
        if shared is None:
            with self._lock:
                if self._shared is None:
                    with ERRORS.translating(*self._where):
                        self._shared = _SESSIONS.acquire(self._key, lambda: _connect(self.target, self._options))
                shared = self._shared
        return shared

    def release(self) -> None:
        """Give the session back (the last user shuts the cluster down); safe to call twice."""
        with self._lock:
            shared, self._shared = self._shared, None
        if shared is not None:
            _SESSIONS.release(self._key)
