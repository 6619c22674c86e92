"""The routing state answers where a key is read and written in every phase of a rebalance
(pure logic: routers only, no catalog), and the catalog publishes and reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sharding import Router, ShardId, router_from_config
from toolkit.catalog import METADATA, Catalog
from toolkit.config import sqlite_url
from toolkit.errors import TopologyError
from toolkit.routing import Phase, RoutingState, Transition, Transitions, WriteRoute

OLD = router_from_config("range", ["s0", "s1"], {"ranges": [{"shard": "s0", "upto": 100}, {"shard": "s1"}]})
NEW = router_from_config(
    "range",
    ["s0", "s1", "s2"],
    {"ranges": [{"shard": "s0", "upto": 50}, {"shard": "s2", "upto": 100}, {"shard": "s1"}]},
)
"""2 -> 3 shards: keys 50..99 move from s0 to s2; the rest stay."""
MOVING, STAYING = 70, 10
S0, S1, S2 = ShardId("s0"), ShardId("s1"), ShardId("s2")


def state(phase: Phase | None, *, epoch: int = 1, router: Router = OLD) -> RoutingState:
    transition = None if phase is None else Transition("r1", phase, 2, NEW, {"s2": "sqlite:///s2"})
    return RoutingState("items", epoch, 0, router, {"s0": "sqlite:///s0", "s1": "sqlite:///s1"}, transition)


def test_without_a_rebalance_every_key_has_one_owner() -> None:
    steady = state(None)
    assert steady.steady
    assert steady.rebalance is None
    assert steady.write(MOVING) == WriteRoute((S0,))
    assert steady.write_anywhere() == WriteRoute((S0, S1))
    assert steady.read(MOVING) == ("s0",)
    assert steady.read(None) == ("s0", "s1")
    assert steady.owns(S1, MOVING)  # no copies anywhere: whatever a shard holds is real
    assert not steady.splits(MOVING, STAYING)
    assert steady.shard_url("s2") is None


def test_dual_writes_a_moving_key_to_both_owners_and_tracks_it() -> None:
    dual = state(Phase.DUAL)
    assert not dual.steady
    assert dual.rebalance == "r1"
    route = dual.write(MOVING)
    assert route == WriteRoute((S0, S2), tracked=True)
    assert route is not None
    assert route.owner == "s0"  # single-row changes go to the current owner only
    assert dual.write(STAYING) == WriteRoute((S0,))
    assert dual.write_anywhere() == WriteRoute((S0, S1, S2), tracked=True)
    assert dual.read(MOVING) == ("s0",)  # reads stay on the current epoch
    assert dual.owns(S0, MOVING)
    assert not dual.owns(S2, MOVING)  # the copy is not the row
    assert dual.owned(S2, [MOVING, STAYING], lambda key: key) == []
    assert dual.splits(MOVING, STAYING)
    assert dual.shard_url("s2") == "sqlite:///s2"


def test_the_fence_holds_moving_keys_only() -> None:
    fence = state(Phase.FENCE)
    assert fence.write(MOVING) is None
    assert fence.write(STAYING) == WriteRoute((S0,))


@pytest.mark.parametrize("phase", [Phase.CLEANUP, Phase.ABORT])
def test_cleanup_and_abort_write_to_the_current_owner_and_drop_copies(phase: Phase) -> None:
    settling = state(phase)
    assert settling.write(MOVING) == WriteRoute((S0,))
    assert settling.write_anywhere() == WriteRoute((S0, S1))
    assert not settling.owns(S2, MOVING)
    assert not settling.splits(MOVING, STAYING)


def test_once_the_new_epoch_is_seen_writes_follow_it_whatever_phase_is_published() -> None:
    cut_over = state(Phase.FENCE, epoch=2, router=NEW)
    assert cut_over.write(MOVING) == WriteRoute((S2,))
    assert cut_over.owns(S2, MOVING)
    assert not cut_over.owns(S0, MOVING)


def test_every_catalog_table_is_on_one_metadata_and_created_when_the_catalog_opens(tmp_path: Path) -> None:
    owned = {"ps_store", "ps_topology", "ps_directory", "ps_entity_schema", "ps_routing", "ps_rebalance_touched"}
    others = {"ps_rebalance", "ps_rebalance_unit", "ps_saga", "ps_saga_event", "ps_saga_effect"}
    assert owned | others <= set(METADATA.tables)
    catalog = Catalog(sqlite_url(tmp_path / "catalog.db"))
    try:
        with catalog.reading("list tables") as connection:
            names = {row[0] for row in connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")}
        assert set(METADATA.tables) <= names
    finally:
        catalog.close()


def test_a_rebalance_publishes_its_phase_and_target_and_claims_the_store(tmp_path: Path) -> None:
    catalog = Catalog(sqlite_url(tmp_path / "catalog.db"))
    try:
        catalog.register("items", "relational", {"s0": "x://a", "s1": "x://b"}, OLD.to_spec())
        transitions = Transitions(catalog)
        target = {"shards": {"s0": "x://a", "s1": "x://b", "s2": "x://c"}, "router": NEW.to_spec()}
        assert transitions.current("items") is None
        transitions.publish("items", "r1", Phase.DUAL, 2, target)
        transitions.publish("items", "r1", Phase.FENCE, 2, target)
        assert transitions.current("items") == ("r1", Phase.FENCE)
        assert transitions.target("items", "r1") == target
        with pytest.raises(TopologyError, match="rebalance r1 is in flight"):
            transitions.publish("items", "r2", Phase.DUAL, 2, target)
        transitions.log_writes("r1", "item", [(b"k1", b"s1"), (b"k2", b"")])
        assert transitions.written("r1", "item") == {b"k1": b"s1", b"k2": b""}
        transitions.release("items", "r1")
        transitions.forget_writes("r1")
        assert transitions.current("items") is None
        assert transitions.written("r1", "item") == {}
    finally:
        catalog.close()
