"""Executing a plan: a state machine over the journal, every step idempotent.

``state`` in ``ps_rebalance`` is the step to run next; each step's work is redone from
its start after a crash (copies are upserts, repairs compare again, deletes of deleted
rows are no-ops), and per-unit progress skips the units already finished. See the
package docstring for why the steps are in this order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from adapters.base import Adapter, Capability, RangeChecksum
from adapters.registry import adapter_class, scheme_of
from sharding.base import DirectoryKeys, ShardId
from sharding.core.errors import ConfigError, TopologyError
from sharding.core.model import EntitySchema
from sharding.keys import decode_key, encode_key, key_from_json
from sharding.rebalance._journal import Journal, RebalanceRecord, UnitRecord
from sharding.rebalance._plan import Plan, PlannedMove, span_text
from sharding.rebalance._progress import Progress, ProgressEvent, quiet
from sharding.rebalance._rows import Mover, row_digest

if TYPE_CHECKING:
    from toolkit.facade import Toolkit

__all__ = ["MoveSummary", "RebalanceOptions", "Rebalancer", "Summary"]

STEPS: Final = ("planned", "dual", "copy", "verify", "fence", "final", "cutover", "cleanup", "done")
ABORTABLE: Final = ("planned", "dual", "copy", "verify", "fence", "final")


@dataclass(frozen=True, slots=True)
class RebalanceOptions:
    """How a rebalance runs. Defaults suit a live application.

    ``settle``: seconds to wait after publishing a phase before acting on it. It must
    exceed the stores' poll interval (``POLYSTORE_POLL_MS``, 100 ms) plus the longest a
    single write may stay in flight; see the package docstring.
    ``verify_before_fence``: the full compare-and-repair (VDiff) while writes still
    flow, so that the fenced pass only replays the change log; without it the fenced
    pass is the full compare.
    ``retries``: how often a unit whose step failed (a transient backend error) is
    redone before the rebalance stops (it can still be resumed).
    """

    batch_size: int = 1000
    parallel: int = 1
    settle: float = 1.0
    verify_before_fence: bool = True
    retries: int = 3


@dataclass(slots=True)
class MoveSummary:
    index: int
    source: str
    target: str
    span: str
    estimated: int
    copied: int = 0
    repaired: int = 0
    deleted: int = 0
    rows: int = 0
    checksum: str = ""


@dataclass(slots=True)
class Summary:
    """What a rebalance did, per move (summed over entities)."""

    id: str
    store: str
    state: str
    from_epoch: int
    moves: list[MoveSummary] = field(default_factory=list)
    seconds: float = 0.0
    fence_seconds: float = 0.0
    waited_seconds: float = 0.0
    """Of ``seconds``, how long this run slept for phases to settle (the protocol's fixed
    waits: fence and cleanup, and whatever of the ``dual`` settle the copy did not cover)."""
    error: str = ""

    @property
    def copied(self) -> int:
        return sum(move.copied for move in self.moves)

    @property
    def repaired(self) -> int:
        return sum(move.repaired for move in self.moves)

    @property
    def deleted(self) -> int:
        return sum(move.deleted for move in self.moves)


class Rebalancer:
    """Starts, resumes and aborts rebalances of one Toolkit's catalog."""

    def __init__(
        self,
        toolkit: Toolkit,
        *,
        options: RebalanceOptions | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.toolkit = toolkit
        self.catalog = toolkit.catalog
        self.journal = Journal(toolkit.catalog)
        self.options = options or RebalanceOptions()
        self.progress: Progress = progress or quiet
        self._adapters: dict[tuple[str, str, str], Adapter] = {}
        self._lock = threading.Lock()
        self._dual_since: dict[str, float] = {}
        """Rebalance id -> a monotonic instant by which ``dual`` was published (or later)."""
        self._waited = 0.0
        """Seconds slept for phases to settle since this run started."""

    # -- public ---------------------------------------------------------------------
    def start(self, plan: Plan) -> str:
        """Journal a plan (nothing moves yet); returns the rebalance id."""
        unfinished = self.journal.unfinished(plan.store)
        if unfinished:
            raise TopologyError(
                f"store {plan.store!r}: rebalance {unfinished[0].id} is unfinished ({unfinished[0].state}); "
                "resume or abort it first"
            )
        if not plan.moves:
            raise TopologyError(f"store {plan.store!r}: the target moves no rows; nothing to do")
        units = [(move.index, schema.name) for move in plan.moves for schema in plan.schemas]
        data = plan.to_json()
        data["options"] = {
            "batch_size": self.options.batch_size,
            "verify_before_fence": self.options.verify_before_fence,
        }
        return self.journal.create(plan.store, plan.from_epoch, data, units)

    def run(self, ident: str) -> Summary:
        """Run (or resume) a rebalance until it is done or aborted."""
        started = time.monotonic()
        self._waited = 0.0
        fence_started: float | None = None
        fence_seconds = 0.0
        try:
            while True:
                record = self.journal.get(ident)
                state = record.state
                if state in ("done", "aborted"):
                    break
                if state == "aborting":
                    self._abort_steps(record)
                    continue
                if state == "fence":
                    fence_started = time.monotonic()
                self.progress(ProgressEvent("phase", state, total=self._expected(record, state)))
                following = getattr(self, f"_step_{state}")(record)
                if state == "cutover" and fence_started is not None:
                    fence_seconds = time.monotonic() - fence_started
                self.journal.set_state(ident, following)
        except Exception as exc:
            self.journal.set_error(ident, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.close()
        summary = self.summary(ident)
        summary.seconds = time.monotonic() - started
        summary.fence_seconds = fence_seconds
        summary.waited_seconds = self._waited
        return summary

    def abort(self, ident: str) -> Summary:
        """Return to the old topology and delete the copies (only before cut-over)."""
        record = self.journal.get(ident)
        if record.state == "aborted":
            return self.summary(ident)
        if record.state not in (*ABORTABLE, "aborting"):
            raise TopologyError(
                f"store {record.store!r}: rebalance {ident} is past cut-over ({record.state}); "
                "resume it, then rebalance back to the old topology"
            )
        if record.state != "aborting":
            self.journal.set_state(ident, "aborting")
        return self.run(ident)

    def summary(self, ident: str) -> Summary:
        record = self.journal.get(ident)
        plan = Plan.from_json(record.plan)
        moves = {
            move.index: MoveSummary(move.index, move.source, move.target, span_text(move.span), move.rows)
            for move in plan.moves
        }
        for unit in self.journal.units(ident):
            found = moves.get(unit.move)
            if found is not None:
                found.copied += unit.copied
                found.repaired += unit.repaired
                found.deleted += unit.deleted
                found.rows += unit.rows
                found.checksum = unit.checksum if len(plan.schemas) == 1 else ""
        return Summary(ident, record.store, record.state, record.from_epoch, list(moves.values()), error=record.error)

    def close(self) -> None:
        with self._lock:
            for adapter in self._adapters.values():
                adapter.close()
            self._adapters.clear()

    # -- plumbing -------------------------------------------------------------------
    def _adapter(self, plan: Plan, shard: str) -> Adapter:
        url = plan.target_shards.get(shard) or plan.source_shards[shard]
        if shard in plan.source_shards:
            url = plan.source_shards[shard]
        marker = (plan.store, shard, url)
        with self._lock:
            found = self._adapters.get(marker)
        if found is not None:
            return found
        # Connected and ensured outside the lock, so that shards open in parallel.
        try:
            options: Mapping[str, Any] = self.toolkit.store_config(plan.store).options
        except ConfigError:
            options = {}
        made = adapter_class(scheme_of(url))(url, store=plan.store, shard=shard, options=options)
        try:
            for schema in plan.schemas:  # idempotent; adapters also learn the table layout here
                made.ensure(schema, with_token=True)
        except BaseException:
            made.close()
            raise
        with self._lock:
            found = self._adapters.setdefault(marker, made)
        if found is not made:  # another thread made one meanwhile: keep theirs
            made.close()
        return found

    def _movers(self, plan: Plan) -> list[tuple[PlannedMove, Mover]]:
        old, new = plan.routers()
        exact = plan.source_router.get("type") != "directory"
        return [
            (move, Mover(schema, move.source, move.target, move.span, old, new, True, exact))
            for move in plan.moves
            for schema in plan.schemas
        ]

    def _units(
        self, record: RebalanceRecord, step: str, work: Callable[[Plan, PlannedMove, Mover], dict[str, Any]]
    ) -> None:
        """Run ``work`` on every unit not yet done with ``step``, ``parallel`` at a time."""
        plan = Plan.from_json(record.plan)
        done = {(unit.move, unit.entity) for unit in self.journal.units(record.id) if step in unit.done}
        pending = [(move, mover) for move, mover in self._movers(plan) if (move.index, mover.schema.name) not in done]

        def one(item: tuple[PlannedMove, Mover]) -> None:
            move, mover = item
            for attempt in range(self.options.retries + 1):
                try:
                    counts = work(plan, move, mover)
                    break
                except Exception as exc:  # the unit is idempotent: redo it, as resume would
                    if attempt == self.options.retries or isinstance(exc, TopologyError):
                        raise  # a refusal is not transient
                    where = f"{step} of move {move.index} ({mover.schema.name})"
                    self.journal.set_error(record.id, f"retrying {where}: {type(exc).__name__}: {exc}")
                    time.sleep(0.2 * 2**attempt)
            self.journal.unit_done(record.id, move.index, mover.schema.name, step, **counts)
            self.progress(ProgressEvent("unit", step, move=move.index, entity=mover.schema.name))

        if self.options.parallel <= 1 or len(pending) <= 1:
            for item in pending:
                one(item)
            return
        with ThreadPoolExecutor(max_workers=self.options.parallel, thread_name_prefix="rebalance") as pool:
            for _ in pool.map(one, pending):
                pass

    def _expected(self, record: RebalanceRecord, state: str) -> int:
        if state not in ("copy", "verify", "final", "cleanup"):
            return 0
        return int(record.plan.get("moved_rows", 0))

    def _settle(self) -> None:
        self._sleep(self.options.settle)

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)
        self._waited += seconds

    # -- steps ----------------------------------------------------------------------
    def _step_planned(self, record: RebalanceRecord) -> str:
        plan = Plan.from_json(record.plan)
        topology = self.catalog.topology(plan.store)
        if topology is None or topology.epoch != plan.from_epoch:
            raise TopologyError(
                f"store {plan.store!r} is at epoch {getattr(topology, 'epoch', None)}, not {plan.from_epoch} as "
                "planned: plan again"
            )
        shards = list(plan.target_shards)  # tables on the new owners before anyone dual-writes to them
        with ThreadPoolExecutor(max_workers=max(1, min(len(shards), 8)), thread_name_prefix="ensure") as pool:
            for _ in pool.map(lambda shard: self._adapter(plan, shard), shards):  # each waits on its server
                pass
        self.journal.activate(plan.store, record.id, "dual", plan.from_epoch + 1)
        self._dual_since[record.id] = time.monotonic()
        return "dual"

    def _step_dual(self, record: RebalanceRecord) -> str:
        """The copy starts at once; the ``settle`` that lets every process see ``dual``
        runs alongside it and is only awaited before the first compare (``_step_verify``,
        or the fence's own settle): see the package docstring, step 2."""
        self._dual_since.setdefault(record.id, time.monotonic())  # resumed: published before now
        return "copy"

    def _await_dual(self, record: RebalanceRecord) -> None:
        """Block until ``settle`` has passed since ``dual`` was published."""
        since = self._dual_since.setdefault(record.id, time.monotonic())
        remaining = since + self.options.settle - time.monotonic()
        if remaining > 0:
            self._sleep(remaining)

    def _step_copy(self, record: RebalanceRecord) -> str:
        self._dual_since.setdefault(record.id, time.monotonic())  # resumed here: published before now
        batch = self.options.batch_size

        def copy(plan: Plan, move: PlannedMove, mover: Mover) -> dict[str, Any]:
            source = self._adapter(plan, move.source)
            target = self._adapter(plan, move.target)
            copied = 0
            bounds = mover.range_bounds()
            layout = source.stored_layout(mover.schema) if bounds is not None else None
            if bounds is not None and layout is not None and layout == target.stored_layout(mover.schema):
                # Both store the rows alike: move them as stored, nothing decoded or re-encoded.
                tokens, keys = bounds
                # Bigger batches than the row path: a row costs little here, and each commit
                # rewrites the index pages it touched (a large target's token index).
                stored_batch = batch * 10
                for stored in source.scan_stored(mover.schema, tokens=tokens, keys=keys, batch_size=stored_batch):
                    target.put_stored(mover.schema, stored)
                    copied += len(stored)
                    self.progress(ProgressEvent("rows", "copy", rows=len(stored), move=move.index))
                return {"copied": copied}
            for rows in mover.rows(source, batch, expiring=True):
                target.put_expiring(mover.schema, mover.prepare(rows))
                copied += len(rows)
                self.progress(ProgressEvent("rows", "copy", rows=len(rows), move=move.index))
            return {"copied": copied}

        self._units(record, "copy", copy)
        self._units(record, "edges", self._copy_edges)  # every moving node exists on its target now
        return "verify" if self.options.verify_before_fence else "fence"

    def _copy_edges(self, plan: Plan, move: PlannedMove, mover: Mover) -> dict[str, Any]:
        """Relationships follow their nodes (GRAPH adapters only).

        An edge lives on the shard of its ends (``relate`` needs both on one shard). An
        edge from a moving node is related again on the target shard when the new router
        puts its other end there too (it moved along, or already lived there); an edge
        the new topology would split between two shards cannot exist, so the rebalance
        stops here, naming one (abort it, then co-locate the ends, e.g. with a directory
        router, or unrelate them). Source copies go with the nodes at cleanup. Run again
        under the fence (without a verify before it), this is also the edges' catch-up.
        """
        source = self._adapter(plan, move.source)
        if Capability.GRAPH not in source.capabilities or not source.may_have_edges(mover.schema):
            return {}
        target = self._adapter(plan, move.target)
        schema = mover.schema
        split: list[str] = []
        for rows in mover.rows(source, self.options.batch_size):
            keys = [schema.key_of(row) for row in rows]
            split += self._sync_edges(plan, schema, source, target, move.target, mover.new, keys)
        self._refuse_split(plan, split)
        return {}

    def _sync_edges(
        self,
        plan: Plan,
        schema: EntitySchema,
        source: Adapter,
        target: Adapter,
        target_shard: ShardId,
        new: Any,
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

    @staticmethod
    def _refuse_split(plan: Plan, split: list[str]) -> None:
        if split:
            raise TopologyError(
                f"store {plan.store!r}: the target topology splits {len(split)} relationship(s) between shards "
                f"(e.g. {split[0]}); abort this rebalance, co-locate their ends or unrelate them, and plan again"
            )

    def _step_verify(self, record: RebalanceRecord) -> str:
        self._await_dual(record)  # every write still routed without dual has completed
        self._units(record, "verify", self._reconcile("verify"))
        return "fence"

    def _step_fence(self, record: RebalanceRecord) -> str:
        plan = Plan.from_json(record.plan)
        self.journal.activate(plan.store, record.id, "fence", plan.from_epoch + 1)
        self._settle()  # no write of a moving key is in flight any more
        return "final"

    def _step_final(self, record: RebalanceRecord) -> str:
        """Under the fence: re-sync the keys repositories logged while dual-writing (the
        catch-up), or, if no full verify ran before the fence, compare everything again."""
        if not record.plan.get("options", {}).get("verify_before_fence", False):
            self._units(record, "final", self._reconcile("final"))
            self._units(record, "final-edges", self._copy_edges)
            return "cutover"
        plan = Plan.from_json(record.plan)
        old, new = plan.routers()
        batch = self.options.batch_size
        for schema in plan.schemas:
            touched = self.journal.touched(record.id, schema.name)
            if any(not shard_key for shard_key in touched.values()):  # a delete with an unknown shard key
                self._units(record, "final", self._only(schema.name, self._reconcile("final")))
                self._units(record, "final-edges", self._only(schema.name, self._copy_edges))
                continue
            groups: dict[tuple[ShardId, ShardId], list[Any]] = {}
            for encoded, shard_encoded in touched.items():
                shard_key = decode_key(shard_encoded)
                source, target = old.shard_for(shard_key), new.shard_for(shard_key)
                if source != target:
                    groups.setdefault((source, target), []).append(decode_key(encoded))
            repaired: dict[int, int] = {}
            for (source, target), keys in groups.items():
                mover = Mover(schema, source, target, DirectoryKeys(()), old, new, True, False)
                source_adapter, target_adapter = self._adapter(plan, source), self._adapter(plan, target)
                count = self._repair(mover, source_adapter, target_adapter, keys, batch)
                if Capability.GRAPH in source_adapter.capabilities and source_adapter.may_have_edges(schema):
                    # relate/unrelate of these nodes went to the old owner only (see Repository.relate)
                    for start in range(0, len(keys), batch):
                        chunk = keys[start : start + batch]
                        split = self._sync_edges(plan, schema, source_adapter, target_adapter, target, new, chunk)
                        self._refuse_split(plan, split)
                index = next((m.index for m in plan.moves if (m.source, m.target) == (source, target)), None)
                if index is not None:
                    repaired[index] = repaired.get(index, 0) + count
                self.progress(ProgressEvent("rows", "final", rows=count))
            for move in plan.moves:
                self.journal.unit_done(
                    record.id, move.index, schema.name, "final", repaired=repaired.get(move.index, 0)
                )
        return "cutover"

    @staticmethod
    def _only(
        entity: str, work: Callable[[Plan, PlannedMove, Mover], dict[str, Any]]
    ) -> Callable[[Plan, PlannedMove, Mover], dict[str, Any]]:
        """``work`` for one entity's units; the others are left as they are."""

        def only(plan: Plan, move: PlannedMove, mover: Mover) -> dict[str, Any]:
            return work(plan, move, mover) if mover.schema.name == entity else {}

        return only

    def _step_cutover(self, record: RebalanceRecord) -> str:
        plan = Plan.from_json(record.plan)
        topology = self.catalog.topology(plan.store)
        note = f"rebalance {record.id}"
        if topology is not None and topology.epoch == plan.from_epoch:
            if plan.target_entries is not None:
                wanted = {encode_key(key_from_json(key)): shard for key, shard in plan.target_entries}
                stale = [key for key in self.catalog.directory(plan.store) if key not in wanted]
                self.catalog.assign(plan.store, wanted)
                if stale:
                    self.catalog.unassign(plan.store, stale)
            self.catalog.advance(plan.store, plan.from_epoch, plan.target_shards, plan.target_router, note)
        elif topology is None or topology.epoch != plan.from_epoch + 1 or note not in topology.note:
            raise TopologyError(
                f"store {plan.store!r} is at epoch {getattr(topology, 'epoch', None)}: another process changed its "
                "topology during the rebalance"
            )
        self.journal.activate(plan.store, record.id, "cleanup", plan.from_epoch + 1)
        return "cleanup"

    def _step_cleanup(self, record: RebalanceRecord) -> str:
        plan = Plan.from_json(record.plan)
        self._settle()  # readers still on the old epoch have moved on
        self._units(record, "cleanup", self._delete_from("source"))
        self.journal.release(plan.store, record.id)
        self.journal.forget_touched(record.id)
        return "done"

    def _abort_steps(self, record: RebalanceRecord) -> None:
        plan = Plan.from_json(record.plan)
        self.progress(ProgressEvent("phase", "abort"))
        active = self.journal.active(plan.store)
        if active is not None and active[0] == record.id:
            self.journal.activate(plan.store, record.id, "abort", plan.from_epoch + 1)
            self._settle()  # nobody writes to the new owners any more
            self._units(record, "abort", self._delete_from("target"))
            self.journal.release(plan.store, record.id)
        self.journal.forget_touched(record.id)
        self.journal.set_state(record.id, "aborted")

    # -- unit work ------------------------------------------------------------------
    def _reconcile(self, step: str) -> Callable[[Plan, PlannedMove, Mover], dict[str, Any]]:
        """Compare a unit's source and target by key and digest; make the target equal the
        source (upsert what differs, delete what the source lacks). Source is the truth
        until cut-over."""
        batch = self.options.batch_size

        def reconcile(plan: Plan, move: PlannedMove, mover: Mover) -> dict[str, Any]:
            source = self._adapter(plan, move.source)
            target = self._adapter(plan, move.target)
            agreed = self._checksums_agree(mover, source, target)
            if agreed is not None:  # equal on the servers: nothing to read, nothing to repair
                self.progress(ProgressEvent("rows", step, rows=agreed.rows, move=move.index))
                tag = agreed.method.split("/", 1)[0]
                return {"repaired": 0, "rows": agreed.rows, "checksum": f"{agreed.checksum:016x}/{tag}"}
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify") as pool:
                # both sides are read at once: on a server each waits on its own I/O
                theirs = pool.submit(self._fingerprints, mover, target, batch, None)
                wanted = self._fingerprints(mover, source, batch, (step, move.index))
                found = theirs.result()
            checksum = sum(digest for digest, _ in wanted.values()) % 2**64
            extra = [key for encoded, (_, key) in found.items() if encoded not in wanted]
            differing = [key for encoded, (digest, key) in wanted.items() if found.get(encoded, (None,))[0] != digest]
            repaired = self._repair(mover, source, target, differing, batch) + len(extra)
            for start in range(0, len(extra), batch):
                target.delete_many(mover.schema, extra[start : start + batch])
            return {"repaired": repaired, "rows": len(wanted), "checksum": f"{checksum:016x}"}

        return reconcile

    @staticmethod
    def _checksums_agree(mover: Mover, source: Adapter, target: Adapter) -> RangeChecksum | None:
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

    def _fingerprints(
        self, mover: Mover, adapter: Adapter, batch: int, report: tuple[str, int] | None
    ) -> dict[bytes, tuple[int, Any]]:
        """Encoded key -> (digest, key) of a unit's rows on one side."""
        found: dict[bytes, tuple[int, Any]] = {}
        schema = mover.schema
        for rows in mover.rows(adapter, batch):
            for row in rows:
                key = schema.key_of(row)
                found[encode_key(key)] = (row_digest(schema, row), key)
            if report is not None:
                self.progress(ProgressEvent("rows", report[0], rows=len(rows), move=report[1]))
        return found

    @staticmethod
    def _repair(mover: Mover, source: Adapter, target: Adapter, keys: list[Any], batch: int) -> int:
        """Copy ``keys`` from source to target again; a key gone from the source goes from the target."""
        for start in range(0, len(keys), batch):
            chunk = keys[start : start + batch]
            rows = [row for row in source.get_many_expiring(mover.schema, chunk) if mover.moves(row)]
            if rows:
                target.put_expiring(mover.schema, mover.prepare(rows))
            present = {mover.key_bytes(row) for row in rows}
            gone = [key for key in chunk if encode_key(key) not in present]
            if gone:
                target.delete_many(mover.schema, gone)
        return len(keys)

    def _delete_from(self, side: str) -> Callable[[Plan, PlannedMove, Mover], dict[str, Any]]:
        """Delete a unit's rows from the source (after cut-over) or the target (abort)."""
        batch = self.options.batch_size

        def delete(plan: Plan, move: PlannedMove, mover: Mover) -> dict[str, Any]:
            adapter = self._adapter(plan, move.source if side == "source" else move.target)
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


def describe_units(units: Iterable[UnitRecord]) -> dict[str, int]:
    """How many units have finished each step (for ``rebalance status``)."""
    counts: dict[str, int] = {}
    for unit in units:
        for step in unit.done:
            counts[step] = counts.get(step, 0) + 1
    return counts


_ = ShardId, EntitySchema  # re-exported types used in annotations by callers
