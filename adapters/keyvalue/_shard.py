"""``RedisShard``: one shard's connection, scripts and entity layouts (ensure, drop, describe).

The half of the adapter that is not about rows: the shared client, running the Lua
scripts, and the per-entity layout. An entity's bucket count is written to the meta
hash with ``HSETNX`` on its first ``ensure`` and read back, so every process agrees on
it whatever its own ``index_buckets`` option says.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Hashable, Sequence
from typing import Any, ClassVar, cast

from adapters.base import AdapterOptions, ExpiringScan, ShardInfo
from adapters.keyvalue import _scripts as lua
from adapters.keyvalue._connection import CLIENTS, Client, client_key, open_client, parse_url
from adapters.keyvalue._errors import ERRORS
from adapters.keyvalue._layout import Layout, buckets_of, tags
from adapters.keyvalue._options import KeyValueOptions
from adapters.keyvalue._values import TOKEN_WIDTH
from adapters.registry import redact_url
from sharding.core.errors import StoreError
from sharding.core.model import EntitySchema

__all__ = ["RedisShard"]


class RedisShard(ExpiringScan):
    """The connection and schema half of ``KeyValueAdapter`` (see ``adapters.keyvalue``)."""

    Options: ClassVar[type[AdapterOptions]] = KeyValueOptions
    options: KeyValueOptions

    def _open(self) -> None:
        self.target = parse_url(self.url)
        self.prefix = self.options.namespace + self.target.prefix
        self.cluster = self.target.cluster
        self._meta_key = f"{self.prefix}__ps_meta".encode()
        self._client_key: Hashable = client_key(self.target, self.options)
        self._client: Client | None = None
        self._layouts: dict[str, Layout] = {}
        self._lock = threading.Lock()

    # -- connection ------------------------------------------------------------------
    @property
    def client(self) -> Client:
        """The driver client, shared by the shards on this server (created on first use;
        a cluster client contacts its nodes then)."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    with ERRORS.translating(self.store, self.shard):
                        self._client = CLIENTS.acquire(self._client_key, lambda: open_client(self.target, self.options))
                client = self._client
        return client

    def _pipeline(self) -> Any:
        return self.client.pipeline(transaction=False)

    def _script(self, script: lua.Script, keys: Sequence[bytes | str], args: Sequence[Any]) -> Any:
        return lua.run(self.client, script, keys, args)

    def _run_scripts(self, calls: Sequence[lua.Call]) -> list[Any]:
        return lua.run_many(self.client, self._pipeline, calls)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            CLIENTS.release(self._client_key)

    def ping(self) -> None:
        with ERRORS.translating(self.store, self.shard):
            self.client.ping()

    # -- schema ----------------------------------------------------------------------
    def ensure(self, schema: EntitySchema, *, with_token: bool) -> None:
        with self._lock:
            if schema.name in self._layouts:
                return
        default = self.options.buckets(cluster=self.cluster)
        name = schema.name.encode()
        with ERRORS.translating(self.store, self.shard):
            self.client.hsetnx(self._meta_key, name, json.dumps({"buckets": default}))
            stored = cast(bytes | None, self.client.hget(self._meta_key, name))
        layout = Layout.of(self.prefix, schema, buckets_of(stored) if stored else default, with_token)
        with self._lock:
            self._layouts.setdefault(schema.name, layout)

    def _get_layout(self, schema: EntitySchema) -> Layout:
        layout = self._layouts.get(schema.name)
        if layout is None:
            raise StoreError(f"entity {schema.name!r} not ensured", store=self.store, shard=self.shard)
        if layout.schema is not schema and layout.schema != schema:
            # Another declaration with the same table name: same keys, its own fields.
            layout = Layout.of(self.prefix, schema, layout.buckets, layout.with_token)
            self._layouts[schema.name] = layout
        return layout

    def drop(self, schema: EntitySchema) -> None:
        """Delete every row and index bucket of the entity, and its layout entry."""
        name = schema.name.encode()
        with ERRORS.translating(self.store, self.shard):
            layout = self._layouts.get(schema.name)
            if layout is None:
                stored = cast(bytes | None, self.client.hget(self._meta_key, name))
                if stored is None:
                    return
                layout = Layout.of(self.prefix, schema, buckets_of(stored), True)
            for bucket in range(layout.buckets):
                index = layout.index_key(bucket)
                members = cast(list[bytes], self.client.zrange(index, 0, -1))
                keys = [layout.row_key(bucket, member[TOKEN_WIDTH:]) for member in members]
                for start in range(0, len(keys), lua.CHUNK):
                    self.client.delete(*keys[start : start + lua.CHUNK])
                self.client.delete(index, layout.key_index_key(bucket))
            self.client.hdel(self._meta_key, name)
        with self._lock:
            self._layouts.pop(schema.name, None)

    def describe(self) -> ShardInfo:
        """Reachability and rows per entity (index sizes: may include expired rows)."""
        server = redact_url(self.url)
        try:
            with ERRORS.translating(self.store, self.shard):
                meta = cast(dict[bytes, bytes], self.client.hgetall(self._meta_key))
                counts = {name.decode(): buckets_of(raw) for name, raw in sorted(meta.items())}
                pipe = self._pipeline()
                for name, buckets in counts.items():
                    for tag in tags(self.prefix, name, buckets):
                        pipe.zcard(tag + b":idx")
                sizes = iter(pipe.execute()) if counts else iter(())
                tables = {name: sum(next(sizes) for _ in range(buckets)) for name, buckets in counts.items()}
        except StoreError as exc:
            return ShardInfo(reachable=False, error=str(exc), server=server)
        kind = "redis cluster" if self.cluster else "redis"
        return ShardInfo(reachable=True, tables=tables, server=f"{kind} {server}")
