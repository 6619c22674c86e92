"""A store at run time: its current topology, its router and one adapter per shard.

The catalog's topology is the truth about where a store's data lives; polystore.toml
only seeds it (epoch 1). When the two disagree the catalog wins and a
``TopologyDriftWarning`` says so, because silently routing by a stale file after a
rebalance would read the wrong shards.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from typing import Any

from adapters.base import Adapter
from adapters.registry import adapter_class, scheme_of
from sharding import Router, router_from_config, router_from_spec
from sharding.base import ShardId
from toolkit.catalog import Catalog, Topology
from toolkit.config import StoreConfig
from toolkit.errors import TopologyError
from toolkit.model import EntitySchema

__all__ = ["Store", "TopologyDriftWarning"]


class TopologyDriftWarning(UserWarning):
    """polystore.toml describes a store differently from the catalog's current epoch."""


class Store:
    """One store's routing and adapters. Created by the Toolkit; thread-safe."""

    def __init__(self, config: StoreConfig, catalog: Catalog) -> None:
        self.config = config
        self.name = config.name
        self.kind = config.kind
        self._catalog = catalog
        self._lock = threading.RLock()
        self._adapters: dict[ShardId, Adapter] = {}
        self._ensured: set[str] = set()
        fresh = router_from_config(config.router.type, [shard.name for shard in config.shards], config.router.options)
        topology = catalog.register(self.name, self.kind, config.shard_urls, fresh.to_spec())
        if fresh.kind == "directory" and topology.epoch == 1 and config.router.options.get("entries"):
            self._seed_directory(fresh)
        self._check_drift(topology, fresh.to_spec())
        self.topology = topology
        self.router: Router = self._build_router(topology)
        self._directory_version = catalog.versions().get(self.name)

    def _seed_directory(self, router: Router) -> None:
        entries = getattr(router, "entries", None)
        if entries and not self._catalog.directory(self.name):
            self._catalog.assign(self.name, dict(entries))

    def _check_drift(self, topology: Topology, spec: Mapping[str, Any]) -> None:
        differs = dict(topology.shards) != self.config.shard_urls or topology.router.get("type") != spec.get("type")
        if differs:
            warnings.warn(
                f"store {self.name!r}: the config differs from the catalog's epoch {topology.epoch}; "
                f"using the catalog (shards {', '.join(topology.shards)}). "
                "Change a topology with `polystore rebalance --to FILE`.",
                TopologyDriftWarning,
                stacklevel=4,
            )

    def _build_router(self, topology: Topology) -> Router:
        entries = self._catalog.directory(self.name) if topology.router.get("type") == "directory" else None
        return router_from_spec(topology.router, directory_entries=entries)

    # -- adapters --------------------------------------------------------------------
    @property
    def shard_urls(self) -> Mapping[str, str]:
        return self.topology.shards

    def adapter(self, shard: ShardId | str) -> Adapter:
        """The adapter for one shard, connected on first use."""
        found = self._adapters.get(ShardId(shard))
        if found is not None:
            return found
        with self._lock:
            found = self._adapters.get(ShardId(shard))
            if found is None:
                url = self.topology.shards.get(shard)
                if url is None:
                    known = ", ".join(self.topology.shards)
                    raise TopologyError(f"store {self.name!r} has no shard {shard!r} (shards: {known})")
                cls = adapter_class(scheme_of(url))
                found = cls(url, store=self.name, shard=str(shard), options=self.config.options)
                self._adapters[ShardId(shard)] = found
        return found

    def ensure(self, schema: EntitySchema, shard: ShardId) -> Adapter:
        """The adapter for ``shard`` with ``schema``'s table created (once per process)."""
        adapter = self.adapter(shard)
        marker = f"{shard}\0{schema.name}"
        if marker not in self._ensured:
            adapter.ensure(schema, with_token=True)
            self._ensured.add(marker)
        return adapter

    # -- staleness -------------------------------------------------------------------
    def refresh(self) -> bool:
        """Re-read the topology and directory if another process changed them."""
        version = self._catalog.versions().get(self.name)
        if version == self._directory_version:
            return False
        with self._lock:
            topology = self._catalog.topology(self.name)
            if topology is None:
                return False
            self.topology = topology
            self.router = self._build_router(topology)
            self._directory_version = version
            self._ensured.clear()
        return True

    def close(self) -> None:
        with self._lock:
            for adapter in self._adapters.values():
                adapter.close()
            self._adapters.clear()
            self._ensured.clear()
