"""``Repository[E]``: the one interface an application uses for every store.

The repository validates entities, computes shard keys and tokens, asks the store's
router which shards to touch, and calls those shards' adapters: one shard for a read
by key, every shard the router cannot rule out for a query, in parallel, merged with
the query's order and limit.

Filters are data::

    users.find(where={"age": {"ge": 18}, "country": "NL"}, order_by=["-age", "name"], limit=10)

A field maps to a value (equality) or to ``{operator: value}`` with operators
``eq ne lt le gt ge in contains`` (``contains``: a JSON array holds the value).
Dotted fields (``"address.city"``) filter inside nested fields on stores whose adapter
has NESTED_FILTERS. A dict that is a value rather than operators is written as
``{"eq": {...}}``. Nothing is ever interpolated into a query string.

During a rebalance (``store.moving`` is set, see ``sharding.rebalance``) writes take a
slow path: keys whose owner changes are written to the old owner and then the new one
(``dual``), or wait while the rebalance fences them (``fence``); fan-out queries drop
copies found on shards that do not own them yet (or any more). Reads by key keep going
to the current epoch's owner. Without a rebalance the only added cost is ``store.poll()``.
"""

from __future__ import annotations

import builtins
import datetime as dt
import decimal
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

from adapters.base import OPERATORS, TOKEN_FIELD, Adapter, Direction, Filter, Order, Query, Relationship, Row, sort_key
from sharding.base import KeyConstraint, ShardId
from toolkit._rows import row_builder
from toolkit.errors import InvalidKeyError, QueryError, StoreUnavailable
from toolkit.model import Entity, EntitySchema, schema_of
from toolkit.stores import Store

__all__ = ["FENCE_TIMEOUT", "Repository", "parse_order", "parse_where"]

FENCE_TIMEOUT = 60.0
"""Seconds a write of a key in a moving range waits for a rebalance's fence to lift
before failing with a retryable StoreUnavailable (the fence normally lasts one final
compare of the moving rows; a rebalance killed while fenced keeps it until resumed or
aborted)."""

E = TypeVar("E", bound=Entity)
T = TypeVar("T")

_KEY_CHECKS: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "bytes": lambda v: isinstance(v, bytes),
    "uuid": lambda v: isinstance(v, uuid.UUID),
    "date": lambda v: isinstance(v, dt.date) and not isinstance(v, dt.datetime),
    "datetime": lambda v: isinstance(v, dt.datetime),
    "decimal": lambda v: isinstance(v, decimal.Decimal),
}


def parse_where(where: Mapping[str, Any] | Iterable[Filter] | None) -> tuple[Filter, ...]:
    """Turn the ``where`` argument into ``Filter`` objects (see the module docstring)."""
    if where is None:
        return ()
    if not isinstance(where, Mapping):
        filters = tuple(where)
        for item in filters:
            if not isinstance(item, Filter):
                raise QueryError(f"where must be a mapping or a list of Filter, found {type(item).__name__}")
        return filters
    result: list[Filter] = []
    for field, condition in where.items():
        if not isinstance(field, str):
            raise QueryError(f"where: field names are strings, not {type(field).__name__}")
        if isinstance(condition, Mapping) and condition:
            unknown = [op for op in condition if op not in OPERATORS]
            if unknown:
                raise QueryError(
                    f"where.{field}: unknown operator {unknown[0]!r} (operators: {', '.join(OPERATORS)}; "
                    "to compare a whole mapping write {'eq': {...}})"
                )
            result.extend(Filter(field, op, value) for op, value in condition.items())
        else:
            result.append(Filter(field, "eq", condition))
    return tuple(result)


def parse_order(order_by: str | Sequence[str | Order] | None) -> tuple[Order, ...]:
    """``"name"`` / ``"-age"`` / ``Order(...)`` items to ``Order`` objects."""
    if order_by is None:
        return ()
    items = [order_by] if isinstance(order_by, str) else list(order_by)
    result: list[Order] = []
    for item in items:
        if isinstance(item, Order):
            result.append(item)
        elif isinstance(item, str) and item:
            result.append(Order(item[1:], True) if item.startswith("-") else Order(item))
        else:
            raise QueryError(f"order_by items are field names ('-name' descending), not {item!r}")
    return tuple(result)


class Repository(Generic[E]):
    """Typed access to one entity's rows across all shards of its store."""

    def __init__(self, entity: type[E], store: Store, executor: Callable[[], Executor]) -> None:
        self.entity = entity
        self.schema = schema_of(entity)
        self.store = store
        self._executor = executor
        self._row_of = row_builder(entity, self.schema)
        self._key_types = tuple(self.schema.field(name).type for name in self.schema.key)
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

    def _check_key(self, key: Any, what: str = "key") -> Any:
        types = self._key_types
        parts = (key,) if len(types) == 1 else key
        if len(types) > 1 and (not isinstance(key, tuple) or len(key) != len(types)):
            raise InvalidKeyError(
                f"{self.entity.__name__}: the {what} is a tuple of {len(types)} "
                f"({', '.join(self.schema.key)}), not {key!r}"
            )
        for name, kind, part in zip(self.schema.key, types, parts, strict=True):
            if not _KEY_CHECKS[kind](part):
                raise InvalidKeyError(
                    f"{self.entity.__name__}.{name} is {kind}, not {type(part).__name__} {part!r} "
                    "(keys are typed: 1 and '1' are different keys)"
                )
        return key

    # -- routing ---------------------------------------------------------------------
    def _adapter(self, shard: ShardId) -> Adapter:
        return self.store.ensure(self.schema, shard)

    def _write_shards(self, shard_key: Any) -> tuple[ShardId, ...]:
        """Where a write of ``shard_key`` goes now; waits while a rebalance fences it."""
        deadline = 0.0
        store = self.store
        while True:
            moving = store.moving
            if moving is None or not moving.splits_writes:
                return (store.router.shard_for(shard_key),)
            shards = moving.write_shards(shard_key)
            if shards is not None:
                return shards
            now = time.monotonic()
            deadline = deadline or now + FENCE_TIMEOUT
            if now > deadline:
                raise StoreUnavailable(
                    f"rebalance {moving.rebalance} fences this key for longer than {FENCE_TIMEOUT:.0f}s "
                    "(resume or abort it: `polystore rebalance status`)",
                    store=store.name,
                    key=shard_key,
                )
            time.sleep(max(store.poll_interval / 2, 0.005))
            store.refresh()

    def _key_write_shards(self, key: Any, shard_key: Any) -> tuple[ShardId, ...]:
        """The shards a delete of ``key`` must reach (every shard of both routers if the
        shard key is unknown)."""
        route = key if self._shard_key_is_key else shard_key
        if route is not None:
            return self._write_shards(route)
        moving = self.store.moving
        if moving is not None and moving.splits_writes:
            return tuple(dict.fromkeys((*moving.old.shards, *moving.new.shards)))
        return self.store.router.shards

    def _owned(self, shard: ShardId, rows: list[Row]) -> list[Row]:
        """While a rebalance runs, the rows of ``shard`` the current router says it owns."""
        if self.store.moving is None:
            return rows
        route = self.store.router.shard_for
        shard_key_of = self.schema.shard_key_of
        return [row for row in rows if route(shard_key_of(row)) == shard]

    def _shards_for_key(self, key: Any, shard_key: Any) -> tuple[ShardId, ...]:
        if self._shard_key_is_key:
            return self.store.router.shards_for_key(key)
        if shard_key is not None:
            return self.store.router.shards_for_key(shard_key)
        return self.store.router.shards  # the key alone does not say where: ask every shard

    def _fan_out(self, shards: Sequence[ShardId], call: Callable[[Adapter], T]) -> list[T]:
        """Run ``call`` on every shard's adapter, in parallel when there are several."""
        adapters = [self._adapter(shard) for shard in shards]
        if len(adapters) == 1:
            return [call(adapters[0])]
        return list(self._executor().map(call, adapters))

    def _constraint(self, filters: Sequence[Filter]) -> KeyConstraint | None:
        if len(self.schema.shard_key) != 1:
            return None
        name = self.schema.shard_key[0]
        values: tuple[Any, ...] | None = None
        bounds: dict[str, Any] = {}
        for item in filters:
            if item.field != name:
                continue
            if item.op == "eq":
                values = (item.value,)
            elif item.op == "in":
                values = tuple(item.value)
            elif item.op in ("gt", "ge"):
                bounds.update(lower=item.value, lower_inclusive=item.op == "ge")
            elif item.op in ("lt", "le"):
                bounds.update(upper=item.value, upper_inclusive=item.op == "le")
        if values is not None:
            return KeyConstraint(values=values)
        return KeyConstraint(**bounds) if bounds else None

    # -- writes ----------------------------------------------------------------------
    def put(self, entity: E | Mapping[str, Any], *, ttl: float | None = None) -> E:
        """Insert or replace one entity; returns the validated entity.

        ``ttl`` (seconds; default: the entity's declared ttl) makes it expire, on
        adapters with the TTL capability.
        """
        valid, row = self._to_row(entity)
        self.store.poll()
        if self.store.moving is not None:
            self._put_moving(row, self._ttl(ttl))
            return valid
        shard = self.store.router.shard_for(self.schema.shard_key_of(row))
        ttl = self._ttl(ttl)
        if ttl is None:
            self._adapter(shard).put(self.schema, row)
        else:
            self._adapter(shard).put_ttl(self.schema, [row], ttl)
        return valid

    def _track(self, pairs: list[tuple[Any, Any]]) -> None:
        """Log (key, shard key) of moving rows before writing them: the rebalance's fenced
        final pass re-syncs exactly these. ``None`` as shard key means unknown."""
        if pairs:
            self.store.track(self.schema, pairs)

    def _put_moving(self, row: Row, ttl: float | None) -> None:
        shard_key = self.schema.shard_key_of(row)
        shards = self._write_shards(shard_key)
        if len(shards) > 1:
            self._track([(self.schema.key_of(row), shard_key)])
        for shard in shards:
            if ttl is None:
                self._adapter(shard).put(self.schema, row)
            else:
                self._adapter(shard).put_ttl(self.schema, [row], ttl)

    def _ttl(self, ttl: float | None) -> float | None:
        ttl = self.schema.ttl if ttl is None else ttl
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0):
            raise QueryError(f"{self.entity.__name__}: ttl must be a positive number of seconds, not {ttl!r}")
        return ttl

    def put_many(self, entities: Iterable[E | Mapping[str, Any]], *, ttl: float | None = None) -> int:
        """Insert or replace many entities, one batch per shard; returns how many.

        Every entity is validated before anything is written.
        """
        by_shard: dict[ShardId, list[Row]] = defaultdict(list)
        self.store.poll()
        router = self.store.router
        if self.store.moving is not None:
            moving: list[tuple[Any, Any]] = []
            for entity in entities:
                _, row = self._to_row(entity)
                shard_key = self.schema.shard_key_of(row)
                shards = self._write_shards(shard_key)
                if len(shards) > 1:
                    moving.append((self.schema.key_of(row), shard_key))
                for shard in shards:
                    by_shard[shard].append(row)
            self._track(moving)
            return self._put_by_shard(by_shard, ttl)
        rows = self._rows(entities)  # validate everything first
        by_tokens = getattr(router, "shards_for_tokens", None) if router.kind == "hash" else None
        if by_tokens is not None and len(router.shards) == 1:  # every token's owner: nothing to route
            return self._put_by_shard({router.shards[0]: rows} if rows else {}, ttl)
        if by_tokens is not None:  # the tokens are already computed: route them in one batch
            owners = by_tokens([row[TOKEN_FIELD] for row in rows])
        else:
            owners = [router.shard_for(self.schema.shard_key_of(row)) for row in rows]
        for owner, row in zip(owners, rows, strict=True):
            by_shard[owner].append(row)
        return self._put_by_shard(by_shard, ttl)

    def _put_by_shard(self, by_shard: dict[ShardId, list[Row]], ttl: float | None) -> int:
        if not by_shard:
            return 0
        shards = list(by_shard)
        expiry = self._ttl(ttl)
        if expiry is not None:
            ttl_written = self._fan_out(
                shards, lambda adapter: adapter.put_ttl(self.schema, by_shard[ShardId(adapter.shard)], expiry)
            )
            if self.store.moving is not None:
                return len({id(row) for rows in by_shard.values() for row in rows})
            return sum(ttl_written)
        written = self._fan_out(shards, lambda adapter: adapter.put_many(self.schema, by_shard[ShardId(adapter.shard)]))
        if self.store.moving is not None:  # dual writes: count each row once
            return len({id(row) for rows in by_shard.values() for row in rows})
        return sum(written)

    def delete(self, key: Any, *, shard_key: Any = None) -> bool:
        """Delete one entity by key; True if it existed."""
        self._check_key(key)
        self.store.poll()
        if self.store.moving is not None:
            shards = self._key_write_shards(key, shard_key)
            if len(shards) > 1:
                self._track([(key, key if self._shard_key_is_key else shard_key)])
            deleted = [self._adapter(shard).delete(self.schema, key) for shard in shards]  # every owner, no short cut
            return deleted[0] if self._shard_key_is_key else any(deleted)
        shards = self._shards_for_key(key, shard_key)
        return any(self._fan_out(shards, lambda adapter: adapter.delete(self.schema, key)))

    def delete_many(self, keys: Iterable[Any]) -> int:
        """Delete entities by key; returns how many existed."""
        keys = [self._check_key(key) for key in keys]
        self.store.poll()
        if self.store.moving is not None:
            first: dict[ShardId, list[Any]] = defaultdict(list)
            also: dict[ShardId, list[Any]] = defaultdict(list)
            moving_keys: list[tuple[Any, Any]] = []
            for key in keys:
                shards = self._key_write_shards(key, None)
                if len(shards) > 1:
                    moving_keys.append((key, key if self._shard_key_is_key else None))
                primary = shards[:1] if self._shard_key_is_key else shards
                for shard in primary:
                    first[shard].append(key)
                for shard in shards[len(primary) :]:
                    also[shard].append(key)
            self._track(moving_keys)
            existed = sum(
                self._fan_out(
                    list(first), lambda adapter: adapter.delete_many(self.schema, first[ShardId(adapter.shard)])
                )
            )
            if also:  # the new owners' copies (dual-write deletes)
                self._fan_out(
                    list(also), lambda adapter: adapter.delete_many(self.schema, also[ShardId(adapter.shard)])
                )
            return existed
        by_shard = self._group_keys(keys)
        return sum(
            self._fan_out(
                list(by_shard),
                lambda adapter: adapter.delete_many(self.schema, by_shard[ShardId(adapter.shard)]),
            )
        )

    def _group_keys(self, keys: list[Any]) -> dict[ShardId, list[Any]]:
        by_shard: dict[ShardId, list[Any]] = defaultdict(list)
        if self._shard_key_is_key:
            for key in keys:
                for shard in self.store.router.shards_for_key(key):
                    by_shard[shard].append(key)
        else:
            for shard in self.store.router.shards:
                by_shard[shard] = keys
        return by_shard

    # -- reads -----------------------------------------------------------------------
    def get(self, key: Any, *, shard_key: Any = None) -> E | None:
        """The entity with this key, or None. Touches one shard when the router can tell.

        If the entity's shard key differs from its key, pass ``shard_key`` to avoid
        asking every shard.
        """
        self._check_key(key)
        self.store.poll()
        for shard in self._shards_for_key(key, shard_key):
            row = self._adapter(shard).get(self.schema, key)
            if row is not None:
                if self.store.moving is not None and not self._owned(shard, [row]):
                    continue  # a copy on a shard that does not own the key (yet, or any more)
                return self._from_row(row)
        return None

    def get_many(self, keys: Iterable[Any]) -> dict[Any, E]:
        """The entities that exist among ``keys``, by key."""
        keys = [self._check_key(key) for key in keys]
        self.store.poll()
        by_shard = self._group_keys(keys)
        found: dict[Any, E] = {}
        shards = list(by_shard)
        results = self._fan_out(shards, lambda adapter: adapter.get_many(self.schema, by_shard[ShardId(adapter.shard)]))
        for shard, rows in zip(shards, results, strict=True):
            for row in self._owned(shard, rows):
                entity = self._from_row(row)
                found.setdefault(entity.entity_key, entity)
        return found

    def find(
        self,
        where: Mapping[str, Any] | Iterable[Filter] | None = None,
        *,
        order_by: str | Sequence[str | Order] | None = None,
        limit: int | None = None,
    ) -> list[E]:
        """Entities matching ``where``, ordered (ties by key) and limited.

        Visits only the shards the router cannot rule out, in parallel, and merges.
        """
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise QueryError(f"limit must be a non-negative integer, not {limit!r}")
        query = Query(parse_where(where), parse_order(order_by), limit)
        self.store.poll()
        shards = self.store.router.shards_for_query(self._constraint(query.filters))
        if limit == 0:
            return []
        if self.store.moving is not None:  # copies get dropped, so shards must not stop at the limit
            query = Query(query.filters, query.order_by, None)
        results = self._fan_out(shards, lambda adapter: adapter.find(self.schema, query))
        if self.store.moving is not None:
            results = [self._owned(shard, rows) for shard, rows in zip(shards, results, strict=True)]
        rows = [row for rows in results for row in rows]
        if len(results) > 1 or self.store.moving is not None:
            rows.sort(key=sort_key(self.schema, query.order_by))
            if limit is not None:
                rows = rows[:limit]
        return [self._from_row(row) for row in rows]

    def first(
        self,
        where: Mapping[str, Any] | Iterable[Filter] | None = None,
        *,
        order_by: str | Sequence[str | Order] | None = None,
    ) -> E | None:
        """The first entity ``find`` would return, or None."""
        found = self.find(where, order_by=order_by, limit=1)
        return found[0] if found else None

    def count(self, where: Mapping[str, Any] | Iterable[Filter] | None = None) -> int:
        """How many entities match ``where``, summed over the shards that may hold them."""
        filters = parse_where(where)
        self.store.poll()
        shards = self.store.router.shards_for_query(self._constraint(filters))
        if self.store.moving is not None:  # count the owned rows only (slow, during a rebalance)
            query = Query(filters)
            results = self._fan_out(shards, lambda adapter: adapter.find(self.schema, query))
            return sum(len(self._owned(shard, rows)) for shard, rows in zip(shards, results, strict=True))
        return sum(self._fan_out(shards, lambda adapter: adapter.count(self.schema, filters)))

    def shards_for(self, where: Mapping[str, Any] | Iterable[Filter] | None = None) -> tuple[ShardId, ...]:
        """The shards a ``find``/``count`` with this ``where`` would visit (for explaining queries)."""
        return self.store.router.shards_for_query(self._constraint(parse_where(where)))

    def shards_for_key(self, key: Any, *, shard_key: Any = None) -> tuple[ShardId, ...]:
        """The shards a ``get`` of this key would ask."""
        self._check_key(key)
        return self._shards_for_key(key, shard_key)

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
                for row in self._owned(shard, batch):
                    yield self._from_row(row)

    # -- capabilities (see adapters.base.Adapter for the exact semantics) --------------
    def _owner(self, key: Any, shard_key: Any = None, *, write: bool = False) -> Adapter:
        """The adapter of the one shard that owns ``key`` (capabilities act on one row).

        A write during a rebalance goes to the old owner only (it stays authoritative
        until cut-over; the rebalance's verify pass carries the change over), and waits
        while the key is fenced.
        """
        self._check_key(key)
        self.store.poll()
        if self._shard_key_is_key:
            route = key
        elif shard_key is not None:
            route = shard_key
        else:
            raise QueryError(
                f"{self.entity.__name__}: its shard key ({', '.join(self.schema.shard_key)}) differs from its "
                "key: pass shard_key=..."
            )
        if write and self.store.moving is not None:
            shards = self._write_shards(route)
            if len(shards) > 1:
                self._track([(key, route)])
            return self._adapter(shards[0])
        return self._adapter(self.store.router.shard_for(route))

    def ttl(self, key: Any, *, shard_key: Any = None) -> float | None:
        """Seconds until the entity expires; None if it never does or does not exist (TTL)."""
        return self._owner(key, shard_key).ttl(self.schema, key)

    def increment(self, key: Any, field: str, amount: int | float = 1, *, shard_key: Any = None) -> int | float:
        """Atomically add ``amount`` to a numeric field; returns the new value (ATOMIC_INCREMENT)."""
        spec = self._field(field)
        if spec.type not in ("int", "float"):
            raise QueryError(f"{self.entity.__name__}.{field} is {spec.type}; increment needs int or float")
        if spec.type == "int" and not isinstance(amount, int):
            raise QueryError(f"{self.entity.__name__}.{field} is int; increment it by an int, not {amount!r}")
        return self._owner(key, shard_key, write=True).increment(self.schema, key, field, amount)

    def update(self, key: Any, changes: Mapping[str, Any], *, shard_key: Any = None) -> bool:
        """Set fields or dotted paths of one entity; False if it does not exist (PARTIAL_UPDATE).

        Top-level fields are validated against the entity; key fields cannot change.
        """
        for path, value in changes.items():
            name = path.split(".", 1)[0]
            spec = self._field(name)
            if name in self.schema.key or name in self.schema.shard_key:
                raise QueryError(f"{self.entity.__name__}.{name} is part of the key or shard key; it cannot change")
            if "." in path and spec.type != "json":
                raise QueryError(f"{self.entity.__name__}.{name} is {spec.type}, not a nested field: {path!r}")
            if "." not in path:
                self._validate_field(name, value)
        return self._owner(key, shard_key, write=True).update(self.schema, key, dict(changes))

    def _field(self, name: str) -> Any:
        try:
            return self.schema.field(name)
        except KeyError:
            raise QueryError(
                f"{self.entity.__name__}: unknown field {name!r} (fields: {', '.join(self.schema.field_names)})"
            ) from None

    def _validate_field(self, name: str, value: Any) -> None:
        from pydantic import TypeAdapter, ValidationError

        from toolkit.model import EntityValidationError

        try:
            annotation = self.entity.model_fields[name].annotation
            TypeAdapter(Any if annotation is None else annotation).validate_python(value)
        except ValidationError as exc:
            raise EntityValidationError(f"{self.entity.__name__}.{name}", exc) from None

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

    def relate(
        self, source: Any, type: str, target: Any, *, to: builtins.type[Entity] | None = None, **properties: Any
    ) -> None:
        """Create (or replace) the ``type`` edge source -> target, on one shard (GRAPH).

        ``to`` is the target's entity class (default: this one). Raises CrossShardError
        when the two ends live on different shards.
        """
        from adapters.base import Relationship

        target_schema = schema_of(to) if to is not None else self.schema
        adapter = self._graph_owner(source, target, target_schema, write=True)
        adapter.relate(self.schema, Relationship(_rel_type(type), source, target, properties), target_schema)

    def unrelate(self, source: Any, type: str, target: Any, *, to: builtins.type[Entity] | None = None) -> bool:
        """Remove the ``type`` edge source -> target; True if it existed (GRAPH)."""
        from adapters.base import Relationship

        target_schema = schema_of(to) if to is not None else self.schema
        adapter = self._graph_owner(source, target, target_schema, write=True)
        return adapter.unrelate(self.schema, Relationship(_rel_type(type), source, target), target_schema)

    def _graph_owner(self, source: Any, target: Any, target_schema: EntitySchema, *, write: bool = False) -> Adapter:
        """The one shard holding both ends of an edge.

        An edge change during a rebalance goes to the current (old) owner, like the
        other single-row writes, waits while the rebalance fences its source node, and
        logs that node, so that the fenced catch-up re-syncs its edges on the new owner.
        An edge the rebalance's target topology would split is refused now rather than
        lost or refused at cut-over.
        """
        from toolkit.errors import CrossShardError

        self._check_key(source)
        if self.schema.shard_key != self.schema.key or target_schema.shard_key != target_schema.key:
            raise QueryError("graph entities must be sharded by their key (shard_key = key)")
        if write:
            self.store.poll()
        source_shard = self.store.router.shard_for(source)
        target_shard = self.store.router.shard_for(target)
        if source_shard != target_shard:
            raise CrossShardError(
                f"{self.entity.__name__} {source!r} is on {source_shard} but {target_schema.name} {target!r} is on "
                f"{target_shard}: relationships stay within one shard (co-locate them, e.g. with a directory router)",
                store=self.store.name,
            )
        moving = self.store.moving if write else None
        if moving is not None and moving.splits_writes:
            if moving.new.shard_for(source) != moving.new.shard_for(target):
                raise CrossShardError(
                    f"{self.entity.__name__} {source!r} and {target_schema.name} {target!r} go to different shards "
                    f"in rebalance {moving.rebalance}: relationships stay within one shard (relate them after the "
                    "rebalance, or co-locate them in its target topology)",
                    store=self.store.name,
                )
            shards = self._write_shards(source)  # waits while the rebalance fences the node
            if len(shards) > 1:
                self._track([(source, source)])
            return self._adapter(shards[0])
        return self._adapter(source_shard)

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
        target_schema = schema_of(target_cls)
        adapter = self._owner(key)
        found = adapter.neighbors(
            self.schema,
            key,
            type=_rel_type(type) if type else None,
            direction=_direction(direction),
            target=target_schema,
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
        rows = self._owner(key).traverse(
            self.schema,
            key,
            type=_rel_type(type) if type else None,
            direction=_direction(direction),
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
            type=_rel_type(type) if type else None,
            direction=_direction(direction),
            max_depth=max_depth,
        )
        return None if rows is None else [self._from_row(dict(row)) for row in rows]


_REL_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _rel_type(name: str) -> str:
    """Relationship types become identifiers in some backends: letters, digits, _ only."""
    if not isinstance(name, str) or not _REL_TYPE.match(name):
        raise QueryError(f"relationship type {name!r} must be letters, digits and _ (at most 63)")
    return name


def _direction(direction: str) -> Direction:
    if direction not in ("out", "in", "both"):
        raise QueryError(f"direction must be 'out', 'in' or 'both', not {direction!r}")
    return direction  # type: ignore[return-value]
