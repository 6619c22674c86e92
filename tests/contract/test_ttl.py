"""The TTL capability: rows that expire, on every backend that declares Capability.TTL.

Semantics (adapters.base.Adapter.put_ttl / ttl): a row written with a ttl is visible
until it expires and then gone from get, get_many, find, count and scan; ``ttl()`` is
the seconds left (None for a row that never expires or does not exist). Expiry is
polled for, never timed: backends expire rows at their own granularity.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from adapters.base import Capability
from tests.contract.conftest import Backend
from toolkit import Entity, QueryError

pytestmark = pytest.mark.capability(Capability.TTL)


class Session(Entity, store="items", key="id"):
    id: str
    user: str
    hits: int = 0


class Token(Entity, store="items", key="id", ttl=3600):
    id: str
    scope: str = "read"


def _eventually(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def test_put_with_ttl_is_visible_and_reports_its_ttl(backend: Backend) -> None:
    sessions = backend.toolkit().repository(Session)
    sessions.put(Session(id="s1", user="ada"), ttl=600)
    assert sessions.get("s1") == Session(id="s1", user="ada")
    left = sessions.ttl("s1")
    assert left is not None
    assert 0 < left <= 600
    assert sessions.count() == 1
    assert [s.id for s in sessions.find({"user": "ada"})] == ["s1"]


def test_rows_without_ttl_never_expire(backend: Backend) -> None:
    sessions = backend.toolkit().repository(Session)
    sessions.put(Session(id="plain", user="bob"))
    assert sessions.ttl("plain") is None
    assert sessions.ttl("missing") is None


def test_a_plain_put_replaces_an_expiring_row(backend: Backend) -> None:
    sessions = backend.toolkit().repository(Session)
    sessions.put(Session(id="s", user="ada"), ttl=600)
    sessions.put(Session(id="s", user="ada", hits=2))
    assert sessions.ttl("s") is None
    assert sessions.get("s") == Session(id="s", user="ada", hits=2)


def test_expired_rows_disappear_from_every_read(backend: Backend) -> None:
    sessions = backend.toolkit().repository(Session)
    sessions.put_many([Session(id=f"short{i}", user="gone") for i in range(5)], ttl=1)
    sessions.put(Session(id="stays", user="gone"))
    sessions.put(Session(id="later", user="gone"), ttl=3600)
    assert _eventually(lambda: all(sessions.get(f"short{i}") is None for i in range(5)))
    assert sessions.get_many([f"short{i}" for i in range(5)] + ["stays"]).keys() == {"stays"}
    assert sorted(s.id for s in sessions.find({"user": "gone"})) == ["later", "stays"]
    assert sessions.count() == 2
    assert sessions.count({"user": "gone"}) == 2
    assert sorted(s.id for s in sessions.scan()) == ["later", "stays"]
    assert sessions.ttl("short0") is None
    assert sessions.delete("short0") is False


def test_an_expired_key_can_be_written_again(backend: Backend) -> None:
    sessions = backend.toolkit().repository(Session)
    sessions.put(Session(id="again", user="x"), ttl=1)
    assert _eventually(lambda: sessions.get("again") is None)
    sessions.put(Session(id="again", user="y"))
    assert sessions.get("again") == Session(id="again", user="y")
    assert sessions.count() == 1
    assert sessions.ttl("again") is None


def test_the_entity_ttl_is_the_default(backend: Backend) -> None:
    tokens = backend.toolkit().repository(Token)
    tokens.put(Token(id="t1"))
    tokens.put_many([Token(id="t2"), Token(id="t3")])
    for key in ("t1", "t2", "t3"):
        left = tokens.ttl(key)
        assert left is not None
        assert 0 < left <= 3600
    tokens.put(Token(id="t4"), ttl=60)  # an explicit ttl wins
    left = tokens.ttl("t4")
    assert left is not None
    assert 0 < left <= 60


def test_ttl_must_be_positive(backend: Backend) -> None:
    sessions = backend.toolkit().repository(Session)
    with pytest.raises(QueryError, match="ttl"):
        sessions.put(Session(id="bad", user="x"), ttl=0)
    with pytest.raises(QueryError, match="ttl"):
        sessions.put(Session(id="bad", user="x"), ttl=-5)
    assert sessions.get("bad") is None
