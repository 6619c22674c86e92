"""router_from_config / router_from_spec, the package surface, and router-wide properties."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sharding
from sharding import (
    DirectoryRouter,
    HashRouter,
    RangeRouter,
    Router,
    encode_key,
    router_from_config,
    router_from_spec,
)
from tests.sharding.strategies import directory_routers, hash_routers, int_keys, int_range_routers
from toolkit.errors import TopologyError

SHARDS = ["s0", "s1"]
REPO = Path(__file__).resolve().parents[2]


def test_hash_defaults_to_equal_weights_and_16384_slots() -> None:
    router = router_from_config("hash", SHARDS, {})
    assert isinstance(router, HashRouter)
    assert router.slots == 16384
    assert router.slot_counts() == {"s0": 8192, "s1": 8192}


def test_hash_options() -> None:
    router = router_from_config("hash", ["a", "b", "c"], {"slots": 64, "weights": {"c": 2}})
    assert isinstance(router, HashRouter)
    assert router.slot_counts() == {"a": 16, "b": 16, "c": 32}


def test_range_options() -> None:
    router = router_from_config(
        "range", SHARDS, {"ranges": [{"shard": "s0", "upto": dt.date(2025, 1, 1)}, {"shard": "s1"}]}
    )
    assert isinstance(router, RangeRouter)
    assert router.shard_for(dt.date(2024, 12, 31)) == "s0"
    assert router.shard_for(dt.date(2025, 1, 1)) == "s1"
    bounded = router_from_config(
        "range", SHARDS, {"ranges": [{"shard": "s0", "upto": 10}, {"shard": "s1", "upto": 20}], "bounded": True}
    )
    assert isinstance(bounded, RangeRouter)
    assert bounded.bounded


def test_directory_defaults_to_a_hash_fallback_over_every_shard() -> None:
    router = router_from_config("directory", SHARDS, {"entries": {"alice": "s1"}})
    assert isinstance(router, DirectoryRouter)
    assert router.fallback == HashRouter.create(SHARDS)
    assert router.shard_for("alice") == "s1"


def test_directory_entries_may_be_typed() -> None:
    router = router_from_config(
        "directory",
        SHARDS,
        {
            "entries": [{"key": 42, "shard": "s1"}, {"key": [2024, "eu"], "shard": "s0"}],
            "fallback": {"type": "range", "ranges": [{"shard": "s0", "upto": 0}, {"shard": "s1"}]},
        },
    )
    assert isinstance(router, DirectoryRouter)
    assert router.entries == {encode_key(42): "s1", encode_key((2024, "eu")): "s0"}
    assert isinstance(router.fallback, RangeRouter)
    assert router.shard_for(-5) == "s0"


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("hash", {"weights": {"s9": 1}}, "router.weights.s9: unknown shard 's9' (shards: s0, s1)"),
        ("hash", {"weights": {"s0": 0}}, "router.weights.s0: weight must be a positive number, not 0"),
        ("hash", {"weights": {"s0": "heavy"}}, "router.weights.s0: weight must be a positive number"),
        ("hash", {"weights": [1, 2]}, "router.weights: expected a table of shard = weight"),
        ("hash", {"slots": 1000}, "router.slots: must be a power of two"),
        ("hash", {"slots": 1}, "router.slots: 1 slots cannot be shared by 2 shards"),
        ("hash", {"slotz": 8}, "router.slotz: unknown option for a hash router (expected: slots, weights)"),
        ("ring", {}, "router.type: expected one of hash, range, directory, not 'ring'"),
        ("range", {}, "router.ranges: expected a non-empty list"),
        ("range", {"ranges": [{"shard": "s7"}]}, "router.ranges[0].shard: unknown shard 's7' (shards: s0, s1)"),
        ("range", {"ranges": [{"shard": "s0", "upto": 3}]}, "router.ranges[0].upto: the last range must be"),
        ("range", {"ranges": [{"shard": "s0"}], "bounded": 1}, "router.bounded: expected true or false"),
        ("range", {"weights": {}}, "router.weights: unknown option for a range router"),
        ("directory", {"entries": {"alice": "s7"}}, "router.entries.alice: unknown shard 's7' (shards: s0, s1)"),
        ("directory", {"entries": [{"key": 1}]}, "router.entries[0]: expected {key = ..., shard = ...}"),
        (
            "directory",
            {"entries": [{"key": 1, "shard": "s0"}, {"key": 1, "shard": "s1"}]},
            "router.entries[1]: key 1 is pinned twice",
        ),
        ("directory", {"entries": [{"key": None, "shard": "s0"}]}, "router.entries[0]: None is not a key"),
        ("directory", {"entries": "alice"}, "router.entries: expected a table"),
        ("directory", {"fallback": "hash"}, "router.fallback: expected a router table"),
        ("directory", {"fallback": {"type": "ring"}}, "router.fallback.type: expected one of"),
        ("directory", {"fallback": {"weights": {"s5": 1}}}, "router.fallback.weights.s5: unknown shard 's5'"),
        (
            "directory",
            {"fallback": {"type": "range", "ranges": [{"shard": "s0", "upto": "m"}, {"shard": "s0", "upto": "a"}]}},
            "router.fallback.ranges[1].upto:",
        ),
    ],
)
def test_config_errors_name_the_option(kind: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(TopologyError) as info:
        router_from_config(kind, SHARDS, options)
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize(
    ("shards", "message"),
    [([], "router: a store needs at least one shard"), (["a", "a"], "router: shard names must be unique")],
)
def test_config_shard_list_errors(shards: list[str], message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        router_from_config("hash", shards, {})


def test_spec_dispatch_errors() -> None:
    with pytest.raises(TopologyError, match=r"^type: expected one of hash, range, directory, not 'ring'"):
        router_from_spec({"type": "ring"})
    with pytest.raises(TopologyError, match=r"^spec: expected a router spec"):
        router_from_spec([])  # type: ignore[arg-type]


def test_package_exports() -> None:
    expected = {
        "Router", "ShardId", "KeyConstraint", "TokenRange", "KeyRange", "DirectoryKeys", "Move",
        "HashRouter", "RangeRouter", "DirectoryRouter", "encode_key", "decode_key", "token",
        "MIN_TOKEN", "MAX_TOKEN", "router_from_spec", "router_from_config",
    }  # fmt: skip
    assert set(sharding.__all__) == expected
    for name in expected:
        assert getattr(sharding, name) is not None
    with pytest.raises(AttributeError):
        sharding.NoSuchRouter  # noqa: B018


@pytest.mark.parametrize(
    "statement",
    [
        "import sharding; sharding.HashRouter",
        "from sharding import HashRouter, router_from_config",
        "import sharding.keys",
        "import sharding.hashring",
        "import toolkit.errors; import sharding; sharding.DirectoryRouter",
    ],
)
def test_importable_in_any_order(statement: str) -> None:
    """sharding and toolkit import each other's modules; a fresh interpreter must cope."""
    subprocess.run([sys.executable, "-c", statement], cwd=REPO, check=True, capture_output=True)


routers = st.one_of(hash_routers(), int_range_routers(bounded=False), directory_routers())


@given(routers, st.lists(int_keys | st.text(max_size=8), max_size=20))
def test_every_router_is_total_deterministic_and_single_owner(router: Router, sample: list[Any]) -> None:
    if isinstance(router, RangeRouter):
        sample = [key for key in sample if isinstance(key, int)]
    entries = dict(router.entries) if isinstance(router, DirectoryRouter) else None
    rebuilt = router_from_spec(json.loads(json.dumps(router.to_spec())), directory_entries=entries)
    for key in sample:
        owner = router.shard_for(key)
        assert owner in router.shards
        assert router.shards_for_key(key) == (owner,)
        assert rebuilt.shard_for(key) == owner
