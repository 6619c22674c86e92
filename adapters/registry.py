"""Find the adapter class for a URL scheme, importing it only when first needed.

Built-in adapters are listed here so that polystore works from a source checkout too;
third parties add their own with an entry point in the ``polystore.adapters`` group
(``myscheme = "mypackage.adapter:MyAdapter"``), which also lets them override a built-in.
Importing an adapter whose driver is missing raises ``DriverMissingError`` naming the
extra to install, instead of an ImportError from deep inside a driver.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Final

from sharding.core.errors import ConfigError, DriverMissingError

if TYPE_CHECKING:
    from adapters.base import Adapter

__all__ = ["AdapterEntry", "adapter_class", "known_schemes", "redact_url", "scheme_of"]

ENTRY_POINT_GROUP: Final = "polystore.adapters"


@dataclass(frozen=True, slots=True)
class AdapterEntry:
    """Where an adapter lives and what it needs: ``target`` is ``module:Class``."""

    target: str
    driver: str | None = None
    extra: str | None = None


_BUILTIN: Final[dict[str, AdapterEntry]] = {
    "sqlite": AdapterEntry("adapters.relational:RelationalAdapter"),
    "postgresql": AdapterEntry("adapters.relational:RelationalAdapter", "psycopg", "postgres"),
    "postgres": AdapterEntry("adapters.relational:RelationalAdapter", "psycopg", "postgres"),
    "mysql": AdapterEntry("adapters.relational:RelationalAdapter", "pymysql", "mysql"),
    "mariadb": AdapterEntry("adapters.relational:RelationalAdapter", "pymysql", "mysql"),
    "mongodb": AdapterEntry("adapters.document:DocumentAdapter", "pymongo", "mongo"),
    "redis": AdapterEntry("adapters.keyvalue:KeyValueAdapter", "redis", "redis"),
    "rediss": AdapterEntry("adapters.keyvalue:KeyValueAdapter", "redis", "redis"),
    "redis-cluster": AdapterEntry("adapters.keyvalue:KeyValueAdapter", "redis", "redis"),
    "cassandra": AdapterEntry("adapters.column:ColumnAdapter", "cassandra", "cassandra"),
    "neo4j": AdapterEntry("adapters.graph:GraphAdapter", "neo4j", "neo4j"),
    "bolt": AdapterEntry("adapters.graph:GraphAdapter", "neo4j", "neo4j"),
}


def scheme_of(url: str) -> str:
    """The adapter scheme of a URL: ``postgresql+psycopg://...`` -> ``postgresql``."""
    head, sep, _ = url.partition("://")
    if not sep or not head:
        raise ConfigError(f"not a URL (expected scheme://...): {redact_url(url)!r}")
    return head.split("+", 1)[0].lower()


def redact_url(url: str) -> str:
    """Hide a password in a URL before it reaches a message."""
    head, sep, rest = url.partition("://")
    if sep and "@" in rest:
        userinfo, _, host = rest.rpartition("@")
        user = userinfo.split(":", 1)[0]
        return f"{head}://{user}:***@{host}"
    return url


@cache
def _entry_points() -> dict[str, AdapterEntry]:
    found: dict[str, AdapterEntry] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        builtin = _BUILTIN.get(point.name)
        if builtin is not None and builtin.target == point.value:
            continue  # our own package's entry point: keep the driver hint
        found[point.name] = AdapterEntry(point.value)
    return found


def known_schemes() -> frozenset[str]:
    """Every scheme a URL may use: built-ins plus installed entry points."""
    return frozenset(_BUILTIN) | frozenset(_entry_points())


@cache
def adapter_class(scheme: str) -> type[Adapter]:
    """Import and return the adapter class for ``scheme``."""
    entry = _entry_points().get(scheme) or _BUILTIN.get(scheme)
    if entry is None:
        raise ConfigError(f"no adapter for URL scheme {scheme!r} (known: {', '.join(sorted(known_schemes()))})")
    if entry.driver is not None:
        try:
            importlib.import_module(entry.driver)
        except ImportError:
            raise DriverMissingError(scheme, entry.driver, entry.extra or entry.driver) from None
    module_name, _, class_name = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ConfigError(f"the {scheme!r} adapter ({module_name}) is not part of this polystore version") from None
        raise
    return getattr(module, class_name)  # type: ignore[no-any-return]
