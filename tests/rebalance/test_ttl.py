"""TTLs move with their rows: every kind with the TTL capability, embedded and real.

A rebalance copies each row with its expiry instant (``scan_expiring`` ->
``put_expiring``), so after cut-over a row keeps the *rest* of its time to live: not
forever (a plain copy would drop the expiry), not the full TTL again (a copy through
``put_ttl`` with the declared TTL would restart the clock), and a row that expires
during the move is not brought back.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sharding.rebalance import RebalanceOptions, Rebalancer, plan_rebalance
from tests.backends import Backend
from tests.backends.cassandra import Cassandra
from tests.backends.postgres import Postgres
from tests.backends.redis import Redis
from tests.backends.sqlite import SQLite
from tests.rebalance.helpers import Item, compare, config_text, item, load, physical_rows, reference_of
from toolkit import Toolkit

OPTIONS = RebalanceOptions(batch_size=100, settle=0.05)
LONG = 600.0
"""Seconds: the TTL of the rows checked for their remaining time."""
SHORT = 4.0
"""Seconds: the TTL of the rows that must expire on their new shard."""
AGED = 2.5
"""Seconds the long rows age before the rebalance, so a restarted clock shows."""


def _move_ttls(tmp_path: Path, layout: Backend) -> None:
    layout.connect()
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    before = config_text(layout.shards(2), catalog=catalog, kind=layout.kind, options=layout.options())
    after = config_text(layout.shards(3), catalog=catalog, kind=layout.kind, options=layout.options())
    plain = reference_of([item(i) for i in range(0, 300)])
    long = reference_of([item(i) for i in range(1000, 1300)])
    short = reference_of([item(i) for i in range(2000, 2100)])
    try:
        with Toolkit(load(tmp_path, before)) as toolkit:
            items = toolkit.repository(Item)
            items.put_many(plain.values())
            long_written = time.time()
            items.put_many(long.values(), ttl=LONG)
            time.sleep(AGED)
            short_written = time.time()
            items.put_many(short.values(), ttl=SHORT)
            (plan,) = plan_rebalance(toolkit, load(tmp_path, after))
            rebalancer = Rebalancer(toolkit, options=OPTIONS)
            summary = rebalancer.run(rebalancer.start(plan))
            assert summary.state == "done"
            assert summary.copied > 100
            assert compare(toolkit, {**plain, **long, **short}) == []
            moved = {row["id"] for row in physical_rows(toolkit)["s2"]}
            assert moved & set(long)
            assert moved & set(plain)
            assert moved & set(short)

            checked = time.time()
            for key in long:
                remaining = items.ttl(key)
                assert remaining is not None, f"{layout.name}: row {key} lost its TTL"
                # the rest of its time: at most what was left, at least that minus the check's own time
                left = LONG - (checked - long_written)
                assert left - 5.0 < remaining <= left + 1.0, f"{layout.name}: row {key}: {remaining} s, expected {left}"
            assert all(items.ttl(key) is None for key in plain)

            time.sleep(max(0.0, short_written + SHORT + 0.2 - time.time()))
            assert not items.get_many(list(short))
            assert compare(toolkit, {**plain, **long}) == []
    finally:
        layout.cleanup()


@pytest.mark.parametrize(
    "backend",
    [
        SQLite,
        pytest.param(Postgres, marks=pytest.mark.postgres),
        pytest.param(Redis, marks=pytest.mark.redis),
        pytest.param(Cassandra, marks=pytest.mark.cassandra),
    ],
    ids=lambda backend: backend.name,
)
def test_ttls_move(tmp_path: Path, backend: type[Backend]) -> None:
    _move_ttls(tmp_path, backend(tmp_path))
