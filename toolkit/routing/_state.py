"""``RoutingState``: where a store's keys are read and written right now. Pure: no I/O.

Without a rebalance the answer is the current epoch's router. While one is in flight the
state also holds its ``Transition``: the target router and the phase the rebalance
published. The phases mean, for routing:

``dual``     writes of keys whose owner changes reach the old owner, then the new one,
             and are logged first (the rebalance's catch-up re-syncs exactly those keys);
``fence``    writes of those keys wait until the fence lifts; other keys flow;
``cleanup``  after cut-over: writes reach the current owner only;
``abort``    before cut-over, while the copies go: writes reach the current owner only.

In every phase, copies may sit on shards that do not own them under the current router
(not yet cleaned up, or not yet current), so reads drop rows a shard does not own. Once a
process sees the epoch the transition leads to, writes follow the current router whatever
phase is still published. The repository asks the questions below and knows none of this.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sharding import router_from_spec
from sharding.base import Router, ShardId
from sharding.keys import encode_key, key_from_json

__all__ = ["Phase", "RoutingState", "Transition", "WriteRoute", "pinned_router"]

T = TypeVar("T")


class Phase(enum.StrEnum):
    """What a rebalance in flight asks of writers (see the module docstring)."""

    DUAL = "dual"
    FENCE = "fence"
    CLEANUP = "cleanup"
    ABORT = "abort"


_SPLIT = (Phase.DUAL, Phase.FENCE)


def pinned_router(spec: Mapping[str, Any], entries: Iterable[tuple[Any, str]] | None) -> Router:
    """A router from its spec and, for a directory router, its pins as JSON keys (how a
    rebalance plan and a transition's target carry them)."""
    pins = None
    if spec.get("type") == "directory":
        pins = {encode_key(key_from_json(key)): ShardId(shard) for key, shard in entries or ()}
    return router_from_spec(spec, directory_entries=pins)


@dataclass(frozen=True, slots=True)
class Transition:
    """A rebalance in flight, as its last published phase describes it."""

    rebalance: str
    phase: Phase
    to_epoch: int
    """The epoch the store reaches at cut-over."""
    target: Router
    shards: Mapping[str, str]
    """Shard URLs of the target topology (its new shards exist before cut-over)."""


@dataclass(frozen=True, slots=True)
class WriteRoute:
    """Where one write goes."""

    shards: tuple[ShardId, ...]
    """The current owner first (authoritative until cut-over), then a rebalance's target."""
    tracked: bool = False
    """Log the key before writing it: a rebalance in flight must re-sync it."""

    @property
    def owner(self) -> ShardId:
        """The one shard a single-row change (increment, update, relate) goes to."""
        return self.shards[0]


@dataclass(frozen=True, slots=True)
class RoutingState:
    """One store's routing at one moment: epoch, router and any rebalance in flight."""

    store: str
    epoch: int
    directory_version: int
    router: Router
    """The current epoch's router: reads by key and queries follow it."""
    shards: Mapping[str, str]
    """Shard URLs of the current epoch."""
    transition: Transition | None = None
    _splitting: Router | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        moving = self.transition
        if moving is not None and moving.phase in _SPLIT and self.epoch < moving.to_epoch:
            object.__setattr__(self, "_splitting", moving.target)

    @property
    def steady(self) -> bool:
        """No rebalance in flight: every row is on its owner and nowhere else."""
        return self.transition is None

    @property
    def rebalance(self) -> str | None:
        """The id of the rebalance in flight, for messages."""
        return None if self.transition is None else self.transition.rebalance

    def shard_url(self, shard: str) -> str | None:
        """The URL of a shard writes may reach: the epoch's, or a rebalance's target."""
        url = self.shards.get(shard)
        if url is None and self.transition is not None:
            url = self.transition.shards.get(shard)
        return url

    # -- writes ------------------------------------------------------------------------
    def write(self, shard_key: Any) -> WriteRoute | None:
        """Where a write of ``shard_key`` goes; None while a rebalance holds it (wait, then ask again)."""
        owner = self.router.shard_for(shard_key)
        target = self._splitting
        if target is None:
            return WriteRoute((owner,))
        new = target.shard_for(shard_key)
        if new == owner:
            return WriteRoute((owner,))
        if self.transition is not None and self.transition.phase == Phase.FENCE:
            return None
        return WriteRoute((owner, new), tracked=True)

    def write_anywhere(self) -> WriteRoute:
        """Where a write of a key whose shard key is unknown goes: every shard that may hold it."""
        target = self._splitting
        if target is None:
            return WriteRoute(self.router.shards)
        return WriteRoute(tuple(dict.fromkeys((*self.router.shards, *target.shards))), tracked=True)

    def splits(self, first: Any, second: Any) -> bool:
        """Whether the rebalance in flight puts these two shard keys on different shards
        (a relationship between them could not follow its ends)."""
        target = self._splitting
        return target is not None and target.shard_for(first) != target.shard_for(second)

    # -- reads -------------------------------------------------------------------------
    def read(self, shard_key: Any) -> tuple[ShardId, ...]:
        """The shards that may hold a key with this shard key (None: unknown, every shard)."""
        return self.router.shards if shard_key is None else self.router.shards_for_key(shard_key)

    def owns(self, shard: ShardId, shard_key: Any) -> bool:
        """Whether a row found on ``shard`` is the real one and not a rebalance's copy."""
        return self.transition is None or self.router.shard_for(shard_key) == shard

    def owned(self, shard: ShardId, rows: list[T], shard_key_of: Callable[[T], Any]) -> list[T]:
        """The rows of ``shard`` it owns (all of them when no rebalance is in flight)."""
        if self.transition is None:
            return rows
        route = self.router.shard_for
        return [row for row in rows if route(shard_key_of(row)) == shard]
