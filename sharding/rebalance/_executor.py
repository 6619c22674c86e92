"""Executing a plan: a state machine over the journal, every step idempotent.

``state`` in ``ps_rebalance`` is the step to run next; each step's work is redone from
its start after a crash (copies are upserts, repairs compare again, deletes of deleted
rows are no-ops), and per-unit progress skips the units already finished. See the
package docstring for why the steps are in this order.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

from adapters.base import Adapter, Capability
from adapters.registry import adapter_class, scheme_of
from sharding.base import DirectoryKeys, ShardId
from sharding.core.errors import TopologyError
from sharding.keys import decode_key, encode_key, key_from_json
from sharding.rebalance._journal import Journal, RebalanceRecord
from sharding.rebalance._plan import Plan, PlannedMove, span_text, store_options
from sharding.rebalance._progress import Progress, ProgressEvent, quiet
from sharding.rebalance._rows import Mover
from sharding.rebalance._summary import MoveSummary, RebalanceOptions, Summary
from sharding.rebalance._work import UnitWork, Work, only, refuse_split
from toolkit.routing import Phase, Transitions

if TYPE_CHECKING:
    from toolkit.facade import Toolkit

__all__ = ["Rebalancer"]

STEPS: Final = ("planned", "dual", "copy", "verify", "fence", "final", "cutover", "cleanup", "done")
ABORTABLE: Final = ("planned", "dual", "copy", "verify", "fence", "final")


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
        self.routing = Transitions(toolkit.catalog)
        """The routing state every process reads: this rebalance publishes its phases there."""
        self.options = options or RebalanceOptions()
        self.progress: Progress = progress or quiet
        self.work = UnitWork(self._adapter, self.options.batch_size, self.progress)
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
        options = store_options(self.toolkit, plan.store)
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

    def _units(self, record: RebalanceRecord, step: str, work: Work) -> None:
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

    def _publish(self, record: RebalanceRecord, phase: Phase) -> None:
        """Tell every process how to route the store now (``toolkit.routing``)."""
        plan = record.plan
        self.routing.publish(record.store, record.id, phase, int(plan["from_epoch"]) + 1, plan["target"])

    def _release(self, record: RebalanceRecord) -> None:
        """The store routes by its epoch alone again; the write log is dropped."""
        self.routing.release(record.store, record.id)
        self.routing.forget_writes(record.id)

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
        self._publish(record, Phase.DUAL)
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
        self._units(record, "copy", self.work.copy)
        self._units(record, "edges", self.work.copy_edges)  # every moving node exists on its target now
        return "verify" if self.options.verify_before_fence else "fence"

    def _step_verify(self, record: RebalanceRecord) -> str:
        self._await_dual(record)  # every write still routed without dual has completed
        self._units(record, "verify", self.work.reconcile("verify"))
        return "fence"

    def _step_fence(self, record: RebalanceRecord) -> str:
        self._publish(record, Phase.FENCE)
        self._settle()  # no write of a moving key is in flight any more
        return "final"

    def _step_final(self, record: RebalanceRecord) -> str:
        """Under the fence: re-sync the keys repositories logged while dual-writing (the
        catch-up), or, if no full verify ran before the fence, compare everything again."""
        if not record.plan.get("options", {}).get("verify_before_fence", False):
            self._units(record, "final", self.work.reconcile("final"))
            self._units(record, "final-edges", self.work.copy_edges)
            return "cutover"
        plan = Plan.from_json(record.plan)
        old, new = plan.routers()
        batch = self.options.batch_size
        for schema in plan.schemas:
            touched = self.routing.written(record.id, schema.name)
            if any(not shard_key for shard_key in touched.values()):  # a delete with an unknown shard key
                self._units(record, "final", only(schema.name, self.work.reconcile("final")))
                self._units(record, "final-edges", only(schema.name, self.work.copy_edges))
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
                count = self.work.repair(mover, source_adapter, target_adapter, keys)
                if Capability.GRAPH in source_adapter.capabilities and source_adapter.may_have_edges(schema):
                    # relate/unrelate of these nodes went to the old owner only (see Repository.relate)
                    for start in range(0, len(keys), batch):
                        chunk = keys[start : start + batch]
                        split = self.work.sync_edges(plan, schema, source_adapter, target_adapter, target, new, chunk)
                        refuse_split(plan, split)
                index = next((m.index for m in plan.moves if (m.source, m.target) == (source, target)), None)
                if index is not None:
                    repaired[index] = repaired.get(index, 0) + count
                self.progress(ProgressEvent("rows", "final", rows=count))
            for move in plan.moves:
                self.journal.unit_done(
                    record.id, move.index, schema.name, "final", repaired=repaired.get(move.index, 0)
                )
        return "cutover"

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
        self._publish(record, Phase.CLEANUP)
        return "cleanup"

    def _step_cleanup(self, record: RebalanceRecord) -> str:
        self._settle()  # readers still on the old epoch have moved on
        self._units(record, "cleanup", self.work.delete_from("source"))
        self._release(record)
        return "done"

    def _abort_steps(self, record: RebalanceRecord) -> None:
        self.progress(ProgressEvent("phase", "abort"))
        active = self.routing.current(record.store)
        if active is not None and active[0] == record.id:
            self._publish(record, Phase.ABORT)
            self._settle()  # nobody writes to the new owners any more
            self._units(record, "abort", self.work.delete_from("target"))
        self._release(record)
        self.journal.set_state(record.id, "aborted")
