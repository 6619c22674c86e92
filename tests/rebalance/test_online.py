"""Online safety: writer threads insert, update and delete random keys while a hash-routed
store rebalances from 3 to 4 shards; afterwards every acknowledged write is readable in its
final state, nothing deleted reappears, nothing is duplicated or misplaced.

The writers use their own Toolkit (as another process would): they learn each phase
only through ``Store.poll``. Each thread owns the keys ``k % WRITERS == t``, so the final
state of every key is defined by what its thread was told succeeded.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sharding.rebalance import RebalanceOptions, Rebalancer, plan_rebalance
from tests.backends import Backend
from tests.backends.mongo import Mongo
from tests.backends.postgres import Postgres
from tests.backends.redis import Redis
from tests.backends.sqlite import SQLite
from tests.rebalance.helpers import Item, compare, config_text, item, load
from toolkit import Toolkit

WRITERS = 4


class Writer(threading.Thread):
    def __init__(
        self, toolkit: Toolkit, index: int, keys: int, seed: int, reference: dict[int, dict[str, Any]]
    ) -> None:
        super().__init__(daemon=True)
        self.items = toolkit.repository(Item)
        self.index = index
        self.keys = [k for k in range(keys) if k % WRITERS == index]
        self.random = random.Random(seed)
        self.reference = {k: v for k, v in reference.items() if k % WRITERS == index}
        self.stop = threading.Event()
        self.ops: Counter[str] = Counter()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.step()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def retried(self, operation: Any, *args: Any) -> None:
        """Run an idempotent write, retrying transient failures as an application would.

        The test server for documents (FerretDB on SQLite) sometimes answers a concurrent
        bulk write with an error pymongo cannot parse (KeyError 'nModified'); a write
        retried until it succeeds leaves the same final state."""
        for attempt in range(5):
            try:
                operation(*args)
                return
            except Exception:
                if attempt == 4:
                    raise
                self.ops["retried"] += 1
                time.sleep(0.05)

    def step(self) -> None:
        roll = self.random.random()
        transition = self.items.store.routing.transition
        self.ops[f"phase:{transition.phase if transition else 'none'}"] += 1
        if roll < 0.45:
            key = self.random.choice(self.keys)
            row = item(key, self.reference.get(key, {}).get("version", 0) + 1)
            self.retried(self.items.put, row)
            self.reference[key] = row
            self.ops["put"] += 1
        elif roll < 0.70:
            key = self.random.choice(self.keys)
            self.retried(self.items.delete, key)
            self.reference.pop(key, None)
            self.ops["delete"] += 1
        elif roll < 0.85:
            keys = self.random.sample(self.keys, 5)
            rows = [item(k, self.reference.get(k, {}).get("version", 0) + 1) for k in keys]
            self.retried(self.items.put_many, rows)
            self.reference.update({row["id"]: row for row in rows})
            self.ops["put_many"] += 1
        else:
            keys = self.random.sample(self.keys, 5)
            self.retried(self.items.delete_many, keys)
            for key in keys:
                self.reference.pop(key, None)
            self.ops["delete_many"] += 1


def online_rebalance(tmp_path: Path, layout: Backend, rows: int, seed: int) -> None:
    layout.connect()
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    before = config_text(layout.shards(3), catalog=catalog, kind=layout.kind, options=layout.options())
    after = config_text(layout.shards(4), catalog=catalog, kind=layout.kind, options=layout.options())
    print(f"online rebalance on {layout.name}: seed {seed}, {rows} rows, {WRITERS} writers")
    try:
        with Toolkit(load(tmp_path, before)) as setup:
            initial = [item(i) for i in range(rows)]
            setup.repository(Item).put_many(initial)
        reference = {row["id"]: row for row in initial}
        with Toolkit(load(tmp_path, before)) as application, Toolkit(load(tmp_path, before)) as operator:
            writers = [Writer(application, t, int(rows * 1.2), seed + t, reference) for t in range(WRITERS)]
            for writer in writers:
                writer.start()
            time.sleep(0.3)
            (plan,) = plan_rebalance(operator, load(tmp_path, after))
            rebalancer = Rebalancer(operator, options=RebalanceOptions(batch_size=500, settle=0.4))
            summary = rebalancer.run(rebalancer.start(plan))
            time.sleep(0.3)  # writers go on under the new epoch
            for writer in writers:
                writer.stop.set()
            for writer in writers:
                writer.join(30)
            errors = [writer.error for writer in writers if writer.error is not None]
            assert not errors, errors
            ops = sum((writer.ops for writer in writers), Counter())
            print(
                f"  {summary.copied} copied, {summary.repaired} repaired, {summary.deleted} deleted; "
                f"fenced {summary.fence_seconds:.2f}s of {summary.seconds:.2f}s; ops {dict(ops)}"
            )
            assert summary.state == "done"
            assert ops["phase:dual"] > 0
            assert ops["phase:none"] > 0
            final: dict[int, dict[str, Any]] = {}
            for writer in writers:
                final.update(writer.reference)
        with Toolkit(load(tmp_path, after)) as check:
            problems = compare(check, final)
            assert problems == [], problems[:20]
            items = check.repository(Item)
            assert items.count() == len(final)
            sample = random.Random(seed).sample(range(int(rows * 1.2)), 200)
            for key in sample:
                found = items.get(key)
                assert (found.model_dump() if found else None) == final.get(key)
    finally:
        layout.cleanup()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "rows"),
    [
        (SQLite, 6000),
        pytest.param(Postgres, 6000, marks=pytest.mark.postgres),
        pytest.param(Mongo, 1000, marks=pytest.mark.mongo),
        pytest.param(Redis, 3000, marks=pytest.mark.redis),
    ],
    ids=["sqlite", "postgres", "mongo", "redis"],
)
def test_online_rebalance(tmp_path: Path, backend: type[Backend], rows: int) -> None:
    online_rebalance(tmp_path, backend(tmp_path), rows=rows, seed=random.randrange(10_000))
