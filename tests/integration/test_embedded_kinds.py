"""The same application on the embedded default: every kind in SQLite files, no server."""

from __future__ import annotations

from pathlib import Path

from tests.backends.sqlite import SQLite
from tests.integration.app import KINDS, config, exercise
from toolkit import Toolkit
from toolkit.config import sqlite_url


def test_the_app_runs_on_the_embedded_default(tmp_path: Path) -> None:
    backends = {name: SQLite(tmp_path / name) for name in KINDS}
    with Toolkit(config(backends, sqlite_url(tmp_path / "catalog.db"), tmp_path)) as toolkit:
        exercise(toolkit)
        assert {name: toolkit.store(name).kind for name in KINDS} == KINDS
