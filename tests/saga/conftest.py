"""Saga tests: an embedded toolkit per test, and policies that do not make tests wait."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit import Entity, Toolkit
from toolkit.saga import LeasePolicy, RetryPolicy

FAST = RetryPolicy(max_attempts=3, initial_interval=0.001, max_interval=0.005)
FAST_COMP = RetryPolicy(max_attempts=3, initial_interval=0.001, max_interval=0.005, retry_all=True)
SHORT_LEASE = LeasePolicy(ttl=2.0, heartbeat=0.5, margin=0.2, wait_interval=0.01)


class Item(Entity, store="saga_items", key="id"):
    id: str
    value: int = 0


class Counter(Entity, store="saga_counters", key="id"):
    id: str
    n: int = 0


@pytest.fixture
def toolkit(tmp_path: Path) -> Iterator[Toolkit]:
    with Toolkit.embedded(tmp_path / "data") as built:
        built.sagas.lease = SHORT_LEASE
        yield built
