"""The embedded default: one SQLite file per shard in the test's directory, no server."""

from __future__ import annotations

from tests.backends import Backend
from toolkit.config import sqlite_url


class SQLite(Backend, name="sqlite", scheme="sqlite"):
    def _url(self, shard: str) -> str:
        self.tmp.mkdir(parents=True, exist_ok=True)
        return sqlite_url(self.tmp / f"{shard}.db")
