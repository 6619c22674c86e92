"""Capability contract: NESTED_FILTERS and PARTIAL_UPDATE, on every backend that declares them.

The reference is ``Filter.matches`` / ``resolve_path`` (adapters/base.py): a dotted path
steps through JSON objects only (a list or a scalar on the way gives None), ``eq None``
matches a missing value, ``ne`` keeps nulls, ordering never matches null, and
``contains`` asks whether a JSON array holds the value. Datasets avoid comparisons that
raise TypeError in Python (e.g. a string against a number), which the contract leaves open.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from adapters.base import Capability
from tests.contract.conftest import Backend
from tests.contract.reference import assert_matches_reference
from toolkit import Entity


class Profile(Entity, store="items", key="id"):
    id: str
    name: str | None = None
    rank: int | None = None
    info: dict[str, Any] | None = None
    tags: list[str] = []
    scores: list[Any] = []


_INFOS: list[dict[str, Any] | None] = [
    None,
    {},
    {"city": "Oslo", "zip": 123, "geo": {"lat": 1.5, "tags": ["x", "y"]}},
    {"city": "Bergen", "zip": 456.5, "geo": {"tags": ["y"], "lat": 1.5}},
    {"city": "Oslo", "zip": None, "geo": {"lat": -3}},
    {"city": None, "zip": 999},
    {"city": "Ålesund", "geo": [{"lat": 1.5}]},
    {"city": "bergen", "geo": "flat", "zone": "a"},
    {"zone": ["a"], "zip": 0},
    {"geo": None, "zone": ["b", "a"]},
    {"geo": {"lat": None, "tags": []}, "zip": 123.0},
    {"$gt": 1, "a.b": {"$ne": None}, "": "empty", "%": "percent", "%25": "escaped"},
]
_SCORES: list[list[Any]] = [[], [1, 2], [3, None], [[1, 2], 3], [[1], 2], ["1", 2.5], [{"k": 1}]]


def _profiles(count: int, seed: int) -> list[Profile]:
    rng = random.Random(seed)
    return [
        Profile(
            id=f"p{index:03d}",
            name=rng.choice(["ann", "bob", None]),
            rank=rng.choice([None, 1, 2, 3]),
            info=rng.choice(_INFOS),
            tags=rng.choice([[], ["x"], ["y", "x"], ["z"]]),
            scores=rng.choice(_SCORES),
        )
        for index in range(count)
    ]


NESTED_QUERIES: list[tuple[dict[str, Any], list[str], int | None]] = [
    ({"info.city": "Oslo"}, [], None),
    ({"info.city": {"ne": "Oslo"}}, [], None),
    ({"info.city": None}, [], None),
    ({"info.city": {"ne": None}}, ["-rank"], None),
    ({"info.city": {"in": ["Oslo", "bergen", None]}}, [], None),
    ({"info.city": {"gt": "Bergen"}}, ["name"], 12),
    ({"info.city": {"le": "Oslo"}}, [], None),
    ({"info.zip": 123}, [], None),
    ({"info.zip": {"lt": 400}}, [], None),
    ({"info.zip": {"ge": 123, "lt": 999}}, ["-rank", "name"], None),
    ({"info.zip": {"ne": 123}}, [], None),
    ({"info.zip": {"in": [0, 999]}}, [], None),
    ({"info.geo.lat": 1.5}, [], None),
    ({"info.geo.lat": None}, [], None),
    ({"info.geo.lat": {"gt": 0}}, [], None),
    ({"info.geo.lat": {"ne": 1.5}}, [], None),
    ({"info.geo.tags": {"contains": "y"}}, [], None),
    ({"info.zone": "a"}, [], None),
    ({"info.zone": {"contains": "a"}}, [], None),
    ({"info.zone": {"ne": "a"}}, [], None),
    ({"info.$gt": 1}, [], None),
    ({"info.%": "percent", "info.%25": "escaped"}, [], None),
    ({"info.": "empty"}, [], None),
    ({"info.a": None}, [], None),
    ({"tags": {"contains": "x"}}, ["rank"], 9),
    ({"tags": {"contains": "x"}, "info.city": {"ne": "Oslo"}, "rank": {"ge": 2}}, [], None),
    ({"scores": {"contains": 2}}, [], None),
    ({"scores": {"contains": None}}, [], None),
    ({"scores": {"contains": "1"}}, [], None),
    ({"scores": {"contains": [1, 2]}}, [], None),
    ({"scores": {"contains": {"k": 1}}}, [], None),
    ({"info.geo": {"eq": {"lat": 1.5, "tags": ["x", "y"]}}}, [], None),
    ({"info.geo": {"eq": {"tags": ["y"], "lat": 1.5}}}, ["-name"], 3),
    ({"info.zone": {"eq": ["b", "a"]}}, [], None),
    ({"info.zone": {"in": [["a"], "a"]}}, [], None),
]


@pytest.mark.capability(Capability.NESTED_FILTERS)
@pytest.mark.parametrize(("where", "order", "limit"), NESTED_QUERIES)
def test_nested_filters_match_the_reference_semantics(
    backend: Backend, where: dict[str, Any], order: list[str], limit: int | None
) -> None:
    assert_matches_reference(backend, _profiles(120, seed=11), where, order, limit)


@pytest.mark.capability(Capability.NESTED_FILTERS)
def test_nested_data_spreads_over_shards_and_round_trips(backend: Backend) -> None:
    profiles = backend.toolkit().repository(Profile)
    data = _profiles(60, seed=3)
    profiles.put_many(data)
    assert all(count > 0 for count in profiles.count_by_shard().values())
    found = profiles.get_many([p.id for p in data])
    assert found == {p.id: p for p in data}


@pytest.mark.capability(Capability.NESTED_FILTERS)
def test_operator_and_dotted_keys_inside_json_round_trip(backend: Backend) -> None:
    profiles = backend.toolkit().repository(Profile)
    info = {
        "$where": "sleep(1)",
        "$": {"$in": [".", "$"]},
        "a.b": {"c.d": {"": None}},
        "": [{"$gt": ""}, [["deep"]], []],
        "%": 1,
        "%25": 2,
        "%2E": 3,
        ".": 4,
        "%[": [5],
        "\\": "backslash",
        "{k}": "braces",
    }
    profiles.put(Profile(id="$where", info=info, scores=[[], [[1, "a"]], {"%[": [2]}]))
    got = profiles.get("$where")
    assert got is not None
    assert got.info == info
    assert got.scores == [[], [[1, "a"]], {"%[": [2]}]
    assert [p.id for p in profiles.find({"info.$where": "sleep(1)"})] == ["$where"]
    assert [p.id for p in profiles.find({"info.%2E": 3, "info.%": 1})] == ["$where"]
    assert profiles.find({"info.%2E": 4}) == []


@pytest.mark.capability(Capability.PARTIAL_UPDATE)
def test_partial_update_of_top_level_fields_and_nested_paths(backend: Backend) -> None:
    profiles = backend.toolkit().repository(Profile)
    before = [
        Profile(id=f"u{index}", name="n", rank=1, info={"city": "Oslo", "geo": {"lat": 1}}, tags=["a"])
        for index in range(12)
    ]
    profiles.put_many(before)
    for index in range(12):
        key = f"u{index}"
        assert profiles.update(key, {"rank": 5}) is True
        assert profiles.update(key, {"info.city": "Bergen"}) is True
        assert profiles.update(key, {"info.geo.lat": 2, "name": "m"}) is True
        assert profiles.update(key, {"info.new.deep": "x", "info.$set": {"a.b": 1}}) is True
        got = profiles.get(key)
        assert got == Profile(
            id=key,
            name="m",
            rank=5,
            info={"city": "Bergen", "geo": {"lat": 2}, "new": {"deep": "x"}, "$set": {"a.b": 1}},
            tags=["a"],
        )


@pytest.mark.capability(Capability.PARTIAL_UPDATE)
def test_partial_update_creates_objects_and_ignores_missing_rows(backend: Backend) -> None:
    profiles = backend.toolkit().repository(Profile)
    profiles.put(Profile(id="empty", name="keep", info=None, tags=["t"]))
    assert profiles.update("empty", {"info.city": "X", "info.geo.lat": 1}) is True
    assert profiles.get("empty") == Profile(id="empty", name="keep", info={"city": "X", "geo": {"lat": 1}}, tags=["t"])
    assert profiles.update("empty", {"info": None, "tags": []}) is True
    assert profiles.get("empty") == Profile(id="empty", name="keep")
    assert profiles.update("nobody", {"rank": 1}) is False
    assert profiles.update("nobody", {"info.city": "X"}) is False
    assert profiles.get("nobody") is None
    assert profiles.count() == 1


@pytest.mark.capability(Capability.PARTIAL_UPDATE)
@pytest.mark.capability(Capability.NESTED_FILTERS)
def test_updated_paths_are_found_by_nested_filters(backend: Backend) -> None:
    profiles = backend.toolkit(shards=3).repository(Profile)
    profiles.put_many(Profile(id=f"f{index}", info={"n": index}) for index in range(30))
    for index in range(0, 30, 3):
        assert profiles.update(f"f{index}", {"info.n": -index, "info.hit": True}) is True
    assert profiles.count({"info.hit": True}) == 10
    assert [p.id for p in profiles.find({"info.n": {"lt": 0}}, order_by=["id"])] == sorted(
        f"f{index}" for index in range(3, 30, 3)
    )
    assert profiles.count({"info.n": {"ge": 0}}) == 21  # f0 is 0 and still counts


@pytest.mark.capability(Capability.PARTIAL_UPDATE)
def test_concurrent_updates_of_different_paths_are_all_kept(backend: Backend) -> None:
    from concurrent.futures import ThreadPoolExecutor

    profiles = backend.toolkit().repository(Profile)
    profiles.put(Profile(id="busy", info={"seed": True}))
    writers = 8

    def work(worker: int) -> None:
        for step in range(6):
            assert profiles.update("busy", {f"info.w{worker}": step}) is True

    with ThreadPoolExecutor(max_workers=writers) as pool:
        list(pool.map(work, range(writers)))
    got = profiles.get("busy")
    assert got is not None
    assert got.info == {"seed": True, **{f"w{worker}": 5 for worker in range(writers)}}
