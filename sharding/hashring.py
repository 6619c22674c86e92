"""Consistent hashing over a fixed number of hash slots (Redis Cluster's slot map).

Why slots and not a ring of virtual nodes: a ring with ``v`` virtual nodes per shard
balances only to about ``1 / sqrt(v)`` and moves keys to whichever neighbour happens to
follow a new node's points. A table of ``2**k`` slots, each the contiguous token range
``[MIN_TOKEN + s * 2**(64-k), MIN_TOKEN + (s+1) * 2**(64-k))``, balances to within one
slot, moves exactly the slots we choose, and turns every move into a handful of
token ranges that the stores can select with an indexed ``token BETWEEN a AND b``.

The table (slot -> shard) *is* the topology: the catalog stores it per epoch
(``to_spec``), and a new shard set or new weights give a new table through
``rebalanced``, which moves the fewest slots that reach the new targets.

The lookup is the hot path of every read and write, so ``shard_for`` inlines the
``str`` key encoding and indexes a tuple rotated by half a turn: for the unsigned
first half ``u`` of MurmurHash3 x64/128, ``token + 2**63 == u ^ 2**63``, so
``slot == (u >> shift) ^ half`` and ``rotated[u >> shift] == table[slot]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from fractions import Fraction
from typing import Any, Final

import mmh3

from sharding.base import KeyConstraint, Move, Router, ShardId, TokenRange
from sharding.core.errors import RoutingError, TopologyError
from sharding.keys import MAX_TOKEN, MIN_TOKEN, encode_key

__all__ = ["DEFAULT_SLOTS", "MAX_SLOTS", "HashRouter"]

DEFAULT_SLOTS: Final = 16384
"""Redis Cluster's choice: fine enough for 1% balance on ~100 shards, small to store."""
MAX_SLOTS: Final = 2**24
"""More slots than this only makes the table (and every spec) bigger."""

_U64: Final = 2**64
_HALF_TOKENS: Final = 2**63

# Encoded-key prefixes b"s" + 4-byte length for short strings, built once, so the hot
# path does one concatenation instead of int.to_bytes and two.
_STR_PREFIXES: Final = tuple(b"s" + n.to_bytes(4, "big") for n in range(1024))


def _unsigned_hash(data: bytes, seed: int = 0) -> tuple[int, int]:  # pragma: no cover - mmh3 < 5
    first, second = mmh3.hash64(data, seed, True, True)
    return first % _U64, second % _U64


# mmh3 >= 5 returns the unsigned halves directly (and quicker than hash64).
_digest: Callable[[bytes, int], tuple[int, int]] = getattr(mmh3, "mmh3_x64_128_utupledigest", _unsigned_hash)


Weights = Mapping[str, float] | Mapping[ShardId, float] | Sequence[str]
"""Shard -> positive weight, or a list of shard names (weight 1 each)."""


def _normalise_weights(weights: Weights) -> dict[ShardId, float]:
    """Shard -> positive weight, in the caller's order (a plain list means weight 1 each)."""
    if isinstance(weights, str):
        raise TopologyError(f"weights: expected shard names or a shard -> weight table, not {weights!r}")
    items = list(weights.items()) if isinstance(weights, Mapping) else [(name, 1) for name in weights]
    result: dict[ShardId, float] = {}
    for name, weight in items:
        if not isinstance(name, str) or not name:
            raise TopologyError(f"weights: shard names must be non-empty strings, not {name!r}")
        if name in result:
            raise TopologyError(f"weights.{name}: shard {name!r} is listed twice")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            raise TopologyError(f"weights.{name}: weight must be a positive number, not {weight!r}")
        result[ShardId(name)] = weight
    if not result:
        raise TopologyError("weights: a hash router needs at least one shard")
    return result


def _check_slots(slots: object) -> int:
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1 or slots > MAX_SLOTS or slots & (slots - 1):
        raise TopologyError(f"slots: must be a power of two between 1 and {MAX_SLOTS}, not {slots!r}")
    return slots


def _slot_counts(weights: Mapping[ShardId, float], slots: int) -> dict[ShardId, int]:
    """Slots per shard proportional to weight, by largest remainder (Hamilton's method).

    Exact fractions make it deterministic on every machine; ties go to the shard listed
    first. A shard whose share rounds to zero still gets one slot (from the largest
    holder), because a configured shard that owns nothing is a silent misconfiguration.
    """
    if slots < len(weights):
        raise TopologyError(f"slots: {slots} slots cannot be shared by {len(weights)} shards")
    exact = {name: Fraction(weight) for name, weight in weights.items()}
    total = sum(exact.values())
    quotas = {name: w * slots / total for name, w in exact.items()}
    counts = {name: math.floor(q) for name, q in quotas.items()}
    order = list(weights)
    left = slots - sum(counts.values())
    by_remainder = sorted(order, key=lambda n: (-(quotas[n] - counts[n]), order.index(n)))
    for name in by_remainder[:left]:
        counts[name] += 1
    for name in order:
        if counts[name] == 0:
            richest = max(order, key=lambda n: (counts[n], -order.index(n)))
            counts[richest] -= 1
            counts[name] = 1
    return counts


def _runs(table: Sequence[ShardId]) -> Iterator[tuple[int, int, ShardId]]:
    """Maximal runs ``(first_slot, end_slot, shard)`` of equal owners, in slot order."""
    start = 0
    for slot in range(1, len(table) + 1):
        if slot == len(table) or table[slot] != table[start]:
            yield start, slot, table[start]
            start = slot


class HashRouter:
    """Shard key -> token -> slot -> shard, through a table that is the topology.

    Build one with ``HashRouter.create(weights)`` (one contiguous block per shard),
    change it with ``rebalanced(weights)`` (fewest slots moved), persist it with
    ``to_spec()`` / ``from_spec()``.
    """

    __slots__ = ("_rotated", "_shards", "_shift", "_slot_bits", "_table", "_weights")

    @property
    def kind(self) -> str:
        return "hash"

    def __init__(self, table: Sequence[str], weights: Weights) -> None:
        """A router over an explicit slot table; every owner must be one of ``weights``."""
        self._weights = _normalise_weights(weights)
        slots = _check_slots(len(table))
        for slot, owner in enumerate(table):
            if owner not in self._weights:
                raise TopologyError(
                    f"table: slot {slot} names unknown shard {owner!r} (shards: {', '.join(self._weights)})"
                )
        self._table: tuple[ShardId, ...] = tuple(ShardId(owner) for owner in table)
        self._shards: tuple[ShardId, ...] = tuple(self._weights)
        self._slot_bits = slots.bit_length() - 1
        self._shift = 64 - self._slot_bits
        half = slots // 2
        self._rotated = self._table[half:] + self._table[:half] if half else self._table

    # -- construction -------------------------------------------------------------------

    @classmethod
    def create(cls, weights: Weights, slots: int = DEFAULT_SLOTS) -> HashRouter:
        """A fresh balanced table: each shard owns one contiguous block sized by weight."""
        normalised = _normalise_weights(weights)
        counts = _slot_counts(normalised, _check_slots(slots))
        table: list[ShardId] = []
        for name in normalised:
            table.extend([name] * counts[name])
        return cls(table, normalised)

    def rebalanced(self, weights: Weights) -> HashRouter:
        """A router for a new shard set or new weights that moves as few slots as possible.

        Each shard's target count comes from the same largest-remainder rule as
        ``create``. A shard over its target keeps its lowest ``target`` slots and gives
        up the rest (the tails of its runs, so what moves is few contiguous ranges); a
        shard not in ``weights`` gives up everything. The freed slots, in slot order,
        fill the shards under target one after another (in ``weights`` order). So every
        moved key goes to a shard that gained slots, and nothing else moves.
        """
        normalised = _normalise_weights(weights)
        targets = _slot_counts(normalised, len(self._table))
        held: dict[ShardId, int] = {}
        table = list(self._table)
        freed: list[int] = []
        for slot, owner in enumerate(table):
            kept = held.get(owner, 0)
            if kept < targets.get(owner, 0):
                held[owner] = kept + 1
            else:
                freed.append(slot)
        cursor = 0
        for name in normalised:
            for _ in range(targets[name] - held.get(name, 0)):
                table[freed[cursor]] = name
                cursor += 1
        return HashRouter(table, normalised)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> HashRouter:
        """Rebuild a router from ``to_spec()`` output (as stored in the catalog)."""
        if spec.get("type") != "hash":
            raise TopologyError(f"type: expected 'hash', not {spec.get('type')!r}")
        slots = _check_slots(spec.get("slots"))
        weights = spec.get("weights")
        if not isinstance(weights, Mapping):
            raise TopologyError(f"weights: expected a shard -> weight table, not {weights!r}")
        runs = spec.get("table")
        if not isinstance(runs, Sequence) or isinstance(runs, str) or not runs:
            raise TopologyError(f"table: expected a list of [first_slot, shard] runs, not {runs!r}")
        starts: list[tuple[int, str]] = []
        for index, run in enumerate(runs):
            if not isinstance(run, Sequence) or isinstance(run, str) or len(run) != 2:
                raise TopologyError(f"table[{index}]: expected [first_slot, shard], not {run!r}")
            first, owner = run
            if not isinstance(owner, str):
                raise TopologyError(f"table[{index}]: shard must be a name, not {owner!r}")
            low = starts[-1][0] + 1 if starts else 0
            high = slots - 1 if starts else 0
            if isinstance(first, bool) or not isinstance(first, int) or not low <= first <= high:
                expected = "0" if not starts else f"between {low} and {high} (runs start in increasing order)"
                raise TopologyError(f"table[{index}]: first slot must be {expected}, not {first!r}")
            starts.append((first, owner))
        table: list[str] = []
        for (first, owner), (end, _) in zip(starts, [*starts[1:], (slots, "")], strict=True):
            table.extend([owner] * (end - first))
        return cls(table, weights)

    # -- lookups ------------------------------------------------------------------------

    def shard_for(self, key: Any) -> ShardId:
        """The shard that owns ``key``'s token. The hot path: see the module docstring."""
        if type(key) is str:
            try:
                raw = key.encode()
                return self._rotated[_digest(_STR_PREFIXES[len(raw)] + raw, 0)[0] >> self._shift]
            except (IndexError, UnicodeEncodeError):
                pass  # a long key (no prebuilt prefix) or a bad one: encode_key decides
        return self._rotated[_digest(encode_key(key), 0)[0] >> self._shift]

    def shard_for_encoded(self, encoded: bytes) -> ShardId:
        """``shard_for`` for a key already encoded with ``encode_key``."""
        return self._rotated[_digest(encoded, 0)[0] >> self._shift]

    def shards_for_key(self, key: Any) -> tuple[ShardId, ...]:
        return (self.shard_for(key),)

    def shards_for_query(self, constraint: KeyConstraint | None) -> tuple[ShardId, ...]:
        """The owners of ``constraint.values``; any other constraint visits every shard.

        Hashing destroys order, so a key range narrows nothing here.
        """
        if constraint is None or constraint.values is None:
            return self._shards
        hit = {self.shard_for(value) for value in constraint.values}
        return tuple(name for name in self._shards if name in hit)

    def token_for(self, key: Any) -> int:
        """The signed 64-bit token stored beside each row (same as ``keys.token``)."""
        return self.token_of_encoded(encode_key(key))

    @staticmethod
    def token_of_encoded(encoded: bytes) -> int:
        unsigned = _digest(encoded, 0)[0]
        return unsigned - _U64 if unsigned > MAX_TOKEN else unsigned

    def slot_for_token(self, token: int) -> int:
        if isinstance(token, bool) or not isinstance(token, int) or not MIN_TOKEN <= token <= MAX_TOKEN:
            raise RoutingError(f"token {token!r} is outside [{MIN_TOKEN}, {MAX_TOKEN}]")
        return (token + _HALF_TOKENS) >> self._shift

    def shard_for_token(self, token: int) -> ShardId:
        return self._table[self.slot_for_token(token)]

    def shards_for_tokens(self, tokens: Iterable[int]) -> list[ShardId]:
        """The owner of each token, for a batch of tokens made by ``sharding.keys.token``.

        Such tokens are in range by construction, so this skips the per-token checks of
        ``slot_for_token``: it is the hot path of ``put_many``.
        """
        table, shift, half = self._table, self._shift, _HALF_TOKENS
        return [table[(token + half) >> shift] for token in tokens]

    def token_range_of_slot(self, slot: int) -> TokenRange:
        """The tokens ``start <= t < end`` that slot ``slot`` covers."""
        if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot < len(self._table):
            raise RoutingError(f"slot {slot!r} is outside [0, {len(self._table)})")
        return self._tokens_of_slots(slot, slot + 1)

    def _tokens_of_slots(self, first: int, end: int) -> TokenRange:
        return TokenRange((first << self._shift) - _HALF_TOKENS, (end << self._shift) - _HALF_TOKENS)

    def owned_ranges(self, shard: str) -> list[TokenRange]:
        """The token ranges ``shard`` owns, contiguous runs merged, in token order."""
        if shard not in self._weights:
            raise TopologyError(f"shard {shard!r} is not one of this router's shards ({', '.join(self._shards)})")
        return [self._tokens_of_slots(first, end) for first, end, owner in _runs(self._table) if owner == shard]

    # -- topology -----------------------------------------------------------------------

    @property
    def shards(self) -> tuple[ShardId, ...]:
        return self._shards

    @property
    def slots(self) -> int:
        return len(self._table)

    @property
    def table(self) -> tuple[ShardId, ...]:
        """Slot -> shard, indexed by slot."""
        return self._table

    @property
    def weights(self) -> dict[ShardId, float]:
        return dict(self._weights)

    def slot_counts(self) -> dict[ShardId, int]:
        counts = dict.fromkeys(self._shards, 0)
        for owner in self._table:
            counts[owner] += 1
        return counts

    def moves_to(self, target: Router) -> list[Move]:
        """Token ranges whose owner changes, one Move per contiguous run of slots with the
        same (source, target); ``share`` is the fraction of the token space (= of keys).

        Slot counts may differ (both are powers of two): the coarser table is compared at
        the finer one's resolution.
        """
        if not isinstance(target, HashRouter):
            raise TopologyError(
                f"cannot plan moves from a hash router to a {getattr(target, 'kind', type(target).__name__)} "
                "router: changing the router type re-homes every key"
            )
        slots = max(self.slots, target.slots)
        mine = _refine(self._table, slots)
        theirs = _refine(target._table, slots)
        shift = 64 - (slots.bit_length() - 1)
        moves: list[Move] = []
        run_start = -1
        for slot in range(slots + 1):
            pair = (mine[slot], theirs[slot]) if slot < slots else None
            if run_start >= 0 and pair != (mine[run_start], theirs[run_start]):
                source, dest = mine[run_start], theirs[run_start]
                span = TokenRange((run_start << shift) - _HALF_TOKENS, (slot << shift) - _HALF_TOKENS)
                moves.append(Move(source, dest, span, share=(slot - run_start) / slots))
                run_start = -1
            if pair is not None and pair[0] != pair[1] and run_start < 0:
                run_start = slot
        return moves

    def to_spec(self) -> dict[str, Any]:
        """``{"type": "hash", "slots", "weights", "table": [[first_slot, shard], ...]}``."""
        return {
            "type": "hash",
            "slots": len(self._table),
            "weights": dict(self._weights),
            "table": [[first, owner] for first, _end, owner in _runs(self._table)],
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HashRouter):
            return NotImplemented
        return self._table == other._table and self._weights == other._weights and self._shards == other._shards

    def __hash__(self) -> int:
        return hash((self._table, self._shards))

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}={count}" for name, count in self.slot_counts().items())
        return f"HashRouter(slots={len(self._table)}, {counts})"


def _refine(table: tuple[ShardId, ...], slots: int) -> Sequence[ShardId]:
    """The same table at ``slots`` resolution (each slot repeated ``slots / len`` times)."""
    factor = slots // len(table)
    if factor == 1:
        return table
    return [owner for owner in table for _ in range(factor)]
