"""``polystore rebalance``: move a store's rows to a new topology, online, verified, resumable.

Plan -> dual-write (+ change log) -> copy -> verify -> fence -> catch-up -> cut over -> clean up.
Anchors: Vitess (VReplication copy + catch-up, VDiff, SwitchTraffic), MongoDB chunk
migration (a short critical section at commit), Redis Cluster slot migration
(MIGRATING/IMPORTING: both owners are live during the move), Citus shard moves.

The protocol
============

A rebalance of store S moves it from topology epoch e (router ``old``) to e + 1
(router ``new``). ``plan_rebalance`` lists the spans whose owner changes
(``old.moves_to(new)``); each (move, entity) is a *unit*, journaled in the catalog
(``ps_rebalance`` and ``ps_rebalance_unit``, see ``_journal``). The journal's state is the
step to run next; each step is idempotent, so ``resume`` after SIGKILL simply runs it again.

The rebalance publishes each phase, with its target topology, in the routing state
(``toolkit.routing``: ``Transitions.publish``); it never touches a repository or a store.
Every Toolkit process learns where a rebalance is through one cheap catalog query
(epoch, directory version and the ``ps_routing`` row) that ``Store.poll``
runs at most every ``poll_interval`` (100 ms) and before routing any operation once
that interval has passed. So a write is routed by a view at most ``poll_interval`` old
when it starts. The rebalancer waits ``settle`` seconds (default 1 s) after publishing
each phase before acting on it; the one timing assumption of the protocol is:

    a write completes within ``settle - poll_interval`` of the moment it was routed.

(Vitess and MongoDB make the same kind of bet with their lock/lease timeouts; a process
paused longer than that, e.g. stopped in a debugger mid-write, can break it. A server-side
fence per backend would remove it; that is future work.)

1. ``planned -> dual``: tables are ensured on the target shards, then the routing row
   says ``dual``. Repositories write keys whose owner changes to the old owner, then
   the new one; deletes reach both. Before writing a moving key they append it (and its
   shard key) to ``ps_rebalance_touched``: the change log the catch-up replays (step 5;
   Vitess tails the binlog, we log at the only place writes come from). Increments and
   partial updates go to the old owner only (and are logged). Reads (get, find, count,
   scan) keep going to the old owner; fan-out queries drop rows found on a shard that
   does not own them under the current router, so copies are never seen twice.
2. ``dual -> copy`` at once. Each unit's rows are read from the source by token range
   (hash), key range (range) or shard-key lookup (directory) and upserted into the
   target in batches (between two SQLite or two PostgreSQL shards whose tables match,
   as stored: ``Adapter.scan_stored``/``put_stored``, nothing decoded or re-encoded;
   on PostgreSQL a binary ``COPY`` feeds the target's upsert). The ``settle`` after
   publishing ``dual`` runs alongside the copy and is awaited before the first compare (step 3,
   or the fence's own settle): the copy needs no guarantee (whatever it writes is
   compared later), the compare needs every write of a moving key to be dual and logged
   or already complete, which it is ``settle`` after the publish.
3. ``verify`` (VDiff): per unit, first the servers compare (``Adapter.range_checksum``:
   count and a 64-bit hash of the span's rows, computed where the rows are,
   both sides at the same instant; SQL on SQLite and PostgreSQL). Equal counts and
   checksums by the same method end the unit: nothing read, nothing to repair. Any
   difference, a side that cannot compute one, or a directory span, falls back to the
   row-by-row compare: the source and target rows of the span are compared by
   key and a 64-bit digest of every field (a canonical form, equal across backends);
   the target is repaired to equal the source: rows missing or different are copied
   again from a fresh read of the source, rows the source lacks are deleted. *The source
   is authoritative until cut-over*, which is what stops the copy from resurrecting a
   row deleted after the copy read it (the delete reached the source, so the compare
   removes the stale copy) and what fixes interleavings of concurrent dual-writes that
   leave the two owners different. Count and checksum per unit are journaled.
4. ``fence``: the routing row says ``fence``; writes of moving keys wait (up to
   ``FENCE_TIMEOUT``, then a retryable StoreUnavailable); other keys flow. After
   ``settle`` no write of a moving key is in flight.
5. ``final`` (catch-up, under the fence): every key in the change log is re-read from
   the source and made equal on the target (upserted, or deleted if the source lacks
   it). Why that suffices: a row nobody wrote since the copy began was copied (or
   repaired in step 3) from a source that has not changed since; a row somebody wrote
   is in the log, and nothing changes any source row now. So the target equals the
   source exactly, and the fence lasts ``settle`` plus the catch-up, not a full pass.
   (With ``verify_before_fence=False`` there is no step 3, and this step is a full
   compare-and-repair instead; a delete whose shard key is unknown, possible for
   entities sharded by another field, also makes that entity's catch-up a full
   compare.)
6. ``cutover``: directory pins are written (directory stores), then
   ``catalog.advance(e -> e + 1)`` (compare-and-set), then the routing row says
   ``cleanup``. A process sees the epoch and the phase in the same query; once it sees
   e + 1 it reads and writes by ``new`` only. A write that waited on the fence is
   routed again after it lifts, so it lands on the new owner. A stale write by epoch e
   cannot exist: every process saw the fence (step 4), and fenced writes never start.
   From here only ``resume`` goes forward; the way back is a reverse rebalance.
7. ``cleanup`` after ``settle`` (readers on epoch e have moved on): the moved rows are
   deleted from the sources; the routing row is released and the change log dropped;
   ``done``. A token or key range goes in batched ``DELETE`` statements
   (``Adapter.delete_range``) without reading it back: after cut-over nobody routes the
   range to the source (writes that waited on the fence are routed again by e + 1,
   and no write by e can start), so every row still there is a stale copy, and a row
   written concurrently lands on the new owner, never here. Directory spans, shards
   with relationships and adapters without it read the keys and delete them.

``abort`` (before cut-over): the routing row says ``abort`` (writes go to the old owner
only), then after ``settle`` every unit's copies are deleted from the targets and the
store is released: the old topology never stopped being the current one (ranges go
as in step 7: after the abort's settle nobody writes to the new owners).

What moves with the rows:

* TTLs. The copy and every repair read rows with their expiry instant
  (``Adapter.scan_expiring``/``get_many_expiring``: the SQL ``_ps_expires`` column in
  the same SELECT, Redis PTTL pipelined with the row, Cassandra's ``_ps_expires``) and
  write them with ``put_expiring``, so a row keeps the *rest* of its time to live, not
  forever and not the full TTL again; a row that expires during the move is not
  brought back. Verification compares fields, not expiries: the copy and the
  catch-up carry them, dual writes set them on both owners.
* Relationships (GRAPH adapters: the embedded SQL graph and Neo4j). An edge lives on
  the shard of its ends (``Repository.relate`` refuses ends on different shards).
  After the node copy, the ``edges`` pass relates again on the target every edge of a
  moving node whose other end the new router puts on the same target; an edge the new
  topology would split between shards stops the rebalance before cut-over with a
  ``TopologyError`` naming it (``abort`` restores the store; co-locate the ends, e.g.
  with a directory router, or unrelate them, and plan again). ``relate``/``unrelate``
  while a rebalance runs go to the old owner and log the source node (a ``relate`` the
  target topology would split raises ``CrossShardError``); the fenced catch-up then
  makes those nodes' edges on the target equal the source's (``Rebalancer._sync_edges``).
* Every store kind: tested on SQLite, PostgreSQL, Redis, the MongoDB-wire server,
  Cassandra and Neo4j (tests/rebalance/test_backends.py), and SQLite to PostgreSQL.

Costs: while a rebalance is in ``dual``, every write of a moving key is written twice
and logged once in the catalog. The copy reads the moving rows once (between two
SQLite or two PostgreSQL shards as stored, 2-4x a plain batched copy's speed; elsewhere
about its speed); verify reads nothing when the servers' checksums agree; cleanup
deletes each range in one statement. The protocol sleeps ``settle`` after publishing
``fence`` and ``cleanup``, and whatever of the ``dual`` settle the copy did not cover
(``Summary.waited_seconds``): a fixed cost, the same for any number of rows, and each
wait is needed where it is. The ``dual`` settle already runs alongside the copy; the
``fence`` settle must end before the catch-up reads the change log (a fenced write
still in flight would be missed), and moving verify under the fence to overlap it
would hold writers for the whole compare; the ``cleanup`` settle must end before the
source rows go (a reader routed by epoch e may still read them), and the delete is
the only work left. bench/rebalance.py, 20,000 rows moved, 2-core shared machine,
settle 0.1 s (the poll interval: the least the protocol accepts, fine only without
other writers): SQLite 0.52-0.91x a plain batched copy end to end (0.74-1.14x without
the waits), PostgreSQL 1.18-1.29x (1.53-1.80x); with settle 0.2 s SQLite 0.35-0.45x,
PostgreSQL 0.75-1.03x. A 1,000,000-row store takes 0.86-1.13x (SQLite; 1.55x in one
run before the cleanup's page cache, the big shard's delete then 0.33-0.42 s) and
1.06-1.31x (PostgreSQL) the time of a 100,000-row one. (Before PostgreSQL's stored copy, with
settle 0.1 s: PostgreSQL 0.48-0.61x; before the server-side verify, range delete and
stored copy: 0.11-0.21x and 0.35-0.38x.) Redis, MongoDB-wire, Cassandra and Neo4j take
the row path (read, digest and delete row by row) and are not in the benchmark.

Not moved: directory pins made with ``Directory.assign`` while a rebalance of the same
store runs, and relationships changed during it (above).

Modules: ``_plan`` (planning and its refusals), ``_journal`` (the journal tables),
``_executor`` (the state machine over the journal), ``_work`` (each step's work on one
unit), ``_rows`` (reading a span, row digests), ``_summary`` (options and summaries),
``_progress`` (the progress protocol).
"""

from __future__ import annotations

from sharding.rebalance._executor import Rebalancer
from sharding.rebalance._plan import Plan, PlannedMove, plan_rebalance, span_text
from sharding.rebalance._progress import Progress, ProgressEvent
from sharding.rebalance._summary import MoveSummary, RebalanceOptions, Summary

__all__ = [
    "MoveSummary",
    "Plan",
    "PlannedMove",
    "Progress",
    "ProgressEvent",
    "RebalanceOptions",
    "Rebalancer",
    "Summary",
    "plan_rebalance",
    "span_text",
]
