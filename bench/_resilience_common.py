"""Shared pieces of the resilience benchmarks: five stores on the stack, mixed traffic, a slow link.

``resilience_outage.py`` (a Redis shard killed), ``resilience_slow.py`` (a slow
PostgreSQL) and ``resilience_throttle.py`` (four throttles) print what the guard does
in real time on the real servers. They never stop or slow the shared stack: the killed
Redis is a private redis-server (``tests.resilience.helpers.PrivateRedis``, a plain
module without pytest), the slow PostgreSQL is the stack's one behind ``DelayProxy``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _overhead_common import endpoint

from toolkit import Entity, Toolkit
from toolkit.config import CatalogConfig, Config, ShardConfig, StoreConfig, sqlite_url
from toolkit.errors import ToolkitError
from toolkit.resilience import ResiliencePolicy


class Customer(Entity, store="rz_customers", key="id"):
    id: int
    name: str


class Profile(Entity, store="rz_profiles", key="id"):
    id: int
    prefs: dict[str, Any] = {}


class Session(Entity, store="rz_sessions", key="token"):
    token: str
    hits: int = 0


class Event(Entity, store="rz_events", key=("customer_id", "seq"), shard_key="customer_id"):
    customer_id: int
    seq: int
    kind: str


class Person(Entity, store="rz_social", key="id"):
    id: int
    name: str


KINDS = {
    "rz_customers": "relational",
    "rz_profiles": "document",
    "rz_sessions": "keyvalue",
    "rz_events": "column",
    "rz_social": "graph",
}
ENTITIES: list[type[Entity]] = [Customer, Profile, Session, Event, Person]
CONNECT_TIMEOUT = 2
"""The driver's connect timeout of every store (seconds): "fails fast" is measured against it."""
TIMEOUTS: dict[str, dict[str, Any]] = {kind: {"connect_timeout": CONNECT_TIMEOUT} for kind in KINDS.values()}
TIMEOUTS["keyvalue"]["socket_timeout"] = CONNECT_TIMEOUT


def arguments(
    doc: str, argv: Sequence[str] | None, options: Mapping[str, tuple[type, float, str]]
) -> tuple[argparse.Namespace, Path, str]:
    """A benchmark's command line (``--name`` -> (type, default, help)), a scratch directory
    and this run's prefix (a PostgreSQL schema, a namespace: nothing collides with other runs)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    for name, (kind, default, text) in options.items():
        parser.add_argument(f"--{name}", type=kind, default=default, help=f"{text} (default {default:g})")
    return parser.parse_args(argv), Path(tempfile.mkdtemp(prefix="ps-bench-")), f"rz{uuid.uuid4().hex[:8]}_"


def stack(service: str) -> str:
    """The first URL of one of the stack's servers (env override, else stack/endpoints.toml)."""
    where = {
        "postgres": ("postgres", "shards", "POLYSTORE_POSTGRES_URL"),
        "mongo": ("mongo", "shards", "POLYSTORE_MONGO_URL"),
        "redis": ("redis", "shards", "POLYSTORE_REDIS_URL"),
        "cassandra": ("cassandra", "contact_points", "POLYSTORE_CASSANDRA_URL"),
        "neo4j": ("neo4j", "shards", "POLYSTORE_NEO4J_URL"),
    }
    return endpoint(*where[service])[0].removeprefix("cassandra://")


def stack_urls(run: str) -> dict[str, str]:
    """One shard per kind on the stack, isolated by ``run`` (a PostgreSQL schema, a namespace)."""
    return {
        "rz_customers": f"{stack('postgres')}?schema={run}",
        "rz_profiles": stack("mongo"),
        "rz_sessions": stack("redis"),
        "rz_events": f"cassandra://{stack('cassandra')}/polystore_resilience",
        "rz_social": stack("neo4j"),
    }


def build(tmp: Path, run: str, urls: dict[str, str], policies: dict[str, ResiliencePolicy]) -> Toolkit:
    """A Toolkit with the five stores (one shard each), the given guards, a local catalog."""
    stores = {
        name: StoreConfig(
            name,
            kind,
            (ShardConfig("s0", urls[name]),),
            options={"namespace": run, **TIMEOUTS[kind]},
            resilience=policies.get(name, ResiliencePolicy()),
        )
        for name, kind in KINDS.items()
    }
    return Toolkit(Config(CatalogConfig(sqlite_url(tmp / f"catalog-{run}.db")), stores, tmp, source="bench.toml"))


def cleanup(toolkit: Toolkit, run: str) -> None:
    """Drop what ``run`` created on every store (and its PostgreSQL schema), then close."""
    try:
        for entity in ENTITIES:
            repository = toolkit.repository(entity)
            with contextlib.suppress(ToolkitError):
                repository.store.adapter("s0").drop(repository.schema)
        engine = sa.create_engine(stack("postgres").replace("postgresql://", "postgresql+psycopg://"))
        with engine.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{run}" CASCADE')
        engine.dispose()
    finally:
        toolkit.close()


@contextlib.contextmanager
def traffic_on(toolkit: Toolkit, run: str, threads: int) -> Iterator[Traffic]:
    """The mixed traffic over ``toolkit``'s stores (warmed, not started yet); whatever
    happens inside, ``cleanup(toolkit, run)`` after: a failed run leaves nothing behind."""
    try:
        ops = operations(toolkit)
        warm(ops)
        yield Traffic(ops, threads=threads)
    finally:
        cleanup(toolkit, run)


def operations(toolkit: Toolkit) -> dict[str, Callable[[int], object]]:
    """One small read or write per store, by an integer (even: write, odd: read)."""
    customers = toolkit.repository(Customer)
    profiles = toolkit.repository(Profile)
    sessions = toolkit.repository(Session)
    events = toolkit.repository(Event)
    people = toolkit.repository(Person)

    def pick(write: Callable[[int], object], read: Callable[[int], object]) -> Callable[[int], object]:
        return lambda n: write(n % 200) if n % 2 == 0 else read(n % 200)

    return {
        "rz_customers": pick(lambda k: customers.put(Customer(id=k, name=f"c{k}")), customers.get),
        "rz_profiles": pick(lambda k: profiles.put(Profile(id=k, prefs={"k": k})), profiles.get),
        "rz_sessions": pick(lambda k: sessions.put(Session(token=f"t{k}", hits=k)), lambda k: sessions.get(f"t{k}")),
        "rz_events": pick(
            lambda k: events.put(Event(customer_id=k % 10, seq=k, kind="view")),
            lambda k: events.get((k % 10, k), shard_key=k % 10),
        ),
        "rz_social": pick(lambda k: people.put(Person(id=k, name=f"p{k}")), people.get),
    }


def warm(ops: dict[str, Callable[[int], object]]) -> None:
    """One write and one read per store, so tables exist and pools are connected."""
    for op in ops.values():
        op(0)
        op(1)


@dataclass
class Sample:
    store: str
    start: float
    latency: float
    error: str | None


@dataclass
class Traffic:
    """Worker threads cycling over the stores, one operation each, recording every call."""

    ops: dict[str, Callable[[int], object]]
    threads: int
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        names = list(self.ops)
        for index in range(self.threads):
            order = names[index % len(names) :] + names[: index % len(names)]
            thread = threading.Thread(target=self._work, args=(order, index), daemon=True)
            thread.start()
            self.workers.append(thread)

    def _work(self, order: list[str], seed: int) -> None:
        rng = random.Random(seed)
        while not self.stop.is_set():
            for name in order:
                begin = time.perf_counter()
                error = None
                try:
                    self.ops[name](rng.randrange(1_000_000))
                except ToolkitError as exc:
                    error = type(exc).__name__
                self.samples.append(Sample(name, begin, time.perf_counter() - begin, error))

    def finish(self) -> None:
        self.stop.set()
        for thread in self.workers:
            thread.join(30)

    def between(self, store: str, start: float, end: float) -> list[Sample]:
        return [s for s in list(self.samples) if s.store == store and start <= s.start < end]


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


class DelayProxy:
    """A TCP proxy to ``target`` that holds every client->server chunk ``delay`` seconds.

    One thread accepts; two threads per connection pump bytes. With ``delay = 0`` it is a
    plain relay; raising ``delay`` makes every query round trip that much slower, which is
    how a backend under a lock storm or a saturated disk looks from the client.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.delay = 0.0
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(128)
        self.port: int = self._server.getsockname()[1]
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="delay-proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, delayed: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if delayed and self.delay:
                    time.sleep(self.delay)  # the slowness this proxy exists to add
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._server.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()
