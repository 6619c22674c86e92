"""Range routing: ordered split points on the shard key's natural order.

Why ranges: a store whose queries scan by key order (time series by day, tenants by
id band) wants neighbouring keys on one shard, so a range query visits only the shards
whose ranges it overlaps. The price is that the split points must be chosen (and moved)
by someone who knows the data; hash routing needs no such care.

Every range is ``lower <= key < upper``: lower bounds inclusive, upper bounds exclusive,
so a key equal to a split point belongs to the range *above* it (``bisect_right``). The
first range is unbounded below; the last is unbounded above unless the router is
``bounded``, in which case keys at or past the last ``upto`` belong to no shard.

All keys of one router must be mutually comparable with its split points. Python
would happily compare ``True < 5`` and raise deep inside ``bisect`` for ``"5" < 5``, so
each router records the *family* of its split points (number, str, bytes, date,
naive or aware datetime, uuid, or a tuple of those) and checks keys against it,
naming the key and the expected type. Decimal keys and split points must be keys
(finite and within decimal128, see ``sharding.keys``): then Python's comparison, which is
exact for any mix of ints and Decimals, is also the order of their encoded bytes.
"""

from __future__ import annotations

import datetime as _dt
import decimal as _decimal
import uuid as _uuid
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any, TypeAlias

from sharding.base import KeyConstraint, KeyRange, Move, Router, ShardId
from sharding.core.errors import InvalidKeyError, RoutingError, TopologyError
from sharding.keys import check_decimal_key, key_from_json, key_to_json

__all__ = ["RangeRouter"]

Family: TypeAlias = "str | tuple[Family, ...]"
"""``"number"``, ``"str"``, ... or, for a tuple key, the families of its parts."""

_PLAIN: dict[type, str] = {
    int: "number",
    _decimal.Decimal: "number",
    str: "str",
    bytes: "bytes",
    _uuid.UUID: "uuid",
    _dt.date: "date",
}
_NAMES = {
    "number": "int or Decimal",
    "str": "str",
    "bytes": "bytes",
    "uuid": "UUID",
    "date": "date",
    "datetime": "naive datetime",
    "aware datetime": "timezone-aware datetime",
}


def _is_decimal_key(value: _decimal.Decimal) -> bool:
    try:
        check_decimal_key(value)
    except InvalidKeyError:
        return False
    return True


def _family(value: object) -> Family:
    """The comparability class of a key; values of one family always compare."""
    kind = type(value)
    family = _PLAIN.get(kind)
    if family is not None:
        if kind is _decimal.Decimal and not _is_decimal_key(value):  # type: ignore[arg-type]
            return "Decimal outside the key domain"
        return family
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, _dt.datetime):
        return "datetime" if value.utcoffset() is None else "aware datetime"
    if isinstance(value, tuple):
        return tuple(_family(part) for part in value)
    for base, name in _PLAIN.items():  # subclasses of the plain types
        if isinstance(value, base):
            return name
    return type(value).__name__


def _compatible(a: Family, b: Family) -> bool:
    """Whether keys of families ``a`` and ``b`` can be ordered against each other.

    Tuples compare part by part until one ends, so only the common prefix must agree:
    a split point ``(2024,)`` and a key ``(2024, "eu")`` are fine.
    """
    if isinstance(a, tuple) and isinstance(b, tuple):
        return all(_compatible(x, y) for x, y in zip(a, b, strict=False))
    return a == b and a in _NAMES


def _merge(a: Family, b: Family) -> Family:
    """The family that describes both (the longer tuple, part by part)."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        longer = a if len(a) >= len(b) else b
        merged = tuple(_merge(x, y) for x, y in zip(a, b, strict=False))
        return merged + longer[len(merged) :]
    return a


def _describe(family: Family) -> str:
    if isinstance(family, tuple):
        return f"tuple ({', '.join(_describe(part) for part in family)})"
    return _NAMES.get(family, family)


class RangeRouter:
    """Shard keys -> shards by ordered split points (see the module docstring).

    ``ranges`` is the config form: ``[{"shard": "s0", "upto": 100}, {"shard": "s1"}]``,
    each range's lower bound being the previous one's ``upto``. The same shard may own
    several ranges. ``shards`` (default: the shards named in ``ranges``) is the store's
    full shard list; a shard may own no range.
    """

    __slots__ = ("_bounded", "_family", "_fast_types", "_owners", "_shards", "_splits")

    def __init__(
        self,
        ranges: Sequence[Mapping[str, Any]],
        *,
        bounded: bool = False,
        shards: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(bounded, bool):
            raise TopologyError(f"bounded: expected true or false, not {bounded!r}")
        if isinstance(ranges, (str, bytes, Mapping)) or not isinstance(ranges, Sequence) or not ranges:
            raise TopologyError(f"ranges: expected a non-empty list of {{shard, upto}} tables, not {ranges!r}")
        known = None if shards is None else tuple(ShardId(name) for name in shards)
        splits: list[Any] = []  # KeyValues of one family (Any: bisect wants an order)
        owners: list[ShardId | None] = []
        family: Family | None = None
        last = len(ranges) - 1
        for index, entry in enumerate(ranges):
            where = f"ranges[{index}]"
            if not isinstance(entry, Mapping):
                raise TopologyError(f"{where}: expected a {{shard, upto}} table, not {entry!r}")
            unknown = sorted(set(entry) - {"shard", "upto"})
            if unknown:
                raise TopologyError(f"{where}.{unknown[0]}: unknown field (expected shard, upto)")
            shard = entry.get("shard")
            if not isinstance(shard, str) or not shard:
                raise TopologyError(f"{where}.shard: expected a shard name, not {shard!r}")
            if known is not None and shard not in known:
                raise TopologyError(f"{where}.shard: unknown shard {shard!r} (shards: {', '.join(known)})")
            owners.append(ShardId(shard))
            has_upto = entry.get("upto") is not None
            if index == last and not bounded:
                if has_upto:
                    raise TopologyError(
                        f"{where}.upto: the last range must be unbounded above (drop its upto, or set bounded = true)"
                    )
                break
            if not has_upto:
                reason = "a bounded router's last range" if index == last else "only the last range may omit it"
                raise TopologyError(f"{where}.upto: missing ({reason})")
            try:
                point = key_from_json(entry["upto"])
            except InvalidKeyError as exc:
                raise TopologyError(f"{where}.upto: {exc}") from exc
            kind = _family(point)
            if family is None:
                if not _compatible(kind, kind):
                    raise TopologyError(
                        f"{where}.upto: {point!r} cannot be a split point ({_describe(kind)}); "
                        "use ints, Decimals, strings, bytes, UUIDs, dates, datetimes or tuples of them"
                    )
                family = kind
            elif not _compatible(family, kind):
                raise TopologyError(
                    f"{where}.upto: {point!r} is a {_describe(kind)}, but the split points "
                    f"before it are {_describe(family)}"
                )
            else:
                family = _merge(family, kind)
            if splits and not splits[-1] < point:
                raise TopologyError(
                    f"{where}.upto: {point!r} is not greater than ranges[{index - 1}].upto "
                    f"{splits[-1]!r}; split points must strictly increase"
                )
            splits.append(point)
        if bounded:
            owners.append(None)
        self._splits = tuple(splits)
        self._owners = tuple(owners)
        self._bounded = bounded
        self._family = family
        # Decimal keys take the slow path: each is checked to be a key (finite, in range).
        fast = {kind for kind, name in _PLAIN.items() if name == family and kind is not _decimal.Decimal}
        self._fast_types = frozenset(fast)
        named = tuple(dict.fromkeys(owner for owner in owners if owner is not None))
        self._shards = known if known is not None else named

    @property
    def kind(self) -> str:
        return "range"

    @property
    def shards(self) -> tuple[ShardId, ...]:
        return self._shards

    @property
    def bounded(self) -> bool:
        return self._bounded

    @property
    def split_points(self) -> tuple[Any, ...]:
        """Every ``upto``, in order (``len(ranges) - 1`` of them, or all if bounded)."""
        return self._splits

    def ranges(self) -> list[tuple[KeyRange, ShardId]]:
        """Each range and its owner, in key order."""
        bounds: list[Any] = [None, *self._splits, None]
        return [
            (KeyRange(bounds[i], bounds[i + 1]), owner) for i, owner in enumerate(self._owners) if owner is not None
        ]

    # -- lookups ------------------------------------------------------------------------

    def _check(self, key: object, role: str = "key") -> None:
        """Raise RoutingError unless ``key`` can be ordered against the split points.

        A Decimal that is no key (NaN, infinite, beyond decimal128) is refused whatever
        the split points: it has no place in the key order that every store agrees on.
        """
        if type(key) in self._fast_types:
            return
        if isinstance(key, _decimal.Decimal):
            try:
                check_decimal_key(key)
            except InvalidKeyError as exc:
                raise RoutingError(f"{role} {key!r} cannot be routed: {exc}") from exc
        if self._family is None:
            return
        kind = _family(key)
        if not _compatible(self._family, kind):
            raise RoutingError(
                f"{role} {key!r} is a {_describe(kind)}, but this range router's split points "
                f"are {_describe(self._family)}"
            )

    def _index(self, key: object, role: str = "key") -> int:
        """The index of the range holding ``key`` (``len(splits)`` is past the end)."""
        self._check(key, role)
        try:
            return bisect_right(self._splits, key)
        except (TypeError, ArithmeticError) as exc:  # unreachable when _check is right
            raise RoutingError(f"{role} {key!r} cannot be compared with the split points: {exc}") from exc

    def shard_for(self, key: Any) -> ShardId:
        owner = self._owners[self._index(key)]
        if owner is None:
            raise RoutingError(
                f"no shard owns key {key!r}: it is at or past the last range's upto "
                f"{self._splits[-1]!r} and the router is bounded"
            )
        return owner

    def shards_for_key(self, key: Any) -> tuple[ShardId, ...]:
        return (self.shard_for(key),)

    def shards_for_query(self, constraint: KeyConstraint | None) -> tuple[ShardId, ...]:
        """Only the shards whose ranges the constraint overlaps.

        ``values``: the owners of those values (values no shard owns match nothing).
        Bounds: the ranges from the one holding ``lower`` to the one holding ``upper``;
        an exclusive ``upper`` equal to a split point stops below it. An exclusive
        ``lower`` still visits the range holding it (the key order may be dense).
        """
        if constraint is None or constraint.is_unbounded:
            return self._shards
        if constraint.values is not None:
            hit = set()
            for value in constraint.values:
                owner = self._owners[self._index(value, "query value")]
                if owner is not None:
                    hit.add(owner)
            return tuple(name for name in self._shards if name in hit)
        first = 0 if constraint.lower is None else self._index(constraint.lower, "query lower bound")
        last = len(self._owners) - 1
        if constraint.upper is not None:
            self._check(constraint.upper, "query upper bound")
            if constraint.lower is not None:
                empty = (
                    constraint.upper < constraint.lower
                    if constraint.lower_inclusive and constraint.upper_inclusive
                    else not constraint.lower < constraint.upper
                )
                if empty:
                    return ()
            if constraint.upper_inclusive:
                last = bisect_right(self._splits, constraint.upper)
            else:
                last = bisect_left(self._splits, constraint.upper)
        hit = {owner for owner in self._owners[first : last + 1] if owner is not None}
        return tuple(name for name in self._shards if name in hit)

    # -- topology -----------------------------------------------------------------------

    def _owner_at(self, point: object) -> ShardId | None:
        """Owner of the piece starting at ``point`` (``None``: unbounded below)."""
        return self._owners[0 if point is None else bisect_right(self._splits, point)]

    def moves_to(self, target: Router) -> list[Move]:
        """KeyRange moves for the sub-ranges whose owner changes.

        The pieces are cut at the union of both routers' split points, so each piece has
        one owner on each side; adjacent pieces with the same (source, target) merge.
        A piece that was unowned (past a bounded end) has no rows to move; a piece that
        becomes unowned would strand its rows, so that is a TopologyError.
        ``share`` stays 0: a range router does not know how keys are distributed.
        """
        if not isinstance(target, RangeRouter):
            kind = getattr(target, "kind", type(target).__name__)
            raise TopologyError(
                f"cannot plan moves from a range router to a {kind} router: changing the router type re-homes every key"
            )
        if self._family is not None and target._family is not None:  # noqa: SIM102
            if not _compatible(self._family, target._family):
                raise TopologyError(
                    f"ranges: the target's split points are {_describe(target._family)}, "
                    f"but the current ones are {_describe(self._family)}"
                )
        points = sorted(set(self._splits) | set(target._splits))
        bounds: list[Any] = [None, *points, None]
        moves: list[Move] = []
        for lower, upper in pairwise(bounds):
            source, dest = self._owner_at(lower), target._owner_at(lower)
            if source is None or source == dest:
                continue
            if dest is None:
                raise TopologyError(
                    f"ranges: keys in {KeyRange(lower, upper)} belong to {source!r} now but to no "
                    "shard in the target topology"
                )
            previous = moves[-1] if moves else None
            if (
                previous is not None
                and (previous.source, previous.target) == (source, dest)
                and isinstance(previous.span, KeyRange)
                and previous.span.upper == lower
            ):
                moves[-1] = Move(source, dest, KeyRange(previous.span.lower, upper))
            else:
                moves.append(Move(source, dest, KeyRange(lower, upper)))
        return moves

    def to_spec(self) -> dict[str, Any]:
        """``{"type": "range", "bounded", "shards", "ranges": [{"shard", "upto"}, ...]}``.

        Split points use ``keys.key_to_json`` (dates, decimals... as tagged objects).
        """
        ranges: list[dict[str, Any]] = []
        for index, owner in enumerate(self._owners):
            if owner is None:
                break
            entry: dict[str, Any] = {"shard": owner}
            if index < len(self._splits):
                entry["upto"] = key_to_json(self._splits[index])
            ranges.append(entry)
        return {"type": "range", "bounded": self._bounded, "shards": list(self._shards), "ranges": ranges}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> RangeRouter:
        if spec.get("type") != "range":
            raise TopologyError(f"type: expected 'range', not {spec.get('type')!r}")
        shards = spec.get("shards")
        if shards is not None and (isinstance(shards, str) or not isinstance(shards, Sequence)):
            raise TopologyError(f"shards: expected a list of shard names, not {shards!r}")
        return cls(spec.get("ranges", ()), bounded=spec.get("bounded", False), shards=shards)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RangeRouter):
            return NotImplemented
        mine = (self._splits, self._owners, self._shards)
        return mine == (other._splits, other._owners, other._shards)

    def __hash__(self) -> int:
        return hash((self._splits, self._owners, self._shards))

    def __repr__(self) -> str:
        parts = [f"{key_range.lower!r}..{key_range.upper!r}: {owner}" for key_range, owner in self.ranges()]
        return f"RangeRouter({'; '.join(parts)})"
