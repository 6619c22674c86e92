"""Shared pieces of bench/overhead.py: the entity, the rows, the suite a backend builds.

A backend module fills one ``Suite`` per backend (created by the runner, so that what a
builder registered is cleaned up even when the builder fails half-way): the polystore repository and one or
more raw-driver baselines, each a mapping operation -> callable that performs ``rows``
single operations (``get``, ``put``) or one batch of ``rows`` rows (``put_many``).
The runner in overhead.py times them interleaved; nothing here measures.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sharding.keys import token
from toolkit import Entity, Toolkit
from toolkit.config import CatalogConfig, Config, StoreConfig, sqlite_url

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ("get", "put", "put_many")
POLYSTORE = "polystore"

Op = Callable[[int, int], object]
"""An operation over the rows ``[lo:hi]``: one call per row (get, put) or one batch (put_many)."""

T = TypeVar("T")


class Account(Entity, store="bench", key="id"):
    """The benchmarked entity: small, flat, hash-routed by its int key (so it carries a token)."""

    id: int
    name: str
    balance: float
    active: bool


class Unreachable(Exception):
    """The backend's server (or driver) is not there: reported in the table, not raised."""


@dataclass(frozen=True, slots=True)
class Context:
    """What every backend builder gets: the rows, this run's namespace and a scratch directory."""

    data: list[dict[str, Any]]
    namespace: str
    tmp: Path

    @property
    def keys(self) -> list[int]:
        return [row["id"] for row in self.data]

    def tokens(self) -> list[int]:
        """The rows' tokens, computed before timing: polystore computes them inside its timing."""
        return [token(row["id"]) for row in self.data]


@dataclass(slots=True)
class Suite:
    """The contenders of one backend. ``contenders[POLYSTORE]`` is the repository."""

    backend: str
    server: str = ""
    contenders: dict[str, dict[str, Op]] = field(default_factory=dict)
    cleanups: list[Callable[[], object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def cleanup(self) -> list[str]:
        """Run every cleanup (last registered first); returns the failures instead of raising."""
        failures: list[str] = []
        for step in reversed(self.cleanups):
            try:
                step()
            except Exception as exc:  # a failed cleanup is reported; it must not hide the results
                failures.append(f"{type(exc).__name__}: {exc}")
        self.cleanups.clear()
        return failures


def rows(count: int) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"user-{i}", "balance": i * 1.5, "active": i % 2 == 0} for i in range(count)]


def endpoint(section: str, field_name: str, env: str) -> list[str]:
    """URLs of the stack's server: the env override (comma-separated) first, else stack/endpoints.toml.

    The same rule as tests/servers.py, re-stated here so that the bench does not import
    the test package (and pytest) to find its servers.
    """
    override = os.environ.get(env, "").strip()
    if override:
        return [url.strip() for url in override.split(",") if url.strip()]
    with open(ROOT / "stack" / "endpoints.toml", "rb") as handle:
        value = tomllib.load(handle)[section][field_name]
    return [value] if isinstance(value, str) else list(value)


def polystore_side(ctx: Context, suite: Suite, store: StoreConfig) -> tuple[Any, Any, list[Account]]:
    """Build the repository on ``store`` (one shard), fill it, register its ops and cleanup.

    Returns (the shard's adapter, the repository, the entities): the adapter so that a
    builder can find the names the adapter chose (table, collection, label, key layout)
    and point its raw driver at the same layout.
    The catalog is a local SQLite file: the bench measures the store, not the catalog.
    """
    catalog = CatalogConfig(sqlite_url(ctx.tmp / f"catalog-{suite.backend}.db"))
    toolkit = Toolkit(Config(catalog, {"bench": store}, ctx.tmp, "bench"))
    suite.cleanups.append(toolkit.close)
    repo = toolkit.repository(Account)
    entities = [Account(**row) for row in ctx.data]
    adapter = toolkit.store("bench").adapter(store.shards[0].name)
    suite.cleanups.append(lambda: adapter.drop(repo.schema))  # runs before toolkit.close
    repo.put_many(entities)
    suite.contenders[POLYSTORE] = {
        "get": each(ctx.keys, repo.get),
        "put": each(entities, repo.put),
        "put_many": lambda lo, hi: repo.put_many(entities[lo:hi]),
    }
    suite.notes.append(f"layout check: rows written by each baseline read back equal through {POLYSTORE}")
    return adapter, repo, entities


def each(items: Sequence[T], one: Callable[[T], object]) -> Op:
    """The single-row operation over ``items[lo:hi]``: ``one(item)`` per item.

    Every contender's get and put is this same loop, so the sides differ only in what
    ``one`` does (the repository's method, or the driver's call).
    """

    def run(lo: int, hi: int) -> None:
        for item in items[lo:hi]:
            one(item)

    return run


def fill_and_check(suite: Suite, repo: Any, entities: list[Account], names: Sequence[str]) -> None:
    """Write every row with each named baseline's batch, then check the repository reads it back."""
    for name in names:
        suite.contenders[name]["put_many"](0, len(entities))
        check_layout(suite, repo, entities, name)


def check_layout(suite: Suite, repo: Any, entities: list[Account], name: str) -> None:
    """After a baseline's batch, the repository must read its rows back unchanged: same layout."""
    for entity in (entities[0], entities[-1]):
        found = repo.get(entity.id)
        if found != entity:
            raise AssertionError(f"{suite.backend}: {name} wrote a different layout: {found!r} != {entity!r}")
