"""Relationships follow their nodes: the embedded graph (SQLite) and Neo4j.

The rule (see ``Rebalancer._copy_edges``): an edge lives on the shard of its ends, so
when a rebalance moves both ends to one shard the edge is related again there, and
an edge the target topology would split between two shards stops the rebalance
before cut-over (``abort`` then leaves the store as it was).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sharding.rebalance import Plan, ProgressEvent, RebalanceOptions, Rebalancer, plan_rebalance
from tests.backends import Backend
from tests.backends.neo4j import Neo4j
from tests.backends.sqlite import SQLite
from tests.rebalance.helpers import config_text, load
from toolkit import Entity, Repository, Toolkit
from toolkit.errors import CrossShardError, TopologyError

OPTIONS = RebalanceOptions(batch_size=50, settle=0.05, retries=0)


class Person(Entity, store="people", key="id"):
    id: int
    name: str


def _configs(tmp_path: Path, layout: Backend) -> tuple[str, str]:
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    common: dict[str, Any] = {"catalog": catalog, "kind": "graph", "store": "people", "options": layout.options()}
    return config_text(layout.shards(2), **common), config_text(layout.shards(3), **common)


@contextmanager
def _store(tmp_path: Path, layout: Backend) -> Iterator[tuple[Toolkit, Repository[Person], Plan]]:
    """400 people on 2 shards of ``layout`` and the plan that grows them to 3; the
    layout's server state is cleaned up afterwards."""
    layout.connect()
    before, after = _configs(tmp_path, layout)
    try:
        with Toolkit(load(tmp_path, before)) as toolkit:
            people = toolkit.repository(Person)
            people.put_many({"id": i, "name": f"p{i}"} for i in range(400))
            (plan,) = plan_rebalance(toolkit, load(tmp_path, after))
            yield toolkit, people, plan
    finally:
        layout.cleanup()


def _edges(plan: Any, count: int, *, split: bool) -> list[tuple[int, int]]:
    """Pairs on one shard before; after, together (moved or not), or split if asked."""
    old, new = plan.routers()
    rng = random.Random(7)
    pairs: list[tuple[int, int]] = []
    while len(pairs) < count:
        a, b = rng.sample(range(400), 2)
        if old.shard_for(a) != old.shard_for(b):
            continue
        if (new.shard_for(a) != new.shard_for(b)) == split:
            pairs.append((a, b))
    return pairs


def _follow(tmp_path: Path, layout: Backend) -> None:
    with _store(tmp_path, layout) as (toolkit, people, plan):
        old, new = plan.routers()
        pairs = _edges(plan, 150, split=False)
        moving = [pair for pair in pairs if new.shard_for(pair[0]) != old.shard_for(pair[0])]
        assert len(moving) > 20  # both ends move to the new shard
        assert len(pairs) - len(moving) > 20  # both ends stay
        for index, (a, b) in enumerate(pairs):
            people.relate(a, "KNOWS", b, since=index)
        expected: dict[int, set[tuple[int, int]]] = {}
        for index, (a, b) in enumerate(pairs):
            expected.setdefault(a, set()).add((b, index))
        rebalancer = Rebalancer(toolkit, options=OPTIONS)
        summary = rebalancer.run(rebalancer.start(plan))
        assert summary.state == "done"
        people.store.refresh()
        for a in range(400):
            found = {(person.id, rel.properties["since"]) for person, rel in people.neighbors(a, type="KNOWS")}
            assert found == expected.get(a, set()), f"{layout.name}: neighbours of {a}"
        direct = set(pairs)
        hops = {}  # a -> c two edges away (and not one), among the moved nodes
        for a, b in moving:
            for c, _ in expected.get(b, set()):
                if c != a and (a, c) not in direct:
                    hops[a] = c
        assert hops, "no two-hop path among the moved nodes"
        for a, c in hops.items():
            assert (2, c) in {(distance, person.id) for distance, person in people.traverse(a, depth=2)}


def _refuse_split(tmp_path: Path, layout: Backend) -> None:
    with _store(tmp_path, layout) as (toolkit, people, plan):
        (a, b), *_ = _edges(plan, 1, split=True)
        people.relate(a, "KNOWS", b)
        rebalancer = Rebalancer(toolkit, options=OPTIONS)
        ident = rebalancer.start(plan)
        with pytest.raises(TopologyError, match="splits 1 relationship"):
            rebalancer.run(ident)
        assert Rebalancer(toolkit, options=OPTIONS).abort(ident).state == "aborted"
        people.store.refresh()
        assert [person.id for person, _ in people.neighbors(a)] == [b]
        assert people.count() == 400


def _change_during(tmp_path: Path, layout: Backend) -> None:
    """Edges related, re-related and unrelated while the rebalance runs (after its edge
    pass, before the fence) are on the new owner after cut-over, exactly."""
    with _store(tmp_path, layout) as (toolkit, people, plan):
        old, new = plan.routers()
        pairs = list(dict.fromkeys(_edges(plan, 300, split=False)))
        moving = [pair for pair in pairs if new.shard_for(pair[0]) != old.shard_for(pair[0])]
        assert len([pair for pair in moving if pairs.index(pair) < 200]) > 20
        assert len([pair for pair in moving if pairs.index(pair) >= 200]) > 5
        expected: dict[tuple[int, int], int] = {}
        for index, (a, b) in enumerate(pairs[:200]):  # the rest are related during the move
            people.relate(a, "KNOWS", b, since=index)
            expected[(a, b)] = index
        (split_a, split_b), *_ = _edges(plan, 1, split=True)
        during: list[str] = []

        def change(event: ProgressEvent) -> None:
            if event.kind != "phase" or event.phase != "verify":
                return
            people.store.refresh()  # this process sees the dual phase now
            assert people.store.routing.transition is not None
            for index, (a, b) in enumerate(pairs[200:], start=200):
                people.relate(a, "KNOWS", b, since=index)
                expected[(a, b)] = index
            for a, b in [pair for pair in moving if pair in expected][:10]:
                assert people.unrelate(a, "KNOWS", b)
                del expected[(a, b)]
            for a, b in [pair for pair in moving if pair in expected][:10]:
                people.relate(a, "KNOWS", b, since=1000)  # replaced properties
                expected[(a, b)] = 1000
            with pytest.raises(CrossShardError, match="go to different shards in rebalance"):
                people.relate(split_a, "KNOWS", split_b)
            during.append("changed")

        rebalancer = Rebalancer(toolkit, options=OPTIONS, progress=change)
        summary = rebalancer.run(rebalancer.start(plan))
        assert summary.state == "done"
        assert during == ["changed"]
        people.store.refresh()
        for a in range(400):
            found = {(person.id, rel.properties["since"]) for person, rel in people.neighbors(a, type="KNOWS")}
            wanted = {(b, since) for (x, b), since in expected.items() if x == a}
            assert found == wanted, f"{layout.name}: neighbours of {a}"


GRAPHS = [SQLite, pytest.param(Neo4j, marks=pytest.mark.neo4j)]
"""The GRAPH backends: the embedded SQL graph and Neo4j."""


@pytest.mark.parametrize("backend", GRAPHS, ids=lambda backend: backend.name)
def test_edges_follow_their_nodes(tmp_path: Path, backend: type[Backend]) -> None:
    _follow(tmp_path, backend(tmp_path))


@pytest.mark.parametrize("backend", GRAPHS, ids=lambda backend: backend.name)
def test_split_edges_stop_the_rebalance(tmp_path: Path, backend: type[Backend]) -> None:
    _refuse_split(tmp_path, backend(tmp_path))


@pytest.mark.parametrize("backend", GRAPHS, ids=lambda backend: backend.name)
def test_edges_changed_during_the_rebalance_follow(tmp_path: Path, backend: type[Backend]) -> None:
    _change_during(tmp_path, backend(tmp_path))
