"""Executing rebalances on SQLite shards: every router, grow and shrink, abort, resume, the CLI."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sharding.rebalance import ProgressEvent, RebalanceOptions, Rebalancer, plan_rebalance
from tests.rebalance.helpers import Item, compare, config_text, item, load, reference_of, sqlite_shards, write_config
from toolkit import Repository, Toolkit
from toolkit.cli import app
from toolkit.routing import RoutingState, Transitions, WriteRoute

FAST = RebalanceOptions(batch_size=200, settle=0.02)
RANGES = 'ranges = [{shard = "s0", upto = 500}, {shard = "s1"}]'


def _run(toolkit: Toolkit, target_text: str, tmp_path: Path, **options: Any) -> Any:
    (plan,) = plan_rebalance(toolkit, load(tmp_path, target_text))
    rebalancer = Rebalancer(toolkit, options=RebalanceOptions(**{"batch_size": 200, "settle": 0.02, **options}))
    return rebalancer.run(rebalancer.start(plan))


@pytest.mark.parametrize(("before", "after"), [(3, 4), (4, 3), (1, 3)])
def test_hash_rebalance_moves_exactly_the_rows_that_change_owner(tmp_path: Path, before: int, after: int) -> None:
    rows = [item(i) for i in range(3000)]
    with Toolkit(load(tmp_path, config_text(sqlite_shards(before)))) as toolkit:
        items = toolkit.repository(Item)
        items.put_many(rows)
        summary = _run(toolkit, config_text(sqlite_shards(after)), tmp_path, parallel=2)
        assert summary.state == "done"
        assert summary.copied == summary.deleted > 0
        assert toolkit.catalog.topology("items").epoch == 2
        assert compare(toolkit, reference_of(rows)) == []
        assert items.count() == 3000
        assert items.get(17) is not None
        assert Transitions(toolkit.catalog).current("items") is None


def test_range_rebalance_moves_a_split_point(tmp_path: Path) -> None:
    rows = [item(i) for i in range(1000)]
    with Toolkit(load(tmp_path, config_text(sqlite_shards(2), router="range", router_options=RANGES))) as toolkit:
        toolkit.repository(Item).put_many(rows)
        target = 'ranges = [{shard = "s0", upto = 300}, {shard = "s1", upto = 800}, {shard = "s2"}]'
        (plan,) = plan_rebalance(
            toolkit, load(tmp_path, config_text(sqlite_shards(3), router="range", router_options=target))
        )
        assert [(m.source, m.target, m.rows) for m in plan.moves] == [("s0", "s1", 200), ("s1", "s2", 200)]
        rebalancer = Rebalancer(toolkit, options=FAST)
        assert rebalancer.run(rebalancer.start(plan)).copied == 400
        assert compare(toolkit, reference_of(rows)) == []


def test_directory_rebalance_moves_pinned_keys_and_fallback_spans(tmp_path: Path) -> None:
    rows = [item(i) for i in range(1000)]
    with Toolkit(load(tmp_path, config_text(sqlite_shards(2), router="directory"))) as toolkit:
        toolkit.directory("items").assign({1: "s0", 2: "s1", 3: "s0"})
        toolkit.repository(Item).put_many(rows)
        target = config_text(
            sqlite_shards(3),
            router="directory",
            router_options='entries = [{key = 1, shard = "s2"}, {key = 2, shard = "s0"}]',
        )
        summary = _run(toolkit, target, tmp_path)
        assert summary.state == "done"
        pinned = toolkit.directory("items").entries()
        assert len(pinned) == 3
        toolkit.refresh()
        assert toolkit.repository(Item).store.router.shard_for(1) == "s2"
        assert compare(toolkit, reference_of(rows)) == []


def test_abort_before_cut_over_returns_to_the_old_topology_and_cleans_the_copies(tmp_path: Path) -> None:
    rows = [item(i) for i in range(2000)]

    def stop_after_verify(event: ProgressEvent) -> None:
        if event.kind == "phase" and event.phase == "fence":
            raise KeyboardInterrupt  # a person pressing ^C (not an Exception: the run stops dead)

    with Toolkit(load(tmp_path, config_text(sqlite_shards(3)))) as toolkit:
        items = toolkit.repository(Item)
        items.put_many(rows)
        (plan,) = plan_rebalance(toolkit, load(tmp_path, config_text(sqlite_shards(4))))
        rebalancer = Rebalancer(toolkit, options=FAST, progress=stop_after_verify)
        ident = rebalancer.start(plan)
        with pytest.raises(KeyboardInterrupt):
            rebalancer.run(ident)
        items.store.refresh()
        assert items.store.routing.transition is not None
        assert items.count() == 2000
        copies = items.store.ensure(items.schema, "s3").count(items.schema)
        assert copies > 0
        summary = Rebalancer(toolkit, options=FAST).abort(ident)
        assert summary.state == "aborted"
        assert items.store.ensure(items.schema, "s3").count(items.schema) == 0
        assert toolkit.catalog.topology("items").epoch == 1
        assert compare(toolkit, reference_of(rows)) == []
        items.store.refresh()
        assert items.store.routing.steady


def test_a_rebalance_that_failed_midway_resumes_where_it_stopped(tmp_path: Path) -> None:
    rows = [item(i) for i in range(2000)]
    seen: list[str] = []

    def crash_in_cleanup(event: ProgressEvent) -> None:
        seen.append(event.phase)
        if event.kind == "rows" and event.phase == "cleanup":
            raise RuntimeError("power cut")

    with Toolkit(load(tmp_path, config_text(sqlite_shards(3)))) as toolkit:
        toolkit.repository(Item).put_many(rows)
        (plan,) = plan_rebalance(toolkit, load(tmp_path, config_text(sqlite_shards(4))))
        no_retries = RebalanceOptions(batch_size=200, settle=0.02, retries=0)
        rebalancer = Rebalancer(toolkit, options=no_retries, progress=crash_in_cleanup)
        ident = rebalancer.start(plan)
        with pytest.raises(RuntimeError, match="power cut"):
            rebalancer.run(ident)
        record = rebalancer.journal.get(ident)
        assert record.state == "cleanup"
        assert "power cut" in record.error
        assert compare(toolkit, reference_of(rows)) != []  # sources still hold moved rows...
        assert toolkit.repository(Item).count() == 2000  # ...which readers never see
        with pytest.raises(Exception, match="past cut-over"):
            Rebalancer(toolkit, options=FAST).abort(ident)
        summary = Rebalancer(toolkit, options=FAST).run(ident)
        assert summary.state == "done"
        assert compare(toolkit, reference_of(rows)) == []


def test_one_rebalance_per_store_at_a_time(tmp_path: Path) -> None:
    with Toolkit(load(tmp_path, config_text(sqlite_shards(2)))) as toolkit:
        toolkit.repository(Item).put_many(item(i) for i in range(100))
        (plan,) = plan_rebalance(toolkit, load(tmp_path, config_text(sqlite_shards(3))))
        rebalancer = Rebalancer(toolkit, options=FAST)
        rebalancer.start(plan)
        with pytest.raises(Exception, match="is unfinished"):
            rebalancer.start(plan)


runner = CliRunner()


def test_cli_dry_run_execute_status_resume_and_abort(tmp_path: Path) -> None:
    current = write_config(tmp_path, "polystore.toml", config_text(sqlite_shards(2)))
    target = write_config(tmp_path, "target.toml", config_text(sqlite_shards(3)))
    rows = [item(i) for i in range(500)]
    with Toolkit(load(tmp_path, current.read_text())) as toolkit:
        toolkit.repository(Item).put_many(rows)
    dry = runner.invoke(app, ["rebalance", "--to", str(target), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "rebalance plan" in dry.output
    assert "adds s2" in dry.output
    as_json = runner.invoke(app, ["rebalance", "--to", str(target), "--dry-run", "--json"])
    assert json.loads(as_json.output)[0]["moves"][0]["target"] == "s2"
    refused = runner.invoke(app, ["rebalance", "--to", str(target)], input="n\n")
    assert refused.exit_code == 1
    done = runner.invoke(app, ["rebalance", "--to", str(target), "--yes", "--settle", "0.02", "--batch-size", "50"])
    assert done.exit_code == 0, done.output
    assert "copied" in done.output
    assert "done" in done.output
    status = runner.invoke(app, ["rebalance", "status"])
    assert status.exit_code == 0
    assert "done" in status.output
    nothing = runner.invoke(app, ["rebalance", "resume"])
    assert nothing.exit_code == 1
    assert "no unfinished rebalance" in nothing.output
    back = write_config(tmp_path, "back.toml", config_text(sqlite_shards(2)))
    with Toolkit(load(tmp_path, current.read_text())) as toolkit:
        (plan,) = plan_rebalance(toolkit, load(tmp_path, back.read_text()))
        ident = Rebalancer(toolkit, options=FAST).start(plan)
    aborted = runner.invoke(app, ["rebalance", "abort", ident[:8], "--yes", "--settle", "0.02"])
    assert aborted.exit_code == 0, aborted.output
    assert "aborted" in aborted.output
    bad = write_config(tmp_path, "bad.toml", config_text({"s0": "sqlite:///other.db", "s1": "sqlite:///s1.db"}))
    refused_plan = runner.invoke(app, ["rebalance", "--to", str(bad), "--dry-run"])
    assert refused_plan.exit_code == 1
    assert "shards.s0: the URL changes" in refused_plan.output
    with Toolkit(load(tmp_path, current.read_text())) as toolkit:
        assert compare(toolkit, reference_of(rows)) == []


def test_another_toolkit_picks_up_the_new_epoch_without_a_restart(tmp_path: Path) -> None:
    text = config_text(sqlite_shards(2))
    with Toolkit(load(tmp_path, text)) as operator, Toolkit(load(tmp_path, text)) as application:
        items = application.repository(Item)
        items.put_many(item(i) for i in range(400))
        moved = next(i for i in range(400) if items.store.router.shard_for(i) == "s1")
        assert items.get(moved) is not None
        summary = _run(operator, config_text(sqlite_shards(3)), tmp_path)
        assert summary.state == "done"
        time.sleep(items.store.poll_interval * 1.5)
        assert items.get(moved) is not None  # the poll saw epoch 2 and asked the new owner
        assert items.store.topology.epoch == 2
        assert items.shards_for_key(moved) == (items.store.router.shard_for(moved),)
        assert sum(1 for i in range(400) if items.store.router.shard_for(i) == "s2") > 0
        assert items.count() == 400


def _stopped_at(toolkit: Toolkit, tmp_path: Path, phase: str) -> str:
    """Start a 2 -> 3 rebalance and stop it (as a crash would) when ``phase`` begins."""

    def stop(event: ProgressEvent) -> None:
        if event.kind == "phase" and event.phase == phase:
            raise KeyboardInterrupt

    (plan,) = plan_rebalance(toolkit, load(tmp_path, config_text(sqlite_shards(3))))
    rebalancer = Rebalancer(toolkit, options=FAST, progress=stop)
    ident = rebalancer.start(plan)
    with pytest.raises(KeyboardInterrupt):
        rebalancer.run(ident)
    return ident


@contextmanager
def _seen_mid_rebalance(tmp_path: Path, step: str) -> Iterator[tuple[Toolkit, Repository[Item], str, RoutingState]]:
    """An application's repository of 300 rows on 2 shards, and the routing it sees once an
    operator's rebalance to 3 shards stopped before ``step``: (operator, repository, id, routing)."""
    text = config_text(sqlite_shards(2))
    with Toolkit(load(tmp_path, text)) as operator, Toolkit(load(tmp_path, text)) as application:
        items = application.repository(Item)
        items.put_many(item(i) for i in range(300))
        ident = _stopped_at(operator, tmp_path, step)
        items.store.refresh()
        yield operator, items, ident, items.store.routing


def test_dual_writes_reach_both_owners_and_reads_stay_on_the_old_one(tmp_path: Path) -> None:
    with _seen_mid_rebalance(tmp_path, "copy") as (operator, items, ident, routing):
        assert routing.transition is not None
        assert routing.transition.phase == "dual"
        key = next(i for i in range(1000, 2000) if routing.transition.target.shard_for(i) == "s2")
        old_owner = routing.router.shard_for(key)
        assert routing.write(key) == WriteRoute((old_owner, "s2"), tracked=True)
        items.put(item(key, 5))
        adapters = {shard: items.store.ensure(items.schema, shard) for shard in ("s0", "s1", "s2")}
        assert adapters[old_owner].get(items.schema, key)["version"] == 5
        assert adapters["s2"].get(items.schema, key)["version"] == 5
        assert items.count() == 301  # the copy on s2 is not counted twice (s2 is not read yet)
        assert items.delete(key)
        assert adapters[old_owner].get(items.schema, key) is None
        assert adapters["s2"].get(items.schema, key) is None
        assert Rebalancer(operator, options=FAST).run(ident).state == "done"
        assert compare(operator, reference_of([item(i) for i in range(300)])) == []


def test_the_fence_holds_writes_of_moving_keys_until_cut_over(tmp_path: Path) -> None:
    with _seen_mid_rebalance(tmp_path, "final") as (operator, items, ident, routing):
        assert routing.transition is not None
        assert routing.transition.phase == "fence"
        target = routing.transition.target
        key = next(i for i in range(300) if target.shard_for(i) == "s2")
        still = next(i for i in range(300) if target.shard_for(i) == routing.router.shard_for(i))
        assert routing.write(key) is None  # held until the fence lifts
        items.put(item(still, 3))  # keys that stay flow through the fence
        done = threading.Event()

        def write() -> None:
            items.put(item(key, 9))
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        assert not done.wait(0.5)  # held by the fence
        Rebalancer(operator, options=FAST).run(ident)
        assert done.wait(10)
        writer.join()
        assert items.store.topology.epoch == 2
        assert items.store.ensure(items.schema, "s2").get(items.schema, key)["version"] == 9
        expected = reference_of([item(i) for i in range(300)])
        expected[key] = item(key, 9)
        expected[still] = item(still, 3)
        assert compare(operator, expected) == []


def test_a_transient_failure_of_a_unit_is_retried(tmp_path: Path) -> None:
    rows = [item(i) for i in range(500)]
    failures = iter([True, True])

    def flaky(event: ProgressEvent) -> None:
        if event.kind == "rows" and event.phase == "copy" and next(failures, False):
            raise ConnectionResetError("the server hiccuped")

    with Toolkit(load(tmp_path, config_text(sqlite_shards(2)))) as toolkit:
        toolkit.repository(Item).put_many(rows)
        (plan,) = plan_rebalance(toolkit, load(tmp_path, config_text(sqlite_shards(3))))
        rebalancer = Rebalancer(toolkit, options=FAST, progress=flaky)
        summary = rebalancer.run(rebalancer.start(plan))
        assert summary.state == "done"
        assert next(failures, None) is None  # both failures happened, and were retried
        assert compare(toolkit, reference_of(rows)) == []
