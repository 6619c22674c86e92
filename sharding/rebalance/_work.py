"""What each step does to one unit (a move of one entity): copy, relate the edges again,
compare and repair, delete. Every piece is idempotent, so a step redone after a crash
or a retry does no harm; the executor (``_executor``) decides when each runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeAlias

from adapters.base import Adapter, Capability, RangeChecksum
from sharding.base import Router, ShardId
from sharding.core.errors import TopologyError
from sharding.core.model import EntitySchema
from sharding.keys import encode_key
from sharding.rebalance._plan import Plan, PlannedMove
from sharding.rebalance._progress import Progress, ProgressEvent
from sharding.rebalance._rows import Mover, row_digest

__all__ = ["UnitWork", "Work"]

Work: TypeAlias = Callable[[Plan, PlannedMove, Mover], dict[str, Any]]
"""One step's work on one unit; returns the counts to journal (``copied``, ``repaired``...)."""

AdapterFor: TypeAlias = Callable[[Plan, str], Adapter]


class UnitWork:
    """The unit work of one rebalancer: its adapters, batch size and progress reporting."""

    def __init__(self, adapter: AdapterFor, batch_size: int, progress: Progress) -> None:
        self.adapter = adapter
        self.batch = batch_size
        self.progress = progress

    # -- copy -----------------------------------------------------------------------
    def copy(self, plan: Plan, move: PlannedMove, mover: Mover) -> dict[str, Any]:
        """Upsert the unit's rows into the target, with their expiry instants."""
        source = self.adapter(plan, move.source)
        target = self.adapter(plan, move.target)
        copied = 0
        bounds = mover.range_bounds()
        layout = source.stored_layout(mover.schema) if bounds is not None else None
        if bounds is not None and layout is not None and layout == target.stored_layout(mover.schema):
            # Both store the rows alike: move them as stored, nothing decoded or re-encoded.
            tokens, keys = bounds
            # Bigger batches than the row path: a row costs little here, and each commit
            # rewrites the index pages it touched (a large target's token index).
            stored_batch = self.batch * 10
            for stored in source.scan_stored(mover.schema, tokens=tokens, keys=keys, batch_size=stored_batch):
                target.put_stored(mover.schema, stored)
                copied += len(stored)
                self.progress(ProgressEvent("rows", "copy", rows=len(stored), move=move.index))
            return {"copied": copied}
        for rows in mover.rows(source, self.batch, expiring=True):
            target.put_expiring(mover.schema, mover.prepare(rows))
            copied += len(rows)
            self.progress(ProgressEvent("rows", "copy", rows=len(rows), move=move.index))
        return {"copied": copied}

    # -- relationships --------------------------------------------------------------
    def copy_edges(self, plan: Plan, move: PlannedMove, mover: Mover) -> dict[str, Any]:
        """Relationships follow their nodes (GRAPH adapters only).

        An edge lives on the shard of its ends (``relate`` needs both on one shard). An
        edge from a moving node is related again on the target shard when the new router
        puts its other end there too (it moved along, or already lived there); an edge
        the new topology would split between two shards cannot exist, so the rebalance
        stops here, naming one (abort it, then co-locate the ends, e.g. with a directory
        router, or unrelate them). Source copies go with the nodes at cleanup. Run again
        under the fence (without a verify before it), this is also the edges' catch-up.
        """
        source = self.adapter(plan, move.source)
        if Capability.GRAPH not in source.capabilities or not source.may_have_edges(mover.schema):
            return {}
        target = self.adapter(plan, move.target)
        schema = mover.schema
        split: list[str] = []
        for rows in mover.rows(source, self.batch):
            keys = [schema.key_of(row) for row in rows]
            split += self.sync_edges(plan, schema, source, target, move.target, mover.new, keys)
        refuse_split(plan, split)
        return {}

    @staticmethod
    def sync_edges(
        plan: Plan,
        schema: EntitySchema,
        source: Adapter,
        target: Adapter,
        target_shard: ShardId,
        new: Router,
        keys: list[Any],
    ) -> list[str]:
        """Make the target's edges from ``keys`` equal the source's (relate what is
        missing or differs, unrelate what the source no longer has); returns the edges
        the new topology would split."""
        split: list[str] = []
        for other in plan.schemas:
            theirs = {
                (encode_key(edge.source), edge.type, encode_key(edge.target)): edge
                for edge in (target.edges_of(schema, keys, other) if target.may_have_edges(schema) else ())
            }
            for edge in source.edges_of(schema, keys, other):
                if new.shard_for(edge.target) != target_shard:
                    split.append(f"{schema.name} {edge.source!r} -{edge.type}-> {other.name} {edge.target!r}")
                    continue
                found = theirs.pop((encode_key(edge.source), edge.type, encode_key(edge.target)), None)
                if found is None or dict(found.properties) != dict(edge.properties):
                    target.relate(schema, edge, other)
            for edge in theirs.values():  # unrelated on the source since it was copied
                target.unrelate(schema, edge, other)
            for edge in source.edges_of(schema, keys, other, incoming=True):
                if new.shard_for(edge.source) != target_shard:
                    split.append(f"{other.name} {edge.source!r} -{edge.type}-> {schema.name} {edge.target!r}")
        return split

    # -- compare and repair ---------------------------------------------------------
    def reconcile(self, step: str) -> Work:
        """Compare a unit's source and target by key and digest; make the target equal the
        source (upsert what differs, delete what the source lacks). Source is the truth
        until cut-over."""
        batch = self.batch

        def reconcile(plan: Plan, move: PlannedMove, mover: Mover) -> dict[str, Any]:
            source = self.adapter(plan, move.source)
            target = self.adapter(plan, move.target)
            agreed = checksums_agree(mover, source, target)
            if agreed is not None:  # equal on the servers: nothing to read, nothing to repair
                self.progress(ProgressEvent("rows", step, rows=agreed.rows, move=move.index))
                tag = agreed.method.split("/", 1)[0]
                return {"repaired": 0, "rows": agreed.rows, "checksum": f"{agreed.checksum:016x}/{tag}"}
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify") as pool:
                # both sides are read at once: on a server each waits on its own I/O
                theirs = pool.submit(self._fingerprints, mover, target, None)
                wanted = self._fingerprints(mover, source, (step, move.index))
                found = theirs.result()
            checksum = sum(digest for digest, _ in wanted.values()) % 2**64
            extra = [key for encoded, (_, key) in found.items() if encoded not in wanted]
            differing = [key for encoded, (digest, key) in wanted.items() if found.get(encoded, (None,))[0] != digest]
            repaired = self.repair(mover, source, target, differing) + len(extra)
            for start in range(0, len(extra), batch):
                target.delete_many(mover.schema, extra[start : start + batch])
            return {"repaired": repaired, "rows": len(wanted), "checksum": f"{checksum:016x}"}

        return reconcile

    def _fingerprints(
        self, mover: Mover, adapter: Adapter, report: tuple[str, int] | None
    ) -> dict[bytes, tuple[int, Any]]:
        """Encoded key -> (digest, key) of a unit's rows on one side."""
        found: dict[bytes, tuple[int, Any]] = {}
        schema = mover.schema
        for rows in mover.rows(adapter, self.batch):
            for row in rows:
                key = schema.key_of(row)
                found[encode_key(key)] = (row_digest(schema, row), key)
            if report is not None:
                self.progress(ProgressEvent("rows", report[0], rows=len(rows), move=report[1]))
        return found

    def repair(self, mover: Mover, source: Adapter, target: Adapter, keys: list[Any]) -> int:
        """Copy ``keys`` from source to target again; a key gone from the source goes from the target."""
        for start in range(0, len(keys), self.batch):
            chunk = keys[start : start + self.batch]
            rows = [row for row in source.get_many_expiring(mover.schema, chunk) if mover.moves(row)]
            if rows:
                target.put_expiring(mover.schema, mover.prepare(rows))
            present = {mover.key_bytes(row) for row in rows}
            gone = [key for key in chunk if encode_key(key) not in present]
            if gone:
                target.delete_many(mover.schema, gone)
        return len(keys)

    # -- delete ---------------------------------------------------------------------
    def delete_from(self, side: Literal["source", "target"]) -> Work:
        """Delete a unit's rows from the source (after cut-over) or the target (abort)."""
        batch = self.batch

        def delete(plan: Plan, move: PlannedMove, mover: Mover) -> dict[str, Any]:
            adapter = self.adapter(plan, move.source if side == "source" else move.target)
            bounds = mover.range_bounds()
            if bounds is not None:
                # Nobody routes this span here any more (see the docstring): every row in it
                # is a stale copy, so the whole span goes without reading it back.
                gone = adapter.delete_range(mover.schema, tokens=bounds[0], keys=bounds[1])
                if gone is not None:
                    self.progress(ProgressEvent("rows", "cleanup", rows=gone, move=move.index))
                    return {"deleted": gone}
            deleted = 0
            while True:  # rescan until empty: deleting while paging may skip rows
                keys = [mover.schema.key_of(row) for rows in mover.rows(adapter, batch) for row in rows]
                if not keys:
                    break
                for start in range(0, len(keys), batch):
                    chunk = keys[start : start + batch]
                    adapter.delete_many(mover.schema, chunk)
                    deleted += len(chunk)
                    self.progress(ProgressEvent("rows", "cleanup", rows=len(chunk), move=move.index))
            return {"deleted": deleted}

        return delete


def only(entity: str, work: Work) -> Work:
    """``work`` for one entity's units; the others are left as they are."""

    def one_entity(plan: Plan, move: PlannedMove, mover: Mover) -> dict[str, Any]:
        return work(plan, move, mover) if mover.schema.name == entity else {}

    return one_entity


def refuse_split(plan: Plan, split: list[str]) -> None:
    """Stop the rebalance if the target topology would split relationships."""
    if split:
        raise TopologyError(
            f"store {plan.store!r}: the target topology splits {len(split)} relationship(s) between shards "
            f"(e.g. {split[0]}); abort this rebalance, co-locate their ends or unrelate them, and plan again"
        )


def checksums_agree(mover: Mover, source: Adapter, target: Adapter) -> RangeChecksum | None:
    """The source's checksum of the unit's span if the target's is the same (both
    computed by the servers, by the same method, over rows live at the same instant);
    None if either side cannot compute one, or they differ: compare row by row then.

    Only for spans whose range is exactly the moving rows (token and key ranges), the
    same rows the row-by-row compare would read.
    """
    bounds = mover.range_bounds()
    if bounds is None:
        return None
    tokens, keys = bounds
    now = time.time()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify") as pool:
        theirs = pool.submit(target.range_checksum, mover.schema, tokens=tokens, keys=keys, now=now)
        ours = source.range_checksum(mover.schema, tokens=tokens, keys=keys, now=now)
        found = theirs.result()
    if ours is None or found is None or ours != found:
        return None
    return ours
