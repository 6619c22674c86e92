"""``Toolkit``: the object an application builds once and asks for repositories.

    toolkit = Toolkit()                          # ./polystore.toml, else the embedded default
    toolkit = Toolkit("config/polystore.toml")   # an explicit file
    users = toolkit.repository(User)

It owns the catalog connection, one ``Store`` per store (router + adapters) and the
thread pool that fans queries out to shards. Close it (or use ``with``) to release
connections.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

from sharding import rebalance
from sharding.base import ShardId
from sharding.keys import encode_key
from toolkit import catalog, routing, saga
from toolkit.catalog import Catalog
from toolkit.config import Config, StoreConfig, load_config
from toolkit.errors import ConfigError, TopologyError
from toolkit.model import Entity, schema_of
from toolkit.repository import Repository
from toolkit.resilience import StoreHealth
from toolkit.saga import SagaCoordinator
from toolkit.stores import Store

__all__ = ["CATALOG_PARTS", "Directory", "Toolkit"]

E = TypeVar("E", bound=Entity)

CATALOG_PARTS: Final = (catalog, routing, saga, rebalance)
"""Every part that keeps tables in the catalog. Importing them registers those tables on
the catalog's one MetaData, so a Toolkit's catalog creates them all when it opens (see
``toolkit.catalog``); a new part with tables joins this list."""


class Toolkit:
    """The data layer of one application process. See the module docstring."""

    def __init__(
        self,
        config: Config | str | os.PathLike[str] | None = None,
        *,
        max_workers: int | None = None,
    ) -> None:
        if config is None or isinstance(config, (str, os.PathLike)):
            config = load_config(config)
        self.config = config
        self.catalog = Catalog(config.catalog.url)
        self._stores: dict[str, Store] = {}
        self._repositories: dict[type[Entity], Repository[Any]] = {}
        self._lock = threading.RLock()
        self._max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def embedded(cls, data_dir: str | os.PathLike[str] = ".polystore") -> Toolkit:
        """Every store in SQLite files under ``data_dir``; no server needed."""
        return cls(Config.embedded_default(data_dir))

    # -- stores and repositories -----------------------------------------------------
    def store_config(self, name: str) -> StoreConfig:
        found = self.config.stores.get(name)
        if found is not None:
            return found
        if self.config.source is None:
            return self.config.embedded_store(name)
        raise ConfigError(
            f"store {name!r} is not declared (stores: {', '.join(self.config.stores) or 'none'})",
            file=self.config.source,
            field=f"stores.{name}",
        )

    def store(self, name: str) -> Store:
        """The run-time store (router, adapters) named ``name``; created on first use."""
        found = self._stores.get(name)
        if found is not None:
            return found
        with self._lock:
            found = self._stores.get(name)
            if found is None:
                if self.config.source is None:
                    Path(self.config.data_dir).mkdir(parents=True, exist_ok=True)
                found = Store(self.store_config(name), self.catalog)
                self._stores[name] = found
        return found

    @property
    def store_names(self) -> list[str]:
        """Stores declared in the config or known to the catalog."""
        names = set(self.config.stores) | {topology.store for topology in self.catalog.topologies()}
        return sorted(names)

    def repository(self, entity: type[E]) -> Repository[E]:
        """The repository for an entity class (one per class per Toolkit)."""
        found = self._repositories.get(entity)
        if found is not None:
            return found
        schema = schema_of(entity)
        with self._lock:
            found = self._repositories.get(entity)
            if found is None:
                found = Repository(entity, self.store(schema.store), self._executor)
                self._repositories[entity] = found
        return found

    def directory(self, store: str) -> Directory:
        """Pin keys of a directory-routed store to shards."""
        return Directory(self, self.store(store))

    @property
    def sagas(self) -> SagaCoordinator:
        """The saga coordinator bound to this toolkit (created on first use; see toolkit.saga)."""
        found: SagaCoordinator | None = self.__dict__.get("_sagas")
        if found is None:
            with self._lock:
                found = self.__dict__.get("_sagas") or SagaCoordinator(self)
                self.__dict__["_sagas"] = found
        return found

    def health(self) -> dict[str, StoreHealth]:
        """The resilience guard of every store this process has used: breaker state per
        shard, bulkhead occupancy, throttle counters (see ``toolkit.resilience``).

        Cheap (no I/O), so an application's health endpoint can call it on every request;
        ``all(h.healthy for h in toolkit.health().values())`` says no circuit is open.
        """
        result: dict[str, StoreHealth] = {}
        for name, store in sorted(self._stores.items()):
            found = store.health()
            if found is not None:
                result[name] = found
        return result

    def refresh(self) -> list[str]:
        """Pick up topology and directory changes made by other processes; returns the stores changed."""
        return [name for name, store in list(self._stores.items()) if store.refresh()]

    # -- plumbing --------------------------------------------------------------------
    def _executor(self) -> Executor:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    workers = self._max_workers or min(32, (os.cpu_count() or 2) * 4)
                    self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="polystore")
        return self._pool

    def close(self) -> None:
        """Release every connection and the worker threads. Safe to call twice."""
        with self._lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()
            self._repositories.clear()
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            self.catalog.close()

    def __enter__(self) -> Toolkit:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class Directory:
    """The key -> shard table of a directory-routed store.

    Pinning a key moves where *new* writes and reads of it go; moving rows that already
    exist under the old owner is what ``polystore rebalance`` does.
    """

    toolkit: Toolkit
    store: Store

    def _require_directory(self) -> None:
        if self.store.router.kind != "directory":
            raise TopologyError(f"store {self.store.name!r} is routed by {self.store.router.kind}, not directory")

    def assign(self, entries: Mapping[Any, str]) -> None:
        """Pin each key to a shard."""
        self._require_directory()
        for key, shard in entries.items():
            if shard not in self.store.router.shards:
                raise TopologyError(
                    f"store {self.store.name!r} has no shard {shard!r} for key {key!r} "
                    f"(shards: {', '.join(self.store.router.shards)})"
                )
        self.toolkit.catalog.assign(
            self.store.name, {encode_key(key): ShardId(shard) for key, shard in entries.items()}
        )
        self.store.refresh()

    def unassign(self, keys: Iterable[Any]) -> int:
        """Forget pinned keys (they fall back to the fallback router)."""
        self._require_directory()
        removed = self.toolkit.catalog.unassign(self.store.name, [encode_key(key) for key in keys])
        self.store.refresh()
        return removed

    def entries(self) -> dict[bytes, str]:
        """The table as stored: encoded key -> shard."""
        return self.toolkit.catalog.directory(self.store.name)
