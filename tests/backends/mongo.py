"""The stack's MongoDB-wire server (FerretDB 1.24): one database per shard.

Shard ``sN`` uses database ``polystore_sN`` (the stack creates ``polystore_s0`` and
``polystore_s1``; others appear on first write). Every test has its own collection
prefix (the ``namespace`` option), and cleanup drops its collections.
``POLYSTORE_MONGO_URL`` points the tests at another server.
"""

from __future__ import annotations

import os
from contextlib import closing
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.backends import Backend
from tests.servers import endpoints, require


def mongo_urls() -> list[str]:
    """The shard URLs of the stack's MongoDB-wire server (or of the override's server)."""
    override = os.environ.get("POLYSTORE_MONGO_URL")
    if override:
        return [with_database(override, f"polystore_s{index}") for index in range(2)]
    return list(endpoints()["mongo"]["shards"])


def with_database(url: str, database: str) -> str:
    """``url`` pointing at ``database`` instead of the one it names."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def mongo_client(url: str) -> Any:
    """A pymongo client that fails fast when the server does not answer."""
    import pymongo

    return pymongo.MongoClient(url, serverSelectionTimeoutMS=3000, socketTimeoutMS=5000, connectTimeoutMS=3000)


def drop_collections(database: Any, prefix: str) -> None:
    """Drop the collections of ``database`` whose names start with ``prefix``."""
    for name in database.list_collection_names():
        if name.startswith(prefix):
            database.drop_collection(name)


def require_mongo(urls: list[str]) -> None:
    """The server answers ping, or the test fails naming it."""

    def probe() -> None:
        with closing(mongo_client(urls[0])) as client:
            client.admin.command("ping")

    require("mongo", probe)


class Mongo(Backend, name="mongo", scheme="mongodb", kind="document", marker="mongo"):
    def connect(self) -> None:
        self.urls = mongo_urls()
        require_mongo(self.urls)

    def _url(self, shard: str) -> str:
        return with_database(self.urls[0], f"polystore_{shard}")

    def options(self) -> dict[str, Any]:
        return {"namespace": self.prefix, "connect_timeout": 5}

    def cleanup(self) -> None:
        """Drop every collection with this test's prefix (entities and the row-lock table)."""
        if not self.made:
            return
        with closing(mongo_client(self.urls[0])) as client:
            for url in set(self.made.values()):
                drop_collections(client[urlsplit(url).path.lstrip("/")], self.prefix)
