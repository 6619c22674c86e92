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

from toolkit.config import Config, load_config
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
    ValidationError,
)
from toolkit.facade import Directory, Toolkit
from toolkit.model import Entity, EntitySchema, EntityValidationError
from toolkit.repository import Repository

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
    "ValidationError",
    "load_config",
]
