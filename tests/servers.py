"""Where the test servers are, and a clear failure when one is not there.

Defaults come from stack/endpoints.toml (the stack's single source of truth); each
service can be overridden with its environment variable (comma-separated for several
URLs). An unreachable server FAILS the test, naming the stack log to read, in CI and
locally alike: a backend that is silently skipped is a backend that is not tested. To
run without servers, deselect them: ``pytest -m "not servers"``.
"""

from __future__ import annotations

import importlib
import os
import tomllib
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parent.parent
STACK_DIR = Path(os.environ.get("POLYSTORE_STACK_DIR") or ROOT / ".stack")

T = TypeVar("T")

# service -> (env override, (section, field) in endpoints.toml)
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


@cache
def endpoints() -> dict[str, Any]:
    with open(ROOT / "stack" / "endpoints.toml", "rb") as handle:
        return tomllib.load(handle)


def endpoint(service: str) -> list[str]:
    """URLs of ``service`` (see SERVICES): the env override first, else endpoints.toml."""
    env, (section, key) = SERVICES[service]
    override = os.environ.get(env, "").strip()
    if override:
        return [url.strip() for url in override.split(",") if url.strip()]
    value = endpoints()[section][key]
    urls = [value] if isinstance(value, str) else list(value)
    if service == "cassandra":
        urls = [url if "://" in url else f"cassandra://{url}" for url in urls]
    return urls


def postgres_urls() -> tuple[str, list[str]]:
    """(catalog URL, shard URLs) of the stack's PostgreSQL."""
    return endpoint("postgres-catalog")[0], endpoint("postgres")


def log_file(service: str) -> Path:
    return STACK_DIR / "logs" / f"{LOG_NAMES.get(service, service)}.log"


def unreachable(service: str, exc: BaseException) -> None:
    """Fail the test with the log to read; never returns."""
    pytest.fail(
        f"the {service} server is not reachable ({type(exc).__name__}: {exc}). "
        f"Start it with `stack/stack up {LOG_NAMES.get(service, service)}`; its log is {log_file(service)}. "
        'To run without servers: pytest -m "not servers".',
        pytrace=False,
    )


def require(service: str, probe: Callable[[], object]) -> None:
    """Run ``probe``; if the server does not answer, fail with the log to read."""
    try:
        probe()
    except Exception as exc:  # any driver error means the same thing here
        unreachable(service, exc)


def connect(service: str, factory: Callable[[], T]) -> T:
    """Run ``factory`` (which connects and checks) and return what it built, or fail."""
    try:
        return factory()
    except Exception as exc:
        unreachable(service, exc)
        raise  # unreachable() never returns


def need(module: str) -> Any:
    """Import a driver; a missing one is an install error, reported as such."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"{module} is not installed: pip install -e '.[all,dev]' ({exc})", pytrace=False)


# -- the servers marker, enforced ---------------------------------------------------------


class UnmarkedServerAccess(ConnectionRefusedError):
    """A test without the ``servers`` marker tried to reach one of the stack's servers."""


def stack_ports() -> dict[int, str]:
    """Every TCP port of the stack's servers (and their overrides) -> the service on it."""
    ports: dict[int, str] = {}
    for service in SERVICES:
        for url in endpoint(service):
            for hostport in url.split("://", 1)[-1].split("/")[0].split("?")[0].split(","):
                port = hostport.rpartition("@")[2].rpartition(":")[2]
                if port.isdigit():
                    ports[int(port)] = LOG_NAMES.get(service, service)
    return ports


class ServerGuard:
    """Refuses connections to the stack's ports from a test that lacks the ``servers`` marker.

    Without it, a test that needs a server but forgot the marker passes while the stack
    runs and breaks ``pytest -m "not servers"`` on a machine without servers; with it,
    such a test fails at once, on every machine, naming the marker to add.
    """

    def __init__(self, ports: dict[int, str]) -> None:
        self.ports = ports
        self.violations: list[str] = []

    def check(self, host: object, port: object) -> None:
        """Raise ``UnmarkedServerAccess`` (and remember it) if ``port`` is a stack server's."""
        try:
            number = int(port)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return
        service = self.ports.get(number)
        if service is None or str(host) not in ("127.0.0.1", "localhost", "::1", ""):
            return
        message = (
            f"this test connected to the stack's {service} ({host}:{port}) without the `servers` marker: "
            f"add @pytest.mark.{service.split('-')[0]} (or @pytest.mark.servers)"
        )
        self.violations.append(message)
        raise UnmarkedServerAccess(message)
