"""Directory routing: an explicit key -> shard table, with a fallback router.

Why: some keys must live somewhere on purpose (a large tenant on its own shard, data
pinned to a region), and the rest may be spread by any rule. The table is data, not
configuration: it lives in the catalog, keyed by ``encode_key(key)`` bytes, and may hold
millions of rows. This router is the pure, immutable view of one loaded table. It does
no I/O; the catalog loads entries, caches them, and builds a new router (with
``with_entries`` / ``without_keys``) when they change.

Keys the table does not pin go to ``fallback`` (by default a hash router over every
shard), so a directory router is total like every other router.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from sharding.base import DirectoryKeys, KeyConstraint, Move, Router, ShardId
from sharding.core.errors import TopologyError
from sharding.hashring import HashRouter
from sharding.keys import decode_key, encode_key
from sharding.range import RangeRouter

__all__ = ["DirectoryRouter"]


class DirectoryRouter:
    """Pinned keys (by encoded bytes) win; every other key goes to ``fallback``.

    ``shards`` (default: the fallback's) is the store's shard list; every pinned shard
    and every shard of the fallback must be in it.
    """

    __slots__ = ("_entries", "_fallback", "_hash_fallback", "_shards")

    def __init__(
        self,
        entries: Mapping[bytes, str],
        fallback: Router,
        shards: Sequence[str] | None = None,
    ) -> None:
        if shards is None:
            known: tuple[ShardId, ...] = tuple(fallback.shards)
        else:
            if isinstance(shards, str):
                raise TopologyError(f"shards: expected a list of shard names, not {shards!r}")
            known = tuple(ShardId(name) for name in shards)
            strays = [name for name in fallback.shards if name not in known]
            if strays:
                raise TopologyError(
                    f"fallback: routes to shard {strays[0]!r}, which is not one of the shards ({', '.join(known)})"
                )
        allowed = frozenset(known)
        table: dict[bytes, ShardId] = {}
        for encoded, shard in entries.items():
            if shard not in allowed:
                raise TopologyError(f"entries[{_show(encoded)}]: unknown shard {shard!r} (shards: {', '.join(known)})")
            if not isinstance(encoded, bytes):
                raise TopologyError(f"entries: keys must be encode_key() bytes, not {encoded!r}")
            table[encoded] = ShardId(shard)
        self._entries = table
        self._fallback = fallback
        self._shards = known
        # Hash fallbacks hash the bytes we already encoded instead of encoding again.
        self._hash_fallback = fallback if isinstance(fallback, HashRouter) else None

    # -- building -----------------------------------------------------------------------

    def with_entries(self, pins: Mapping[Any, str]) -> DirectoryRouter:
        """A new router with these keys (key values, not bytes) pinned to these shards."""
        table = dict(self._entries)
        table.update({encode_key(key): ShardId(shard) for key, shard in pins.items()})
        return DirectoryRouter(table, self._fallback, self._shards)

    def without_keys(self, keys: Iterable[Any]) -> DirectoryRouter:
        """A new router where these keys (if pinned) fall back again."""
        table = dict(self._entries)
        for key in keys:
            table.pop(encode_key(key), None)
        return DirectoryRouter(table, self._fallback, self._shards)

    def with_fallback(self, fallback: Router) -> DirectoryRouter:
        """A new router with the same pins and another fallback (e.g. a rebalanced ring)."""
        return DirectoryRouter(self._entries, fallback, self._shards)

    # -- lookups ------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return "directory"

    @property
    def shards(self) -> tuple[ShardId, ...]:
        return self._shards

    @property
    def fallback(self) -> Router:
        return self._fallback

    @property
    def entries(self) -> Mapping[bytes, ShardId]:
        """The pinned keys (encoded) -> shard, read-only; what the catalog persists."""
        return MappingProxyType(self._entries)

    def pinned(self, key: Any) -> ShardId | None:
        """The shard ``key`` is pinned to, or ``None`` if the fallback decides."""
        return self._entries.get(encode_key(key))

    def shard_for(self, key: Any) -> ShardId:
        encoded = encode_key(key)
        shard = self._entries.get(encoded)
        if shard is not None:
            return shard
        if self._hash_fallback is not None:
            return self._hash_fallback.shard_for_encoded(encoded)
        return self._fallback.shard_for(key)

    def _owner_of_encoded(self, encoded: bytes) -> ShardId:
        shard = self._entries.get(encoded)
        if shard is not None:
            return shard
        if self._hash_fallback is not None:
            return self._hash_fallback.shard_for_encoded(encoded)
        return self._fallback.shard_for(decode_key(encoded))

    def shards_for_key(self, key: Any) -> tuple[ShardId, ...]:
        return (self.shard_for(key),)

    def shards_for_query(self, constraint: KeyConstraint | None) -> tuple[ShardId, ...]:
        """The owners of ``constraint.values``; otherwise every shard.

        A key range cannot be narrowed through the fallback alone: pinned keys inside
        the range may live on any shard.
        """
        if constraint is None or constraint.values is None:
            return self._shards
        hit = {self.shard_for(value) for value in constraint.values}
        return tuple(name for name in self._shards if name in hit)

    # -- topology -----------------------------------------------------------------------

    def moves_to(self, target: Router) -> list[Move]:
        """Pinned keys whose owner changes, then the fallback's own moves.

        Every key pinned on either side is compared directly (owner here vs owner
        there, each through pin or fallback) and moves as ``DirectoryKeys``, grouped
        per (source, target), keys in encoded-byte order.

        The fallback's moves (``fallback.moves_to(target.fallback)``) apply ONLY to
        keys pinned on neither side: a rebalance executing those spans must skip rows
        whose key is pinned in this router or in ``target`` (those are covered by the
        ``DirectoryKeys`` moves above, or stay where they are).
        """
        if not isinstance(target, DirectoryRouter):
            kind = getattr(target, "kind", type(target).__name__)
            raise TopologyError(
                f"cannot plan moves from a directory router to a {kind} router: "
                "changing the router type re-homes every key"
            )
        grouped: dict[tuple[ShardId, ShardId], list[bytes]] = {}
        for encoded in sorted(self._entries.keys() | target._entries.keys()):
            source = self._owner_of_encoded(encoded)
            dest = target._owner_of_encoded(encoded)
            if source != dest:
                grouped.setdefault((source, dest), []).append(encoded)
        moves = [
            Move(source, dest, DirectoryKeys(tuple(decode_key(encoded) for encoded in keys)))
            for (source, dest), keys in sorted(grouped.items())
        ]
        if self._fallback.to_spec() != target._fallback.to_spec():
            moves.extend(self._fallback.moves_to(target._fallback))
        return moves

    def to_spec(self) -> dict[str, Any]:
        """``{"type": "directory", "shards", "fallback": spec}``; the entries live in the
        catalog's directory table, not in the spec (they may be millions of rows)."""
        return {"type": "directory", "shards": list(self._shards), "fallback": self._fallback.to_spec()}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], entries: Mapping[bytes, str] | None = None) -> DirectoryRouter:
        """Rebuild from ``to_spec()`` output plus the entries loaded from the catalog."""
        if spec.get("type") != "directory":
            raise TopologyError(f"type: expected 'directory', not {spec.get('type')!r}")
        fallback_spec = spec.get("fallback")
        if not isinstance(fallback_spec, Mapping):
            raise TopologyError(f"fallback: expected a router spec, not {fallback_spec!r}")
        try:
            builders: dict[Any, Callable[[Mapping[str, Any]], Router]] = {
                "hash": HashRouter.from_spec,
                "range": RangeRouter.from_spec,
                "directory": cls.from_spec,
            }
            build = builders.get(fallback_spec.get("type"))
            if build is None:
                raise TopologyError(f"type: expected one of hash, range, directory, not {fallback_spec.get('type')!r}")
            fallback = build(fallback_spec)
        except TopologyError as exc:
            raise TopologyError(f"fallback.{exc}") from exc
        return cls(entries or {}, fallback, spec.get("shards"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DirectoryRouter):
            return NotImplemented
        mine = (self._entries, self._shards, self._fallback.to_spec())
        return mine == (other._entries, other._shards, other._fallback.to_spec())

    __hash__ = None  # type: ignore[assignment]  # mutable-sized table: compare, don't hash

    def __repr__(self) -> str:
        return f"DirectoryRouter({len(self._entries)} pinned keys, fallback={self._fallback!r})"


def _show(encoded: object) -> str:
    """A pinned key for an error message: decoded if possible, else its bytes."""
    try:
        return repr(decode_key(encoded))  # type: ignore[arg-type]
    except Exception:
        return repr(encoded)
