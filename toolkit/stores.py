"""A store at run time: its current topology, its router and one adapter per shard.

The catalog's topology is the truth about where a store's data lives; polystore.toml
only seeds it (epoch 1). When the two disagree the catalog wins and a
``TopologyDriftWarning`` says so, because silently routing by a stale file after a
rebalance would read the wrong shards.

A store follows the catalog without a restart: ``poll()`` (called on every repository
operation, a clock read when nothing is due) asks the catalog at most every
``poll_interval`` seconds for the store's epoch, directory version and in-flight
rebalance phase, in one query, and rebuilds the router when they changed. While a
rebalance is in flight, ``moving`` describes it (see ``sharding.rebalance``).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Mapping
from typing import Any

from adapters.base import Adapter
from adapters.registry import adapter_class, scheme_of
from sharding import Router, router_from_config, router_from_spec
from sharding.base import ShardId
from sharding.rebalance._journal import Journal, RoutingState, ensure_tables, routing_state
from sharding.rebalance._view import Moving, moving_view
from toolkit.catalog import Catalog, Topology
from toolkit.config import StoreConfig
from toolkit.errors import TopologyError
from toolkit.model import EntitySchema
from toolkit.resilience import StoreGuard, StoreHealth, guard_adapter

__all__ = ["DEFAULT_POLL_INTERVAL", "Store", "TopologyDriftWarning"]

DEFAULT_POLL_INTERVAL = float(os.environ.get("POLYSTORE_POLL_MS", "100")) / 1000
"""How stale a store's view of its topology may get (seconds). ``polystore rebalance``
waits longer than this between phases (its ``settle`` time), so every process has seen a
phase before the next one starts."""


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
        self.moving: Moving | None = None
        self._plans: dict[str, Mapping[str, Any]] = {}
        fresh = router_from_config(config.router.type, [shard.name for shard in config.shards], config.router.options)
        topology = catalog.register(self.name, self.kind, config.shard_urls, fresh.to_spec())
        if fresh.kind == "directory" and topology.epoch == 1 and config.router.options.get("entries"):
            self._seed_directory(fresh)
        self._check_drift(topology, fresh.to_spec())
        self.topology = topology
        self.router: Router = self._build_router(topology)
        ensure_tables(catalog.engine)
        self._state: RoutingState | None = None
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

    def _build_router(self, topology: Topology) -> Router:
        entries = self._catalog.directory(self.name) if topology.router.get("type") == "directory" else None
        return router_from_spec(topology.router, directory_entries=entries)

    # -- adapters --------------------------------------------------------------------
    @property
    def shard_urls(self) -> Mapping[str, str]:
        return self.topology.shards

    def adapter(self, shard: ShardId | str) -> Adapter:
        """The adapter for one shard, connected on first use, behind the store's guard."""
        found = self._adapters.get(ShardId(shard))
        if found is not None:
            return found
        with self._lock:
            found = self._adapters.get(ShardId(shard))
            if found is None:
                url = self.topology.shards.get(shard)
                moving = self.moving
                if url is None and moving is not None:
                    url = moving.shards.get(shard)  # a shard a rebalance is moving rows to
                if url is None:
                    known = ", ".join(self.topology.shards)
                    raise TopologyError(f"store {self.name!r} has no shard {shard!r} (shards: {known})")
                cls = adapter_class(scheme_of(url))
                found = cls(url, store=self.name, shard=str(shard), options=self.config.options)
                if self.guard is not None:
                    found = guard_adapter(found, self.guard.shard(str(shard)))
                self._adapters[ShardId(shard)] = found
        return found

    def ensure(self, schema: EntitySchema, shard: ShardId) -> Adapter:
        """The adapter for ``shard`` with ``schema``'s table created (once per process)."""
        adapter = self.adapter(shard)
        marker = f"{shard}\0{schema.name}"
        if marker not in self._ensured:
            adapter.ensure(schema, with_token=True)
            self._ensured.add(marker)
            if schema.name not in self._recorded:  # so `polystore rebalance` knows what to move
                Journal(self._catalog).record_schema(schema)
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
        """Re-read the topology, directory and rebalance phase if another process changed them."""
        state = routing_state(self._catalog.engine, self.name)
        if state is None or state == self._state:
            return False
        with self._lock:
            previous = self._state
            if previous is None or (state.epoch, state.directory_version) != (
                previous.epoch,
                previous.directory_version,
            ):
                topology = self._catalog.topology(self.name)
                if topology is None:
                    return False
                self.topology = topology
                self.router = self._build_router(topology)
                self._ensured.clear()
            self.moving = self._moving(state)
            self._state = state
        return True

    def track(self, schema: EntitySchema, pairs: list[tuple[Any, Any]]) -> None:
        """Log (key, shard key) pairs of moving rows a repository is about to write, for the
        rebalance's fenced catch-up (a shard key of None: unknown, the pass compares all)."""
        moving = self.moving
        if moving is None or not pairs:
            return
        from sharding.keys import encode_key

        encoded = [(encode_key(key), b"" if shard is None else encode_key(shard)) for key, shard in pairs]
        Journal(self._catalog).touch(moving.rebalance, schema.name, encoded)

    def _moving(self, state: RoutingState) -> Moving | None:
        """The view of an in-flight rebalance; after cut-over (the epoch reached) its writes
        follow the new router whatever phase the journal still shows."""
        if state.rebalance is None or state.phase is None:
            self._plans.clear()
            return None
        plan = self._plans.get(state.rebalance)
        if plan is None:
            plan = Journal(self._catalog).get(state.rebalance).plan
            self._plans = {state.rebalance: plan}
        phase = state.phase
        if state.to_epoch is not None and state.epoch >= state.to_epoch:
            phase = "cleanup"
        return moving_view(state.rebalance, phase, self.router, plan, plan["source"]["shards"])

    def health(self) -> StoreHealth | None:
        """The guard's breakers, bulkhead and throttle right now (None: resilience disabled)."""
        return self.guard.health(str(shard) for shard in self.topology.shards) if self.guard is not None else None

    def close(self) -> None:
        with self._lock:
            for adapter in self._adapters.values():
                adapter.close()
            self._adapters.clear()
            self._ensured.clear()
