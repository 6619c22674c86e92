"""One small application whose entities live in five stores of five kinds.

The same code runs on the embedded default (every store in SQLite files) and on the
real servers (PostgreSQL, MongoDB-wire, Redis, Cassandra, Neo4j): only the config
changes. ``exercise`` writes related entities through one Toolkit and reads them back,
using each kind's own capability.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from tests.backends import Backend
from toolkit import Entity, Toolkit
from toolkit.config import CatalogConfig, Config, RouterConfig, ShardConfig, StoreConfig


class Customer(Entity, store="customers", key="id", indexes=["country"]):
    id: int
    name: str
    country: str


class Profile(Entity, store="profiles", key="customer_id"):
    customer_id: int
    prefs: dict[str, Any] = {}
    tags: list[str] = []


class Session(Entity, store="sessions", key="token"):
    token: str
    customer_id: int
    hits: int = 0


class Event(Entity, store="events", key=("customer_id", "at"), shard_key="customer_id"):
    customer_id: int
    at: dt.datetime
    kind: str


class Person(Entity, store="social", key="id"):
    id: int
    name: str


KINDS = {
    "customers": "relational",
    "profiles": "document",
    "sessions": "keyvalue",
    "events": "column",
    "social": "graph",
}
PEOPLE = [1, 2, 3, 4, 5]


def config(backends: Mapping[str, Backend], catalog: str, data_dir: Any) -> Config:
    """A config with the five stores, two shards each on its backend (``tests.backends``);
    social pins its people together."""
    stores = {}
    for name, kind in KINDS.items():
        router = RouterConfig("hash")
        if name == "social":  # relationships stay within one shard: co-locate the people
            router = RouterConfig("directory", {"entries": {}})
        backend = backends[name]
        shards = tuple(ShardConfig(shard, url) for shard, url in backend.shards(2).items())
        stores[name] = StoreConfig(name, kind, shards, router, backend.options())
    return Config(CatalogConfig(catalog), stores, data_dir, source="app.toml")


def exercise(toolkit: Toolkit) -> None:
    """Write related entities into all five stores and read them back."""
    customers = toolkit.repository(Customer)
    profiles = toolkit.repository(Profile)
    sessions = toolkit.repository(Session)
    events = toolkit.repository(Event)
    people = toolkit.repository(Person)

    customers.put_many(Customer(id=i, name=f"customer {i}", country="NL" if i % 2 else "PT") for i in range(1, 41))
    profiles.put_many(
        Profile(customer_id=i, prefs={"lang": "nl" if i % 2 else "pt", "theme": "light"}, tags=[f"t{i % 3}"])
        for i in range(1, 41)
    )
    sessions.put(Session(token="tok-7", customer_id=7), ttl=300)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    events.put_many(
        Event(customer_id=c, at=start + dt.timedelta(hours=h), kind="view" if h % 2 else "buy")
        for c in (7, 8)
        for h in range(10)
    )
    toolkit.directory("social").assign(dict.fromkeys(PEOPLE, "s1"))
    people.put_many(Person(id=pid, name=f"person {pid}") for pid in PEOPLE)
    for source, target in [(1, 2), (2, 3), (3, 4), (1, 5)]:
        people.relate(source, "FOLLOWS", target, since=2024)

    # relational: find across shards, merged in order
    dutch = customers.find({"country": "NL", "id": {"lt": 10}}, order_by="-id")
    assert [c.id for c in dutch] == [9, 7, 5, 3, 1]
    assert sum(customers.count_by_shard().values()) == 40
    assert all(count > 0 for count in customers.count_by_shard().values())

    # document: nested filters and partial updates
    assert profiles.count({"prefs.lang": "nl"}) == 20
    assert profiles.update(7, {"prefs.theme": "dark"}) is True
    seven = profiles.get(7)
    assert seven is not None
    assert seven.prefs == {"lang": "nl", "theme": "dark"}
    assert [p.customer_id for p in profiles.find({"tags": {"contains": "t1"}, "customer_id": {"le": 10}})] == [
        1,
        4,
        7,
        10,
    ]

    # key-value: TTL and atomic increments
    remaining = sessions.ttl("tok-7")
    assert remaining is not None
    assert 0 < remaining <= 300
    assert sessions.increment("tok-7", "hits") == 1
    assert sessions.increment("tok-7", "hits", 2) == 3

    # column: a partition read in clustering order
    window = events.partition(7, start=start + dt.timedelta(hours=2), end=start + dt.timedelta(hours=5))
    assert [(e.at - start).seconds // 3600 for e in window] == [2, 3, 4]
    latest = events.partition(8, descending=True, limit=2)
    assert [(e.at - start).seconds // 3600 for e in latest] == [9, 8]

    # graph: neighbours, traversal, shortest path
    assert sorted(p.id for p, _ in people.neighbors(1, type="FOLLOWS")) == [2, 5]
    assert [(distance, p.id) for distance, p in people.traverse(1, type="FOLLOWS", depth=3)] == [
        (1, 2),
        (1, 5),
        (2, 3),
        (3, 4),
    ]
    path = people.shortest_path(1, 4, type="FOLLOWS")
    assert path is not None
    assert [p.id for p in path] == [1, 2, 3, 4]

    # everything reads back, across all five stores
    seven_customer = customers.get(7)
    assert seven_customer is not None
    session = sessions.get("tok-7")
    assert session is not None
    assert session.customer_id == seven_customer.id
    assert events.count({"customer_id": 7}) == 10
    assert people.get(3) == Person(id=3, name="person 3")
