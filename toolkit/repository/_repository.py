"""``Repository[E]``: validation, routing and merging for the core operations and the
single-row capabilities (the graph operations are in ``_graph``)."""

from __future__ import annotations

import builtins
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

from adapters.base import (
    TOKEN_FIELD,
    Adapter,
    Capability,
    Direction,
    Filter,
    Order,
    Query,
    Relationship,
    Row,
    sort_key,
)
from sharding.base import ShardId
from toolkit._rows import row_builder
from toolkit.errors import CrossShardError, QueryError
from toolkit.model import Entity, EntitySchema, EntityValidationError, FieldSpec, schema_of
from toolkit.repository._query import KeyCheck, key_constraint, parse_order, parse_where, rel_type
from toolkit.repository._query import direction as check_direction
from toolkit.routing import RoutingState, WriteRoute
from toolkit.stores import Store

__all__ = ["Repository"]

E = TypeVar("E", bound=Entity)
T = TypeVar("T")

Where = Mapping[str, Any] | Iterable[Filter] | None


class Repository(Generic[E]):
    """Typed access to one entity's rows across all shards of its store."""

    def __init__(self, entity: type[E], store: Store, executor: Callable[[], Executor]) -> None:
        self.entity = entity
        self.schema = schema_of(entity)
        self.store = store
        self._executor = executor
        self._row_of = row_builder(entity, self.schema)
        self._check_key = KeyCheck(entity.__name__, self.schema)
        self._shard_key_is_key = self.schema.shard_key == self.schema.key

    def __repr__(self) -> str:
        return f"<Repository {self.entity.__name__} in store {self.store.name!r}>"

    # -- conversion ------------------------------------------------------------------
    def _to_row(self, entity: E | Mapping[str, Any]) -> tuple[E, Row]:
        """The validated entity and its stored row (fields and token; see ``toolkit._rows``)."""
        if not isinstance(entity, self.entity):
            entity = self.entity.parse(entity)
        return entity, self._row_of(entity)

    def _rows(self, entities: Iterable[E | Mapping[str, Any]]) -> list[Row]:
        """``_to_row`` over a batch, in one loop: every entity validated before any I/O."""
        cls, parse, row_of = self.entity, self.entity.parse, self._row_of
        return [row_of(entity if isinstance(entity, cls) else parse(entity)) for entity in entities]

    def _from_row(self, row: Row) -> E:
        row.pop(TOKEN_FIELD, None)
        return self.entity.parse(row)

    def field(self, name: str) -> FieldSpec:
        """The declared field ``name``; a QueryError naming the fields if there is none."""
        try:
            return self.schema.field(name)
        except KeyError:
            raise QueryError(
                f"{self.entity.__name__}: unknown field {name!r} (fields: {', '.join(self.schema.field_names)})"
            ) from None

    def check_increment(self, field: str, amount: int | float) -> None:
        """Refuse what ``increment`` would refuse (a field that is not a number, a float
        added to an int), before anything is written or recorded."""
        spec = self.field(field)
        if spec.type not in ("int", "float"):
            raise QueryError(f"{self.entity.__name__}.{field} is {spec.type}; increment needs int or float")
        if spec.type == "int" and not isinstance(amount, int):
            raise QueryError(f"{self.entity.__name__}.{field} is int; increment it by an int, not {amount!r}")

    def _validate_field(self, name: str, value: Any) -> None:
        try:
            annotation = self.entity.model_fields[name].annotation
            TypeAdapter(Any if annotation is None else annotation).validate_python(value)
        except ValidationError as exc:
            raise EntityValidationError(f"{self.entity.__name__}.{name}", exc) from None

    # -- routing ---------------------------------------------------------------------
    @property
    def capabilities(self) -> Capability:
        """What every shard of the store offers (``adapters.base.Capability``)."""
        return self.store.capabilities

    def _routing(self) -> RoutingState:
        """The store's routing state, refreshed if it is older than the poll interval."""
        self.store.poll()
        return self.store.routing

    def _adapter(self, shard: ShardId) -> Adapter:
        return self.store.ensure(self.schema, shard)

    def _route_key(self, key: Any, shard_key: Any) -> Any:
        """What routes ``key``: the key itself, or the shard key if given (None: unknown)."""
        return key if self._shard_key_is_key else shard_key

    def _write_route(self, key: Any, route_key: Any) -> WriteRoute:
        """Where a write of ``key`` goes (waits while a rebalance fences it); logs the key
        first when a rebalance in flight must re-sync it. A ``route_key`` of None (shard key
        unknown) reaches every shard that may hold the key."""
        route = self.store.routing.write_anywhere() if route_key is None else self.store.write_route(route_key)
        if route.tracked:
            self.store.track(self.schema, [(key, route_key)])
        return route

    def _fan_out(self, shards: Sequence[ShardId], call: Callable[[Adapter], T]) -> list[T]:
        """Run ``call`` on every shard's adapter, in parallel when there are several."""
        adapters = [self._adapter(shard) for shard in shards]
        if len(adapters) == 1:
            return [call(adapters[0])]
        return list(self._executor().map(call, adapters))

    def _each_shard(self, by_shard: Mapping[ShardId, list[Any]], call: Callable[[Adapter, list[Any]], T]) -> list[T]:
        """``call(adapter, its items)`` for every shard of ``by_shard``, in parallel."""
        return self._fan_out(list(by_shard), lambda adapter: call(adapter, by_shard[ShardId(adapter.shard)]))

    def _owner_key(self, key: Any, shard_key: Any) -> Any:
        """What routes a single-row capability: it acts on one shard, so the shard key must be known."""
        self._check_key(key)
        self.store.poll()
        route = self._route_key(key, shard_key)
        if route is None:
            raise QueryError(
                f"{self.entity.__name__}: its shard key ({', '.join(self.schema.shard_key)}) differs from its "
                "key: pass shard_key=..."
            )
        return route

    def owner(self, key: Any, *, shard_key: Any = None) -> Adapter:
        """The adapter (behind its shard's guard) of the one shard that owns ``key`` now."""
        return self._adapter(self.store.router.shard_for(self._owner_key(key, shard_key)))

    def _write_owner(self, key: Any, shard_key: Any) -> Adapter:
        """The adapter a single-row change of ``key`` goes to.

        During a rebalance that is the current owner only (it stays authoritative until
        cut-over; the rebalance's catch-up carries the change over): logged, and held
        while the key is fenced, like every write.
        """
        return self._adapter(self._write_route(key, self._owner_key(key, shard_key)).owner)

    # -- writes ----------------------------------------------------------------------
    def put(self, entity: E | Mapping[str, Any], *, ttl: float | None = None) -> E:
        """Insert or replace one entity; returns the validated entity.

        ``ttl`` (seconds; default: the entity's declared ttl) makes it expire, on
        adapters with the TTL capability.
        """
        valid, row = self._to_row(entity)
        expiry = self._ttl(ttl)
        self.store.poll()
        for shard in self._write_route(self.schema.key_of(row), self.schema.shard_key_of(row)).shards:
            if expiry is None:
                self._adapter(shard).put(self.schema, row)
            else:
                self._adapter(shard).put_ttl(self.schema, [row], expiry)
        return valid

    def _ttl(self, ttl: float | None) -> float | None:
        ttl = self.schema.ttl if ttl is None else ttl
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0):
            raise QueryError(f"{self.entity.__name__}: ttl must be a positive number of seconds, not {ttl!r}")
        return ttl

    def put_many(self, entities: Iterable[E | Mapping[str, Any]], *, ttl: float | None = None) -> int:
        """Insert or replace many entities, one batch per shard; returns how many.

        Every entity is validated before anything is written.
        """
        rows = self._rows(entities)
        if not rows:
            return 0
        expiry = self._ttl(ttl)
        self.store.poll()
        by_shard, twice = self._rows_by_shard(rows)
        if expiry is None:
            written = self._each_shard(by_shard, lambda adapter, batch: adapter.put_many(self.schema, batch))
        else:
            written = self._each_shard(by_shard, lambda adapter, batch: adapter.put_ttl(self.schema, batch, expiry))
        return len(rows) if twice else sum(written)  # rows written to two owners count once

    def _rows_by_shard(self, rows: list[Row]) -> tuple[dict[ShardId, list[Row]], bool]:
        """Each row under every shard its write goes to, and whether any goes to two."""
        state = self.store.routing
        router = state.router
        by_shard: dict[ShardId, list[Row]] = defaultdict(list)
        if state.steady:  # one owner per key: route the batch by the tokens the rows carry
            by_tokens = getattr(router, "shards_for_tokens", None) if router.kind == "hash" else None
            if by_tokens is not None and len(router.shards) == 1:
                return {router.shards[0]: rows}, False
            if by_tokens is not None:
                owners = by_tokens([row[TOKEN_FIELD] for row in rows])
            else:
                owners = [router.shard_for(self.schema.shard_key_of(row)) for row in rows]
            for owner, row in zip(owners, rows, strict=True):
                by_shard[owner].append(row)
            return by_shard, False
        tracked: list[tuple[Any, Any]] = []
        for row in rows:
            shard_key = self.schema.shard_key_of(row)
            route = self.store.write_route(shard_key)
            if route.tracked:
                tracked.append((self.schema.key_of(row), shard_key))
            for shard in route.shards:
                by_shard[shard].append(row)
        if tracked:
            self.store.track(self.schema, tracked)
        return by_shard, bool(tracked)

    def delete(self, key: Any, *, shard_key: Any = None) -> bool:
        """Delete one entity by key; True if it existed."""
        self._check_key(key)
        self.store.poll()
        route = self._write_route(key, self._route_key(key, shard_key))
        if route.tracked:  # the current owner, then the copy: in order, no short cut
            deleted = [self._adapter(shard).delete(self.schema, key) for shard in route.shards]
        else:
            deleted = self._fan_out(route.shards, lambda adapter: adapter.delete(self.schema, key))
        return deleted[0] if self._shard_key_is_key else any(deleted)

    def delete_many(self, keys: Iterable[Any]) -> int:
        """Delete entities by key; returns how many existed."""
        keys = [self._check_key(key) for key in keys]
        self.store.poll()
        counted: dict[ShardId, list[Any]] = defaultdict(list)
        copies: dict[ShardId, list[Any]] = defaultdict(list)  # a rebalance's copies: deleted, not counted
        tracked: list[tuple[Any, Any]] = []
        anywhere = None if self._shard_key_is_key else self.store.routing.write_anywhere()
        for key in keys:
            route = anywhere or self.store.write_route(key)
            if route.tracked:
                tracked.append((key, key if anywhere is None else None))
            owners = route.shards if anywhere is not None else route.shards[:1]
            for shard in owners:
                counted[shard].append(key)
            for shard in route.shards[len(owners) :]:
                copies[shard].append(key)
        if tracked:
            self.store.track(self.schema, tracked)
        existed = sum(self._each_shard(counted, lambda adapter, batch: adapter.delete_many(self.schema, batch)))
        if copies:
            self._each_shard(copies, lambda adapter, batch: adapter.delete_many(self.schema, batch))
        return existed

    # -- reads -----------------------------------------------------------------------
    def get(self, key: Any, *, shard_key: Any = None) -> E | None:
        """The entity with this key, or None. Touches one shard when the router can tell.

        If the entity's shard key differs from its key, pass ``shard_key`` to avoid
        asking every shard.
        """
        self._check_key(key)
        state = self._routing()
        for shard in state.read(self._route_key(key, shard_key)):
            row = self._adapter(shard).get(self.schema, key)
            if row is not None and state.owns(shard, self.schema.shard_key_of(row)):
                return self._from_row(row)
        return None

    def get_many(self, keys: Iterable[Any]) -> dict[Any, E]:
        """The entities that exist among ``keys``, by key."""
        keys = [self._check_key(key) for key in keys]
        state = self._routing()
        by_shard: dict[ShardId, list[Any]] = defaultdict(list)
        if self._shard_key_is_key:
            for key in keys:
                for shard in state.read(key):
                    by_shard[shard].append(key)
        else:
            by_shard.update((shard, keys) for shard in state.router.shards)
        found: dict[Any, E] = {}
        results = self._each_shard(by_shard, lambda adapter, batch: adapter.get_many(self.schema, batch))
        for shard, rows in zip(by_shard, results, strict=True):
            for row in state.owned(shard, rows, self.schema.shard_key_of):
                entity = self._from_row(row)
                found.setdefault(entity.entity_key, entity)
        return found

    def find(
        self, where: Where = None, *, order_by: str | Sequence[str | Order] | None = None, limit: int | None = None
    ) -> list[E]:
        """Entities matching ``where``, ordered (ties by key) and limited.

        Visits only the shards the router cannot rule out, in parallel, and merges.
        """
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise QueryError(f"limit must be a non-negative integer, not {limit!r}")
        query = Query(parse_where(where), parse_order(order_by), limit)
        state = self._routing()
        shards = state.router.shards_for_query(key_constraint(self.schema, query.filters))
        if limit == 0:
            return []
        if not state.steady:  # copies get dropped, so shards must not stop at the limit
            query = Query(query.filters, query.order_by, None)
        results = self._fan_out(shards, lambda adapter: adapter.find(self.schema, query))
        found = [
            state.owned(shard, rows, self.schema.shard_key_of) for shard, rows in zip(shards, results, strict=True)
        ]
        rows = [row for rows in found for row in rows]
        if len(results) > 1 or not state.steady:
            rows.sort(key=sort_key(self.schema, query.order_by))
            if limit is not None:
                rows = rows[:limit]
        return [self._from_row(row) for row in rows]

    def first(self, where: Where = None, *, order_by: str | Sequence[str | Order] | None = None) -> E | None:
        """The first entity ``find`` would return, or None."""
        found = self.find(where, order_by=order_by, limit=1)
        return found[0] if found else None

    def count(self, where: Where = None) -> int:
        """How many entities match ``where``, summed over the shards that may hold them."""
        filters = parse_where(where)
        state = self._routing()
        shards = state.router.shards_for_query(key_constraint(self.schema, filters))
        if state.steady:
            return sum(self._fan_out(shards, lambda adapter: adapter.count(self.schema, filters)))
        query = Query(filters)  # count the owned rows only (slow, during a rebalance)
        results = self._fan_out(shards, lambda adapter: adapter.find(self.schema, query))
        return sum(
            len(state.owned(shard, rows, self.schema.shard_key_of)) for shard, rows in zip(shards, results, strict=True)
        )

    def shards_for(self, where: Where = None) -> tuple[ShardId, ...]:
        """The shards a ``find``/``count`` with this ``where`` would visit (for explaining queries)."""
        return self.store.router.shards_for_query(key_constraint(self.schema, parse_where(where)))

    def shards_for_key(self, key: Any, *, shard_key: Any = None) -> tuple[ShardId, ...]:
        """The shards a ``get`` of this key would ask."""
        self._check_key(key)
        return self.store.routing.read(self._route_key(key, shard_key))

    def count_by_shard(self) -> dict[str, int]:
        """Rows of this entity per shard: what the distribution bars draw."""
        shards = self.store.router.shards
        counts = self._fan_out(shards, lambda adapter: adapter.count(self.schema))
        return {str(shard): count for shard, count in zip(shards, counts, strict=True)}

    def scan(self, *, batch_size: int = 500) -> Iterator[E]:
        """Every entity, shard by shard, in key order within a shard (keyset pagination)."""
        self.store.poll()
        for shard in self.store.router.shards:
            for batch in self._adapter(shard).scan(self.schema, batch_size=batch_size):
                for row in self.store.routing.owned(shard, batch, self.schema.shard_key_of):
                    yield self._from_row(row)

    # -- single-row capabilities (see adapters.base.Adapter for the exact semantics) ----
    def ttl(self, key: Any, *, shard_key: Any = None) -> float | None:
        """Seconds until the entity expires; None if it never does or does not exist (TTL)."""
        return self.owner(key, shard_key=shard_key).ttl(self.schema, key)

    def increment(self, key: Any, field: str, amount: int | float = 1, *, shard_key: Any = None) -> int | float:
        """Atomically add ``amount`` to a numeric field; returns the new value (ATOMIC_INCREMENT)."""
        self.check_increment(field, amount)
        return self._write_owner(key, shard_key).increment(self.schema, key, field, amount)

    def increment_once(
        self,
        key: Any,
        field: str,
        amount: int | float,
        *,
        marker: str,
        undo: bool = False,
        shard_key: Any = None,
    ) -> int | float | None:
        """``increment`` tied to ``marker``, applied exactly once however often it is
        repeated; ``undo`` reverses it if it was applied, else leaves a tombstone (APPLY_ONCE).

        Routed like ``increment``; what a saga step calls (``toolkit.saga``).
        """
        self.check_increment(field, amount)
        adapter = self._write_owner(key, shard_key)
        return adapter.increment_once(self.schema, key, field, amount, marker=marker, undo=undo)

    def update(self, key: Any, changes: Mapping[str, Any], *, shard_key: Any = None) -> bool:
        """Set fields or dotted paths of one entity; False if it does not exist (PARTIAL_UPDATE).

        Top-level fields are validated against the entity; key fields cannot change.
        """
        for path, value in changes.items():
            name = path.split(".", 1)[0]
            spec = self.field(name)
            if name in self.schema.key or name in self.schema.shard_key:
                raise QueryError(f"{self.entity.__name__}.{name} is part of the key or shard key; it cannot change")
            if "." in path and spec.type != "json":
                raise QueryError(f"{self.entity.__name__}.{name} is {spec.type}, not a nested field: {path!r}")
            if "." not in path:
                self._validate_field(name, value)
        return self._write_owner(key, shard_key).update(self.schema, key, dict(changes))

    def partition(
        self,
        partition: Any,
        *,
        start: Any = None,
        end: Any = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[E]:
        """One partition's entities in clustering order, ``start <= c < end`` (PARTITION_RANGE)."""
        if len(self.schema.key) <= len(self.schema.shard_key):
            raise QueryError(
                f"{self.entity.__name__}: a partition read needs a clustering key: declare key=(partition, "
                "clustering...) with shard_key=partition"
            )
        adapter = self._adapter(self.store.router.shard_for(partition))
        rows = adapter.partition(self.schema, partition, start=start, end=end, descending=descending, limit=limit)
        return [self._from_row(row) for row in rows]

    # -- relationships (GRAPH) ---------------------------------------------------------
    def relate(
        self, source: Any, type: str, target: Any, *, to: builtins.type[Entity] | None = None, **properties: Any
    ) -> None:
        """Create (or replace) the ``type`` edge source -> target, on one shard (GRAPH).

        ``to`` is the target's entity class (default: this one). Raises CrossShardError
        when the two ends live on different shards.
        """
        target_schema = schema_of(to) if to is not None else self.schema
        adapter = self._graph_owner(source, target, target_schema, write=True)
        adapter.relate(self.schema, Relationship(rel_type(type), source, target, properties), target_schema)

    def unrelate(self, source: Any, type: str, target: Any, *, to: builtins.type[Entity] | None = None) -> bool:
        """Remove the ``type`` edge source -> target; True if it existed (GRAPH)."""
        target_schema = schema_of(to) if to is not None else self.schema
        adapter = self._graph_owner(source, target, target_schema, write=True)
        return adapter.unrelate(self.schema, Relationship(rel_type(type), source, target), target_schema)

    def _graph_owner(self, source: Any, target: Any, target_schema: EntitySchema, *, write: bool = False) -> Adapter:
        """The one shard holding both ends of an edge.

        An edge change during a rebalance goes to the current owner, like the other
        single-row writes: held while the source node is fenced, and logged as that node,
        so that the rebalance's catch-up re-syncs its edges on the new owner. An edge the
        rebalance's target topology would split is refused now rather than lost or
        refused at cut-over.
        """
        self._check_key(source)
        if self.schema.shard_key != self.schema.key or target_schema.shard_key != target_schema.key:
            raise QueryError("graph entities must be sharded by their key (shard_key = key)")
        if write:
            self.store.poll()
        state = self.store.routing
        source_shard = state.router.shard_for(source)
        target_shard = state.router.shard_for(target)
        if source_shard != target_shard:
            raise CrossShardError(
                f"{self.entity.__name__} {source!r} is on {source_shard} but {target_schema.name} {target!r} is on "
                f"{target_shard}: relationships stay within one shard (co-locate them, e.g. with a directory router)",
                store=self.store.name,
            )
        if not write:
            return self._adapter(source_shard)
        if state.splits(source, target):
            raise CrossShardError(
                f"{self.entity.__name__} {source!r} and {target_schema.name} {target!r} go to different shards "
                f"in rebalance {state.rebalance}: relationships stay within one shard (relate them after the "
                "rebalance, or co-locate them in its target topology)",
                store=self.store.name,
            )
        return self._adapter(self._write_route(source, source).owner)

    def neighbors(
        self,
        key: Any,
        *,
        type: str | None = None,
        direction: Direction = "out",
        to: builtins.type[Entity] | None = None,
    ) -> list[tuple[Any, Relationship]]:
        """Entities one edge away, with the edge, ordered by their key (GRAPH).

        ``to`` is the neighbours' entity class (default: this one).
        """
        target_cls: builtins.type[Entity] = to or self.entity
        found = self.owner(key).neighbors(
            self.schema,
            key,
            type=rel_type(type) if type else None,
            direction=check_direction(direction),
            target=schema_of(target_cls),
        )
        result = []
        for neighbor in found:
            row = dict(neighbor.row)
            row.pop(TOKEN_FIELD, None)
            result.append((target_cls.parse(row), neighbor.relationship))
        return result

    def traverse(
        self, key: Any, *, type: str | None = None, direction: Direction = "out", depth: int = 2
    ) -> list[tuple[int, E]]:
        """Distinct entities reachable in 1..depth edges, as (distance, entity) (GRAPH)."""
        if not isinstance(depth, int) or depth < 1:
            raise QueryError(f"depth must be a positive integer, not {depth!r}")
        rows = self.owner(key).traverse(
            self.schema,
            key,
            type=rel_type(type) if type else None,
            direction=check_direction(direction),
            depth=depth,
        )
        return [(distance, self._from_row(dict(row))) for distance, row in rows]

    def shortest_path(
        self,
        source: Any,
        target: Any,
        *,
        type: str | None = None,
        direction: Direction = "out",
        max_depth: int = 6,
    ) -> list[E] | None:
        """The entities on a shortest path source..target, both included; None if none (GRAPH)."""
        adapter = self._graph_owner(source, target, self.schema)
        rows = adapter.shortest_path(
            self.schema,
            source,
            target,
            type=rel_type(type) if type else None,
            direction=check_direction(direction),
            max_depth=max_depth,
        )
        return None if rows is None else [self._from_row(dict(row)) for row in rows]
