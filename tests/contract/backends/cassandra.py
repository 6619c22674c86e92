"""The stack's Cassandra: one keyspace per shard, reused by every test of the session.

Cassandra's DDL is slow (a keyspace or table takes a few hundred milliseconds), so the
keyspaces ``polystore_c0..`` are created once and every test isolates itself with its
own table prefix (the store option ``namespace``); cleanup drops that test's tables.
"""

from __future__ import annotations

import os
from typing import Any

from tests.contract.backends import ContractBackend
from tests.servers import endpoints, require


def cassandra_points() -> str:
    """``HOST:PORT[,HOST:PORT]`` of the stack's Cassandra, or ``POLYSTORE_CASSANDRA_URL``'s."""
    override = os.environ.get("POLYSTORE_CASSANDRA_URL")
    if override:
        return override.partition("://")[2].partition("/")[0]
    return ",".join(endpoints()["cassandra"]["contact_points"])


class CassandraBackend(ContractBackend):
    name = "cassandra"
    scheme = "cassandra"
    kind = "column"
    marker = "cassandra"

    def connect(self) -> None:
        from adapters.column import ColumnAdapter

        def probe() -> None:
            adapter = ColumnAdapter(self.shard_url(0), store="probe", shard="probe")
            try:
                adapter.ping()
            finally:
                adapter.close()

        require("cassandra", probe)

    def shard_url(self, index: int) -> str:
        return f"cassandra://{cassandra_points()}/polystore_c{index}"

    def options(self) -> dict[str, Any]:
        return {"namespace": self.prefix}
