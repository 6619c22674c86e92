"""What every part of the graph adapter stands on: the driver, labels and managed transactions.

Every call opens a session and runs a *managed* transaction (``execute_read`` /
``execute_write``), so the driver retries transient failures (for at most the
``retry_time`` option) and no connection is shared between threads. Schema changes
and batched deletes are auto-commit statements (``_auto``), as Neo4j requires.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

import neo4j

from adapters.base import Adapter, AdapterOptions, Row
from adapters.graph._connection import DriverLease, GraphOptions
from adapters.graph._errors import translating
from adapters.graph._label import Label
from sharding.core.errors import NotFoundError
from sharding.core.model import EntitySchema

__all__ = ["GraphSession"]

T = TypeVar("T")


class GraphSession(Adapter):
    """The plumbing the graph adapter's parts share (see ``GraphAdapter``)."""

    Options: ClassVar[type[AdapterOptions]] = GraphOptions
    options: GraphOptions

    def _open(self) -> None:
        self._lease = DriverLease(self.url, self.options)
        self.driver = self._lease.driver
        self.database = self._lease.database
        self._server = self._lease.server
        self._prefix = self.options.namespace + self._lease.prefix
        self._with_token: dict[str, bool] = {}
        """Labels this adapter ensured, and whether their rows carry the token."""
        self._labels: dict[str, Label] = {}
        self._lock = threading.Lock()

    def _label(self, schema: EntitySchema) -> Label:
        """The entity's label, built once per declaration (every call needs it)."""
        found = self._labels.get(schema.name)
        if found is not None and found.schema is schema:
            return found
        found = Label.of(schema, self._prefix)
        self._labels[schema.name] = found
        return found

    @contextlib.contextmanager
    def _session(self, key: Any = None) -> Iterator[neo4j.Session]:
        """A session on this shard's database, its driver errors translated."""
        with translating(self.store, self.shard, key), self.driver.session(database=self.database) as session:
            yield session

    def _read(self, work: Callable[[neo4j.ManagedTransaction], T], key: Any = None) -> T:
        with self._session(key) as session:
            return session.execute_read(work)

    def _write(self, work: Callable[[neo4j.ManagedTransaction], T], key: Any = None) -> T:
        with self._session(key) as session:
            return session.execute_write(work)

    def _records(self, query: str, params: Mapping[str, Any], *, write: bool = False, key: Any = None) -> list[Any]:
        """Every record of one query, in a managed read (or write) transaction."""

        def work(tx: neo4j.ManagedTransaction) -> list[Any]:
            return list(tx.run(query, dict(params)))

        return self._write(work, key) if write else self._read(work, key)

    def _nodes(self, label: Label, query: str, params: Mapping[str, Any], *, key: Any = None) -> list[Row]:
        """The rows of a read query that returns node properties as ``p``."""
        return [label.decode(record["p"]) for record in self._records(query, params, key=key)]

    def _auto(self, query: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """An auto-commit statement: schema changes and ``CALL {} IN TRANSACTIONS``."""
        with self._session() as session:
            return list(session.run(query, dict(params or {})))

    def _missing(self, schema: EntitySchema, key: Any) -> NotFoundError:
        """The error for a node that an operation needs and that does not exist."""
        return NotFoundError(f"{schema.name} does not exist", store=self.store, shard=self.shard, key=key)

    def ping(self) -> None:
        self._records("RETURN 1 AS ok", {})

    def close(self) -> None:
        self._lease.release()
