"""HashRouter: slot table, balance, minimal-movement rebalancing, moves and specs."""

from __future__ import annotations

import json
import random
from collections import Counter
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharding import MAX_TOKEN, MIN_TOKEN, HashRouter, KeyConstraint, Router, TokenRange, router_from_spec, token
from sharding.base import Move
from tests.sharding.moves import assert_one_move_iff_owner_changes
from tests.sharding.strategies import hash_routers, keys, shard_names, slot_counts, weight_maps
from toolkit.errors import RoutingError, TopologyError

TEN = [f"s{i}" for i in range(10)]
SAMPLE = [f"user:{i}" for i in range(20_000)]


def runs(router: HashRouter) -> list[tuple[int, str]]:
    return [(first, shard) for first, shard in router.to_spec()["table"]]


def test_create_gives_each_shard_one_contiguous_balanced_block() -> None:
    router = HashRouter.create(TEN)
    assert [shard for _, shard in runs(router)] == TEN
    counts = router.slot_counts()
    assert sum(counts.values()) == 16384
    assert max(counts.values()) - min(counts.values()) <= 1


def test_weights_use_largest_remainder() -> None:
    router = HashRouter.create({"a": 1, "b": 2, "c": 3, "d": 4})
    # quotas 1638.4, 3276.8, 4915.2, 6553.6: the two spare slots go to b (.8) and d (.6)
    assert router.slot_counts() == {"a": 1638, "b": 3277, "c": 4915, "d": 6554}


def test_a_tiny_weight_still_owns_a_slot() -> None:
    router = HashRouter.create({"a": 1, "b": 100_000}, slots=16)
    assert router.slot_counts() == {"a": 1, "b": 15}


@given(weight_maps(), slot_counts)
def test_slot_counts_are_proportional_within_one_slot(weights: dict[str, float], slots: int) -> None:
    if slots < len(weights):
        with pytest.raises(TopologyError, match="slots"):
            HashRouter.create(weights, slots=slots)
        return
    counts = HashRouter.create(weights, slots=slots).slot_counts()
    total = sum(weights.values())
    assert sum(counts.values()) == slots
    assert min(counts.values()) >= 1
    quotas = {name: slots * weight / total for name, weight in weights.items()}
    if min(quotas.values()) >= 1:  # else the one-slot minimum shifts a few slots
        assert all(abs(counts[name] - quota) < 1 + 1e-9 for name, quota in quotas.items())


@given(hash_routers(), keys)
def test_shard_for_agrees_with_token_slot_and_table(router: HashRouter, key: object) -> None:
    tok = token(key)
    slot = router.slot_for_token(tok)
    assert router.token_for(key) == tok
    assert tok in router.token_range_of_slot(slot)
    assert router.shard_for(key) == router.table[slot] == router.shard_for_token(tok)
    assert router.shards_for_key(key) == (router.shard_for(key),)
    assert router.shard_for(key) in router.shards


@pytest.mark.parametrize("key", ["x" * 1023, "x" * 1024, "é" * 600, "", "\x00"])
def test_string_fast_path_matches_the_generic_encoding(key: str) -> None:
    router = HashRouter.create(TEN)
    assert router.shard_for(key) == router.table[router.slot_for_token(token(key))]


def test_keys_are_typed() -> None:
    router = HashRouter.create(TEN)
    slots = {router.slot_for_token(token(key)) for key in (1, "1", b"1", True)}
    assert len(slots) == 4  # not a guarantee in general, but true for these tokens


@given(slot_counts)
def test_slot_token_ranges_tile_the_token_space(slots: int) -> None:
    router = HashRouter.create(["a"], slots=slots)
    ranges = [router.token_range_of_slot(slot) for slot in range(slots)]
    assert ranges[0].start == MIN_TOKEN
    assert ranges[-1].end == MAX_TOKEN + 1
    assert all(left.end == right.start for left, right in pairwise(ranges))
    assert router.slot_for_token(MIN_TOKEN) == 0
    assert router.slot_for_token(MAX_TOKEN) == slots - 1


def test_out_of_range_tokens_and_slots_are_named() -> None:
    router = HashRouter.create(TEN)
    with pytest.raises(RoutingError, match=str(MAX_TOKEN + 1)):
        router.slot_for_token(MAX_TOKEN + 1)
    with pytest.raises(RoutingError, match="slot 16384"):
        router.token_range_of_slot(16384)


@given(hash_routers())
def test_owned_ranges_partition_the_token_space(router: HashRouter) -> None:
    pieces = sorted((r, shard) for shard in router.shards for r in router.owned_ranges(shard))
    assert pieces[0][0].start == MIN_TOKEN
    assert pieces[-1][0].end == MAX_TOKEN + 1
    for (left, _), (right, _) in pairwise(pieces):
        assert left.end == right.start
    for shard in router.shards:  # merged: no two of one shard's ranges touch
        owned = router.owned_ranges(shard)
        assert all(a.end < b.start for a, b in pairwise(owned))


def test_owned_ranges_of_an_unknown_shard_is_an_error() -> None:
    with pytest.raises(TopologyError, match="'s99'"):
        HashRouter.create(TEN).owned_ranges("s99")


def test_shards_for_query_narrows_only_on_values() -> None:
    router = HashRouter.create(TEN)
    assert router.shards_for_query(None) == router.shards
    assert router.shards_for_query(KeyConstraint(lower=1, upper=5)) == router.shards
    assert router.shards_for_query(KeyConstraint(values=("a",))) == (router.shard_for("a"),)
    assert router.shards_for_query(KeyConstraint(values=())) == ()
    many = router.shards_for_query(KeyConstraint(values=tuple(SAMPLE[:50])))
    assert set(many) == {router.shard_for(key) for key in SAMPLE[:50]}


def test_adding_an_eleventh_shard_moves_only_onto_it() -> None:
    before = HashRouter.create(TEN)
    after = before.rebalanced([*TEN, "s10"])
    counts = after.slot_counts()
    assert max(counts.values()) - min(counts.values()) <= 1
    moved = [key for key in SAMPLE if before.shard_for(key) != after.shard_for(key)]
    assert all(after.shard_for(key) == "s10" for key in moved)
    assert abs(len(moved) / len(SAMPLE) - 1 / 11) < 0.01
    moves = before.moves_to(after)
    assert len(moves) == 10  # one tail per old shard
    assert {move.target for move in moves} == {"s10"}
    assert sum(move.share for move in moves) == counts["s10"] / 16384


def test_removing_a_shard_moves_only_its_slots() -> None:
    before = HashRouter.create(TEN)
    after = before.rebalanced(TEN[:-1])
    assert "s9" not in after.shards
    for old, new in zip(before.table, after.table, strict=True):
        assert old == new or old == "s9"


@settings(max_examples=60)
@given(st.data())
def test_rebalanced_moves_the_fewest_slots_and_only_to_gainers(data: st.DataObject) -> None:
    before = data.draw(hash_routers())
    weights = data.draw(weight_maps(data.draw(shard_names)))
    if before.slots < len(weights):
        return
    after = before.rebalanced(weights)
    assert after == before.rebalanced(weights)  # deterministic
    old, new = before.slot_counts(), after.slot_counts()
    gainers = {name for name in after.shards if new[name] > old.get(name, 0)}
    moved = [(a, b) for a, b in zip(before.table, after.table, strict=True) if a != b]
    assert all(target in gainers for _, target in moved)
    assert len(moved) == sum(max(0, new[name] - old.get(name, 0)) for name in after.shards)
    assert new == HashRouter.create(weights, slots=before.slots).slot_counts()


@settings(max_examples=60)
@given(st.data())
def test_moves_cover_exactly_the_keys_that_change_owner(data: st.DataObject) -> None:
    before = data.draw(hash_routers())
    after = data.draw(st.one_of(hash_routers(), st.just(before.rebalanced([*before.shards, "new"]))))
    moves = before.moves_to(after)
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    for key in rng.sample(SAMPLE, 300):
        assert_one_move_iff_owner_changes(before, after, moves, key, token(key))
    check_moves_are_grouped(moves)
    assert sum(move.share for move in moves) == pytest.approx(
        sum(move.span.fraction() for move in moves if isinstance(move.span, TokenRange))
    )


def check_moves_are_grouped(moves: list[Move]) -> None:
    spans = [move.span for move in moves]
    assert all(isinstance(span, TokenRange) and span.start < span.end for span in spans)
    for left, right in pairwise(moves):
        assert left.span.end <= right.span.start  # type: ignore[union-attr]
        if left.span.end == right.span.start:  # type: ignore[union-attr]
            assert (left.source, left.target) != (right.source, right.target)


def test_moves_between_different_slot_counts() -> None:
    coarse = HashRouter.create(["a", "b"], slots=16)
    fine = HashRouter.create(["a", "b", "c"], slots=1024)
    moves = coarse.moves_to(fine)
    for key in SAMPLE[:2000]:
        changed = coarse.shard_for(key) != fine.shard_for(key)
        assert changed == any(token(key) in move.span for move in moves)
    assert coarse.moves_to(coarse) == []


def test_moves_to_another_router_kind_is_a_topology_error() -> None:
    from sharding import RangeRouter

    with pytest.raises(TopologyError, match="range router"):
        HashRouter.create(TEN).moves_to(RangeRouter([{"shard": "s0"}]))


@given(hash_routers(), st.lists(keys, max_size=20))
def test_spec_round_trip_is_deterministic(router: HashRouter, sample: list[object]) -> None:
    spec = json.loads(json.dumps(router.to_spec()))
    rebuilt = router_from_spec(spec)
    assert isinstance(rebuilt, HashRouter)
    assert rebuilt == router
    assert rebuilt.to_spec() == router.to_spec()
    assert [rebuilt.shard_for(key) for key in sample] == [router.shard_for(key) for key in sample]


def test_spec_shape() -> None:
    spec = HashRouter.create({"a": 1, "b": 3}, slots=8).to_spec()
    assert spec == {"type": "hash", "slots": 8, "weights": {"a": 1, "b": 3}, "table": [[0, "a"], [2, "b"]]}


def test_router_protocol() -> None:
    router = HashRouter.create(TEN)
    assert isinstance(router, Router)
    assert router.kind == "hash"
    assert Counter(router.shard_for(key) for key in SAMPLE).keys() == set(TEN)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"type": "range"}, "type"),
        ({"type": "hash", "slots": 10, "weights": {"a": 1}, "table": [[0, "a"]]}, "slots"),
        ({"type": "hash", "slots": 8, "weights": [1], "table": [[0, "a"]]}, "weights"),
        ({"type": "hash", "slots": 8, "weights": {"a": 1}, "table": []}, "table"),
        ({"type": "hash", "slots": 8, "weights": {"a": 1}, "table": [[1, "a"]]}, "table[0]"),
        ({"type": "hash", "slots": 8, "weights": {"a": 1}, "table": [[0, "a"], [0, "a"]]}, "table[1]"),
        ({"type": "hash", "slots": 8, "weights": {"a": 1}, "table": [[0, "a"], [8, "a"]]}, "table[1]"),
        ({"type": "hash", "slots": 8, "weights": {"a": 1}, "table": [[0, 7]]}, "table[0]"),
        ({"type": "hash", "slots": 8, "weights": {"a": 1}, "table": [[0, "a", 1]]}, "table[0]"),
        ({"type": "hash", "slots": 8, "weights": {"a": 1}, "table": [[0, "a"], [4, "b"]]}, "'b'"),
        ({"type": "hash", "slots": 8, "weights": {"a": 0}, "table": [[0, "a"]]}, "weights.a"),
    ],
)
def test_bad_specs_name_the_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(TopologyError) as info:
        HashRouter.from_spec(spec)
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("weights", "slots", "field"),
    [
        ({"a": -1}, 16, "weights.a"),
        ({"a": 0}, 16, "weights.a"),
        ({"a": True}, 16, "weights.a"),
        ({"a": float("nan")}, 16, "weights.a"),
        ({"a": "1"}, 16, "weights.a"),
        (["a", "a"], 16, "weights.a"),
        ([], 16, "weights"),
        ("ab", 16, "weights"),
        (["a"], 1000, "slots"),
        (["a"], 0, "slots"),
        (["a"], 2**30, "slots"),
        (["a", "b", "c"], 2, "slots"),
    ],
)
def test_bad_create_arguments_name_the_field(weights: object, slots: int, field: str) -> None:
    with pytest.raises(TopologyError) as info:
        HashRouter.create(weights, slots=slots)  # type: ignore[arg-type]
    assert str(info.value).startswith(field)
