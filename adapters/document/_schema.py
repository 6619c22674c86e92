"""Collections and their indexes: ``ensure``, ``drop``, ``ping``, ``describe``, ``close``.

A hash-routed collection gets an index on ``(_ps_token, _id)`` (what token-range scans
read), and so does the shard key when it differs from the key, and every declared
index. No TTL index: MongoDB's TTL monitor runs once a minute, too coarse for the
contract's expiry through ``get``.
"""

from __future__ import annotations

import pymongo

from adapters.base import TOKEN_FIELD, ShardInfo
from adapters.document._entity import Entity
from adapters.document._shard import DocumentShard
from adapters.registry import redact_url
from sharding.core.errors import StoreError
from sharding.core.model import EntitySchema

__all__ = ["SchemaOps"]


class SchemaOps(DocumentShard):
    """The lifecycle half of ``DocumentAdapter``."""

    def ensure(self, schema: EntitySchema, *, with_token: bool) -> None:
        name = self._collection_name(schema)
        with self._lock:
            if name in self._entities:
                return
            entity = Entity(
                schema=schema,
                collection=self.database[name],
                kinds={spec.name: spec.type for spec in schema.fields},
                with_token=with_token,
            )
            indexes: list[list[str]] = []
            if with_token:
                indexes.append([TOKEN_FIELD, "_id"])
            if schema.shard_key != schema.key:
                indexes.append([entity.path(field) for field in schema.shard_key])
            indexes.extend([entity.path(field) for field in index] for index in schema.indexes)
            with self._translating():
                for paths in indexes:
                    if paths != ["_id"]:
                        entity.collection.create_index([(path, pymongo.ASCENDING) for path in paths])
            self._entities[name] = entity

    def drop(self, schema: EntitySchema) -> None:
        name = self._collection_name(schema)
        with self._lock, self._translating():
            self._entities.pop(name, None)
            self.database.drop_collection(name)

    def ping(self) -> None:
        with self._translating():
            self.client.admin.command("ping")

    def describe(self) -> ShardInfo:
        try:
            with self._translating():
                version = self.client.server_info().get("version", "?")
                counts = {
                    name.removeprefix(self._prefix): self.database[name].estimated_document_count()
                    for name in sorted(self.database.list_collection_names())
                    if name.startswith(self._prefix) and not name.startswith(f"{self._prefix}_ps_")
                }
            return ShardInfo(reachable=True, tables=counts, server=f"mongodb {version} {redact_url(self.url)}")
        except StoreError as exc:
            return ShardInfo(reachable=False, error=str(exc), server=redact_url(self.url))

    def close(self) -> None:
        self.client.close()
