"""The stack's Cassandra: one keyspace per shard number, reused by every test of the run.

Cassandra's DDL is slow (dropping a table takes most of a second, creating one with its
indexes a few tenths), so a run does as little of it as it can:

* the keyspaces ``polystore_c0..`` are created once (by the adapter) and kept;
* each test gets a table prefix (the store option ``namespace``) of its own while it
  runs, leased from a pool per test module (a module's entities always have the same
  schemas): cleanup deletes every partition the test wrote and returns the prefix, so
  the next test of that module reuses the tables instead of creating them;
* prefixes carry a random run id, so concurrent runs never share a table, and every
  table the run created is dropped when the session ends;
* a keeper adapter holds the adapters' shared driver session open for the whole run
  (through the public API only: ``ping`` and ``close``).

Cleanup talks to the server through a driver session of its own. A cleanup that fails
does not return its prefix: the next test starts on fresh tables.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.backends import Backend, shard_index
from tests.servers import endpoints, require

with contextlib.suppress(ImportError):  # the driver's exit hooks first, so ours run before them
    import concurrent.futures.thread  # noqa: F401

    import cassandra.cluster  # noqa: F401

_RUN = uuid.uuid4().hex[:6]
_NUMBERS = itertools.count()
_LOCK = threading.Lock()
_FREE: dict[str, list[str]] = defaultdict(list)
"""Test module -> table prefixes whose tables are empty and ready for its next test."""
_CREATED: set[str] = set()
"""``keyspace.table`` of every table this run wrote to: dropped at the end."""
_KEEPER: Any = None
_SESSION: Any = None


def cassandra_points() -> str:
    """``HOST:PORT[,HOST:PORT]`` of the stack's Cassandra, or ``POLYSTORE_CASSANDRA_URL``'s."""
    override = os.environ.get("POLYSTORE_CASSANDRA_URL")
    if override:
        return override.partition("://")[2].partition("/")[0]
    return ",".join(endpoints()["cassandra"]["contact_points"])


def keyspace_url(index: int) -> str:
    """The URL of shard number ``index``: keyspace ``polystore_c<index>``."""
    return f"cassandra://{cassandra_points()}/polystore_c{index}"


def _keeper() -> Any:
    """An adapter that keeps the shared driver session alive (same settings as the tests' stores)."""
    global _KEEPER
    from adapters.registry import adapter_class

    with _LOCK:
        if _KEEPER is None:
            _KEEPER = adapter_class("cassandra")(keyspace_url(0), store="keeper", shard="keeper")
        return _KEEPER


def session() -> Any:
    """This module's own driver session on the stack's Cassandra (for setup and cleanup)."""
    global _SESSION
    from cassandra.cluster import Cluster

    with _LOCK:
        if _SESSION is None:
            points = [point.rpartition(":") for point in cassandra_points().split(",")]
            cluster = Cluster([host for host, _, _ in points], port=int(points[0][2] or 9042))
            _SESSION = cluster.connect()
        return _SESSION


def tables_with_prefix(keyspaces: set[str], prefix: str) -> list[str]:
    """``keyspace.table`` of every table in ``keyspaces`` whose name starts with ``prefix``."""
    found = []
    for keyspace in sorted(keyspaces):
        rows = session().execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))
        found += [f"{keyspace}.{row.table_name}" for row in rows if row.table_name.startswith(prefix)]
    return found


def _empty(qualified: str) -> None:
    """Delete every partition of a table (tombstones are cheaper than DDL here)."""
    from cassandra.concurrent import execute_concurrent_with_args

    keyspace, _, table = qualified.partition(".")
    columns = session().execute(
        "SELECT column_name, kind, position FROM system_schema.columns WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, table),
    )
    partition = [
        row.column_name for row in sorted(columns, key=lambda row: row.position) if row.kind == "partition_key"
    ]
    names = ", ".join(f'"{name}"' for name in partition)
    where = " AND ".join(f'"{name}" = ?' for name in partition)
    keys = list(session().execute(f"SELECT DISTINCT {names} FROM {qualified}"))
    if keys:
        delete = session().prepare(f"DELETE FROM {qualified} WHERE {where}")
        execute_concurrent_with_args(session(), delete, keys, concurrency=64)


class Cassandra(Backend, name="cassandra", scheme="cassandra", kind="column", marker="cassandra"):
    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        current = os.environ.get("PYTEST_CURRENT_TEST", "")
        self.module = current.split("::")[0] if current else f"unknown-{uuid.uuid4().hex}"
        with _LOCK:
            free = _FREE[self.module]
            self.prefix = free.pop() if free else f"c{_RUN}n{next(_NUMBERS)}_"

    def connect(self) -> None:
        def probe() -> None:
            keeper = _keeper()
            try:
                keeper.ping()
            except Exception:
                keeper.close()  # reconnect next time: the server may come back
                raise

        require("cassandra", probe)

    def _url(self, shard: str) -> str:
        return keyspace_url(shard_index(shard))

    def cleanup(self) -> None:
        keyspaces = {url.rpartition("/")[2] for url in self.made.values()}
        for qualified in tables_with_prefix(keyspaces, self.prefix):
            with _LOCK:
                _CREATED.add(qualified)
            _empty(qualified)
        with _LOCK:
            if self.prefix not in _FREE[self.module]:  # a test may build several toolkits
                _FREE[self.module].append(self.prefix)

    @classmethod
    def finish(cls) -> None:
        """Drop every table this run wrote to, while the driver's thread pools still run."""
        if _SESSION is None or not _CREATED:
            return
        with contextlib.suppress(Exception):
            for future in [_SESSION.execute_async(f"DROP TABLE IF EXISTS {name}") for name in sorted(_CREATED)]:
                with contextlib.suppress(Exception):
                    future.result()
        with contextlib.suppress(Exception):
            _SESSION.cluster.shutdown()
        if _KEEPER is not None:
            _KEEPER.close()
