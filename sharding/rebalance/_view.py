"""What a Store needs to route while a rebalance of it is in flight.

``Moving`` pairs the router of the epoch being left (``old``) with the target router
(``new``) and the phase the journal publishes. The repository asks it two questions on
its slow path (only while a rebalance is active): which shards must a write of this key
reach, and must this write wait for the fence to lift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sharding.base import Router, ShardId

__all__ = ["Moving", "moving_view"]


@dataclass(frozen=True, slots=True)
class Moving:
    """A store's routing while rebalance ``rebalance`` is in ``phase``.

    ``dual``: reads by ``old``; writes reach the old owner, then the new one.
    ``fence``: writes of keys whose owner changes wait; others go to the old owner.
    ``cleanup`` (after cut-over) and ``abort``: writes reach the current owner only.
    In every phase, queries that fan out drop rows found on a shard that does not own
    them under the current router (copies not yet cleaned up).
    """

    rebalance: str
    phase: str
    old: Router
    new: Router
    shards: Mapping[str, str]
    """Every shard URL of both topologies (target shards exist before cut-over)."""

    @property
    def splits_writes(self) -> bool:
        """Whether writes route through ``write_shards`` (dual and fence) or the store's router."""
        return self.phase in ("dual", "fence")

    def write_shards(self, shard_key: Any) -> tuple[ShardId, ...] | None:
        """In ``dual``/``fence``: the shards a write of ``shard_key`` goes to (old owner
        first), or None while it must wait for the fence to lift."""
        old = self.old.shard_for(shard_key)
        new = self.new.shard_for(shard_key)
        if new == old:
            return (old,)
        if self.phase == "fence":
            return None
        return (old, new)


def moving_view(
    rebalance: str,
    phase: str,
    old: Router,
    plan: Mapping[str, Any],
    old_shards: Mapping[str, str],
) -> Moving:
    """Build the view from a journal plan (its target spec, shards and pins)."""
    from sharding import router_from_spec
    from sharding.keys import encode_key, key_from_json

    target = plan["target"]
    entries = None
    if target["router"].get("type") == "directory":
        entries = {encode_key(key_from_json(key)): shard for key, shard in target.get("entries", [])}
    new = router_from_spec(target["router"], directory_entries=entries)
    shards = {**dict(target["shards"]), **dict(old_shards)}
    return Moving(rebalance, phase, old, new, shards)
