"""Backends the contract suite runs on: one module each, found automatically.

A module here defines a subclass of ``ContractBackend`` (with ``name``, ``kind`` and
the backend marker) and nothing else needs editing: conftest.py parametrises every
contract test over all of them. Each backend must offer at least two shards and
isolate each test (fresh table prefix, key prefix, keyspace, label namespace...).
"""

from __future__ import annotations

import importlib
import pkgutil
import uuid
from pathlib import Path
from typing import Any, ClassVar

from adapters.base import Capability
from adapters.registry import adapter_class
from toolkit import Toolkit


class ContractBackend:
    """How to point a store at one backend, and how to clean up after a test."""

    name: ClassVar[str]
    scheme: ClassVar[str]
    """The URL scheme of its shards: picks the adapter class (and so the capabilities)."""
    kind: ClassVar[str] = "relational"
    marker: ClassVar[str | None] = None
    """The pytest marker of the server it needs (``None``: embedded, no server)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.prefix = f"t{uuid.uuid4().hex[:10]}_"

    @classmethod
    def capabilities(cls) -> Capability:
        return adapter_class(cls.scheme).capabilities

    def connect(self) -> None:
        """Check the server answers (``tests.servers.require``); called once per test."""

    def shard_url(self, index: int) -> str:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """Store options that isolate this test (table/key prefix...)."""
        return {}

    @classmethod
    def finish(cls) -> None:
        """Called once at the end of the test session: release what the backend kept."""

    def cleanup(self, toolkit: Toolkit) -> None:
        """Remove everything this test wrote. Default: drop every table used."""
        for repository in list(toolkit._repositories.values()):
            for shard in repository.store.router.shards:
                repository.store.adapter(shard).drop(repository.schema)


def discover() -> list[type[ContractBackend]]:
    """Every ContractBackend subclass defined in this package's modules, by name."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"{__name__}.{module.name}")
    found: list[type[ContractBackend]] = []
    pending = list(ContractBackend.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "name" in cls.__dict__:
            found.append(cls)
    return sorted(found, key=lambda cls: cls.name)
