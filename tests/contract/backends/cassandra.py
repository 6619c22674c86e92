"""The stack's Cassandra: one keyspace per shard, reused by every test of the run.

Cassandra's DDL is slow (dropping a table takes most of a second, creating one with its
indexes a few tenths), so a run does as little of it as it can:

* the keyspaces ``polystore_c0..`` are created once and kept;
* each test gets a table prefix (the store option ``namespace``) of its own while it
  runs, leased from a pool per test module (a module's entities always have the same
  schemas): cleanup deletes every partition the test wrote and returns the prefix, so
  the next test of that module reuses the tables instead of creating them;
* prefixes carry a random run id, so concurrent runs never share a table, and every
  table the run created is dropped when the interpreter exits;
* a keeper adapter holds the shared driver session open for the whole run.

A cleanup that fails does not return its prefix: the next test starts on fresh tables.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import uuid
from collections import defaultdict
from typing import Any

from tests.contract.backends import ContractBackend
from tests.servers import endpoints, require
from toolkit import Toolkit

with contextlib.suppress(ImportError):  # the driver's exit hooks first, so ours run before them
    import concurrent.futures.thread  # noqa: F401

    import cassandra.cluster  # noqa: F401

_RUN = uuid.uuid4().hex[:6]
_NUMBERS = itertools.count()
_LOCK = threading.Lock()
_FREE: dict[str, list[str]] = defaultdict(list)
"""Test module -> table prefixes whose tables are empty and ready for its next test."""
_CREATED: set[str] = set()
"""``keyspace.table`` of every table this run created: dropped at exit."""
_KEEPER: Any = None


def cassandra_points() -> str:
    """``HOST:PORT[,HOST:PORT]`` of the stack's Cassandra, or ``POLYSTORE_CASSANDRA_URL``'s."""
    override = os.environ.get("POLYSTORE_CASSANDRA_URL")
    if override:
        return override.partition("://")[2].partition("/")[0]
    return ",".join(endpoints()["cassandra"]["contact_points"])


def _shard_url(index: int) -> str:
    return f"cassandra://{cassandra_points()}/polystore_c{index}"


def _keeper() -> Any:
    """The adapter that keeps the shared session alive (same settings as the tests' stores)."""
    global _KEEPER
    from adapters.column import ColumnAdapter

    with _LOCK:
        if _KEEPER is None:
            _KEEPER = ColumnAdapter(_shard_url(0), store="keeper", shard="keeper")
        return _KEEPER


def _empty(table: Any) -> None:
    """Delete every partition of a table (tombstones are cheaper than DDL here)."""
    from cassandra.concurrent import execute_concurrent_with_args

    session = _keeper().session
    columns = ", ".join(f'"{name}"' for name in table.partition)
    where = " AND ".join(f'"{name}" = ?' for name in table.partition)
    partitions = list(session.execute(f"SELECT DISTINCT {columns} FROM {table.qualified}"))
    if partitions:
        delete = session.prepare(f"DELETE FROM {table.qualified} WHERE {where}")
        execute_concurrent_with_args(session, delete, partitions, concurrency=64)


def _drop_created() -> None:
    if _KEEPER is None or not _CREATED:
        return
    with contextlib.suppress(Exception):
        session = _KEEPER.session
        for future in [session.execute_async(f"DROP TABLE IF EXISTS {name}") for name in sorted(_CREATED)]:
            with contextlib.suppress(Exception):
                future.result()
        _KEEPER.close()


class CassandraBackend(ContractBackend):
    name = "cassandra"
    scheme = "cassandra"
    kind = "column"
    marker = "cassandra"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        current = os.environ.get("PYTEST_CURRENT_TEST", "")
        self.module = current.split("::")[0] if current else f"unknown-{uuid.uuid4().hex}"
        with _LOCK:
            free = _FREE[self.module]
            self.prefix = free.pop() if free else f"c{_RUN}n{next(_NUMBERS)}_"

    @classmethod
    def finish(cls) -> None:
        """Drop every table this run created, while the driver's thread pools still run."""
        _drop_created()

    def connect(self) -> None:
        def probe() -> None:
            keeper = _keeper()
            try:
                keeper.ping()
            except Exception:
                keeper.close()  # reconnect next time: the server may come back
                raise

        require("cassandra", probe)

    def shard_url(self, index: int) -> str:
        return _shard_url(index)

    def options(self) -> dict[str, Any]:
        return {"namespace": self.prefix}

    def cleanup(self, toolkit: Toolkit) -> None:
        for store in toolkit._stores.values():
            for shard in store.router.shards:
                adapter: Any = store.adapter(shard)
                for table in list(adapter._tables.values()):
                    with _LOCK:
                        _CREATED.add(table.qualified)
                    _empty(table)
        with _LOCK:
            if self.prefix not in _FREE[self.module]:  # a test may build several toolkits
                _FREE[self.module].append(self.prefix)
