"""Many sagas at once: threads and two processes, same and different idempotency keys.

Every saga increments a per-key ``runs`` counter with a plain (not idempotent)
increment, so a key whose saga ran twice would show ``runs == 2``. Every caller must
get the completed outcome of the one saga of its key: none runs twice, none is lost.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.saga.conftest import Counter
from toolkit import Toolkit
from toolkit.config import CatalogConfig, Config
from toolkit.saga import LeasePolicy, Saga, SagaOutcome, Step, StepContext


def _count(ctx: StepContext) -> int:
    runs = ctx.repository(Counter)
    value = runs.increment(ctx.payload["key"], "n", 1)
    return int(value)


def _touch(ctx: StepContext) -> str:
    ctx.put(Counter, {"id": f"touched-{ctx.payload['key']}", "n": 1})
    return ctx.step_key


SAGA = Saga("concurrent", [Step("count", _count), Step("touch", _touch)])
LEASE = LeasePolicy(ttl=30, heartbeat=2, margin=1, wait_interval=0.01)
KEYS = [f"k{number}" for number in range(12)]


def _worker(make: Callable[[], Toolkit], keys: list[str], threads: int) -> list[tuple[str, str, str, bool]]:
    """Run every key from ``threads`` threads at once; (key, saga id, state, replayed) per call."""
    results: list[tuple[str, str, str, bool]] = []
    lock = threading.Lock()
    with make() as toolkit:
        toolkit.sagas.lease = LEASE
        barrier = threading.Barrier(threads)

        def run(offset: int) -> None:
            barrier.wait()
            for index in range(len(keys)):
                key = keys[(index + offset) % len(keys)]
                outcome: SagaOutcome = toolkit.sagas.run(SAGA, {"key": key}, key=f"c:{key}")
                with lock:
                    results.append((key, outcome.id, str(outcome.state), outcome.replayed))

        workers = [threading.Thread(target=run, args=(offset,)) for offset in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    return results


def _process(make: Callable[[], Toolkit], keys: list[str], threads: int, conn: Any) -> None:
    try:
        conn.send(_worker(make, keys, threads))
    except BaseException as exc:
        conn.send(f"{type(exc).__name__}: {exc}")
    finally:
        os._exit(0)  # a forked child must not run the parent's exit handlers


def _check(toolkit: Toolkit, results: list[tuple[str, str, str, bool]], calls_per_key: int) -> dict[str, int]:
    by_key: dict[str, set[str]] = {}
    for key, saga_id, state, _ in results:
        assert state == "completed", (key, state)
        by_key.setdefault(key, set()).add(saga_id)
    assert sorted(by_key) == sorted(KEYS), "a key was lost"
    assert all(len(ids) == 1 for ids in by_key.values()), "two sagas for one key"
    counters = toolkit.repository(Counter).get_many(KEYS)
    assert {key: counters[key].n for key in KEYS} == dict.fromkeys(KEYS, 1), "a saga ran twice"
    fresh = sum(1 for *_, replayed in results if not replayed)
    assert fresh == len(KEYS)
    assert len(results) == len(KEYS) * calls_per_key
    return {"calls": len(results), "ran": fresh, "replayed": len(results) - fresh}


def _scenario(make: Callable[[], Toolkit]) -> dict[str, int]:
    with make() as toolkit:
        toolkit.repository(Counter).put_many([Counter(id=key, n=0) for key in KEYS])
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    other = context.Process(target=_process, args=(make, KEYS, 3, sender))
    other.start()
    sender.close()
    mine = _worker(make, KEYS, 4)  # this process: 4 threads; the other: 3 threads, same keys
    assert receiver.poll(240), "the other process sent nothing"
    theirs = receiver.recv()
    other.join(60)
    assert not isinstance(theirs, str), theirs
    with make() as toolkit:
        return _check(toolkit, mine + theirs, calls_per_key=7)


def test_threads_and_two_processes_on_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    summary = _scenario(lambda: Toolkit.embedded(data))
    with capsys.disabled():
        print(f"\nsaga concurrency (SQLite catalog, 7 threads in 2 processes, {len(KEYS)} keys): {summary}")


def test_different_keys_from_many_threads_all_run(tmp_path: Path) -> None:
    with Toolkit.embedded(tmp_path / "data") as toolkit:
        toolkit.sagas.lease = LEASE
        keys = [f"d{number}" for number in range(40)]
        toolkit.repository(Counter).put_many([Counter(id=key, n=0) for key in keys])
        outcomes: list[SagaOutcome] = []
        lock = threading.Lock()

        def run(chunk: list[str]) -> None:
            for key in chunk:
                outcome = toolkit.sagas.run(SAGA, {"key": key}, key=f"d:{key}")
                with lock:
                    outcomes.append(outcome)

        threads = [threading.Thread(target=run, args=(keys[start::8],)) for start in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(outcomes) == 40
        assert all(outcome.ok and not outcome.replayed for outcome in outcomes)
        counters = toolkit.repository(Counter).get_many(keys)
        assert all(counters[key].n == 1 for key in keys)


@pytest.mark.servers
@pytest.mark.postgres
def test_threads_and_two_processes_with_the_catalog_on_postgresql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.backends.postgres import Postgres
    from tests.servers import postgres_urls

    Postgres(tmp_path).connect()
    catalog, _ = postgres_urls()
    data = tmp_path / "data"
    # A catalog of this test's own (a schema in the catalog database): the shared catalog
    # would remember this test's temporary SQLite shard URLs after they are gone.
    schema = f"saga_conc_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(catalog.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = f"{catalog}?options=-csearch_path%3D{schema}"

    def make() -> Toolkit:
        embedded = Config.embedded_default(data)
        return Toolkit(Config(catalog=CatalogConfig(url), stores={}, data_dir=embedded.data_dir))

    try:
        summary = _scenario(make)
        with make() as toolkit:
            assert toolkit.sagas.log.counts() == {"completed": len(KEYS)}
            assert toolkit.catalog.engine.dialect.name == "postgresql"
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
    with capsys.disabled():
        print(f"\nsaga concurrency (PostgreSQL catalog, 7 threads in 2 processes, {len(KEYS)} keys): {summary}")
