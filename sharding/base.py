"""The routing contract shared by every router, and the values routers hand out.

A router is a pure function of a store's topology: no I/O, no printing, never ``None``.
It answers three questions (DESIGN.md, "Routers"):

* ``shard_for(key)``: where does a write of this shard key go?
* ``shards_for_key(key)``: which shards may hold this key? (one shard for every router
  here; the tuple leaves room for dual ownership during a move)
* ``shards_for_query(constraint)``: which shards must a query visit?

Routers are immutable. Changing a topology (adding a shard, new weights, new split
points, new directory entries) returns a *new* router; ``moves_to(target)`` lists the
spans of the key space whose owner changes, which is what ``rebalance`` plans with.

Each router serialises to a plain JSON-able ``spec`` (``to_spec``) that the catalog
stores per topology epoch, and is rebuilt from it with ``router_from_spec``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NewType, Protocol, runtime_checkable

__all__ = [
    "DirectoryKeys",
    "KeyConstraint",
    "KeyRange",
    "Move",
    "Router",
    "ShardId",
    "Span",
    "TokenRange",
]

ShardId = NewType("ShardId", str)
"""A shard's name within its store (``"s0"``), as written in polystore.toml."""


@dataclass(frozen=True, slots=True)
class KeyConstraint:
    """What a query says about the shard key, for narrowing the shards it visits.

    ``values`` set: the shard key is one of these (``eq``/``in`` filters).
    Otherwise ``lower``/``upper`` bound it (``None`` means unbounded); inclusivity is
    explicit because ``gt`` and ``ge`` narrow differently at a split point.
    A constraint with neither says nothing: every shard must be visited.
    """

    values: tuple[Any, ...] | None = None
    lower: Any = None
    lower_inclusive: bool = True
    upper: Any = None
    upper_inclusive: bool = False

    @property
    def is_unbounded(self) -> bool:
        return self.values is None and self.lower is None and self.upper is None


@dataclass(frozen=True, slots=True, order=True)
class TokenRange:
    """Tokens ``start <= t < end`` (``end`` may be ``2**63``, one past MAX_TOKEN)."""

    start: int
    end: int

    def __contains__(self, token: object) -> bool:
        return isinstance(token, int) and self.start <= token < self.end

    def fraction(self) -> float:
        """The share of the whole token space this range covers."""
        return (self.end - self.start) / 2**64


@dataclass(frozen=True, slots=True)
class KeyRange:
    """Shard keys ``lower <= k < upper``; ``None`` is unbounded on that side.

    Lower bounds are inclusive and upper bounds exclusive, everywhere in range routing.
    """

    lower: Any = None
    upper: Any = None

    def __contains__(self, key: object) -> bool:
        above_lower = self.lower is None or not key < self.lower
        below_upper = self.upper is None or key < self.upper
        return above_lower and below_upper


@dataclass(frozen=True, slots=True)
class DirectoryKeys:
    """Explicit keys pinned by a directory router."""

    keys: tuple[Any, ...]


Span = TokenRange | KeyRange | DirectoryKeys
"""A part of a store's key space that can move between shards."""


@dataclass(frozen=True, slots=True)
class Move:
    """One span of the key space that changes owner from ``source`` to ``target``."""

    source: ShardId
    target: ShardId
    span: Span
    share: float = field(default=0.0, compare=False)
    """Estimated share of the store's keys in this span (0..1), when the router knows it."""


@runtime_checkable
class Router(Protocol):
    """Maps shard keys to shards. Pure and immutable; see the module docstring."""

    @property
    def kind(self) -> str:
        """``"hash"``, ``"range"`` or ``"directory"``."""
        ...

    @property
    def shards(self) -> tuple[ShardId, ...]:
        """Every shard this router can send data to, in a stable order."""
        ...

    def shard_for(self, key: Any) -> ShardId:
        """The one shard a write of ``key`` goes to. Raises RoutingError if none."""
        ...

    def shards_for_key(self, key: Any) -> tuple[ShardId, ...]:
        """Every shard that may hold ``key`` (reads try them in order)."""
        ...

    def shards_for_query(self, constraint: KeyConstraint | None) -> tuple[ShardId, ...]:
        """Every shard a query with this shard-key constraint must visit."""
        ...

    def to_spec(self) -> dict[str, Any]:
        """A JSON-able description from which ``router_from_spec`` rebuilds this router."""
        ...

    def moves_to(self, target: Router) -> list[Move]:
        """The spans whose owner differs between this router and ``target``."""
        ...


def shard_ids(names: Sequence[str] | Mapping[str, Any]) -> tuple[ShardId, ...]:
    """Shard names as ``ShardId``s, in order."""
    return tuple(ShardId(name) for name in names)
