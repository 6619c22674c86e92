"""The adapter contract: what every backend (one instance per shard) must implement.

Adapters speak in *rows*: plain dicts keyed by field name, with scalar fields as Python
values (str, int, float, bool, bytes, datetime, date, Decimal, UUID) and ``json`` fields
as JSON-able values (dict, list, str, number, bool, None). The repository turns entities
into rows and back; adapters never see pydantic. Hash-routed stores add one hidden field,
``TOKEN_FIELD``, the row's 64-bit token, which adapters store indexed so that a token
range (what a rebalance moves) is read without a full scan.

Queries are data (``Filter``, ``Order``, ``Query``), never strings: every adapter sends
values as driver parameters, so a value that looks like SQL, CQL, Cypher or a ``$``
operator is stored and compared literally.

What a backend offers beyond the core is declared in ``capabilities``; asking for one it
lacks raises ``UnsupportedCapability`` through ``require``.
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from adapters._contract import CONTRACT, Call
from adapters._options import AdapterOptions, parse_options
from adapters._types import (
    OPERATORS,
    Direction,
    Filter,
    Neighbor,
    Operator,
    Order,
    Query,
    RangeChecksum,
    Relationship,
    Row,
    ShardInfo,
    resolve_path,
    sort_key,
)
from sharding.base import KeyRange, TokenRange
from sharding.core.errors import UnsupportedCapability
from sharding.core.limits import DEFAULT_LIMITS, ValueLimits

if TYPE_CHECKING:
    from sharding.core.model import EntitySchema

__all__ = [
    "CONTRACT",
    "EXPIRES_FIELD",
    "OPERATORS",
    "TOKEN_FIELD",
    "Adapter",
    "AdapterOptions",
    "Call",
    "Capability",
    "Direction",
    "ExpiringScan",
    "Filter",
    "Neighbor",
    "Operator",
    "Order",
    "Query",
    "RangeChecksum",
    "Relationship",
    "Row",
    "ShardInfo",
    "parse_options",
    "resolve_path",
    "sort_key",
]

TOKEN_FIELD: Final = "_ps_token"
"""The hidden, indexed field holding a hash-routed row's 64-bit token."""

EXPIRES_FIELD: Final = "_ps_expires"
"""The hidden field of rows read with ``scan_expiring``/``get_many_expiring`` and written
with ``put_expiring``: the row's expiry instant in epoch seconds (float), None if it never
expires. Absolute, not remaining, so a row that waits in a batch does not live longer.
(Adapters that keep an expiry column may store it under this name; rows from the plain
``scan``/``get``/``get_many`` never carry it.)"""


class Capability(enum.Flag):
    """What an adapter offers beyond the core operations."""

    NONE = 0
    TRANSACTIONS = enum.auto()
    """Atomic multi-row writes within one shard."""
    TTL = enum.auto()
    """Rows expire after a time-to-live; expiry is observable through get."""
    NESTED_FILTERS = enum.auto()
    """Filters on dotted paths inside JSON/document fields."""
    PARTITION_RANGE = enum.auto()
    """Range reads within one partition, in clustering order."""
    GRAPH = enum.auto()
    """Relationships between entities, neighbours and traversal."""
    ATOMIC_INCREMENT = enum.auto()
    """Increment a numeric field atomically on the server."""
    PARTIAL_UPDATE = enum.auto()
    """Set some fields (or dotted paths inside JSON fields) without rewriting the row."""
    APPLY_ONCE = enum.auto()
    """An increment tied to a marker, applied at most once and exactly once where the
    marker commits with the increment (``increment_once``): what a saga step repeats."""
    SCRIPTS = enum.auto()
    """Run a server-side script atomically (``run_script``): Redis Lua."""


class Adapter(ABC):
    """One shard of one store, on one backend. Thread-safe: the repository fans out.

    Subclasses set ``capabilities`` and implement the abstract core. Every driver
    exception is translated into ``toolkit.errors`` before it leaves a method.
    """

    capabilities: ClassVar[Capability] = Capability.NONE
    Options: ClassVar[type[AdapterOptions]] = AdapterOptions
    """The typed options of this adapter (``[stores.NAME.options]``); see ``adapters._options``."""
    value_limits: ClassVar[ValueLimits] = DEFAULT_LIMITS
    """What this backend stores exactly (``sharding.core.limits``): the repository refuses a
    row past these limits with a ValidationError naming the field, before any write."""

    def __init__(
        self, url: str, *, store: str, shard: str, options: Mapping[str, Any] | AdapterOptions | None = None
    ) -> None:
        self.url = url
        self.store = store
        self.shard = shard
        self.options: AdapterOptions = parse_options(type(self).Options, options, store=store, shard=shard)
        self._open()

    def _open(self) -> None:  # noqa: B027 - optional hook, the backends override it
        """Set up what the backend needs, once ``url``, ``store``, ``shard`` and the typed
        ``options`` are in place: subclasses override this hook instead of ``__init__``, so
        the constructor's signature and option parsing are written once, here."""

    # -- lifecycle -------------------------------------------------------------------
    @abstractmethod
    def ensure(self, schema: EntitySchema, *, with_token: bool) -> None:
        """Create the table/collection (and indexes) for ``schema`` if missing. Idempotent."""

    @abstractmethod
    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the backend answers."""

    @abstractmethod
    def describe(self) -> ShardInfo:
        """Reachability and row counts per table; never raises."""

    @abstractmethod
    def drop(self, schema: EntitySchema) -> None:
        """Remove the table/collection of ``schema`` and everything in it."""

    def close(self) -> None:  # noqa: B027 - optional hook, most adapters override it
        """Release connections. Safe to call twice."""

    # -- the core --------------------------------------------------------------------
    @abstractmethod
    def put(self, schema: EntitySchema, row: Row) -> None:
        """Insert or replace the row with this key (upsert)."""

    @abstractmethod
    def put_many(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        """Upsert many rows; returns how many were written."""

    @abstractmethod
    def get(self, schema: EntitySchema, key: Any) -> Row | None:
        """The row with this key, or None."""

    @abstractmethod
    def get_many(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        """The rows with these keys that exist, in no particular order."""

    @abstractmethod
    def delete(self, schema: EntitySchema, key: Any) -> bool:
        """Delete the row with this key; True if there was one."""

    @abstractmethod
    def delete_many(self, schema: EntitySchema, keys: Sequence[Any]) -> int:
        """Delete the rows with these keys; returns how many existed."""

    @abstractmethod
    def find(self, schema: EntitySchema, query: Query) -> list[Row]:
        """Rows matching every filter, ordered (then by key) and limited."""

    @abstractmethod
    def count(self, schema: EntitySchema, filters: Sequence[Filter] = ()) -> int:
        """How many rows match every filter."""

    @abstractmethod
    def scan(
        self,
        schema: EntitySchema,
        *,
        tokens: TokenRange | None = None,
        keys: KeyRange | None = None,
        batch_size: int = 500,
    ) -> Iterator[list[Row]]:
        """Every row (or those in a token range / shard-key range), in batches.

        Uses keyset pagination (never OFFSET), so rows written during the scan are seen
        at most once and the cost of each batch does not grow with the position.
        """

    # -- moving rows with their expiry ---------------------------------------------
    # What a rebalance copies with: the core reads and writes, plus each row's expiry
    # (EXPIRES_FIELD), so a TTL row arrives with its remaining time to live. Adapters
    # without TTL need nothing (the defaults are the core calls, at no extra cost);
    # TTL adapters should override all three (the defaults below are correct but ask
    # for each row's ttl separately).

    def scan_expiring(
        self,
        schema: EntitySchema,
        *,
        tokens: TokenRange | None = None,
        keys: KeyRange | None = None,
        batch_size: int = 500,
    ) -> Iterator[list[Row]]:
        """``scan``, each row carrying EXPIRES_FIELD (read with the row, or just after it).

        A row that expires between its read and its expiry's read is left out, never
        reported as one that does not expire.
        """
        if Capability.TTL not in self.capabilities:
            yield from self.scan(schema, tokens=tokens, keys=keys, batch_size=batch_size)
            return
        for batch in self.scan(schema, tokens=tokens, keys=keys, batch_size=batch_size):
            found = self._with_expiry(schema, batch)
            if found:
                yield found

    def get_many_expiring(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        """``get_many``, each row carrying EXPIRES_FIELD (see ``scan_expiring``)."""
        rows = self.get_many(schema, keys)
        if Capability.TTL not in self.capabilities:
            return rows
        return self._with_expiry(schema, rows)

    def _with_expiry(self, schema: EntitySchema, rows: list[Row]) -> list[Row]:
        """The fallback: one ``ttl`` per row, and a ``get`` where it says None (never
        expires, or gone: a gone row must not come back without its expiry)."""
        kept = []
        for row in rows:
            key = schema.key_of(row)
            remaining = self.ttl(schema, key)
            if remaining is None and self.get(schema, key) is None:
                continue
            row[EXPIRES_FIELD] = None if remaining is None else time.time() + remaining
            kept.append(row)
        return kept

    def put_expiring(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        """Upsert rows carrying EXPIRES_FIELD: each keeps its expiry instant (the rest of
        its time to live), rows without one never expire, rows already past theirs are
        deleted here instead of written. Returns how many rows were written or deleted.

        The default puts the rows without expiry in one ``put_many`` and the others with
        ``put_ttl`` grouped by instant; TTL adapters override it with one batch.
        """
        plain: list[Row] = []
        timed: dict[float, list[Row]] = {}
        for row in rows:
            instant = row.pop(EXPIRES_FIELD, None)
            if instant is None:
                plain.append(row)
            else:
                timed.setdefault(float(instant), []).append(row)
        written = self.put_many(schema, plain) if plain else 0
        if not timed:
            return written
        self.require(Capability.TTL)
        now = time.time()
        gone = [schema.key_of(row) for instant, group in timed.items() if instant <= now for row in group]
        if gone:
            self.delete_many(schema, gone)
        for instant, group in timed.items():
            if instant > now:
                written += self.put_ttl(schema, group, instant - now)
        return written + len(gone)

    # -- whole spans on the server --------------------------------------------------
    # Shortcuts a rebalance takes when the backend offers them: the defaults say "not
    # here" (None), and the caller falls back to the row-by-row path through the core.

    def range_checksum(
        self,
        schema: EntitySchema,
        *,
        tokens: TokenRange | None = None,
        keys: KeyRange | None = None,
        now: float | None = None,
    ) -> RangeChecksum | None:
        """Count and checksum of the live rows in a token or shard-key range, computed
        where the rows are (no row crosses the network); None if this adapter cannot.

        Covers every stored field (not the token, not the expiry); rows live at ``now``
        (epoch seconds, default: the current time; pass the same to both sides of a
        comparison). What a rebalance's verify compares first.
        """
        return None

    def delete_range(
        self,
        schema: EntitySchema,
        *,
        tokens: TokenRange | None = None,
        keys: KeyRange | None = None,
        batch_size: int | None = None,
    ) -> int | None:
        """Delete every row (expired or not) in a token or shard-key range without
        reading them back, in one statement (or statements of at most ``batch_size``
        rows, each its own transaction); how many went,
        or None (nothing deleted) if this adapter cannot do it for ``schema``.

        What a rebalance's cleanup uses once nobody routes the range here any more.
        """
        return None

    def stored_layout(self, schema: EntitySchema) -> str | None:
        """A name for how this adapter stores ``schema``'s rows, or None (the default) if
        it has no stored-form copy. Two adapters with the same name can move rows between
        them with ``scan_stored``/``put_stored``: as stored, without decoding a value
        into Python and encoding it again (what a rebalance copies with when it can)."""
        return None

    def scan_stored(
        self,
        schema: EntitySchema,
        *,
        tokens: TokenRange | None = None,
        keys: KeyRange | None = None,
        batch_size: int = 500,
    ) -> Iterator[list[tuple[Any, ...]]]:
        """``scan_expiring``'s live rows in their stored form (opaque tuples, expiry
        included), for ``put_stored`` on an adapter with the same ``stored_layout``."""
        raise UnsupportedCapability(
            f"{type(self).__name__} has no stored-form copy", store=self.store, shard=self.shard
        )

    def put_stored(self, schema: EntitySchema, rows: Sequence[tuple[Any, ...]]) -> int:
        """Upsert rows read by ``scan_stored`` on an adapter of the same ``stored_layout``,
        keeping their expiry. The token is either recomputed from the shard key or copied
        as stored: it is ``sharding.keys.token`` of the shard key on every shard."""
        raise UnsupportedCapability(
            f"{type(self).__name__} has no stored-form copy", store=self.store, shard=self.shard
        )

    # -- capabilities ----------------------------------------------------------------
    # Each raises UnsupportedCapability unless the adapter declares the capability and
    # overrides the method. Semantics are fixed here so every backend agrees.

    def put_ttl(self, schema: EntitySchema, rows: Sequence[Row], ttl: float) -> int:
        """TTL: upsert rows that expire ``ttl`` seconds from now (get returns None after)."""
        self.require(Capability.TTL)
        raise NotImplementedError

    def ttl(self, schema: EntitySchema, key: Any) -> float | None:
        """TTL: seconds until the row expires; None if it never does or does not exist."""
        self.require(Capability.TTL)
        raise NotImplementedError

    def increment(self, schema: EntitySchema, key: Any, field: str, amount: int | float) -> int | float:
        """ATOMIC_INCREMENT: add ``amount`` to a numeric field of an existing row, atomically.

        Returns the new value. Raises NotFoundError if the row does not exist; a null
        field counts as 0.
        """
        self.require(Capability.ATOMIC_INCREMENT)
        raise NotImplementedError

    def update(self, schema: EntitySchema, key: Any, changes: Mapping[str, Any]) -> bool:
        """PARTIAL_UPDATE: set fields or dotted paths (``"address.city"``) of one row.

        Other fields are untouched; intermediate objects of a path are created. Returns
        False if the row does not exist (nothing is created).
        """
        self.require(Capability.PARTIAL_UPDATE)
        raise NotImplementedError

    def partition(
        self,
        schema: EntitySchema,
        partition: Any,
        *,
        start: Any = None,
        end: Any = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[Row]:
        """PARTITION_RANGE: rows of one partition (the shard key's value), in clustering order.

        The clustering key is the part of the key that is not the shard key
        (``key=("customer", "at")``, ``shard_key="customer"``: clustering by ``at``).
        ``start`` is inclusive and ``end`` exclusive, on the (first) clustering field.
        """
        self.require(Capability.PARTITION_RANGE)
        raise NotImplementedError

    def relate(self, schema: EntitySchema, relationship: Relationship, target: EntitySchema) -> None:
        """GRAPH: create or replace the ``type`` edge source -> target (both must exist).

        At most one edge of a type between two nodes in one direction: relating again
        replaces its properties. Raises NotFoundError if either end is missing.
        """
        self.require(Capability.GRAPH)
        raise NotImplementedError

    def may_have_edges(self, schema: EntitySchema) -> bool:
        """False when this shard certainly holds no relationship of ``schema``'s nodes,
        so a rebalance can skip its edge pass. Default: whether the adapter has GRAPH."""
        return Capability.GRAPH in self.capabilities

    def edges_of(
        self, schema: EntitySchema, keys: Sequence[Any], other: EntitySchema, *, incoming: bool = False
    ) -> list[Relationship]:
        """GRAPH: every edge from a node of ``schema`` whose key is in ``keys`` to a node of
        ``other`` (with ``incoming``: from an ``other`` node to one of these), any type, in
        no particular order. What a rebalance moves edges with (see sharding.rebalance)."""
        self.require(Capability.GRAPH)
        raise NotImplementedError

    def unrelate(self, schema: EntitySchema, relationship: Relationship, target: EntitySchema) -> bool:
        """GRAPH: remove the ``type`` edge source -> target; True if it existed."""
        self.require(Capability.GRAPH)
        raise NotImplementedError

    def neighbors(
        self,
        schema: EntitySchema,
        key: Any,
        *,
        type: str | None = None,
        direction: Direction = "out",
        target: EntitySchema | None = None,
    ) -> list[Neighbor]:
        """GRAPH: nodes one edge away (of ``type``, if given), ordered by target key."""
        self.require(Capability.GRAPH)
        raise NotImplementedError

    def traverse(
        self,
        schema: EntitySchema,
        key: Any,
        *,
        type: str | None = None,
        direction: Direction = "out",
        depth: int = 1,
    ) -> list[tuple[int, Row]]:
        """GRAPH: distinct nodes reachable in 1..depth edges, as (distance, row), nearest first.

        The start node is not included. Within one distance, rows are ordered by key.
        Traversal stays within ``schema``'s entity (same-label paths).
        """
        self.require(Capability.GRAPH)
        raise NotImplementedError

    def shortest_path(
        self,
        schema: EntitySchema,
        source: Any,
        target: Any,
        *,
        type: str | None = None,
        direction: Direction = "out",
        max_depth: int = 6,
    ) -> list[Row] | None:
        """GRAPH: the nodes of a shortest path source..target (both included), or None."""
        self.require(Capability.GRAPH)
        raise NotImplementedError

    def increment_once(
        self, schema: EntitySchema, key: Any, field: str, amount: int | float, *, marker: str, undo: bool = False
    ) -> int | float | None:
        """APPLY_ONCE: ``increment`` tied to ``marker``, exactly once.

        The marker (a saga id and step) is stored by the backend atomically with the
        increment, so repeating the call does nothing. With ``undo``: reverse the
        increment if the marker says it was applied, or leave a tombstone so that an
        increment arriving later (a zombie retry) does nothing. Returns the field's value
        after the call (None if the row is gone on undo). Raises NotFoundError if the row
        does not exist on ``do``. Backends without it leave sagas to the log's
        check-then-act (at most once).
        """
        self.require(Capability.APPLY_ONCE)
        raise NotImplementedError

    def run_script(self, script: str, keys: Sequence[bytes | str], args: Sequence[Any]) -> Any:
        """SCRIPTS: run ``script`` on the server atomically with ``keys`` and ``args``.

        Keys are the adapter's own stored keys (see ``stored_key``); the caller owns the
        script's meaning. What server-side fences and conditional writes build on.
        """
        self.require(Capability.SCRIPTS)
        raise NotImplementedError

    def require(self, capability: Capability) -> None:
        """Raise ``UnsupportedCapability`` unless this adapter declares ``capability``."""
        if capability not in self.capabilities:
            raise UnsupportedCapability(
                f"{type(self).__name__} does not support {capability.name}",
                store=self.store,
                shard=self.shard,
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.store}/{self.shard}>"


class ExpiringScan(Adapter):
    """For adapters whose one scan loop serves both ``scan`` and ``scan_expiring``: the
    same walk, with or without EXPIRES_FIELD, so an adapter writes the loop once
    (``_scan_rows``) instead of repeating the entry points' signatures. A TTL adapter
    reads each row's expiry along with it; one without TTL ignores ``expiring`` (its
    rows never expire, so ``scan_expiring`` is ``scan``, as the default says)."""

    @abstractmethod
    def _scan_rows(
        self,
        schema: EntitySchema,
        tokens: TokenRange | None,
        keys: KeyRange | None,
        batch_size: int,
        *,
        expiring: bool,
    ) -> Iterator[list[Row]]:
        """The rows of ``scan``; with ``expiring``, each also carries EXPIRES_FIELD."""

    def scan(
        self,
        schema: EntitySchema,
        *,
        tokens: TokenRange | None = None,
        keys: KeyRange | None = None,
        batch_size: int = 500,
    ) -> Iterator[list[Row]]:
        return self._scan_rows(schema, tokens, keys, batch_size, expiring=False)

    def scan_expiring(
        self,
        schema: EntitySchema,
        *,
        tokens: TokenRange | None = None,
        keys: KeyRange | None = None,
        batch_size: int = 500,
    ) -> Iterator[list[Row]]:
        return self._scan_rows(schema, tokens, keys, batch_size, expiring=True)
