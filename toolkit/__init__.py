"""polystore's core: declare entities once, keep each store in the database that suits it.

from toolkit import Entity, Toolkit

class User(Entity, store="users", key="id"):
    id: int
    name: str

with Toolkit() as toolkit:            # ./polystore.toml, or SQLite files under .polystore/
    users = toolkit.repository(User)
    users.put(User(id=1, name="Ada"))
    users.find(where={"name": {"ge": "A"}}, order_by="-id", limit=10)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from toolkit.errors import (
    BulkheadFull,
    CatalogError,
    CircuitOpen,
    ConfigError,
    CrossShardError,
    DriverMissingError,
    DuplicateKeyError,
    EntityError,
    InvalidKeyError,
    NotFoundError,
    QueryError,
    RateLimited,
    RoutingError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    ToolkitError,
    TopologyError,
    UnsupportedCapability,
)

if TYPE_CHECKING:
    from toolkit.config import Config, load_config
    from toolkit.facade import Directory, Toolkit
    from toolkit.model import Entity, EntitySchema, EntityValidationError
    from toolkit.repository import Repository

# Imported on first use: adapters import toolkit.errors and toolkit.model, and the
# repository imports adapters, so an eager import here would be circular.
_LAZY = {
    "Config": "toolkit.config",
    "load_config": "toolkit.config",
    "Directory": "toolkit.facade",
    "Toolkit": "toolkit.facade",
    "Entity": "toolkit.model",
    "EntitySchema": "toolkit.model",
    "EntityValidationError": "toolkit.model",
    "Repository": "toolkit.repository",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BulkheadFull",
    "CatalogError",
    "CircuitOpen",
    "Config",
    "ConfigError",
    "CrossShardError",
    "Directory",
    "DriverMissingError",
    "DuplicateKeyError",
    "Entity",
    "EntityError",
    "EntitySchema",
    "EntityValidationError",
    "InvalidKeyError",
    "NotFoundError",
    "QueryError",
    "RateLimited",
    "Repository",
    "RoutingError",
    "StoreError",
    "StoreTimeout",
    "StoreUnavailable",
    "Toolkit",
    "ToolkitError",
    "TopologyError",
    "UnsupportedCapability",
    "load_config",
]
