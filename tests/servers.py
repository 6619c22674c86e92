"""Where the test servers are, and a clear failure when one is not there.

Defaults come from stack/endpoints.toml (the stack's single source of truth); each can
be overridden with POLYSTORE_<SERVICE>_URL. An unreachable server FAILS the test with
the stack log to read: a backend that is silently skipped is a backend that is not
tested. To run without servers, deselect them: ``pytest -m "not servers"``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
STACK_DIR = Path(os.environ.get("POLYSTORE_STACK_DIR", ROOT / ".stack"))


@cache
def endpoints() -> dict[str, Any]:
    with open(ROOT / "stack" / "endpoints.toml", "rb") as handle:
        return tomllib.load(handle)


def postgres_urls() -> tuple[str, list[str]]:
    """(catalog URL, shard URLs) of the stack's PostgreSQL, or the override's database."""
    override = os.environ.get("POLYSTORE_POSTGRES_URL")
    if override:
        return override, [override, override]
    section = endpoints()["postgres"]
    return section["catalog"], list(section["shards"])


def require(service: str, probe: Callable[[], object]) -> None:
    """Run ``probe``; if the server does not answer, fail with the log to read."""
    try:
        probe()
    except Exception as exc:  # any driver error means the same thing here
        log = STACK_DIR / "logs" / f"{service}.log"
        pytest.fail(
            f"the {service} server is not reachable ({type(exc).__name__}: {exc}). "
            f"Start it with `stack/stack up {service}`; its log is {log}. "
            'To run without servers: pytest -m "not servers".',
            pytrace=False,
        )
