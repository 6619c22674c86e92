"""Where the stack's servers are, for the tests in tests/stack/.

``endpoint(service)`` returns the URLs of one service: the value of its env override
(comma-separated for several) or the default from stack/endpoints.toml. An
unreachable server FAILS the test under CI (CI=true) and names the stack log to
read; outside CI it is skipped with the same message.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
STACK_DIR = Path(os.environ.get("POLYSTORE_STACK_DIR") or ROOT / ".stack")

# service -> (env override, key in endpoints.toml as (section, field))
SERVICES: dict[str, tuple[str, tuple[str, str]]] = {
    "postgres": ("POLYSTORE_POSTGRES_URL", ("postgres", "shards")),
    "postgres-catalog": ("POLYSTORE_POSTGRES_CATALOG_URL", ("postgres", "catalog")),
    "redis": ("POLYSTORE_REDIS_URL", ("redis", "shards")),
    "redis-cluster": ("POLYSTORE_REDIS_CLUSTER_URL", ("redis", "cluster")),
    "cassandra": ("POLYSTORE_CASSANDRA_URL", ("cassandra", "contact_points")),
    "neo4j": ("POLYSTORE_NEO4J_URL", ("neo4j", "shards")),
    "mongo": ("POLYSTORE_MONGO_URL", ("mongo", "shards")),
}

# The log that explains a server that does not answer: .stack/logs/<service>.log
LOG_NAMES = {"postgres-catalog": "postgres"}

T = TypeVar("T")


@cache
def endpoints() -> dict[str, Any]:
    with open(ROOT / "stack" / "endpoints.toml", "rb") as handle:
        return tomllib.load(handle)


def endpoint(service: str) -> list[str]:
    """URLs of `service` (see SERVICES): env override first, else endpoints.toml."""
    env, (section, key) = SERVICES[service]
    override = os.environ.get(env, "").strip()
    if override:
        return [u.strip() for u in override.split(",") if u.strip()]
    value = endpoints()[section][key]
    urls = [value] if isinstance(value, str) else list(value)
    if service == "cassandra":
        urls = [u if "://" in u else f"cassandra://{u}" for u in urls]
    return urls


def log_file(service: str) -> Path:
    return STACK_DIR / "logs" / f"{LOG_NAMES.get(service, service)}.log"


def unreachable(service: str, exc: BaseException) -> None:
    """Fail (CI) or skip (local) with the log to read; never returns."""
    log = log_file(service)
    try:
        shown = log.relative_to(ROOT)
    except ValueError:
        shown = log
    msg = (
        f"the {service} server is not reachable ({type(exc).__name__}: {exc}); "
        f"start it with `stack/stack up {LOG_NAMES.get(service, service)}` and read {shown}"
    )
    if in_ci():
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(module: str) -> Any:
    """Import a driver: a missing one skips locally, but fails under CI."""
    if in_ci():
        import importlib

        return importlib.import_module(module)
    return pytest.importorskip(module)


def connect(service: str, factory: Callable[[], T]) -> T:
    """Run `factory` (which connects and checks); on any error, fail or skip as above."""
    try:
        return factory()
    except Exception as exc:
        unreachable(service, exc)
        raise  # unreachable() never returns


@pytest.fixture
def unique() -> str:
    """A fresh name suffix, safe for tables, keyspaces, labels, keys and collections."""
    import uuid

    return uuid.uuid4().hex[:12]
