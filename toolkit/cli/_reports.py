"""What ``polystore status`` and ``polystore route`` show, as plain data.

These functions do the work and return dataclasses; ``_render`` draws them and
``_status`` wires both to commands. Tests call these directly (``toolkit.cli`` exports
them). They belong to the command line: ``Toolkit`` has its own ``health()`` and never
needs them, so they stay in the face layer.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.base import ShardInfo
from adapters.registry import redact_url
from sharding import DirectoryRouter, HashRouter, RangeRouter, Router
from sharding.keys import encode_key
from sharding.keys import token as token_of
from toolkit.errors import InvalidKeyError, ToolkitError
from toolkit.facade import Toolkit
from toolkit.resilience import StoreHealth

__all__ = [
    "KEY_TYPES",
    "Route",
    "ShardStatus",
    "StoreStatus",
    "explain_route",
    "parse_key",
    "store_status",
]


@dataclass(frozen=True, slots=True)
class ShardStatus:
    name: str
    url: str
    reachable: bool
    rows: int
    tables: dict[str, int] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class StoreStatus:
    name: str
    kind: str
    router: str
    epoch: int
    shards: list[ShardStatus]
    resilience: StoreHealth | None = None
    """The store's guard (breakers, bulkhead, throttle); None if resilience is disabled."""

    @property
    def rows(self) -> int:
        return sum(shard.rows for shard in self.shards)


def store_status(toolkit: Toolkit, names: list[str] | None = None) -> list[StoreStatus]:
    """Reachability, row counts and distribution of every store, asking shards in parallel."""
    result = []
    for name in names or toolkit.store_names:
        store = toolkit.store(name)
        shards = list(store.router.shards)
        with ThreadPoolExecutor(max_workers=max(1, len(shards))) as pool:
            infos: list[ShardInfo] = list(pool.map(_describe, [store] * len(shards), shards))
        result.append(
            StoreStatus(
                name=name,
                kind=store.kind,
                router=store.router.kind,
                epoch=store.topology.epoch,
                shards=[
                    ShardStatus(
                        name=str(shard),
                        url=redact_url(store.shard_urls[shard]),
                        reachable=info.reachable,
                        rows=sum(info.tables.values()),
                        tables=dict(info.tables),
                        error=info.error,
                    )
                    for shard, info in zip(shards, infos, strict=True)
                ],
                resilience=store.health(),
            )
        )
    return result


def _describe(store: Any, shard: str) -> ShardInfo:
    try:
        return store.adapter(shard).describe()  # type: ignore[no-any-return]
    except ToolkitError as exc:  # a missing driver, a bad URL: report it, keep going
        return ShardInfo(reachable=False, error=str(exc))


KEY_TYPES: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": int,
    "uuid": uuid.UUID,
    "bytes": lambda text: text.encode("utf-8"),
    "date": dt.date.fromisoformat,
    "datetime": dt.datetime.fromisoformat,
    "decimal": Decimal,
}


def parse_key(text: str, key_type: str) -> Any:
    """A key typed on the command line: keys are typed, so ``42`` as int and str differ."""
    parser = KEY_TYPES.get(key_type)
    if parser is None:
        raise InvalidKeyError(f"--key-type must be one of {', '.join(KEY_TYPES)}, not {key_type!r}")
    try:
        return parser(text)
    except (ValueError, InvalidOperation) as exc:
        raise InvalidKeyError(f"{text!r} is not a valid {key_type} key: {exc}") from None


@dataclass(frozen=True, slots=True)
class Route:
    """Where a key goes in a store, and the reasoning a person can check."""

    store: str
    epoch: int
    key: Any
    shard: str
    router: str
    reasons: list[str]
    token: int
    encoded: bytes


def explain_route(toolkit: Toolkit, store_name: str, key: Any) -> Route:
    """Which shard owns ``key`` in ``store_name``, and why."""
    store = toolkit.store(store_name)
    router = store.router
    shard = router.shard_for(key)
    return Route(
        store=store_name,
        epoch=store.topology.epoch,
        key=key,
        shard=str(shard),
        router=router.kind,
        reasons=_reasons(router, key),
        token=token_of(key),
        encoded=encode_key(key),
    )


def _reasons(router: Router, key: Any) -> list[str]:
    if isinstance(router, HashRouter):
        token = router.token_for(key)
        slot = router.slot_for_token(token)
        span = router.token_range_of_slot(slot)
        return [
            f"token {token} (mmh3 x64 of the typed key bytes)",
            f"hash slot {slot} of {router.slots} covers tokens [{span.start}, {span.end})",
            f"slot {slot} belongs to shard {router.shard_for_token(token)}",
        ]
    if isinstance(router, RangeRouter):
        for key_range, owner in router.ranges():
            if key in key_range:
                low = "-inf" if key_range.lower is None else repr(key_range.lower)
                high = "+inf" if key_range.upper is None else repr(key_range.upper)
                return [f"key {key!r} is in the range [{low}, {high}) owned by {owner}"]
        return [f"no range owns key {key!r}"]
    if isinstance(router, DirectoryRouter):
        pinned = router.pinned(key)
        if pinned is not None:
            return [f"key {key!r} is pinned to {pinned} in the directory"]
        return [f"key {key!r} is not pinned; the fallback {router.fallback.kind} router decides:"] + [
            f"  {reason}" for reason in _reasons(router.fallback, key)
        ]
    return [f"{router.kind} router chose {router.shard_for(key)}"]
