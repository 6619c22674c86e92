"""RangeRouter: inclusive-lower/exclusive-upper ranges over typed split points."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from bisect import bisect_right
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharding import KeyConstraint, KeyRange, RangeRouter, Router, encode_key, router_from_spec
from tests.safety.strategies import key_decimals
from tests.sharding.moves import assert_one_move_iff_owner_changes
from tests.sharding.strategies import int_keys, int_range_routers
from toolkit.errors import InvalidKeyError, RoutingError, TopologyError

THREE = [{"shard": "s0", "upto": 100}, {"shard": "s1", "upto": 500}, {"shard": "s2"}]


def naive_owner(router: RangeRouter, key: Any) -> str | None:
    """The owner by scanning ranges, the obviously-correct way."""
    for key_range, owner in router.ranges():
        if key in key_range:
            return owner
    return None


def test_split_point_belongs_to_the_upper_range() -> None:
    router = RangeRouter(THREE)
    assert router.shard_for(-(10**40)) == "s0"
    assert router.shard_for(99) == "s0"
    assert router.shard_for(100) == "s1"
    assert router.shard_for(499) == "s1"
    assert router.shard_for(500) == "s2"
    assert router.shard_for(10**40) == "s2"
    assert router.shards_for_key(100) == ("s1",)
    assert isinstance(router, Router)
    assert router.kind == "range"


@given(int_range_routers(), int_keys)
def test_every_key_has_exactly_the_owner_of_its_range(router: RangeRouter, key: int) -> None:
    owner = naive_owner(router, key)
    if owner is None:
        assert router.bounded
        with pytest.raises(RoutingError, match=f"no shard owns key {key}"):
            router.shard_for(key)
    else:
        assert router.shard_for(key) == owner
        assert router.shards_for_key(key) == (owner,)
        assert owner in router.shards
    for split in router.split_points:
        above = naive_owner(router, split)
        if above is not None:
            assert router.shard_for(split) == above


def test_same_shard_may_own_several_ranges() -> None:
    router = RangeRouter([{"shard": "a", "upto": 10}, {"shard": "b", "upto": 20}, {"shard": "a"}])
    assert [router.shard_for(k) for k in (5, 15, 25)] == ["a", "b", "a"]
    assert router.shards == ("a", "b")


def test_a_shard_without_ranges_is_allowed_when_listed() -> None:
    router = RangeRouter([{"shard": "a"}], shards=["a", "b"])
    assert router.shards == ("a", "b")
    assert router.shard_for("anything") == "a"


def test_bounded_router_rejects_keys_past_the_last_upto() -> None:
    router = RangeRouter([{"shard": "a", "upto": 10}, {"shard": "b", "upto": 20}], bounded=True)
    assert router.shard_for(19) == "b"
    with pytest.raises(RoutingError, match="no shard owns key 20"):
        router.shard_for(20)
    assert router.shards_for_query(KeyConstraint(values=(25,))) == ()
    assert router.shards_for_query(KeyConstraint(lower=15)) == ("b",)


@pytest.mark.parametrize(
    ("splits", "inside", "outside"),
    [
        (["g", "p"], "hello", b"hello"),
        ([dt.date(2024, 1, 1), dt.date(2025, 1, 1)], dt.date(2024, 6, 1), dt.datetime(2024, 6, 1)),
        (
            [dt.datetime(2024, 1, 1), dt.datetime(2025, 1, 1)],
            dt.datetime(2024, 6, 1, 12),
            dt.datetime(2024, 6, 1, tzinfo=dt.UTC),
        ),
        (
            [dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 1, 1, tzinfo=dt.UTC)],
            dt.datetime(2024, 6, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            dt.date(2024, 6, 1),
        ),
        ([decimal.Decimal("1.5"), 3], decimal.Decimal("2.25"), "2"),
        ([(2024,), (2025, "m")], (2024, "x", 3), (2024.5,)),
        ([uuid.UUID(int=2**120), uuid.UUID(int=2**126)], uuid.UUID(int=2**121), 5),
        ([b"g", b"p"], b"k", "k"),
    ],
)
def test_typed_split_points(splits: list[Any], inside: Any, outside: Any) -> None:
    ranges = [{"shard": "a", "upto": splits[0]}, {"shard": "b", "upto": splits[1]}, {"shard": "c"}]
    router = RangeRouter(ranges)
    assert router.shard_for(inside) == "b"
    assert router.shard_for(splits[0]) == "b"
    assert router.shard_for(splits[1]) == "c"
    with pytest.raises(RoutingError) as info:
        router.shard_for(outside)
    assert repr(outside) in str(info.value)
    assert "split points are" in str(info.value)
    rebuilt = router_from_spec(json.loads(json.dumps(router.to_spec())))
    assert rebuilt == router
    assert rebuilt.shard_for(inside) == "b"


@pytest.mark.parametrize("key", [True, "5", 5.0, (5,), None, decimal.Decimal("NaN")])
def test_mismatched_keys_name_the_key_and_the_expected_type(key: Any) -> None:
    with pytest.raises(RoutingError) as info:
        RangeRouter(THREE).shard_for(key)
    assert repr(key) in str(info.value)
    if not isinstance(key, decimal.Decimal):
        assert "int or Decimal" in str(info.value)


def test_a_single_unbounded_range_takes_any_key() -> None:
    router = RangeRouter([{"shard": "only"}])
    assert {router.shard_for(key) for key in (1, "a", b"x", (1, "a"))} == {"only"}


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        (None, ("s0", "s1", "s2")),
        (KeyConstraint(), ("s0", "s1", "s2")),
        (KeyConstraint(values=(5, 150)), ("s0", "s1")),
        (KeyConstraint(values=()), ()),
        (KeyConstraint(lower=100, upper=500), ("s1",)),
        (KeyConstraint(lower=100, upper=500, upper_inclusive=True), ("s1", "s2")),
        (KeyConstraint(lower=99, upper=100), ("s0",)),
        (KeyConstraint(lower=99, upper=100, upper_inclusive=True), ("s0", "s1")),
        (KeyConstraint(lower=500), ("s2",)),
        (KeyConstraint(upper=100), ("s0",)),
        (KeyConstraint(upper=100, upper_inclusive=True), ("s0", "s1")),
        (KeyConstraint(lower=300, upper=200), ()),
        (KeyConstraint(lower=300, upper=300), ()),
        (KeyConstraint(lower=300, upper=300, upper_inclusive=True), ("s1",)),
    ],
)
def test_shards_for_query(constraint: KeyConstraint | None, expected: tuple[str, ...]) -> None:
    assert RangeRouter(THREE).shards_for_query(constraint) == expected


def test_query_bounds_of_the_wrong_type_name_the_bound() -> None:
    with pytest.raises(RoutingError, match="query upper bound 'x'"):
        RangeRouter(THREE).shards_for_query(KeyConstraint(upper="x"))
    with pytest.raises(RoutingError, match="query lower bound 'x'"):
        RangeRouter(THREE).shards_for_query(KeyConstraint(lower="x"))


@given(
    int_range_routers(),
    st.none() | int_keys,
    st.none() | int_keys,
    st.booleans(),
    st.booleans(),
)
def test_query_narrowing_never_misses_a_shard(
    router: RangeRouter, lower: int | None, upper: int | None, lower_inc: bool, upper_inc: bool
) -> None:
    constraint = KeyConstraint(lower=lower, lower_inclusive=lower_inc, upper=upper, upper_inclusive=upper_inc)
    visited = set(router.shards_for_query(constraint))
    for key in range(-1300, 1301):
        if lower is not None and (key < lower or (key == lower and not lower_inc)):
            continue
        if upper is not None and (key > upper or (key == upper and not upper_inc)):
            continue
        owner = naive_owner(router, key)
        if owner is not None:
            assert owner in visited, key


@settings(max_examples=80)
@given(int_range_routers(bounded=False), int_range_routers(bounded=False))
def test_moves_cover_exactly_the_keys_that_change_owner(before: RangeRouter, after: RangeRouter) -> None:
    moves = before.moves_to(after)
    for key in range(-1100, 1101, 3):
        assert_one_move_iff_owner_changes(before, after, moves, key, key)
    for left, right in pairwise(moves):  # merged and ordered
        assert isinstance(left.span, KeyRange)
        assert isinstance(right.span, KeyRange)
        assert left.span.upper is not None
        assert right.span.lower is not None
        assert left.span.upper <= right.span.lower
        if left.span.upper == right.span.lower:
            assert (left.source, left.target) != (right.source, right.target)


def test_moves_merge_adjacent_pieces() -> None:
    before = RangeRouter([{"shard": "a", "upto": 10}, {"shard": "a", "upto": 20}, {"shard": "b"}])
    after = RangeRouter([{"shard": "c", "upto": 20}, {"shard": "b"}])
    assert [(m.source, m.target, m.span) for m in before.moves_to(after)] == [("a", "c", KeyRange(None, 20))]
    assert before.moves_to(before) == []


def test_moves_into_an_unowned_range_are_refused() -> None:
    before = RangeRouter([{"shard": "a", "upto": 10}, {"shard": "b"}])
    after = RangeRouter([{"shard": "a", "upto": 10}, {"shard": "b", "upto": 20}], bounded=True)
    with pytest.raises(TopologyError, match="no shard in the target"):
        before.moves_to(after)
    # the other way round there is nothing to move out of the unowned tail
    assert [(m.source, m.target) for m in after.moves_to(before)] == []


def test_moves_between_incomparable_split_points_are_refused() -> None:
    with pytest.raises(TopologyError, match="split points"):
        RangeRouter(THREE).moves_to(RangeRouter([{"shard": "a", "upto": "m"}, {"shard": "b"}]))


@given(int_range_routers(), st.lists(int_keys, max_size=30))
def test_spec_round_trip_is_deterministic(router: RangeRouter, sample: list[int]) -> None:
    rebuilt = router_from_spec(json.loads(json.dumps(router.to_spec())))
    assert rebuilt == router
    assert rebuilt.to_spec() == router.to_spec()
    for key in sample:
        if naive_owner(router, key) is not None:
            assert rebuilt.shard_for(key) == router.shard_for(key)


def test_spec_shape() -> None:
    spec = RangeRouter([{"shard": "a", "upto": dt.date(2024, 1, 1)}, {"shard": "b"}]).to_spec()
    assert spec == {
        "type": "range",
        "bounded": False,
        "shards": ["a", "b"],
        "ranges": [{"shard": "a", "upto": {"$date": "2024-01-01"}}, {"shard": "b"}],
    }


@pytest.mark.parametrize(
    ("ranges", "bounded", "field", "words"),
    [
        ([], False, "ranges", "non-empty"),
        ("s0", False, "ranges", "list"),
        ([{"shard": "a", "upto": 5}], False, "ranges[0].upto", "unbounded above"),
        ([{"shard": "a"}, {"shard": "b"}], False, "ranges[0].upto", "missing"),
        ([{"shard": "a", "upto": 5}, {"shard": "b"}], True, "ranges[1].upto", "missing"),
        ([{"shard": "a", "upto": 5}, {"shard": "b", "upto": 5}, {"shard": "c"}], False, "ranges[1].upto", "increase"),
        ([{"shard": "a", "upto": 5}, {"shard": "b", "upto": 3}, {"shard": "c"}], False, "ranges[1].upto", "increase"),
        ([{"shard": "a", "upto": 5}, {"shard": "b", "upto": "x"}, {"shard": "c"}], False, "ranges[1].upto", "str"),
        ([{"shard": "a", "upto": True}, {"shard": "b"}], False, "ranges[0].upto", "bool"),
        ([{"shard": "a", "upto": {"$x": 1}}, {"shard": "b"}], False, "ranges[0].upto", "not a key"),
        ([{"shard": "a", "upto": 1, "owner": "x"}, {"shard": "b"}], False, "ranges[0].owner", "unknown field"),
        ([{"upto": 1}, {"shard": "b"}], False, "ranges[0].shard", "shard name"),
        (["a"], False, "ranges[0]", "table"),
        ([{"shard": "a"}], "yes", "bounded", "true or false"),
    ],
)
def test_bad_ranges_name_the_field(ranges: Any, bounded: Any, field: str, words: str) -> None:
    with pytest.raises(TopologyError) as info:
        RangeRouter(ranges, bounded=bounded)
    message = str(info.value)
    assert message.startswith(f"{field}:"), message
    assert words in message


def test_unknown_range_shard_names_the_field_and_the_shards() -> None:
    with pytest.raises(TopologyError, match=r"ranges\[1\]\.shard: unknown shard 's9' \(shards: s0, s1\)"):
        RangeRouter([{"shard": "s0", "upto": 1}, {"shard": "s9"}], shards=["s0", "s1"])


# -- Decimal shard keys: exact routing, in the order of the encoded keys ------------------------


@st.composite
def decimal_range_routers(draw: st.DrawFn) -> RangeRouter:
    """Range routers over Decimal split points anywhere in the key domain (as TOML/JSON specs)."""
    splits = sorted(set(draw(st.lists(key_decimals, min_size=1, max_size=6))))
    ranges: list[dict[str, Any]] = [
        {"shard": f"s{index}", "upto": {"$decimal": str(split)}} for index, split in enumerate(splits)
    ]
    return RangeRouter([*ranges, {"shard": f"s{len(splits)}"}])


@given(decimal_range_routers(), key_decimals | st.integers(-(10**40), 10**40))
def test_decimal_shard_keys_route_exactly(router: RangeRouter, key: decimal.Decimal | int) -> None:
    """Negative, tiny and huge exponents: the owner is the range that holds the number, and
    it is also the one found by comparing encoded keys (what a store's key index orders by)."""
    owner = router.shard_for(key)
    assert owner == naive_owner(router, key)
    if isinstance(key, decimal.Decimal):
        encoded_splits = [encode_key(split) for split in router.split_points]
        assert owner == f"s{bisect_right(encoded_splits, encode_key(key))}"
        sign, digits, exponent = key.as_tuple()
        assert isinstance(exponent, int)
        assert router.shard_for(decimal.Decimal((sign, (*digits, 0, 0), exponent - 2))) == owner


def test_decimal_split_points_order_negative_tiny_and_huge_numbers() -> None:
    points = ["-1E+6000", "-2.5", "-1E-6000", "0", "1E-6176", "0.1", "1E+6144"]
    router = RangeRouter(
        [*({"shard": f"s{i}", "upto": {"$decimal": p}} for i, p in enumerate(points)), {"shard": "s7"}]
    )
    expected = {
        decimal.Decimal("-9.99E+6144"): "s0",
        decimal.Decimal("-1E+6000"): "s1",
        decimal.Decimal("-3"): "s1",
        decimal.Decimal("-2.50"): "s2",
        decimal.Decimal("-1E-6001"): "s3",
        decimal.Decimal("-0.000"): "s4",
        decimal.Decimal("2E-6176"): "s5",
        decimal.Decimal("0.10"): "s6",
        decimal.Decimal("1.5E+6144"): "s7",
        -1: "s2",
        0: "s4",
        1: "s6",
    }
    assert {key: router.shard_for(key) for key in expected} == expected


@pytest.mark.parametrize("key", ["Infinity", "-Infinity", "NaN", "sNaN", "1E+999999999", "1E-999999999", "1" * 35])
@pytest.mark.parametrize("ranges", [THREE, [{"shard": "only"}], [{"shard": "a", "upto": 1.5}, {"shard": "b"}]])
def test_decimals_that_are_not_keys_are_refused_by_name(key: str, ranges: list[dict[str, Any]]) -> None:
    value = decimal.Decimal(key)
    with pytest.raises(RoutingError, match="cannot be routed") as info:
        RangeRouter(ranges).shard_for(value)
    assert repr(value) in str(info.value)
    assert isinstance(info.value.__cause__, InvalidKeyError)
    with pytest.raises(RoutingError):
        RangeRouter(ranges).shards_for_query(KeyConstraint(lower=decimal.Decimal(0), upper=value))
    with pytest.raises(RoutingError):
        RangeRouter(THREE).shard_for((value,) if ranges is THREE else value)


@pytest.mark.parametrize("split", [{"$decimal": "1e999999999"}, {"$decimal": "NaN"}, decimal.Decimal("-Infinity")])
def test_decimal_split_points_that_are_not_keys_name_the_field(split: object) -> None:
    with pytest.raises(TopologyError, match=r"^ranges\[0\]\.upto: .*Decimal"):
        RangeRouter([{"shard": "a", "upto": split}, {"shard": "b"}])
