"""Test-wide fixtures: an isolated working directory per test and markers per backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own directory, so the embedded default never shares files."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POLYSTORE_CONFIG", raising=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A backend marker implies `servers`, so `-m "not servers"` deselects it."""
    backends = {"postgres", "redis", "cassandra", "neo4j", "mongo"}
    for item in items:
        if backends & {mark.name for mark in item.iter_markers()}:
            item.add_marker(pytest.mark.servers)


def pytest_report_header(config: pytest.Config) -> str:
    return f"polystore: CI={os.environ.get('CI', '')!r} (unreachable servers fail, never skip)"
