"""Idempotent effects: what a step can repeat without doing twice.

A saga step may run more than once: a retry after a timeout, or recovery re-running
the step a crashed process had started. Its writes must therefore be idempotent, and
a compensation must be harmless when its action never ran (or ran halfway). Three
helpers cover the common writes (``StepContext`` exposes them):

* ``put`` with a deterministic key (the step key, or a key derived from the payload):
  an upsert of the same row is idempotent on every backend.
* ``delete_if_present``: a delete that does not care whether the row exists.
* ``increment_once`` / ``undo_increment``: an increment is not idempotent, so each one
  is tied to a *marker* (saga id + step index [+ tag]). Where the backend keeps the
  marker atomically with the counter, this is exactly-once:

  ======================  ==============================================================
  backend                 how
  ======================  ==============================================================
  APPLY_ONCE adapters     ``Repository.increment_once``: the adapter stores the marker
  (SQLite, PostgreSQL,    with the increment in one transaction (a marker row beside the
  Redis, Redis Cluster)   counter) or one Lua script (a marker key in the row's cluster
                          slot): exactly once.
  the others (MongoDB,    check-then-act against the saga log: marker ``intent``, then the
  Cassandra, Neo4j)       increment, then ``applied``. A crash between the last two leaves
                          the marker at ``intent``: the helper then raises
                          ``AmbiguousEffect`` instead of guessing, and the saga ends in
                          ``needs_attention``. At most once, never silently twice.
  ======================  ==============================================================

  ``undo_increment`` reverses the increment only if it was applied, and otherwise
  leaves a tombstone, so an increment that arrives after its compensation (a zombie
  retry) does nothing.

Both paths use only the repository's public API, so every call passes the shard's
resilience guard (``increment_once`` is idempotent there: the marker makes a repeat
harmless; the log path's ``increment`` is not, and is never retried by the guard).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from adapters.base import Adapter, Capability
from toolkit.errors import ToolkitError
from toolkit.repository import Repository
from toolkit.saga._errors import AmbiguousEffect
from toolkit.saga._log import SagaLog

__all__ = ["exactly_once", "increment_once"]

APPLIED, UNDONE, INTENT = "applied", "undone", "intent"

Mode = Literal["do", "undo"]


def exactly_once(target: Repository[Any] | Adapter) -> bool:
    """Whether ``increment_once`` is exactly-once on this store (every shard offers
    ``Capability.APPLY_ONCE``) or this adapter; otherwise it is at most once."""
    return Capability.APPLY_ONCE in target.capabilities


def increment_once(
    repository: Repository[Any],
    key: Any,
    field: str,
    amount: int | float,
    marker: str,
    *,
    mode: Mode,
    log: SagaLog,
    shard_key: Any = None,
) -> int | float | None:
    """Apply (``do``) or reverse (``undo``) one increment at most once per marker.

    Returns the counter's value after the call, or None if ``undo`` found nothing to
    reverse on a backend that cannot read it back cheaply. Without APPLY_ONCE it is
    check-then-act: the marker's states in the saga log around the plain increment.
    """
    if exactly_once(repository):
        return repository.increment_once(key, field, amount, marker=marker, undo=mode == "undo", shard_key=shard_key)
    repository.check_increment(field, amount)  # a bad field leaves no marker and no tombstone
    what = f"the increment of {repository.entity.__name__}.{field} (key {key!r}) under marker {marker!r}"
    now = time.time()
    if mode == "do":
        if not log.mark(marker, INTENT, now):
            if log.marker(marker) == INTENT:
                raise AmbiguousEffect(
                    f"{what} was started by a process that died before confirming it; the backend cannot tell "
                    "whether it happened: check the value and fix it by hand"
                )
            return None  # applied or undone already
        try:
            value = repository.increment(key, field, amount, shard_key=shard_key)
        except ToolkitError as exc:
            if not exc.retryable:  # certainly not applied (no row, bad field): as if never announced
                log.unmark(marker, expect=INTENT)
            raise
        log.mark(marker, APPLIED, time.time(), expect=INTENT)
        return value
    if log.mark(marker, UNDONE, now):  # tombstone: the action never announced itself
        return None
    if log.mark(marker, UNDONE, now, expect=APPLIED):
        return repository.increment(key, field, -amount, shard_key=shard_key)
    if log.marker(marker) == INTENT:
        raise AmbiguousEffect(
            f"cannot undo {what}: a crash left it unconfirmed and the backend cannot tell whether it happened"
        )
    return None
