"""The catalog keeps topology epochs and the directory, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.servers import postgres_urls, require
from toolkit.catalog import Catalog
from toolkit.config import sqlite_url
from toolkit.errors import CatalogError, TopologyError


def _postgres_catalog() -> Iterator[Catalog]:
    url, _ = postgres_urls()
    schema = f"cat_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))

    def probe() -> None:
        with engine.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')

    require("postgres", probe)
    separator = "&" if "?" in url else "?"
    catalog = Catalog(f"{url}{separator}options=-csearch_path%3D{schema}")
    try:
        yield catalog
    finally:
        catalog.close()
        with engine.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    if request.param == "sqlite":
        built = Catalog(sqlite_url(tmp_path / "sub" / "catalog.db"))
        yield built
        built.close()
    else:
        yield from _postgres_catalog()


def test_register_is_idempotent(catalog: Catalog) -> None:
    first = catalog.register("users", "relational", {"s0": "sqlite:///a"}, {"type": "hash"})
    again = catalog.register("users", "relational", {"s0": "sqlite:///other"}, {"type": "range"})
    assert first.epoch == again.epoch == 1
    assert again.shards == {"s0": "sqlite:///a"}  # the catalog wins over a later config
    assert catalog.topology("nope") is None


def test_advance_is_compare_and_set(catalog: Catalog) -> None:
    catalog.register("users", "relational", {"s0": "x://a"}, {"type": "hash"})
    second = catalog.advance("users", 1, {"s0": "x://a", "s1": "x://b"}, {"type": "hash", "slots": 4}, note="add s1")
    assert second.epoch == 2
    assert catalog.topology("users") == second
    assert catalog.topology("users", epoch=1) is not None
    with pytest.raises(TopologyError, match="is at epoch 2, not 1"):
        catalog.advance("users", 1, {}, {"type": "hash"})
    assert [t.epoch for t in catalog.history("users")] == [1, 2]
    assert catalog.versions()["users"].epoch == 2
    with pytest.raises(TopologyError, match="not registered"):
        catalog.advance("ghost", 1, {}, {})


def test_concurrent_advances_let_exactly_one_win(catalog: Catalog) -> None:
    catalog.register("race", "relational", {"s0": "x://a"}, {"type": "hash"})
    outcomes: list[str] = []

    def attempt(index: int) -> None:
        try:
            catalog.advance("race", 1, {"s0": "x://a"}, {"type": "hash", "by": index})
            outcomes.append("won")
        except (TopologyError, CatalogError):
            outcomes.append("lost")

    threads = [threading.Thread(target=attempt, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("won") == 1
    assert catalog.topology("race").epoch == 2  # type: ignore[union-attr]


def test_directory_entries_and_versions(catalog: Catalog) -> None:
    catalog.register("tenants", "relational", {"s0": "x://a", "s1": "x://b"}, {"type": "directory"})
    before = catalog.versions()["tenants"].directory_version
    catalog.assign("tenants", {b"s\x00\x00\x00\x04acme": "s1", b"k2": "s0"})
    catalog.assign("tenants", {b"k2": "s1"})  # replaces
    assert catalog.directory("tenants") == {b"s\x00\x00\x00\x04acme": "s1", b"k2": "s1"}
    assert catalog.unassign("tenants", [b"k2", b"missing"]) == 1
    assert catalog.directory("tenants") == {b"s\x00\x00\x00\x04acme": "s1"}
    assert catalog.versions()["tenants"].directory_version == before + 3


def test_topologies_lists_the_current_epoch_of_each_store(catalog: Catalog) -> None:
    catalog.register("a", "relational", {"s0": "x://a"}, {"type": "hash"})
    catalog.register("b", "document", {"s0": "x://b"}, {"type": "hash"})
    catalog.advance("a", 1, {"s0": "x://a2"}, {"type": "hash"})
    assert [(t.store, t.epoch, t.kind) for t in catalog.topologies()] == [("a", 2, "relational"), ("b", 1, "document")]


def test_an_unreachable_catalog_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(
        CatalogError,
        match=r"catalog postgresql://u:\*\*\*@127\.0\.0\.1:1/db\?connect_timeout=2: cannot create the catalog tables: connection failed",
    ):
        Catalog("postgresql://u:secret@127.0.0.1:1/db?connect_timeout=2")
