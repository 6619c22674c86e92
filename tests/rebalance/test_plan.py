"""Planning: which spans move where, how much of the store, and what is refused before anything happens."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from sharding import MAX_TOKEN, TokenRange
from sharding.rebalance import Rebalancer, plan_rebalance
from tests.rebalance.helpers import Item, config_text, item, load, sqlite_shards
from toolkit import Toolkit
from toolkit.errors import ConfigError, TopologyError


def _toolkit(tmp_path: Path, shards: dict[str, str], **kw: str) -> Toolkit:
    return Toolkit(load(tmp_path, config_text(shards, **kw)))


def test_adding_an_11th_shard_to_10_moves_at_most_1_02_of_the_ideal_all_onto_the_new_shard(tmp_path: Path) -> None:
    with _toolkit(tmp_path, sqlite_shards(10)) as toolkit:
        items = toolkit.repository(Item)
        items.put_many(item(i) for i in range(22_000))
        (plan,) = plan_rebalance(toolkit, load(tmp_path, config_text(sqlite_shards(11))))
        ideal = 1 / 11
        key_share = sum(move.share for move in plan.moves)
        assert key_share <= 1.02 * ideal, key_share
        assert {move.target for move in plan.moves} == {"s10"}
        assert {move.source for move in plan.moves} == {f"s{i}" for i in range(10)}
        # the rows really in the moving token ranges, counted exactly through the adapters
        moved = 0
        for move in plan.moves:
            adapter = items.store.adapter(move.source)
            span = TokenRange(move.span.start, min(move.span.end, MAX_TOKEN))  # type: ignore[union-attr]
            moved += sum(len(batch) for batch in adapter.scan(items.schema, tokens=span))
        print(
            f"10 -> 11: key share {key_share:.5f} (ideal {ideal:.5f}, {key_share / ideal:.4f}x); rows {moved / 22_000:.5f}"
        )
        assert moved / 22_000 <= 1.02 * ideal * 1.1  # sampling noise of 22k rows on top of the key share
        assert plan.moved_share == pytest.approx(moved / 22_000, rel=0.1)
        assert toolkit.catalog.topology("items").epoch == 1  # a plan changes nothing


def test_plan_records_entities_and_estimates_rows(tmp_path: Path) -> None:
    with _toolkit(tmp_path, sqlite_shards(2)) as toolkit:
        toolkit.repository(Item).put_many(item(i) for i in range(1000))
        assert [schema.name for schema in toolkit.catalog.schemas("items")] == ["item"]
        (plan,) = plan_rebalance(toolkit, load(tmp_path, config_text(sqlite_shards(3))))
        assert plan.total_rows == 1000
        assert 250 <= plan.moved_rows <= 420
        assert plan.added_shards == ["s2"]
        assert plan.removed_shards == []
        data = plan.to_json()
        assert data["moved_rows"] == plan.moved_rows
        assert data["moves"][0]["span"]["tokens"]


def test_removing_a_shard_sends_all_its_rows_to_the_others(tmp_path: Path) -> None:
    with _toolkit(tmp_path, sqlite_shards(3)) as toolkit:
        toolkit.repository(Item).put_many(item(i) for i in range(600))
        (plan,) = plan_rebalance(toolkit, load(tmp_path, config_text(sqlite_shards(2))))
        assert {move.source for move in plan.moves} == {"s2"}
        assert {move.target for move in plan.moves} == {"s0", "s1"}
        assert plan.removed_shards == ["s2"]
        assert plan.moved_rows == plan.rows_by_shard["s2"]


def test_a_shard_renamed_in_place_is_refused_naming_the_shard(tmp_path: Path) -> None:
    with _toolkit(tmp_path, sqlite_shards(2)) as toolkit:
        moved = {"s0": "sqlite:///elsewhere.db", "s1": "sqlite:///s1.db"}
        with pytest.raises(TopologyError, match=r"store 'items': shards\.s0: the URL changes"):
            plan_rebalance(toolkit, load(tmp_path, config_text(moved)))


def test_a_router_type_change_is_refused(tmp_path: Path) -> None:
    with _toolkit(tmp_path, sqlite_shards(2)) as toolkit:
        target = config_text(
            sqlite_shards(2), router="range", router_options='ranges = [{shard = "s0", upto = 10}, {shard = "s1"}]'
        )
        with pytest.raises(TopologyError, match=r"store 'items': router.type: cannot change from hash to range"):
            plan_rebalance(toolkit, load(tmp_path, target))


def test_overlapping_split_points_are_refused_naming_the_field(tmp_path: Path) -> None:
    ranges = 'ranges = [{shard = "s0", upto = 100}, {shard = "s1"}]'
    with _toolkit(tmp_path, sqlite_shards(2), router="range", router_options=ranges) as toolkit:
        bad = 'ranges = [{shard = "s0", upto = 100}, {shard = "s1", upto = 50}, {shard = "s0"}]'
        with pytest.raises(ConfigError, match=r"stores\.items\.router\.ranges\[1\]\.upto"):
            plan_rebalance(toolkit, load(tmp_path, config_text(sqlite_shards(2), router="range", router_options=bad)))


def test_a_range_that_would_strand_rows_is_refused(tmp_path: Path) -> None:
    ranges = 'ranges = [{shard = "s0", upto = 100}, {shard = "s1"}]'
    with _toolkit(tmp_path, sqlite_shards(2), router="range", router_options=ranges) as toolkit:
        bounded = 'bounded = true\nranges = [{shard = "s0", upto = 100}, {shard = "s1", upto = 200}]'
        target = config_text(sqlite_shards(2), router="range", router_options=bounded)
        with pytest.raises(TopologyError, match=r"store 'items': router: .*belong to 's1' now but to no shard"):
            plan_rebalance(toolkit, load(tmp_path, target))


def test_an_unknown_url_scheme_is_refused_naming_the_field(tmp_path: Path) -> None:
    with _toolkit(tmp_path, sqlite_shards(2)) as toolkit:
        shards = {**sqlite_shards(2), "s2": "nosuch://host/db"}
        with pytest.raises(ConfigError, match=r"stores\.items\.shards\.s2: no adapter for URL scheme 'nosuch'"):
            plan_rebalance(toolkit, load(tmp_path, config_text(shards)))


def test_an_unreachable_new_shard_is_refused_before_anything_happens(tmp_path: Path) -> None:
    with _toolkit(tmp_path, sqlite_shards(2)) as toolkit:
        shards = {**sqlite_shards(2), "s2": "sqlite:////nonexistent/dir/s2.db"}
        with pytest.raises(TopologyError, match=r"store 'items': shards\.s2: .* does not answer"):
            plan_rebalance(toolkit, load(tmp_path, config_text(shards)))
        assert Rebalancer(toolkit).journal.latest() == []


def test_a_directory_pin_to_a_removed_shard_is_refused(tmp_path: Path) -> None:
    with _toolkit(tmp_path, sqlite_shards(3), router="directory") as toolkit:
        toolkit.repository(Item).put(item(7))
        toolkit.directory("items").assign({7: "s2"})
        with pytest.raises(TopologyError, match=r"router\.entries\.7: the key is pinned to shard 's2'"):
            plan_rebalance(toolkit, load(tmp_path, config_text(sqlite_shards(2), router="directory")))


def test_an_undeclared_or_unknown_store_is_refused(tmp_path: Path) -> None:
    with _toolkit(tmp_path, sqlite_shards(2)) as toolkit:
        toolkit.repository(Item).put(item(1))
        with pytest.raises(ConfigError, match="store 'nope' is not declared"):
            plan_rebalance(toolkit, load(tmp_path, config_text(sqlite_shards(3))), "nope")
        with pytest.raises(TopologyError, match="store 'other': stores: not in the catalog"):
            plan_rebalance(toolkit, load(tmp_path, config_text(sqlite_shards(3), store="other")))


def test_rows_of_an_entity_without_a_recorded_schema_are_refused(tmp_path: Path) -> None:
    with _toolkit(tmp_path, sqlite_shards(2)) as toolkit:
        items = toolkit.repository(Item)
        items.put_many(item(i) for i in range(50))
        engine = sa.create_engine(items.store.shard_urls["s0"])  # a table written by someone else
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE legacy (id INTEGER PRIMARY KEY)")
            connection.exec_driver_sql("INSERT INTO legacy VALUES (1)")
        engine.dispose()
        with pytest.raises(
            TopologyError, match=r"shards\.s0: holds rows in legacy, which no recorded entity describes"
        ):
            plan_rebalance(toolkit, load(tmp_path, config_text(sqlite_shards(3))))
