"""Planning: the current topology (catalog) + a target (TOML) -> the moves, or a refusal.

Everything that could lose data is refused here, before anything is written, with a
``TopologyError`` naming the store and the shard or field:

* a store kind change, or a router type change (every key would re-home: that is a
  migration through a new store, not a rebalance);
* a shard kept under its name but given another URL (rows move between shards by name;
  give the new location a new name and the rows follow);
* a target router that strands rows (a range that becomes unowned, a directory pin to a
  shard that is removed), overlapping or unordered split points, unknown shards;
* a target shard whose URL has no adapter or whose server does not answer.

Hash targets are planned with ``HashRouter.rebalanced`` (fewest slots move, and only onto
shards that gain), never by building a fresh table, which would re-home most keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from adapters.base import Adapter, Filter
from adapters.registry import adapter_class, redact_url, scheme_of
from sharding import router_from_config, router_from_spec
from sharding.base import DirectoryKeys, KeyRange, Move, Router, ShardId, Span, TokenRange
from sharding.core.errors import ConfigError, ToolkitError, TopologyError
from sharding.core.model import EntitySchema
from sharding.directory import DirectoryRouter
from sharding.hashring import HashRouter
from sharding.keys import decode_key, key_from_json, key_to_json
from toolkit.catalog import schema_from_json, schema_to_json
from toolkit.config import Config, StoreConfig
from toolkit.routing import pinned_router

if TYPE_CHECKING:
    from toolkit.facade import Toolkit

__all__ = [
    "Plan",
    "PlannedMove",
    "plan_rebalance",
    "span_from_json",
    "span_text",
    "span_to_json",
    "store_options",
]


# -- spans as JSON ----------------------------------------------------------------------


def span_to_json(span: Span) -> dict[str, Any]:
    if isinstance(span, TokenRange):
        return {"tokens": [span.start, span.end]}
    if isinstance(span, KeyRange):
        return {"keys": [_bound(span.lower), _bound(span.upper)]}
    return {"directory": [key_to_json(key) for key in span.keys]}


def _bound(value: Any) -> Any:
    return None if value is None else key_to_json(value)


def span_from_json(data: Mapping[str, Any]) -> Span:
    if "tokens" in data:
        start, end = data["tokens"]
        return TokenRange(int(start), int(end))
    if "keys" in data:
        lower, upper = data["keys"]
        return KeyRange(
            None if lower is None else key_from_json(lower), None if upper is None else key_from_json(upper)
        )
    return DirectoryKeys(tuple(key_from_json(key) for key in data["directory"]))


def span_text(span: Span) -> str:
    """A span for people: ``tokens [a, b)``, ``keys [x, y)``, ``3 keys: a, b, c``."""
    if isinstance(span, TokenRange):
        return f"tokens [{span.start:.4g}, {span.end:.4g})"  # exact values are in --json
    if isinstance(span, KeyRange):
        lower = "-inf" if span.lower is None else repr(span.lower)
        upper = "+inf" if span.upper is None else repr(span.upper)
        return f"keys [{lower}, {upper})"
    shown = ", ".join(repr(key) for key in span.keys[:3])
    more = ", ..." if len(span.keys) > 3 else ""
    return f"{len(span.keys)} keys: {shown}{more}"


# -- the plan ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedMove:
    """One span that changes owner, with the rows expected to move (all entities)."""

    index: int
    source: ShardId
    target: ShardId
    span: Span
    share: float
    """Share of the store's rows in this span (hash: of its tokens, i.e. of its keys)."""
    rows: int

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "source": self.source,
            "target": self.target,
            "span": span_to_json(self.span),
            "share": self.share,
            "rows": self.rows,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlannedMove:
        return cls(
            int(data["index"]),
            ShardId(data["source"]),
            ShardId(data["target"]),
            span_from_json(data["span"]),
            float(data["share"]),
            int(data["rows"]),
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """What a rebalance of one store will do; JSON-able, stored whole in the journal."""

    store: str
    kind: str
    from_epoch: int
    source_shards: Mapping[str, str]
    source_router: Mapping[str, Any]
    target_shards: Mapping[str, str]
    target_router: Mapping[str, Any]
    target_entries: tuple[tuple[Any, str], ...] | None
    moves: tuple[PlannedMove, ...]
    schemas: tuple[EntitySchema, ...]
    total_rows: int
    rows_by_shard: Mapping[str, int] = field(default_factory=dict)

    @property
    def moved_rows(self) -> int:
        return sum(move.rows for move in self.moves)

    @property
    def moved_share(self) -> float:
        """The share of the store that moves (rows if any were counted, else keys)."""
        if self.total_rows:
            return self.moved_rows / self.total_rows
        return sum(move.share for move in self.moves)

    @property
    def added_shards(self) -> list[str]:
        return [name for name in self.target_shards if name not in self.source_shards]

    @property
    def removed_shards(self) -> list[str]:
        return [name for name in self.source_shards if name not in self.target_shards]

    def routers(self) -> tuple[Router, Router]:
        """(old, new) routers, with the directory pins each side has."""
        old = pinned_router(self.source_router, self.source_router.get("_entries", ()))
        return old, pinned_router(self.target_router, self.target_entries)

    def to_json(self) -> dict[str, Any]:
        target: dict[str, Any] = {"shards": dict(self.target_shards), "router": dict(self.target_router)}
        if self.target_entries is not None:
            target["entries"] = [list(entry) for entry in self.target_entries]
        return {
            "store": self.store,
            "kind": self.kind,
            "from_epoch": self.from_epoch,
            "source": {"shards": dict(self.source_shards), "router": dict(self.source_router)},
            "target": target,
            "moves": [move.to_json() for move in self.moves],
            "schemas": [schema_to_json(schema) for schema in self.schemas],
            "total_rows": self.total_rows,
            "rows_by_shard": dict(self.rows_by_shard),
            "moved_rows": self.moved_rows,
            "moved_share": self.moved_share,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        target = data["target"]
        entries = target.get("entries")
        return cls(
            store=data["store"],
            kind=data["kind"],
            from_epoch=int(data["from_epoch"]),
            source_shards=dict(data["source"]["shards"]),
            source_router=dict(data["source"]["router"]),
            target_shards=dict(target["shards"]),
            target_router=dict(target["router"]),
            target_entries=None if entries is None else tuple((key, shard) for key, shard in entries),
            moves=tuple(PlannedMove.from_json(move) for move in data["moves"]),
            schemas=tuple(schema_from_json(schema) for schema in data["schemas"]),
            total_rows=int(data["total_rows"]),
            rows_by_shard=dict(data.get("rows_by_shard", {})),
        )


# -- planning ---------------------------------------------------------------------------


def _refuse(store: str, field_path: str, message: str) -> TopologyError:
    return TopologyError(f"store {store!r}: {field_path}: {message}")


def target_router(store: str, current: Router, target: StoreConfig, entries: Mapping[bytes, str]) -> Router:
    """The router the target config asks for, planned to move as little as possible."""
    names = [shard.name for shard in target.shards]
    options = dict(target.router.options)
    if target.router.type != current.kind:
        raise _refuse(
            store,
            "router.type",
            f"cannot change from {current.kind} to {target.router.type}: every key would re-home "
            "(create a new store and copy into it instead)",
        )
    try:
        fresh = router_from_config(target.router.type, names, options)
    except ToolkitError as exc:
        raise _refuse(store, "router", str(exc)) from None
    if isinstance(current, HashRouter) and isinstance(fresh, HashRouter):
        if "slots" in options and options["slots"] != current.slots:
            raise _refuse(store, "router.slots", f"cannot change from {current.slots} to {options['slots']}")
        return current.rebalanced(fresh.weights)
    if isinstance(current, DirectoryRouter) and isinstance(fresh, DirectoryRouter):
        fallback = fresh.fallback
        if isinstance(current.fallback, HashRouter) and isinstance(fallback, HashRouter):
            fallback = current.fallback.rebalanced(fallback.weights)
        pins = dict(entries)
        pins.update(fresh.entries)  # the target's pins win over the catalog's
        for encoded, shard in pins.items():
            if shard not in names:
                raise _refuse(
                    store,
                    f"router.entries.{decode_key(encoded)!r}",
                    f"the key is pinned to shard {shard!r}, which the target removes "
                    f"(pin it to one of {', '.join(names)})",
                )
        return DirectoryRouter(pins, fallback, names)
    return fresh


def _check_shards(store: str, current: Mapping[str, str], target: StoreConfig) -> None:
    for shard in target.shards:
        old_url = current.get(shard.name)
        if old_url is not None and old_url != shard.url:
            raise _refuse(
                store,
                f"shards.{shard.name}",
                f"the URL changes from {redact_url(old_url)} to {redact_url(shard.url)}; rows move between "
                "shards by name, so give the new location a new shard name",
            )


_T = TypeVar("_T")
_R = TypeVar("_R")


def _each(items: Sequence[_T], work: Callable[[_T], _R]) -> list[_R]:
    """``work`` on every item at once (each mostly waits on its own server: connect,
    ping, count), results in order; the first failure is raised."""
    if len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(len(items), 8), thread_name_prefix="plan") as pool:
        return list(pool.map(work, items))


def _ping_new_shards(store: str, plan_shards: Mapping[str, str], current: Mapping[str, str], options: Any) -> None:
    def ping(name: str) -> None:
        url = plan_shards[name]
        try:
            adapter = adapter_class(scheme_of(url))(url, store=store, shard=name, options=options)
        except ToolkitError as exc:
            raise _refuse(store, f"shards.{name}", str(exc)) from None
        try:
            adapter.ping()
        except ToolkitError as exc:
            raise _refuse(store, f"shards.{name}", f"{redact_url(url)} does not answer: {exc}") from None
        finally:
            adapter.close()

    _each([name for name in plan_shards if name not in current], ping)


def _schemas(toolkit: Toolkit, store: str, entities: Sequence[EntitySchema]) -> tuple[EntitySchema, ...]:
    found = {schema.name: schema for schema in toolkit.catalog.schemas(store)}
    for schema in entities:
        if schema.store == store:
            found[schema.name] = schema
    return tuple(found[name] for name in sorted(found))


def _count(adapter: Adapter, schema: EntitySchema, filters: Sequence[Filter] = ()) -> int:
    try:
        return adapter.count(schema, filters)
    except ToolkitError:
        adapter.ensure(schema, with_token=True)  # a shard that never saw the entity: no rows
        return adapter.count(schema, filters)


def _estimate(
    move: Move, old: Router, schemas: Sequence[EntitySchema], adapters: Mapping[str, Adapter], rows: Mapping[str, int]
) -> tuple[int, float]:
    """(rows, share) expected in a move: exact for key ranges and directory keys, else
    the source's rows scaled by the span's share of the source's tokens."""
    span = move.span
    if isinstance(span, TokenRange):
        hashing = old.fallback if isinstance(old, DirectoryRouter) else old
        owned = 0.0
        if isinstance(hashing, HashRouter):
            owned = sum(r.fraction() for r in hashing.owned_ranges(move.source))
        estimated = round(rows.get(move.source, 0) * span.fraction() / owned) if owned else 0
        return estimated, span.fraction()
    if isinstance(span, KeyRange):
        total = 0
        for schema in schemas:
            if len(schema.shard_key) != 1:
                continue
            field_name = schema.shard_key[0]
            filters = []
            if span.lower is not None:
                filters.append(Filter(field_name, "ge", span.lower))
            if span.upper is not None:
                filters.append(Filter(field_name, "lt", span.upper))
            total += _count(adapters[move.source], schema, filters)
        return total, 0.0
    return len(span.keys) * max(len(schemas), 1), 0.0


def plan_rebalance(
    toolkit: Toolkit,
    target: Config,
    store: str | None = None,
    *,
    entities: Sequence[EntitySchema] = (),
    check_servers: bool = True,
) -> list[Plan]:
    """The plan for every store the target declares (or only ``store``), refusing unsafe ones."""
    names = [store] if store is not None else list(target.stores)
    if not names:
        raise ConfigError("declares no stores", file=target.source, field="stores")
    plans = []
    for name in names:
        declared = target.stores.get(name)
        if declared is None:
            raise ConfigError(
                f"store {name!r} is not declared (stores: {', '.join(target.stores)})",
                file=target.source,
                field=f"stores.{name}",
            )
        plans.append(_plan_store(toolkit, declared, entities, check_servers))
    return plans


def _plan_store(toolkit: Toolkit, target: StoreConfig, entities: Sequence[EntitySchema], check: bool) -> Plan:
    name = target.name
    topology = toolkit.catalog.topology(name)
    if topology is None and name in toolkit.config.stores:
        topology = toolkit.store(name).topology  # declared but never used: epoch 1 from the config
    if topology is None:
        raise _refuse(name, "stores", "not in the catalog: nothing to rebalance (use it once, or `polystore status`)")
    if target.kind != topology.kind:
        raise _refuse(name, "kind", f"cannot change from {topology.kind} to {target.kind}")
    _check_shards(name, topology.shards, target)
    entries = toolkit.catalog.directory(name) if topology.router.get("type") == "directory" else {}
    current = router_from_spec(topology.router, directory_entries=entries)
    new = target_router(name, current, target, entries)
    unknown = [shard for shard in new.shards if shard not in target.shard_urls]
    if unknown:
        raise _refuse(name, f"shards.{unknown[0]}", "the target router names a shard the target does not declare")
    try:
        moves = current.moves_to(new)
    except TopologyError as exc:
        raise _refuse(name, "router", str(exc)) from None
    schemas = _schemas(toolkit, name, entities)
    options = store_options(toolkit, name)
    if check:
        _ping_new_shards(name, target.shard_urls, topology.shards, options)
    adapters = {
        shard: adapter_class(scheme_of(url))(url, store=name, shard=shard, options=options)
        for shard, url in topology.shards.items()
    }
    try:
        counted = _check_covered(name, adapters, schemas)
        rows = {  # describe() has counted every table already: count only what it did not name
            shard: sum(
                counted[shard][schema.name] if schema.name in counted[shard] else _count(adapter, schema)
                for schema in schemas
            )
            for shard, adapter in adapters.items()
        }
        planned = []
        for index, move in enumerate(moves):
            estimated, share = _estimate(move, current, schemas, adapters, rows)
            planned.append(PlannedMove(index, move.source, move.target, move.span, share, estimated))
    finally:
        for adapter in adapters.values():
            adapter.close()
    total = sum(rows.values())
    if total:
        planned = [PlannedMove(m.index, m.source, m.target, m.span, m.share or m.rows / total, m.rows) for m in planned]
    source_router = dict(topology.router)
    target_entries = None
    if topology.router.get("type") == "directory":
        source_router["_entries"] = [[key_to_json(decode_key(key)), shard] for key, shard in sorted(entries.items())]
        target_entries = tuple(
            (key_to_json(decode_key(key)), shard) for key, shard in sorted(getattr(new, "entries", {}).items())
        )
    return Plan(
        store=name,
        kind=topology.kind,
        from_epoch=topology.epoch,
        source_shards=dict(topology.shards),
        source_router=source_router,
        target_shards=target.shard_urls,
        target_router=new.to_spec(),
        target_entries=target_entries,
        moves=tuple(planned),
        schemas=schemas,
        total_rows=total,
        rows_by_shard=rows,
    )


def _check_covered(
    store: str, adapters: Mapping[str, Adapter], schemas: Sequence[EntitySchema]
) -> dict[str, Mapping[str, int]]:
    """Refuse when a shard holds rows of an entity the journal has no schema for: those
    rows would stay behind on a shard that no longer owns them (or is removed). Returns
    each shard's row counts per table (``describe``), which the estimates reuse.

    Entities are recorded by ``Store.ensure``; a store written before that existed, or
    by a process that never opened it through a Toolkit, needs ``entities=`` here (or
    one run of the application first)."""
    known = [schema.name for schema in schemas]
    counted: dict[str, Mapping[str, int]] = {}
    shards = list(adapters)
    for shard, info in zip(shards, _each(shards, lambda shard: adapters[shard].describe()), strict=True):
        counted[shard] = info.tables
        if not info.reachable:
            raise _refuse(store, f"shards.{shard}", f"does not answer: {info.error}")
        strays = sorted(
            table
            for table, count in info.tables.items()
            if count and not any(table == name or table.startswith(f"{name}_") for name in known)
        )
        if strays:
            raise _refuse(
                store,
                f"shards.{shard}",
                f"holds rows in {', '.join(strays)}, which no recorded entity describes "
                f"(recorded: {', '.join(known) or 'none'}); open the store once with the application "
                "so its entities are recorded, then plan again",
            )
    return counted


def store_options(toolkit: Toolkit, store: str) -> Mapping[str, Any]:
    """The adapter options the config gives ``store`` (none if it does not declare it)."""
    try:
        return toolkit.store_config(store).options
    except ConfigError:
        return {}
