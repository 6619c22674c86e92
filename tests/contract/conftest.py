"""The backends the contract suite runs on, each with at least two shards.

Every contract test takes the ``backend`` fixture: a factory that builds a Toolkit
whose store ``items`` lives on that backend, routed as the test asks. Later adapters
join by adding a parameter here (with its marker) and nothing else.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers import postgres_urls, require
from toolkit import Toolkit
from toolkit.config import CatalogConfig, Config, RouterConfig, ShardConfig, StoreConfig, sqlite_url


@dataclass
class Backend:
    """Builds toolkits on one backend; drops what the test created afterwards."""

    name: str
    shard_urls: list[str]
    tmp: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}_")
    toolkits: list[Toolkit] = field(default_factory=list)

    def toolkit(self, router: str = "hash", shards: int = 2, **router_options: Any) -> Toolkit:
        urls = [self.shard_url(index) for index in range(shards)]
        store = StoreConfig(
            name="items",
            kind="relational",
            shards=tuple(ShardConfig(f"s{index}", url) for index, url in enumerate(urls)),
            router=RouterConfig(router, router_options),
            options={"table_prefix": self.prefix},
        )
        config = Config(
            catalog=CatalogConfig(sqlite_url(self.tmp / f"catalog-{len(self.toolkits)}.db")),
            stores={"items": store},
            data_dir=self.tmp,
            source="contract.toml",
        )
        toolkit = Toolkit(config)
        self.toolkits.append(toolkit)
        return toolkit

    def shard_url(self, index: int) -> str:
        """Shard ``index``: databases are reused round-robin, each shard in its own schema."""
        url = self.shard_urls[index % len(self.shard_urls)]
        if self.name == "sqlite":
            return url
        return f"{url}?schema={self.prefix}s{index}"

    def cleanup(self) -> None:
        for toolkit in self.toolkits:
            for repository in list(toolkit._repositories.values()):
                for shard in repository.store.router.shards:
                    repository.store.adapter(shard).drop(repository.schema)
            if self.name != "sqlite":
                for store in toolkit._stores.values():
                    for shard in store.router.shards:
                        adapter = store.adapter(shard)
                        with adapter.engine.begin() as connection:  # type: ignore[attr-defined]
                            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{adapter.schema}" CASCADE')  # type: ignore[attr-defined]
            toolkit.close()


def _sqlite(tmp: Path) -> list[str]:
    return [sqlite_url(tmp / f"shard{index}.db") for index in range(4)]


def _postgres(tmp: Path) -> list[str]:
    import sqlalchemy as sa

    _, shards = postgres_urls()

    def probe() -> None:
        engine = sa.create_engine(shards[0].replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()

    require("postgres", probe)
    return shards


BACKENDS: dict[str, Callable[[Path], list[str]]] = {"sqlite": _sqlite, "postgres": _postgres}


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    built = Backend(request.param, BACKENDS[request.param](tmp_path), tmp_path)
    yield built
    built.cleanup()
