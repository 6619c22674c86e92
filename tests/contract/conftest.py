"""Runs every contract test on every backend in ``backends/``, with at least two shards.

Each test takes the ``backend`` fixture, a ``Backend`` that builds Toolkits whose store
``items`` lives on that backend, routed as the test asks, and cleans up afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import Backend as ServerBackend
from tests.backends import discover
from toolkit import Toolkit
from toolkit.config import CatalogConfig, Config, RouterConfig, ShardConfig, StoreConfig, sqlite_url


class Backend:
    """Builds toolkits on one backend; drops what the test created afterwards."""

    def __init__(self, spec: ServerBackend) -> None:
        self.spec = spec
        self.name = spec.name
        self.toolkits: list[Toolkit] = []

    def toolkit(self, router: str = "hash", shards: int = 2, **router_options: Any) -> Toolkit:
        store = StoreConfig(
            name="items",
            kind=self.spec.kind,
            shards=tuple(ShardConfig(name, url) for name, url in self.spec.shards(shards).items()),
            router=RouterConfig(router, router_options),
            options=self.spec.options(),
        )
        config = Config(
            catalog=CatalogConfig(sqlite_url(self.spec.tmp / f"catalog-{len(self.toolkits)}.db")),
            stores={"items": store},
            data_dir=self.spec.tmp,
            source="contract.toml",
        )
        toolkit = Toolkit(config)
        self.toolkits.append(toolkit)
        return toolkit

    def cleanup(self) -> None:
        for toolkit in self.toolkits:
            toolkit.close()
        self.spec.cleanup()


def _param(cls: type[ServerBackend]) -> Any:
    marks = [getattr(pytest.mark, cls.marker)] if cls.marker else []
    return pytest.param(cls, id=cls.name, marks=marks)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``backend`` over every backend that has the capabilities a test marks.

    ``@pytest.mark.capability(Capability.TTL)`` on a test runs it on exactly the
    backends whose adapter declares TTL: the others are not collected, not skipped.
    """
    if "backend" not in metafunc.fixturenames:
        return
    needed = [mark.args[0] for mark in metafunc.definition.iter_markers("capability")]
    chosen = [cls for cls in discover() if all(cap in cls.capabilities() for cap in needed)]
    metafunc.parametrize("backend", [_param(cls) for cls in chosen], indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    spec: ServerBackend = request.param(tmp_path)
    spec.connect()
    built = Backend(spec)
    yield built
    built.cleanup()
