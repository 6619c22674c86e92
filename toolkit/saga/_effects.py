"""Idempotent effects: what a step can repeat without doing twice.

A saga step may run more than once: a retry after a timeout, or recovery re-running
the step a crashed process had started. Its writes must therefore be idempotent, and
a compensation must be harmless when its action never ran (or ran halfway). Three
helpers cover the common writes (``StepContext`` exposes them):

* ``put`` with a deterministic key (the step key, or a key derived from the payload):
  an upsert of the same row is idempotent on every backend.
* ``delete_if_present``: a delete that does not care whether the row exists.
* ``increment_once`` / ``undo_increment``: an increment is not idempotent, so each one
  is tied to a *marker* (saga id + step index [+ tag]). Where the marker can be
  written atomically with the increment, this is exactly-once:

  ======================  ==============================================================
  backend                 how
  ======================  ==============================================================
  SQLite / PostgreSQL     marker row (``<namespace>ps_saga_marker``, same database and
                          schema as the counter) inserted in the same transaction as the
                          ``UPDATE``: exactly once.
  Redis / Redis Cluster   one Lua script checks and sets the marker key (same hash tag as
                          the row, so the same cluster slot) and increments: exactly once.
  MongoDB, Cassandra,     check-then-act against the saga log: marker ``intent``, then the
  Neo4j                   increment, then ``applied``. A crash between the last two leaves
                          the marker at ``intent``: the helper then raises
                          ``AmbiguousEffect`` instead of guessing, and the saga ends in
                          ``needs_attention``. At most once, never silently twice.
  ======================  ==============================================================

  ``undo_increment`` reverses the increment only if it was applied, and otherwise
  leaves a tombstone, so an increment that arrives after its compensation (a zombie
  retry) does nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import sqlalchemy as sa

from adapters.base import Adapter
from toolkit.errors import NotFoundError, QueryError, StoreError
from toolkit.repository import Repository
from toolkit.resilience import GuardedAdapter
from toolkit.saga._errors import AmbiguousEffect
from toolkit.saga._log import SagaLog

__all__ = ["MARKER_TTL", "exactly_once", "increment_once"]

MARKER_TTL = 30 * 24 * 3600
"""Seconds a Redis marker is kept (a saga older than this is not replayed)."""

APPLIED, UNDONE, INTENT = "applied", "undone", "intent"

T = TypeVar("T")

Mode = Literal["do", "undo"]


def exactly_once(adapter: Adapter) -> bool:
    """Whether ``increment_once`` is exactly-once on this adapter (see the module docstring)."""
    return _strategy(adapter) != "log"


def _strategy(adapter: Adapter) -> str:
    if hasattr(adapter, "_get_layout") and hasattr(adapter, "client"):
        return "redis"
    engine = getattr(adapter, "engine", None)
    if hasattr(adapter, "_tableset") and engine is not None and engine.dialect.name in ("sqlite", "postgresql"):
        return "sql"
    return "log"


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
    reverse on a backend that cannot read it back cheaply.
    """
    spec = repository._field(field)
    if spec.type not in ("int", "float"):
        raise QueryError(f"{repository.entity.__name__}.{field} is {spec.type}; increment needs int or float")
    if spec.type == "int" and not isinstance(amount, int):
        raise QueryError(f"{repository.entity.__name__}.{field} is int; increment it by an int, not {amount!r}")
    adapter = repository._owner(key, shard_key)
    strategy = _strategy(adapter)
    if strategy == "redis":
        return _guarded(adapter, _redis, adapter, repository, key, field, spec.type, amount, marker, mode)
    if strategy == "sql":
        return _guarded(adapter, _sql, adapter, repository, key, field, spec.type, amount, marker, mode)
    # Check-then-act: the increment itself goes through the guard as a non-idempotent call.
    return _via_log(repository, key, field, amount, marker, mode, log, shard_key)


def _guarded(adapter: Adapter, fn: Callable[..., T], /, *args: Any) -> T:
    """``fn(*args)`` through the shard's resilience guard, retried like an idempotent call.

    The exactly-once strategies talk to the adapter's engine or client directly, which
    would bypass the guard (breaker, bulkhead, throttle); the marker written with the
    increment is what makes a retry safe, so the guard may retry them (the "step key"
    case of the resilience guard's rule for non-idempotent operations).
    """
    if isinstance(adapter, GuardedAdapter):
        return adapter.guard.call(fn, True, *args)
    return fn(*args)


# -- SQLite / PostgreSQL: the marker row in the counter's own transaction ---------------

_MARKER_TABLES: dict[int, sa.Table] = {}


def _marker_table(adapter: Any) -> sa.Table:
    table = _MARKER_TABLES.get(id(adapter))
    if table is None:
        metadata = sa.MetaData()
        prefix = adapter.options.namespace
        table = sa.Table(
            f"{prefix}ps_saga_marker",
            metadata,
            sa.Column("marker", sa.String(255), primary_key=True),
            sa.Column("state", sa.String(10), nullable=False),
            sa.Column("at", sa.Double, nullable=False),
            schema=getattr(adapter, "schema", None),
        )
        for attempt in range(5):  # another thread or process may be creating it right now
            try:
                metadata.create_all(adapter.engine, checkfirst=True)
                break
            except sa.exc.SQLAlchemyError:
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))
        _MARKER_TABLES[id(adapter)] = table
    return table


def _sql(
    adapter: Any,
    repository: Repository[Any],
    key: Any,
    field: str,
    kind: str,
    amount: int | float,
    marker: str,
    mode: Mode,
) -> int | float | None:
    from adapters.relational import translate_errors

    markers = _marker_table(adapter)
    tables = adapter._tableset(repository.schema)
    column = tables.table.c[field]
    now = time.time()

    def add(connection: Any, delta: int | float) -> int | float:
        stmt = (
            tables.table.update()
            .where(tables.key_clause(key), tables.live(now))
            .values({field: sa.func.coalesce(column, 0) + sa.bindparam("ps_amount", delta, type_=column.type)})
            .returning(column)
        )
        found = connection.execute(stmt).first()
        if found is None:
            raise NotFoundError(
                f"no {repository.schema.name} to increment", store=adapter.store, shard=adapter.shard, key=key
            )
        return float(found[0]) if kind == "float" else int(found[0])

    def read(connection: Any) -> int | float | None:
        value = connection.execute(sa.select(column).where(tables.key_clause(key))).scalar()
        return value if value is None else (float(value) if kind == "float" else int(value))

    with translate_errors(adapter.store, adapter.shard, key), adapter.engine.begin() as connection:
        # Marker and counter commit together or not at all. Two racing attempts of one
        # step (only a fenced-out zombie could race) meet on the marker's primary key.
        state = connection.execute(sa.select(markers.c.state).where(markers.c.marker == marker)).scalar()
        if mode == "do":
            if state is not None:
                return read(connection)
            connection.execute(sa.insert(markers).values(marker=marker, state=APPLIED, at=now))
            return add(connection, amount)
        if state == APPLIED:
            connection.execute(sa.update(markers).where(markers.c.marker == marker).values(state=UNDONE, at=now))
            return add(connection, -amount)
        if state is None:
            connection.execute(sa.insert(markers).values(marker=marker, state=UNDONE, at=now))
        return read(connection)


# -- Redis: one Lua script ---------------------------------------------------------------

_REDIS_SCRIPT = """
local state = redis.call('GET', KEYS[2])
local function add(delta)
  if ARGV[2] == 'int' then
    redis.call('HINCRBY', KEYS[1], ARGV[1], delta)
    return redis.call('HGET', KEYS[1], ARGV[1])
  end
  local current = redis.call('HGET', KEYS[1], ARGV[1])
  local value = (current and tonumber(current) or 0) + tonumber(delta)
  local text = string.format('%.17g', value)
  redis.call('HSET', KEYS[1], ARGV[1], text)
  return text
end
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if ARGV[4] == 'do' then
  if state then return {0, current} end
  if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, ''} end
  redis.call('SET', KEYS[2], 'applied', 'PX', ARGV[5])
  return {1, add(ARGV[3])}
end
if state == 'applied' then
  redis.call('SET', KEYS[2], 'undone', 'PX', ARGV[5])
  if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
  return {1, add(ARGV[6])}
end
if not state then redis.call('SET', KEYS[2], 'undone', 'PX', ARGV[5]) end
return {0, current}
"""


def _redis(
    adapter: Any,
    repository: Repository[Any],
    key: Any,
    field: str,
    kind: str,
    amount: int | float,
    marker: str,
    mode: Mode,
) -> int | float | None:
    from adapters.keyvalue import translate_errors

    layout = adapter._get_layout(repository.schema)
    row_key, _, _ = layout.locate(key)
    tag = row_key.partition(b":r:")[0]  # the hash tag: the marker shares the row's cluster slot
    marker_key = tag + b":m:" + hashlib.sha1(marker.encode()).hexdigest().encode()
    text = repr(amount) if kind == "int" else repr(float(amount))
    negative = repr(-amount) if kind == "int" else repr(-float(amount))
    with translate_errors(adapter.store, adapter.shard, key):
        status, value = adapter.client.eval(
            _REDIS_SCRIPT, 2, row_key, marker_key, field, kind, text, mode, MARKER_TTL * 1000, negative
        )
    if int(status) == -1:
        raise NotFoundError(
            f"no {repository.schema.name} to increment", store=adapter.store, shard=adapter.shard, key=key
        )
    if not value:
        return None
    return int(value) if kind == "int" else float(value)


# -- anything else: check-then-act against the saga log ---------------------------------


def _via_log(
    repository: Repository[Any],
    key: Any,
    field: str,
    amount: int | float,
    marker: str,
    mode: Mode,
    log: SagaLog,
    shard_key: Any,
) -> int | float | None:
    now = time.time()
    if mode == "do":
        if not log.mark(marker, INTENT, now):
            state = log.marker(marker)
            if state == INTENT:
                raise AmbiguousEffect(
                    f"increment of {repository.entity.__name__}.{field} (key {key!r}) under marker {marker!r} was "
                    "started by a process that died before confirming it; the backend cannot tell whether it "
                    "happened: check the value and fix it by hand"
                )
            return None  # applied or undone already
        try:
            value = repository.increment(key, field, amount, shard_key=shard_key)
        except StoreError as exc:
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
            f"cannot undo the increment of {repository.entity.__name__}.{field} (key {key!r}) under marker "
            f"{marker!r}: a crash left it unconfirmed and the backend cannot tell whether it happened"
        )
    return None
