"""Every backend the tests run on, described once: one module each, found automatically.

The contract suite, the rebalance tests, the saga tests and the integration tests all
take their shards from here. A module defines a subclass of ``Backend`` (with ``name``,
``scheme``, ``kind`` and the pytest marker of the server it needs, as class keywords); nothing else needs
editing. A backend isolates each test (a fresh prefix for tables, keys, collections,
labels) and cleans up with its own driver connection, never through an adapter's
internals, so the tests use polystore only through its public API.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import uuid
from pathlib import Path
from typing import Any, ClassVar

from adapters.base import Capability
from adapters.registry import adapter_class

__all__ = ["Backend", "discover", "named", "options_toml", "shard_index"]


def shard_index(shard: str) -> int:
    """The number in a shard name (``s2`` -> 2, ``a0`` -> 0; no digits -> 0): which server
    or database a shard lands on when a backend spreads shards over several."""
    found = re.search(r"\d+", shard)
    return int(found.group()) if found else 0


def options_toml(options: dict[str, Any]) -> str:
    """``[stores.X.options]`` lines for a dict of store options."""
    lines = []
    for name, value in options.items():
        rendered = f'"{value}"' if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else value
        lines.append(f"{name} = {rendered}")
    return "\n".join(lines)


class Backend:
    """How to point a store's shards at one backend, and how to clean up after a test."""

    name: ClassVar[str]
    scheme: ClassVar[str]
    """The URL scheme of its shards: picks the adapter class (and so the capabilities)."""
    kind: ClassVar[str] = "relational"
    marker: ClassVar[str | None] = None
    """The pytest marker of the server it needs (``None``: embedded, no server)."""

    def __init_subclass__(
        cls, *, name: str, scheme: str, kind: str = "relational", marker: str | None = None, **kwargs: Any
    ) -> None:
        """A backend says what it is in its class line (``class Mongo(Backend, name="mongo", ...)``),
        so each description is one line, not four attributes repeated in every module."""
        super().__init_subclass__(**kwargs)
        cls.name, cls.scheme, cls.kind, cls.marker = name, scheme, kind, marker

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.prefix = f"t{uuid.uuid4().hex[:10]}_"
        self.made: dict[str, str] = {}
        """Shard name -> URL of every shard this test was given (what cleanup visits)."""

    @classmethod
    def capabilities(cls) -> Capability:
        return adapter_class(cls.scheme).capabilities

    def connect(self) -> None:
        """Check the server answers (``tests.servers.require``): fail, never skip."""

    def url(self, shard: str) -> str:
        """The URL of shard ``shard`` for this test (the same name gives the same place)."""
        url = self._url(shard)
        self.made[shard] = url
        return url

    def _url(self, shard: str) -> str:
        raise NotImplementedError

    def shards(self, count: int, prefix: str = "s") -> dict[str, str]:
        """``count`` shards named ``{prefix}0``.. with their URLs."""
        return {f"{prefix}{index}": self.url(f"{prefix}{index}") for index in range(count)}

    def options(self) -> dict[str, Any]:
        """Store options that isolate this test (the namespace prefix, and any the server needs)."""
        return {"namespace": self.prefix}

    def cleanup(self) -> None:
        """Remove everything this test wrote, through the backend's own driver."""

    @classmethod
    def finish(cls) -> None:
        """Called once at the end of the test session: release what the backend kept."""


def discover() -> list[type[Backend]]:
    """Every Backend subclass defined in this package's modules, by name."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"{__name__}.{module.name}")
    found: list[type[Backend]] = []
    pending = list(Backend.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "name" in cls.__dict__:
            found.append(cls)
    return sorted(found, key=lambda cls: cls.name)


def named(name: str) -> type[Backend]:
    """The backend called ``name`` (``sqlite``, ``postgres``, ``redis``, ``redis_cluster``,
    ``mongo``, ``cassandra``, ``neo4j``)."""
    for cls in discover():
        if cls.name == name:
            return cls
    raise KeyError(name)
