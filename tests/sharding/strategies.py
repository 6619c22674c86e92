"""Hypothesis strategies shared by the sharding tests: keys, weights, routers."""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st

from sharding import DirectoryRouter, HashRouter, RangeRouter, encode_key

# Fixed-offset zones only: keys with zoneinfo zones in a DST fold compare unequal to
# themselves after a round trip through their UTC offset (PEP 495), by design.
offsets = st.integers(min_value=-1439, max_value=1439).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))

scalar_keys = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.booleans(),
    st.binary(max_size=20),
    st.uuids(),
    st.dates(),
    # Aware only: a naive datetime is taken as UTC and decodes aware (see test_keys).
    st.datetimes(timezones=offsets),
    # Finite and within the default 28-digit context (normalize() rounds beyond it).
    st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**12), max_value=10**12),
)

keys = st.recursive(
    scalar_keys,
    lambda children: st.lists(children, max_size=4).map(tuple),
    max_leaves=12,
)
"""Arbitrary keys, including nested tuples of every key type."""

shard_names = st.lists(st.sampled_from([f"s{i}" for i in range(12)]), min_size=1, max_size=8, unique=True)

slot_counts = st.sampled_from([16, 64, 256, 1024, 16384])


@st.composite
def weight_maps(draw: st.DrawFn, names: list[str] | None = None) -> dict[str, float]:
    chosen = names if names is not None else draw(shard_names)
    return {
        name: draw(st.integers(1, 10) | st.floats(0.1, 10.0, allow_nan=False))  # type: ignore[operator]
        for name in chosen
    }


@st.composite
def hash_routers(draw: st.DrawFn) -> HashRouter:
    return HashRouter.create(draw(weight_maps()), slots=draw(slot_counts))


@st.composite
def int_range_routers(draw: st.DrawFn, bounded: bool | None = None) -> RangeRouter:
    """Range routers over int keys in roughly [-1000, 1000]."""
    splits = sorted(draw(st.sets(st.integers(-1000, 1000), max_size=8)))
    if bounded is None:
        bounded = draw(st.booleans()) and bool(splits)
    names = draw(shard_names)
    count = len(splits) if bounded else len(splits) + 1
    owners = [draw(st.sampled_from(names)) for _ in range(count)]
    ranges: list[dict[str, object]] = []
    for index, owner in enumerate(owners):
        entry: dict[str, object] = {"shard": owner}
        if index < len(splits):
            entry["upto"] = splits[index]
        ranges.append(entry)
    return RangeRouter(ranges, bounded=bounded, shards=names)


@st.composite
def directory_routers(draw: st.DrawFn) -> DirectoryRouter:
    fallback = draw(hash_routers())
    pinned = draw(st.lists(keys, max_size=10))
    entries = {encode_key(key): draw(st.sampled_from(fallback.shards)) for key in pinned}
    return DirectoryRouter(entries, fallback)


int_keys = st.integers(-1200, 1200)
