"""A store at run time: its routing state, its router and one adapter per shard.

The catalog's topology is the truth about where a store's data lives; polystore.toml
only seeds it (epoch 1). When the two disagree the catalog wins and a
``TopologyDriftWarning`` says so, because silently routing by a stale file after a
rebalance would read the wrong shards.

A store follows the catalog without a restart: ``poll()`` (called on every repository
operation, a clock read when nothing is due) asks the catalog at most every
``poll_interval`` seconds for the store's epoch, directory version and rebalance in
flight, in one query, and rebuilds its ``RoutingState`` (``toolkit.routing``) when they
changed. Repositories route by that state; ``write_route`` waits while it holds a key.
"""

from __future__ import annotations

import functools
import operator
import os
import threading
import time
import warnings
from collections.abc import Mapping
from typing import Any

from adapters.base import Adapter, Capability
from adapters.registry import adapter_class, scheme_of
from sharding import Router, router_from_config
from sharding.base import ShardId
from sharding.keys import encode_key
from toolkit.catalog import Catalog, Topology
from toolkit.config import StoreConfig
from toolkit.errors import StoreUnavailable, TopologyError
from toolkit.model import EntitySchema
from toolkit.resilience import StoreGuard, StoreHealth, guard_adapter
from toolkit.routing import RoutingState, RoutingView, WriteRoute

__all__ = ["DEFAULT_POLL_INTERVAL", "FENCE_TIMEOUT", "Store", "TopologyDriftWarning"]

DEFAULT_POLL_INTERVAL = float(os.environ.get("POLYSTORE_POLL_MS", "100")) / 1000
"""How stale a store's view of its topology may get (seconds). ``polystore rebalance``
waits longer than this between phases (its ``settle`` time), so every process has seen a
phase before the next one starts."""

FENCE_TIMEOUT = 60.0
"""Seconds a write of a key in a moving range waits for a rebalance's fence to lift
before failing with a retryable StoreUnavailable (the fence normally lasts one final
compare of the moving rows; a rebalance killed while fenced keeps it until resumed or
aborted)."""


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
        self.guard = StoreGuard(self.name, config.resilience) if config.resilience.enabled else None
        """Breaker per shard, bulkhead, throttle and retry (``toolkit.resilience``); None if disabled."""
        self._ensured: set[str] = set()
        self._recorded: set[str] = set()
        self.poll_interval = DEFAULT_POLL_INTERVAL
        self._next_poll = 0.0
        self._poll_lock = threading.Lock()
        fresh = router_from_config(config.router.type, [shard.name for shard in config.shards], config.router.options)
        topology = catalog.register(self.name, self.kind, config.shard_urls, fresh.to_spec())
        if fresh.kind == "directory" and topology.epoch == 1 and config.router.options.get("entries"):
            self._seed_directory(fresh)
        self._check_drift(topology, fresh.to_spec())
        self._view = RoutingView(catalog, topology)
        self.refresh()

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

    # -- routing ---------------------------------------------------------------------
    @property
    def routing(self) -> RoutingState:
        """Where this store's keys are read and written, as of the last ``refresh``."""
        return self._view.state

    @property
    def router(self) -> Router:
        """The current epoch's router."""
        return self._view.state.router

    @property
    def topology(self) -> Topology:
        """The current epoch's topology."""
        return self._view.topology

    @property
    def shard_urls(self) -> Mapping[str, str]:
        return self.topology.shards

    def write_route(self, shard_key: Any) -> WriteRoute:
        """Where a write of ``shard_key`` goes; waits while a rebalance fences the key."""
        deadline = 0.0
        while True:
            state = self._view.state
            route = state.write(shard_key)
            if route is not None:
                return route
            now = time.monotonic()
            deadline = deadline or now + FENCE_TIMEOUT
            if now > deadline:
                raise StoreUnavailable(
                    f"rebalance {state.rebalance} fences this key for longer than {FENCE_TIMEOUT:.0f}s "
                    "(resume or abort it: `polystore rebalance status`)",
                    store=self.name,
                    key=shard_key,
                )
            time.sleep(max(self.poll_interval / 2, 0.005))
            self.refresh()

    def track(self, schema: EntitySchema, pairs: list[tuple[Any, Any]]) -> None:
        """Log (key, shard key) pairs of moving rows a repository is about to write, for the
        rebalance's fenced catch-up (a shard key of None: unknown, the pass compares all)."""
        rebalance = self._view.state.rebalance
        if rebalance is None or not pairs:
            return
        encoded = [(encode_key(key), b"" if shard is None else encode_key(shard)) for key, shard in pairs]
        self._view.transitions.log_writes(rebalance, schema.name, encoded)

    # -- adapters --------------------------------------------------------------------
    def adapter(self, shard: ShardId | str) -> Adapter:
        """The adapter for one shard, connected on first use, behind the store's guard."""
        found = self._adapters.get(ShardId(shard))
        if found is not None:
            return found
        with self._lock:
            found = self._adapters.get(ShardId(shard))
            if found is None:
                url = self._view.state.shard_url(shard)  # a rebalance's target shards included
                if url is None:
                    known = ", ".join(self.topology.shards)
                    raise TopologyError(f"store {self.name!r} has no shard {shard!r} (shards: {known})")
                cls = adapter_class(scheme_of(url))
                found = cls(url, store=self.name, shard=str(shard), options=self.config.options)
                if self.guard is not None:
                    found = guard_adapter(found, self.guard.shard(str(shard)))
                self._adapters[ShardId(shard)] = found
        return found

    @property
    def capabilities(self) -> Capability:
        """What every shard of the current epoch offers (``adapters.base.Capability``)."""
        return functools.reduce(operator.and_, (self.adapter(shard).capabilities for shard in self.router.shards))

    def ensure(self, schema: EntitySchema, shard: ShardId) -> Adapter:
        """The adapter for ``shard`` with ``schema``'s table created (once per process)."""
        adapter = self.adapter(shard)
        marker = f"{shard}\0{schema.name}"
        if marker not in self._ensured:
            adapter.ensure(schema, with_token=True)
            self._ensured.add(marker)
            if schema.name not in self._recorded:  # so `polystore rebalance` knows what to move
                self._catalog.record_schema(schema)
                self._recorded.add(schema.name)
        return adapter

    # -- staleness -------------------------------------------------------------------
    def poll(self) -> None:
        """Refresh if the last look at the catalog is older than ``poll_interval``.

        Every repository operation calls this before routing, so a write is routed by a
        view at most ``poll_interval`` old when it starts. Threads arriving while one
        refreshes wait for it rather than route by the stale view.
        """
        if time.monotonic() < self._next_poll:
            return
        with self._poll_lock:
            if time.monotonic() < self._next_poll:
                return
            self.refresh()
            self._next_poll = time.monotonic() + self.poll_interval

    def refresh(self) -> bool:
        """Re-read the topology, directory and rebalance in flight if another process changed them."""
        before = self._view.state
        if not self._view.refresh():
            return False
        after = self._view.state
        if (after.epoch, after.directory_version) != (before.epoch, before.directory_version):
            self._ensured.clear()  # tables on the new epoch's shards
        return True

    def health(self) -> StoreHealth | None:
        """The guard's breakers, bulkhead and throttle right now (None: resilience disabled)."""
        return self.guard.health(str(shard) for shard in self.topology.shards) if self.guard is not None else None

    def close(self) -> None:
        """Close every shard's adapter (they reconnect on next use)."""
        with self._lock:
            adapters, self._adapters = list(self._adapters.values()), {}
            self._ensured.clear()
        for adapter in adapters:
            adapter.close()
