"""The embedded default: one SQLite file per shard, no server."""

from __future__ import annotations

from typing import Any

from tests.contract.backends import ContractBackend
from toolkit.config import sqlite_url


class SQLiteBackend(ContractBackend):
    name = "sqlite"
    scheme = "sqlite"

    def options(self) -> dict[str, Any]:
        return {"namespace": self.prefix}

    def shard_url(self, index: int) -> str:
        return sqlite_url(self.tmp / f"shard{index}.db")
