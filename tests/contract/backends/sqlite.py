"""The embedded default: one SQLite file per shard, no server."""

from __future__ import annotations

from tests.contract.backends import ContractBackend
from toolkit.config import sqlite_url


class SQLiteBackend(ContractBackend):
    name = "sqlite"
    scheme = "sqlite"

    def shard_url(self, index: int) -> str:
        return sqlite_url(self.tmp / f"shard{index}.db")
