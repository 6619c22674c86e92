"""The GRAPH capability contract: relationships, neighbours, traversal and shortest paths.

Runs on every backend whose adapter declares GRAPH (see conftest.py), always on two
shards. Relationships stay within one shard, so the graphs here are pinned to one shard
with a directory router; the cross-shard test uses hash routing and keys that land on
different shards. Only the semantics documented in ``adapters/base.py`` are asserted.
"""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import Capability, Relationship
from tests.contract.conftest import Backend
from toolkit import Entity, QueryError
from toolkit.errors import CrossShardError, NotFoundError
from toolkit.repository import Repository

pytestmark = pytest.mark.capability(Capability.GRAPH)


class Person(Entity, store="items", key="id", table="g_person"):
    id: str
    name: str = ""


class City(Entity, store="items", key="id", table="g_city"):
    id: str
    label: str = ""


def _people(backend: Backend, *keys: str, shard: str = "s1") -> Repository[Person]:
    """A two-shard store whose listed keys all live on ``shard`` (directory-pinned)."""
    toolkit = backend.toolkit(router="directory", shards=2)
    toolkit.directory("items").assign(dict.fromkeys(keys, shard))
    people = toolkit.repository(Person)
    people.put_many(Person(id=key, name=key.upper()) for key in keys)
    return people


def _edges(found: list[tuple[Any, Relationship]]) -> list[tuple[str, str, str, str]]:
    """(neighbour id, type, source, target) per neighbour, in the order returned."""
    return [(entity.id, rel.type, rel.source, rel.target) for entity, rel in found]


def _by_key(found: list[tuple[Any, Relationship]]) -> list[str]:
    return [entity.id for entity, _ in found]


def test_relate_and_neighbors_by_direction_and_type(backend: Backend) -> None:
    people = _people(backend, "a", "b", "c", "d")
    people.relate("a", "KNOWS", "c", since=2020, note="met in Lyon")
    people.relate("a", "KNOWS", "b")
    people.relate("a", "LIKES", "c")
    people.relate("d", "KNOWS", "a")

    out = people.neighbors("a")
    assert _by_key(out) == sorted(_by_key(out))  # ordered by the neighbour's key
    assert sorted(_edges(out)) == [("b", "KNOWS", "a", "b"), ("c", "KNOWS", "a", "c"), ("c", "LIKES", "a", "c")]
    assert all(isinstance(entity, Person) for entity, _ in out)
    assert out[0][0] == Person(id="b", name="B")

    knows = people.neighbors("a", type="KNOWS")
    assert _edges(knows) == [("b", "KNOWS", "a", "b"), ("c", "KNOWS", "a", "c")]
    assert knows[1][1].properties == {"since": 2020, "note": "met in Lyon"}
    assert knows[0][1].properties == {}

    assert _edges(people.neighbors("a", direction="in")) == [("d", "KNOWS", "d", "a")]
    assert people.neighbors("c", direction="out") == []
    assert sorted(_edges(people.neighbors("c", direction="in"))) == [("a", "KNOWS", "a", "c"), ("a", "LIKES", "a", "c")]

    both = people.neighbors("a", direction="both")
    assert _by_key(both) == ["b", "c", "c", "d"]
    assert sorted(_edges(both)) == [
        ("b", "KNOWS", "a", "b"),
        ("c", "KNOWS", "a", "c"),
        ("c", "LIKES", "a", "c"),
        ("d", "KNOWS", "d", "a"),
    ]
    assert _edges(people.neighbors("a", direction="both", type="LIKES")) == [("c", "LIKES", "a", "c")]


def test_relating_again_replaces_the_properties_of_the_one_edge(backend: Backend) -> None:
    people = _people(backend, "a", "b")
    people.relate("a", "KNOWS", "b", since=2020, note="x")
    people.relate("a", "KNOWS", "b", weight=0.5, close=True)
    found = people.neighbors("a")
    assert len(found) == 1
    assert found[0][1] == Relationship("KNOWS", "a", "b", {"weight": 0.5, "close": True})
    people.relate("b", "KNOWS", "a")  # the other direction is another edge
    assert len(people.neighbors("a", direction="both")) == 2
    assert len(people.neighbors("a")) == 1


def test_unrelate(backend: Backend) -> None:
    people = _people(backend, "a", "b", "c")
    people.relate("a", "KNOWS", "b")
    people.relate("a", "LIKES", "b")
    people.relate("a", "KNOWS", "c")
    assert people.unrelate("a", "KNOWS", "b") is True
    assert people.unrelate("a", "KNOWS", "b") is False
    assert people.unrelate("b", "LIKES", "a") is False  # direction matters
    assert sorted(_edges(people.neighbors("a"))) == [("b", "LIKES", "a", "b"), ("c", "KNOWS", "a", "c")]
    assert people.count() == 3  # unrelating never deletes nodes


def test_relationships_between_two_entities(backend: Backend) -> None:
    toolkit = backend.toolkit(router="directory", shards=2)
    toolkit.directory("items").assign({"ann": "s0", "bob": "s0", "lyon": "s0", "oslo": "s0"})
    people = toolkit.repository(Person)
    cities = toolkit.repository(City)
    people.put_many([Person(id="ann"), Person(id="bob")])
    cities.put_many([City(id="lyon", label="Lyon"), City(id="oslo", label="Oslo")])
    people.relate("ann", "LIVES_IN", "lyon", to=City, since=2019)
    people.relate("bob", "LIVES_IN", "lyon", to=City)
    people.relate("ann", "VISITED", "oslo", to=City)
    people.relate("ann", "KNOWS", "bob")

    found = people.neighbors("ann", to=City)
    assert [entity for entity, _ in found] == [City(id="lyon", label="Lyon"), City(id="oslo", label="Oslo")]
    assert found[0][1] == Relationship("LIVES_IN", "ann", "lyon", {"since": 2019})
    assert _edges(people.neighbors("ann")) == [("bob", "KNOWS", "ann", "bob")]  # only Person neighbours
    residents = cities.neighbors("lyon", direction="in", to=Person, type="LIVES_IN")
    assert _edges(residents) == [("ann", "LIVES_IN", "ann", "lyon"), ("bob", "LIVES_IN", "bob", "lyon")]
    assert people.unrelate("ann", "VISITED", "oslo", to=City) is True
    assert cities.neighbors("oslo", direction="in", to=Person) == []


def _ring(backend: Backend) -> Repository[Person]:
    """a -> b -> c -> d -> a (a cycle), b -> e (all NEXT), and a -[OTHER]-> z."""
    people = _people(backend, "a", "b", "c", "d", "e", "z")
    for source, target in [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a"), ("b", "e")]:
        people.relate(source, "NEXT", target)
    people.relate("a", "OTHER", "z")
    return people


def _trail(found: list[tuple[int, Person]]) -> list[tuple[int, str]]:
    return [(distance, entity.id) for distance, entity in found]


def test_traverse_to_a_depth_through_cycles(backend: Backend) -> None:
    people = _ring(backend)
    assert _trail(people.traverse("a", type="NEXT", depth=1)) == [(1, "b")]
    assert _trail(people.traverse("a", type="NEXT", depth=2)) == [(1, "b"), (2, "c"), (2, "e")]
    three = [(1, "b"), (2, "c"), (2, "e"), (3, "d")]
    assert _trail(people.traverse("a", type="NEXT", depth=3)) == three
    assert _trail(people.traverse("a", type="NEXT", depth=6)) == three  # the start never comes back
    assert _trail(people.traverse("a", depth=1)) == [(1, "b"), (1, "z")]  # every type
    assert _trail(people.traverse("b", type="NEXT", depth=4)) == [(1, "c"), (1, "e"), (2, "d"), (3, "a")]
    assert all(isinstance(entity, Person) for _, entity in people.traverse("a", depth=2))


def test_traverse_directions_and_minimal_distances(backend: Backend) -> None:
    people = _ring(backend)
    people.relate("a", "NEXT", "c")  # a shortcut: c is now one edge from a
    assert _trail(people.traverse("a", type="NEXT", depth=2)) == [(1, "b"), (1, "c"), (2, "d"), (2, "e")]
    assert _trail(people.traverse("a", type="NEXT", direction="in", depth=2)) == [(1, "d"), (2, "c")]
    assert _trail(people.traverse("a", type="NEXT", direction="both", depth=1)) == [(1, "b"), (1, "c"), (1, "d")]
    assert _trail(people.traverse("e", type="NEXT", depth=3)) == []
    assert _trail(people.traverse("e", type="NEXT", direction="in", depth=2)) == [(1, "b"), (2, "a")]
    with pytest.raises(QueryError, match="depth"):
        people.traverse("a", depth=0)


def test_traversal_stays_within_the_entity(backend: Backend) -> None:
    toolkit = backend.toolkit(router="directory", shards=2)
    toolkit.directory("items").assign({"a": "s1", "b": "s1", "hub": "s1"})
    people = toolkit.repository(Person)
    cities = toolkit.repository(City)
    people.put_many([Person(id="a"), Person(id="b")])
    cities.put(City(id="hub"))
    people.relate("a", "GOES", "hub", to=City)
    cities.relate("hub", "GOES", "b", to=Person)
    assert people.traverse("a", type="GOES", depth=3) == []  # the only path leaves the entity
    assert people.shortest_path("a", "b", type="GOES") is None


def test_shortest_path(backend: Backend) -> None:
    people = _people(backend, "a", "b", "c", "d", "e", "lonely")
    for source, target in [("a", "b"), ("b", "c"), ("c", "d")]:
        people.relate(source, "NEXT", target)
    people.relate("a", "SKIP", "e")
    people.relate("e", "SKIP", "d")

    def ids(path: list[Person] | None) -> list[str] | None:
        return None if path is None else [entity.id for entity in path]

    assert ids(people.shortest_path("a", "d")) == ["a", "e", "d"]
    assert ids(people.shortest_path("a", "d", type="NEXT")) == ["a", "b", "c", "d"]
    assert ids(people.shortest_path("a", "d", type="NEXT", max_depth=2)) is None
    assert ids(people.shortest_path("a", "d", max_depth=2)) == ["a", "e", "d"]
    assert ids(people.shortest_path("a", "d", max_depth=1)) is None
    assert ids(people.shortest_path("a", "b")) == ["a", "b"]
    assert people.shortest_path("d", "a") is None  # edges are directed
    assert ids(people.shortest_path("d", "a", direction="in")) == ["d", "e", "a"]
    assert ids(people.shortest_path("d", "a", direction="both", type="NEXT")) == ["d", "c", "b", "a"]
    assert people.shortest_path("a", "lonely") is None
    path = people.shortest_path("a", "d")
    assert path is not None
    assert path[0] == Person(id="a", name="A")


def test_relating_a_missing_node_raises_not_found(backend: Backend) -> None:
    people = _people(backend, "a", "ghost", "ghost2")
    people.delete("ghost")
    people.delete("ghost2")
    with pytest.raises(NotFoundError):
        people.relate("a", "KNOWS", "ghost")
    with pytest.raises(NotFoundError):
        people.relate("ghost", "KNOWS", "a")
    with pytest.raises(NotFoundError):
        people.relate("ghost", "KNOWS", "ghost2")
    assert people.neighbors("a", direction="both") == []
    assert people.count() == 1  # nothing was created


def test_a_cross_shard_relationship_is_refused(backend: Backend) -> None:
    toolkit = backend.toolkit(router="hash", shards=2)
    people = toolkit.repository(Person)
    router = toolkit.store("items").router
    keys = [f"p{i}" for i in range(64)]
    on_s0 = next(key for key in keys if router.shard_for(key) == "s0")
    on_s1 = next(key for key in keys if router.shard_for(key) == "s1")
    people.put_many([Person(id=on_s0), Person(id=on_s1)])
    with pytest.raises(CrossShardError):
        people.relate(on_s0, "KNOWS", on_s1)
    with pytest.raises(CrossShardError):
        people.unrelate(on_s1, "KNOWS", on_s0)
    with pytest.raises(CrossShardError):
        people.shortest_path(on_s0, on_s1)
    assert people.neighbors(on_s0, direction="both") == []
    assert people.neighbors(on_s1, direction="both") == []


INJECTED_TYPES = [
    "KNOWS]->(x) DETACH DELETE x //",
    "KNOWS`]->() MATCH (n) DETACH DELETE n //",
    "A B",
    "1ABC",
    "KNOWS-",
    "a;b",
    "KNOWS|LIKES",
    "$type",
    "ü",
]


@pytest.mark.parametrize("rel_type", INJECTED_TYPES)
def test_relationship_types_are_validated(backend: Backend, rel_type: str) -> None:
    people = _people(backend, "a", "b")
    people.relate("a", "KNOWS", "b")
    with pytest.raises(QueryError):
        people.relate("a", rel_type, "b")
    with pytest.raises(QueryError):
        people.unrelate("a", rel_type, "b")
    with pytest.raises(QueryError):
        people.neighbors("a", type=rel_type)
    with pytest.raises(QueryError):
        people.traverse("a", type=rel_type)
    with pytest.raises(QueryError):
        people.shortest_path("a", "b", type=rel_type)
    assert people.count() == 2  # nothing was executed
    assert _edges(people.neighbors("a")) == [("b", "KNOWS", "a", "b")]


def test_an_empty_relationship_type_is_refused(backend: Backend) -> None:
    people = _people(backend, "a", "b")
    with pytest.raises(QueryError):
        people.relate("a", "", "b")
    with pytest.raises(QueryError):
        people.unrelate("a", "", "b")
    assert people.neighbors("a") == []


NASTY_VALUES = [
    "'}) MATCH (n) DETACH DELETE n //",
    "MATCH (n) DETACH DELETE n",
    "$where",
    "{$gt: ''}",
    "'; DROP TABLE items; --",
    "` RETURN 1 //",
    "ключ-键-🔑",
    "",
]


def test_cypher_looking_property_values_are_stored_literally(backend: Backend) -> None:
    people = _people(backend, "a", "b", "'}) MATCH (n) DETACH DELETE n //")
    weird = "'}) MATCH (n) DETACH DELETE n //"
    properties: dict[str, Any] = {f"p{index}": value for index, value in enumerate(NASTY_VALUES)}
    people.relate("a", "KNOWS", "b", **properties)
    people.relate(weird, "KNOWS", "a", note=weird)
    assert people.neighbors("a")[0][1].properties == properties
    incoming = people.neighbors("a", direction="in")
    assert _edges(incoming) == [(weird, "KNOWS", weird, "a")]
    assert incoming[0][1].properties == {"note": weird}
    assert _trail(people.traverse(weird, depth=2)) == [(1, "a"), (2, "b")]
    assert people.count() == 3
