"""Adapters are found by URL scheme, lazily, with a hint when a driver is missing."""

from __future__ import annotations

import builtins
from typing import Any

import pytest

from adapters import registry
from adapters.relational import RelationalAdapter
from toolkit.errors import ConfigError, DriverMissingError


def test_builtin_schemes() -> None:
    assert registry.adapter_class("sqlite") is RelationalAdapter
    assert registry.adapter_class("postgresql") is RelationalAdapter
    assert {"sqlite", "postgresql", "mongodb", "redis", "redis-cluster", "cassandra", "neo4j", "bolt"} <= (
        registry.known_schemes()
    )


def test_scheme_of() -> None:
    assert registry.scheme_of("postgresql+psycopg://u@h/db") == "postgresql"
    assert registry.scheme_of("SQLite:///x.db") == "sqlite"
    with pytest.raises(ConfigError, match="not a URL"):
        registry.scheme_of("just text")


def test_unknown_scheme() -> None:
    with pytest.raises(ConfigError, match="no adapter for URL scheme 'gopher'"):
        registry.adapter_class("gopher")


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pymysql":
            raise ImportError("No module named 'pymysql'")
        return real_import(name, *args, **kwargs)

    registry.adapter_class.cache_clear()
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(DriverMissingError, match=r"pip install 'polystore\[mysql\]'"):
        registry.adapter_class("mysql")
    registry.adapter_class.cache_clear()


def test_entry_points_can_add_schemes(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    point = EntryPoint(name="memo", value="adapters.relational:RelationalAdapter", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point])
    registry._entry_points.cache_clear()
    registry.adapter_class.cache_clear()
    try:
        assert "memo" in registry.known_schemes()
        assert registry.adapter_class("memo") is RelationalAdapter
    finally:
        registry._entry_points.cache_clear()
        registry.adapter_class.cache_clear()


def test_passwords_are_redacted() -> None:
    assert registry.redact_url("postgresql://app:s3cret@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert registry.redact_url("sqlite:///x.db") == "sqlite:///x.db"
