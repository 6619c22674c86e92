"""DirectoryRouter: pinned keys win over the fallback; moves name the pinned keys."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sharding import (
    DirectoryKeys,
    DirectoryRouter,
    HashRouter,
    KeyConstraint,
    RangeRouter,
    Router,
    TokenRange,
    encode_key,
    router_from_spec,
    token,
)
from tests.sharding.strategies import directory_routers, keys
from toolkit.errors import TopologyError

SHARDS = ["s0", "s1", "s2"]
FALLBACK = HashRouter.create(SHARDS)


def pinned(entries: dict[Any, str]) -> dict[bytes, str]:
    return {encode_key(key): shard for key, shard in entries.items()}


def test_pinned_keys_win_and_the_rest_fall_back() -> None:
    other = next(s for s in SHARDS if s != FALLBACK.shard_for("alice"))
    router = DirectoryRouter(pinned({"alice": other}), FALLBACK)
    assert router.shard_for("alice") == other
    assert router.shards_for_key("alice") == (other,)
    assert router.shard_for("bob") == FALLBACK.shard_for("bob")
    assert router.pinned("alice") == other
    assert router.pinned("bob") is None
    assert router.shards == tuple(SHARDS)
    assert isinstance(router, Router)
    assert router.kind == "directory"


def test_pins_are_typed() -> None:
    router = DirectoryRouter(pinned({1: "s2"}), HashRouter.create(["s0", "s1", "s2"]))
    assert router.shard_for(1) == "s2"
    for lookalike in ("1", b"1", True):
        assert router.pinned(lookalike) is None


@given(directory_routers(), keys)
def test_every_key_has_one_owner_and_pins_win(router: DirectoryRouter, key: object) -> None:
    expected = router.entries.get(encode_key(key)) or router.fallback.shard_for(key)
    assert router.shard_for(key) == expected
    assert router.shards_for_key(key) == (expected,)
    assert expected in router.shards


@given(directory_routers(), st.lists(keys, max_size=20))
def test_spec_round_trip_with_entries_is_deterministic(router: DirectoryRouter, sample: list[object]) -> None:
    spec = json.loads(json.dumps(router.to_spec()))
    assert "entries" not in spec
    rebuilt = router_from_spec(spec, directory_entries=dict(router.entries))
    assert rebuilt == router
    assert [rebuilt.shard_for(key) for key in sample] == [router.shard_for(key) for key in sample]


def test_with_entries_and_without_keys_return_new_routers() -> None:
    router = DirectoryRouter({}, FALLBACK)
    pinned_router = router.with_entries({"alice": "s2", 7: "s1"})
    assert router.entries == {}
    assert pinned_router.shard_for("alice") == "s2"
    assert pinned_router.shard_for(7) == "s1"
    unpinned = pinned_router.without_keys(["alice", "never-pinned"])
    assert unpinned.pinned("alice") is None
    assert unpinned.pinned(7) == "s1"
    assert pinned_router.pinned("alice") == "s2"
    with pytest.raises(TypeError):
        pinned_router.entries[b"x"] = "s0"  # type: ignore[index]


def test_entries_naming_an_unknown_shard_name_the_key() -> None:
    with pytest.raises(TopologyError, match=r"entries\['alice'\]: unknown shard 's9' \(shards: s0, s1, s2\)"):
        DirectoryRouter(pinned({"alice": "s9"}), FALLBACK)
    with pytest.raises(TopologyError, match="unknown shard 's9'"):
        DirectoryRouter({}, FALLBACK).with_entries({"alice": "s9"})


def test_fallback_must_stay_within_the_shards() -> None:
    with pytest.raises(TopologyError, match="fallback: routes to shard 's2'"):
        DirectoryRouter({}, FALLBACK, shards=["s0", "s1"])
    wider = DirectoryRouter(pinned({"x": "s3"}), FALLBACK, shards=[*SHARDS, "s3"])
    assert wider.shard_for("x") == "s3"
    assert wider.shards == (*SHARDS, "s3")


def test_shards_for_query() -> None:
    router = DirectoryRouter(
        pinned({"alice": "s2"}), RangeRouter([{"shard": "s0", "upto": "m"}, {"shard": "s1"}]), SHARDS
    )
    assert router.shards_for_query(None) == tuple(SHARDS)
    assert router.shards_for_query(KeyConstraint(lower="a", upper="b")) == tuple(SHARDS)
    assert router.shards_for_query(KeyConstraint(values=("alice", "bob"))) == ("s0", "s2")
    assert router.shards_for_query(KeyConstraint(values=("zed",))) == ("s1",)


def test_moves_name_pinned_keys_and_include_fallback_moves() -> None:
    sample = [f"user:{i}" for i in range(3000)]
    before = DirectoryRouter(pinned({"user:1": "s0", "user:2": "s1", "user:3": "s2"}), FALLBACK, [*SHARDS, "s3"])
    grown = FALLBACK.rebalanced([*SHARDS, "s3"])
    after = (
        before.with_fallback(grown)
        .with_entries({"user:1": "s3", "user:4": "s3"})  # re-pin one, pin a new one
        .without_keys(["user:2"])  # unpin one
    )
    moves = before.moves_to(after)
    key_moves = [m for m in moves if isinstance(m.span, DirectoryKeys)]
    range_moves = [m for m in moves if isinstance(m.span, TokenRange)]
    assert range_moves == FALLBACK.moves_to(grown)
    explicit = {key for m in key_moves for key in m.span.keys}  # type: ignore[union-attr]
    pinned_anywhere = {"user:1", "user:2", "user:3", "user:4"}
    for key in sample:
        source, target = before.shard_for(key), after.shard_for(key)
        if key in pinned_anywhere:
            # pinned keys move only through DirectoryKeys (fallback spans skip them)
            hits = [m for m in key_moves if key in m.span.keys]  # type: ignore[union-attr]
            assert [(m.source, m.target) for m in hits] == ([(source, target)] if source != target else [])
        else:
            assert key not in explicit
            hits = [m for m in range_moves if token(key) in m.span]
            assert [(m.source, m.target) for m in hits] == ([(source, target)] if source != target else [])


def test_moves_group_keys_per_source_and_target() -> None:
    before = DirectoryRouter({}, FALLBACK)
    after = before.with_entries({f"k{i}": "s0" for i in range(50)})
    moves = before.moves_to(after)
    assert {m.target for m in moves} == {"s0"}
    assert len(moves) == len({m.source for m in moves}) <= 2
    assert sum(len(m.span.keys) for m in moves) == sum(  # type: ignore[union-attr]
        1 for i in range(50) if FALLBACK.shard_for(f"k{i}") != "s0"
    )
    assert before.moves_to(before) == []


def test_moves_to_another_router_kind_is_a_topology_error() -> None:
    with pytest.raises(TopologyError, match="hash router"):
        DirectoryRouter({}, FALLBACK).moves_to(FALLBACK)


def test_spec_shape_and_bad_specs() -> None:
    router = DirectoryRouter(pinned({"a": "s1"}), FALLBACK)
    assert router.to_spec() == {"type": "directory", "shards": SHARDS, "fallback": FALLBACK.to_spec()}
    assert DirectoryRouter.from_spec(router.to_spec()).entries == {}
    with pytest.raises(TopologyError, match=r"^fallback: expected a router spec"):
        DirectoryRouter.from_spec({"type": "directory", "shards": SHARDS})
    with pytest.raises(TopologyError, match=r"^fallback\.type: expected one of"):
        DirectoryRouter.from_spec({"type": "directory", "fallback": {"type": "ring"}})
    with pytest.raises(TopologyError, match=r"^type: expected 'directory'"):
        DirectoryRouter.from_spec({"type": "hash"})
