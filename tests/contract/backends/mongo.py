"""The stack's MongoDB-wire server (FerretDB 1.24): one database per shard.

Shards 0 and 1 use the databases stack/endpoints.toml names (``polystore_s0``,
``polystore_s1``); further shards get ``polystore_s<N>`` on the same server. Every test
has its own collection prefix (the ``namespace`` option), and its collections are
dropped afterwards. ``POLYSTORE_MONGO_URL`` points the suite at another server.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.contract.backends import ContractBackend
from tests.servers import endpoints, require
from toolkit import Toolkit


def mongo_urls() -> list[str]:
    """The shard URLs of the stack's MongoDB-wire server (or of the override's server)."""
    override = os.environ.get("POLYSTORE_MONGO_URL")
    if override:
        return [_with_database(override, f"polystore_s{index}") for index in range(2)]
    return list(endpoints()["mongo"]["shards"])


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def require_mongo(urls: list[str]) -> None:
    """The server answers ping, or the test fails naming it."""

    def probe() -> None:
        import pymongo

        client: Any = pymongo.MongoClient(urls[0], serverSelectionTimeoutMS=3000)
        try:
            client.admin.command("ping")
        finally:
            client.close()

    require("mongo", probe)


class MongoBackend(ContractBackend):
    name = "mongo"
    scheme = "mongodb"
    kind = "document"
    marker = "mongo"

    def connect(self) -> None:
        self.urls = mongo_urls()
        require_mongo(self.urls)

    def shard_url(self, index: int) -> str:
        if index < len(self.urls):
            return self.urls[index]
        return _with_database(self.urls[0], f"polystore_s{index}")

    def options(self) -> dict[str, Any]:
        return {"namespace": self.prefix, "connect_timeout": 5}

    def cleanup(self, toolkit: Toolkit) -> None:
        """Drop every collection with this test's prefix (entities and the row-lock table)."""
        for store in toolkit._stores.values():
            for shard in store.router.shards:
                adapter: Any = store.adapter(shard)
                for name in adapter.database.list_collection_names():
                    if name.startswith(self.prefix):
                        adapter.database.drop_collection(name)
