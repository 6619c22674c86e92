"""Every store kind works on the embedded SQLite default, with no server."""

from __future__ import annotations

from pathlib import Path

from tests.integration.app import KINDS, config, exercise
from toolkit import Toolkit
from toolkit.config import sqlite_url


def test_the_app_runs_on_the_embedded_default(tmp_path: Path) -> None:
    shards = {name: [sqlite_url(tmp_path / f"{name}.s{i}.db") for i in range(2)] for name in KINDS}
    with Toolkit(config(shards, sqlite_url(tmp_path / "catalog.db"), tmp_path, "app_")) as toolkit:
        exercise(toolkit)
        assert {name: toolkit.store(name).kind for name in KINDS} == KINDS
