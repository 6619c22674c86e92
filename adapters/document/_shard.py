"""``DocumentShard``: the state every half of ``DocumentAdapter`` shares.

One adapter per shard, each shard its own database (the URL's path, e.g.
``mongodb://host/polystore_s0``; the ``database`` option when it names none), with its
own ``MongoClient``. Replica-set and ``mongodb+srv`` URIs go to ``MongoClient``
unchanged. Collections are named ``namespace + schema.name``. Whether the server is
FerretDB (which needs row locks and small bulk writes) is asked once, lazily.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pymongo
from pymongo import errors as mongo_errors
from pymongo.database import Database

from adapters._options import AdapterOptions
from adapters.base import Adapter
from adapters.document._entity import Entity
from adapters.document._errors import ERRORS, message
from adapters.document._json import Doc
from adapters.document._locks import LOCKS, RowLocks
from adapters.document._options import DocumentOptions
from adapters.registry import redact_url
from sharding.core.errors import ConfigError, StoreError
from sharding.core.model import EntitySchema

__all__ = ["DocumentShard"]


class DocumentShard(Adapter):
    """The connection, the ensured entities and the FerretDB switches of one shard."""

    Options: ClassVar[type[AdapterOptions]] = DocumentOptions
    options: DocumentOptions

    def _open(self) -> None:
        self._prefix = self.options.namespace
        self.client, self.database = self._connect()
        self._entities: dict[str, Entity] = {}
        self._lock = threading.Lock()
        self._row_locks: bool | None = self.options.row_locks_forced
        self._ferretdb: bool | None = None
        self._locks = RowLocks(
            self.database[f"{self._prefix}{LOCKS}"],
            timeout=self.options.lock_timeout,
            store=self.store,
            shard=self.shard,
        )

    def _connect(self) -> tuple[pymongo.MongoClient[Doc], Database[Doc]]:
        timeout_ms = int(self.options.connect_timeout * 1000)
        kwargs: dict[str, Any] = {
            "serverSelectionTimeoutMS": timeout_ms,
            "connectTimeoutMS": timeout_ms,
            "appname": "polystore",
        }
        if self.options.timeout > 0:  # see DocumentOptions.timeout
            kwargs["socketTimeoutMS"] = int(self.options.timeout * 1000)
        if self.options.pool_size is not None:
            kwargs["maxPoolSize"] = self.options.pool_size
        try:
            client: pymongo.MongoClient[Doc] = pymongo.MongoClient(self.url, **kwargs)
            return client, client.get_default_database(default=self.options.database)
        except (mongo_errors.PyMongoError, ValueError, TypeError) as exc:
            raise ConfigError(f"{redact_url(self.url)}: {message(exc)}") from None

    def _translating(self, key: Any = None) -> contextlib.AbstractContextManager[None]:
        """Driver exceptions inside the block become polystore's errors (``ERRORS``)."""
        return ERRORS.translating(self.store, self.shard, key)

    def _collection_name(self, schema: EntitySchema) -> str:
        return f"{self._prefix}{schema.name}"

    def _entity(self, schema: EntitySchema) -> Entity:
        found = self._entities.get(self._collection_name(schema))
        if found is None:
            raise StoreError(f"collection for {schema.name!r} not ensured", store=self.store, shard=self.shard)
        return found

    # -- FerretDB ----------------------------------------------------------------------
    def _is_ferretdb(self) -> bool:
        """Whether the server is FerretDB (asked once: ``buildInfo`` names its version)."""
        if self._ferretdb is None:
            with self._translating():
                self._ferretdb = "ferretdbVersion" in self.client.admin.command("buildInfo")
        return self._ferretdb

    def _needs_row_locks(self) -> bool:
        """Whether read-modify-write updates must be serialised by polystore itself
        (see ``adapters.document._locks``): the option, else whether this is FerretDB."""
        if self._row_locks is None:
            self._row_locks = self._is_ferretdb()
        return self._row_locks

    @contextlib.contextmanager
    def _row_lock(self, entity: Entity, ident: Any, key: Any) -> Iterator[None]:
        """The row with ``_id`` ``ident`` locked for the block where the server needs it."""
        if not self._needs_row_locks():
            yield
            return
        with self._locks.hold({"c": entity.collection.name, "k": ident}, key):
            yield
