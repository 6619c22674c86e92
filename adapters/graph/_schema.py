"""Constraints, indexes and whole labels: ``ensure``, ``drop`` and ``describe``.

The key has a node property uniqueness constraint (composite keys too), so ``MERGE``
on it is an indexed, race-free upsert. ``_ps_token`` has a RANGE index (hash-routed
stores), and so has the shard key when it differs from the key, and every declared
index. They are created once per server and label per process (``_ENSURED``), and
``ensure`` waits until they are online, since scans force their use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from adapters.base import TOKEN_FIELD, ShardInfo
from adapters.graph._cypher import IDENT, columns, tick
from adapters.graph._label import Label
from adapters.graph._session import GraphSession
from adapters.registry import redact_url
from sharding.core.errors import StoreError, StoreTimeout
from sharding.core.model import EntitySchema

__all__ = ["SchemaOps"]


class _Ensured:
    """(server, database, label) whose constraints and indexes this process created or found.

    Per process, not per adapter: the adapters of a store's shards on one server share
    the work, and a second ``Toolkit`` in the process does not look again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: set[tuple[str, str | None, str]] = set()

    def __contains__(self, memo: tuple[str, str | None, str]) -> bool:
        with self._lock:
            return memo in self._done

    def add(self, memo: tuple[str, str | None, str]) -> None:
        with self._lock:
            self._done.add(memo)

    def discard(self, memo: tuple[str, str | None, str]) -> None:
        with self._lock:
            self._done.discard(memo)


_ENSURED = _Ensured()


def _statements(label: Label, with_token: bool) -> dict[str, str]:
    """Name -> ``CREATE ... IF NOT EXISTS`` of every constraint and index ``label`` needs."""
    schema = label.schema
    statements = {
        f"{label.name}__key": f"CREATE CONSTRAINT {tick(label.name + '__key')} IF NOT EXISTS "
        f"FOR (n:{label.q}) REQUIRE ({columns('n', schema.key)}) IS UNIQUE"
    }
    indexes: list[tuple[str, tuple[str, ...]]] = []
    if with_token:
        indexes.append(("token", (TOKEN_FIELD,)))
    if schema.shard_key != schema.key:
        indexes.append(("shard", schema.shard_key))
    indexes += [("ix_" + "_".join(index), index) for index in schema.indexes]
    for suffix, names in indexes:
        name = f"{label.name}__{suffix}"
        statements[name] = f"CREATE INDEX {tick(name)} IF NOT EXISTS FOR (n:{label.q}) ON ({columns('n', names)})"
    return statements


class SchemaOps(GraphSession):
    """The lifecycle half of ``GraphAdapter``."""

    def ensure(self, schema: EntitySchema, *, with_token: bool) -> None:
        label = self._label(schema)
        memo = (self._server, self.database, label.name)
        with self._lock:
            if label.name in self._with_token:
                return
            if memo in _ENSURED:  # another adapter of this process did the work
                self._with_token[label.name] = with_token
                return
            statements = _statements(label, with_token)
            # One parameterised look-up first: re-ensuring an existing label costs one cached query.
            existing = {record["name"] for record in self._schema_of(label.name, "INDEXES")}
            missing = [name for name in statements if name not in existing]
            for name in missing:
                self._auto(statements[name])
            self._await_online(missing)
            self._with_token[label.name] = with_token
            _ENSURED.add(memo)

    def _await_online(self, names: Sequence[str]) -> None:
        """Wait until new indexes are ONLINE (scans force their use), polling without locks.

        Not ``db.awaitIndexes``: it waits for every index of the database inside a
        transaction, and deadlocks with another process's constraint being created.
        """
        deadline = time.monotonic() + self.options.index_timeout
        delay = 0.01
        query = "SHOW INDEXES YIELD name, state WHERE name IN $names RETURN name, state"
        while names:
            states = {record["name"]: record["state"] for record in self._auto(query, {"names": list(names)})}
            failed = [name for name, state in states.items() if state == "FAILED"]
            if failed:
                raise StoreError(f"index {failed[0]} failed to build", store=self.store, shard=self.shard)
            if all(states.get(name) == "ONLINE" for name in names):
                return
            if time.monotonic() > deadline:
                raise StoreTimeout(f"indexes {', '.join(names)} not online in time", store=self.store, shard=self.shard)
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _schema_of(self, label: str, kind: str) -> list[Any]:
        """The constraints or indexes (``kind``) on ``label``, by name."""
        query = f"SHOW {kind} YIELD name, labelsOrTypes WHERE $label IN labelsOrTypes RETURN name"
        return self._auto(query, {"label": label})

    def drop(self, schema: EntitySchema) -> None:
        label = self._label(schema)
        with self._lock:
            self._with_token.pop(label.name, None)
            _ENSURED.discard((self._server, self.database, label.name))
            self._drop_label(label.name)

    def _drop_label(self, name: str) -> None:
        """Delete every node of a label (in bounded transactions), then its constraints and indexes."""
        batch = f"MATCH (n:{tick(name)}) WITH n LIMIT 5000 DETACH DELETE n RETURN count(*) AS c"
        while self._records(batch, {}, write=True)[0]["c"]:
            pass
        for kinds, kind in (("CONSTRAINTS", "CONSTRAINT"), ("INDEXES", "INDEX")):
            for record in self._schema_of(name, kinds):
                self._auto(f"DROP {kind} {tick(record['name'])} IF EXISTS")

    def describe(self) -> ShardInfo:
        server = f"neo4j {redact_url(self.url)}"
        try:
            labels = [record["label"] for record in self._records("CALL db.labels() YIELD label RETURN label", {})]
            counts: dict[str, int] = {}
            for name in sorted(labels):
                if not name.startswith(self._prefix) or not IDENT.match(name):
                    continue
                found = self._records(f"MATCH (n:{tick(name)}) RETURN count(n) AS c", {})
                counts[name.removeprefix(self._prefix)] = int(found[0]["c"])
            return ShardInfo(reachable=True, tables=counts, server=server)
        except StoreError as exc:
            return ShardInfo(reachable=False, error=str(exc), server=server)
