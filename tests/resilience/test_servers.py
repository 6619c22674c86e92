"""The guard against a real server: a Redis shard killed under calls opens its breaker,
then refuses calls without I/O, and closes again once the restarted server answers a probe.

The server is a private redis-server (``helpers.PrivateRedis``), never the shared stack's.
The breaker runs on a manual clock, so the test asserts states and counts, never
durations: the real-time figures of an outage (time to open, latency of the calls
refused, the other stores' latency meanwhile, time to recover), of a slow backend and of
the throttles are printed by ``bench/resilience_outage.py``, ``bench/resilience_slow.py``
and ``bench/resilience_throttle.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.resilience.helpers import PrivateRedis
from toolkit import Entity, Toolkit
from toolkit.config import CatalogConfig, Config, ShardConfig, StoreConfig, sqlite_url
from toolkit.errors import CircuitOpen, StoreUnavailable
from toolkit.resilience import BreakerPolicy, BreakerState, ManualClock, ResiliencePolicy, RetryPolicy, StoreGuard

pytestmark = pytest.mark.servers


class Session(Entity, store="rz_sessions", key="token"):
    token: str
    hits: int = 0


BREAKER = BreakerPolicy(failures=3, window=10.0, cool_down=5.0)
POLICY = ResiliencePolicy(breaker=BREAKER, retry=RetryPolicy(max_attempts=1))


def _toolkit(tmp: Path, url: str, clock: ManualClock) -> Toolkit:
    store = StoreConfig(
        "rz_sessions",
        "keyvalue",
        (ShardConfig("s0", url),),
        options={"connect_timeout": 2, "socket_timeout": 2},
        resilience=POLICY,
    )
    toolkit = Toolkit(Config(CatalogConfig(sqlite_url(tmp / "catalog.db")), {"rz_sessions": store}, tmp, "test.toml"))
    # The same policy on the test's clock, before the first call builds the shard's adapter.
    toolkit.store("rz_sessions").guard = StoreGuard("rz_sessions", POLICY, clock=clock)
    return toolkit


def test_a_killed_redis_shard_opens_its_breaker_fails_fast_and_recovers(tmp_path: Path) -> None:
    clock = ManualClock()
    with PrivateRedis(tmp_path) as server, _toolkit(tmp_path, server.url, clock) as toolkit:
        sessions = toolkit.repository(Session)
        sessions.put(Session(token="a", hits=1))
        assert sessions.get("a") == Session(token="a", hits=1)

        server.kill()
        reached: list[type[Exception]] = []
        for _ in range(BREAKER.failures):
            with pytest.raises(StoreUnavailable) as raised:
                sessions.get("a")
            reached.append(type(raised.value))
        assert CircuitOpen not in reached  # each of these calls met the dead server
        breaker = toolkit.health()["rz_sessions"].shards[0].breaker
        assert breaker is not None
        assert (breaker.state, breaker.opened, breaker.rejected) == (BreakerState.OPEN, 1, 0)

        for _ in range(10):
            with pytest.raises(CircuitOpen) as refused:
                sessions.get("a")
            assert refused.value.retry_after == pytest.approx(BREAKER.cool_down)
            assert (refused.value.store, refused.value.shard) == ("rz_sessions", "s0")
        breaker = toolkit.health()["rz_sessions"].shards[0].breaker
        assert breaker is not None
        assert (breaker.state, breaker.rejected) == (BreakerState.OPEN, 10)  # refused without I/O
        assert not toolkit.health()["rz_sessions"].healthy

        server.start()
        clock.advance(BREAKER.cool_down)  # half-open: the next call is the probe
        assert sessions.get("a") is None  # the server is back (empty: it kept nothing)
        sessions.put(Session(token="b", hits=2))
        assert sessions.get("b") == Session(token="b", hits=2)
        health = toolkit.health()["rz_sessions"]
        assert health.healthy
        assert health.shards[0].breaker is not None
        assert (health.shards[0].breaker.state, health.shards[0].breaker.opened) == (BreakerState.CLOSED, 1)
