"""Test-wide fixtures: an isolated working directory per test, markers per backend, and the
``servers`` marker enforced (an unmarked test that reaches a server fails)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import discover
from tests.servers import ServerGuard, stack_ports

BACKEND_MARKERS = frozenset({"postgres", "redis", "cassandra", "neo4j", "mongo"})
_PSYCOPG_ONLY = frozenset({"autocommit", "prepare_threshold", "context", "row_factory", "cursor_factory"})
"""Keyword arguments of ``psycopg.Connection.connect`` that are not libpq parameters."""


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own directory, so the embedded default never shares files."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POLYSTORE_CONFIG", raising=False)


@pytest.fixture(autouse=True)
def _servers_marker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerGuard | None]:
    """In a test without the ``servers`` marker, refuse every connection to a stack port.

    Python sockets (redis-py, pymongo, neo4j, cassandra-driver) are checked at
    ``socket.connect``; libpq, which opens its own sockets, at ``psycopg.Connection.connect``.
    """
    if request.node.get_closest_marker("servers") is not None:
        yield None
        return
    guard = ServerGuard(stack_ports())
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def address(sock: socket.socket, where: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(where, tuple):
            guard.check(where[0], where[1])

    def connect(sock: socket.socket, where: Any) -> None:
        address(sock, where)
        real_connect(sock, where)

    def connect_ex(sock: socket.socket, where: Any) -> int:
        address(sock, where)
        return real_connect_ex(sock, where)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
    except ImportError:
        psycopg = None
    if psycopg is not None:
        real_pg = psycopg.Connection.connect.__func__  # type: ignore[attr-defined]

        def pg_connect(cls: Any, conninfo: str = "", **kwargs: Any) -> Any:
            libpq = {name: value for name, value in kwargs.items() if name not in _PSYCOPG_ONLY}
            params = conninfo_to_dict(make_conninfo(conninfo, **libpq))
            guard.check(params.get("host", "localhost"), params.get("port", 5432))
            return real_pg(cls, conninfo, **kwargs)

        monkeypatch.setattr(psycopg.Connection, "connect", classmethod(pg_connect))
        monkeypatch.setattr(psycopg, "connect", psycopg.Connection.connect)  # SQLAlchemy calls this one
    yield guard
    if guard.violations:
        pytest.fail(guard.violations[0], pytrace=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A backend marker implies `servers`, so `-m "not servers"` deselects it."""
    for item in items:
        if BACKEND_MARKERS & {mark.name for mark in item.iter_markers()}:
            item.add_marker(pytest.mark.servers)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Let every backend drop what it kept for the whole session (tables, sessions)."""
    for cls in discover():
        cls.finish()


def pytest_report_header(config: pytest.Config) -> str:
    return f"polystore: CI={os.environ.get('CI', '')!r} (unreachable servers fail, never skip)"
