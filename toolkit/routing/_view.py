"""``RoutingView``: one store's ``RoutingState``, kept in step with the catalog.

``refresh`` costs one small query when nothing changed. A new epoch or directory version
re-reads the topology and the directory and rebuilds the router; a new rebalance reads
its target once (it does not change while the rebalance runs).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from sharding import router_from_spec
from sharding.base import Router
from toolkit.catalog import Catalog, Topology
from toolkit.routing._records import RoutingRow, Transitions
from toolkit.routing._state import RoutingState, Transition, pinned_router

__all__ = ["RoutingView"]


class RoutingView:
    """The routing of store ``store``, as this process last read it. Thread-safe."""

    def __init__(self, catalog: Catalog, topology: Topology) -> None:
        self.catalog = catalog
        self.transitions = Transitions(catalog)
        self.topology = topology
        self.state = RoutingState(topology.store, topology.epoch, 0, self._router(topology), topology.shards)
        self._row: RoutingRow | None = None
        self._targets: dict[str, tuple[Router, Mapping[str, str]]] = {}
        self._lock = threading.Lock()

    @property
    def store(self) -> str:
        return self.topology.store

    def refresh(self) -> bool:
        """Read the catalog again; True if anything this process routes by changed."""
        row = self.transitions.poll(self.store)
        if row is None or row == self._row:
            return False
        with self._lock:
            previous = self._row
            topology, router = self.topology, self.state.router
            if previous is None or (row.epoch, row.directory_version) != (
                previous.epoch,
                previous.directory_version,
            ):
                found = self.catalog.topology(self.store)
                if found is None:
                    return False
                topology, router = found, self._router(found)
            self.topology = topology
            self.state = RoutingState(
                self.store, topology.epoch, row.directory_version, router, topology.shards, self._transition(row)
            )
            self._row = row
        return True

    def _router(self, topology: Topology) -> Router:
        entries = self.catalog.directory(self.store) if topology.router.get("type") == "directory" else None
        return router_from_spec(topology.router, directory_entries=entries)

    def _transition(self, row: RoutingRow) -> Transition | None:
        if row.rebalance is None or row.phase is None or row.to_epoch is None:
            self._targets.clear()
            return None
        found = self._targets.get(row.rebalance)
        if found is None:
            target = self.transitions.target(self.store, row.rebalance)
            if target is None:  # released since the poll: nothing in flight any more
                return None
            found = _target(target)
            self._targets = {row.rebalance: found}
        return Transition(row.rebalance, row.phase, row.to_epoch, *found)


def _target(target: Mapping[str, Any]) -> tuple[Router, Mapping[str, str]]:
    """The target router and shard URLs a rebalance published."""
    return pinned_router(target["router"], target.get("entries")), dict(target["shards"])
