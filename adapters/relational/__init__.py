"""The relational adapter: SQLAlchemy Core over SQLite (the embedded default),
PostgreSQL (psycopg 3) and MySQL/MariaDB.

Design choices, and why:

* Tables come from the entity declaration: scalar fields become typed columns, nested
  fields one JSON column each (JSONB on PostgreSQL), the key the primary key.
* Strings use the byte-order ``"C"`` collation on PostgreSQL, so ``ORDER BY`` and range
  filters agree with Python's ordering (which the fan-out merge and the range router
  rely on); SQLite's default BINARY collation already does.
* Upserts are the dialect's own (``ON CONFLICT DO UPDATE`` / ``ON DUPLICATE KEY``): one
  round trip, idempotent, safe to repeat during a rebalance copy.
* Hash-routed tables carry ``_ps_token`` (BIGINT, indexed with the key): reading a token
  range is an index range scan, not a full scan.
* Statements are built once per table and reused, so SQLAlchemy's compiled cache hits;
  the hot single-row paths run them compiled on a raw DBAPI cursor.
* Every SQLAlchemy/DBAPI exception is translated by one table (``ERRORS``).

The embedded default implements every capability the other kinds offer, on SQLite and
PostgreSQL (MySQL/MariaDB: TTL and partition ranges; the JSON, increment, apply-once and
graph capabilities raise ``UnsupportedCapability`` there):

* TTL: a hidden nullable ``_ps_expires`` column compared by every read and by every
  write that needs an existing row, so an expired row is never seen (``_ttl``).
* NESTED_FILTERS and PARTIAL_UPDATE: all in SQL, paths and values as parameters
  (``_json``). Ordering by a dotted path raises QueryError.
* ATOMIC_INCREMENT: ``UPDATE ... SET f = COALESCE(f, 0) + :amount ... RETURNING f``.
* APPLY_ONCE: that increment and its marker row in one transaction (``_markers``).
* PARTITION_RANGE: the shard key's value is the partition, the other key fields the
  clustering; served by the primary key or by ``ix_<table>_ps_shard``.
* GRAPH: an edge table and recursive SQL (``_edges``, ``_graph``); deleting a row
  deletes its edges in the same transaction.

Layout, one job per module: ``_options`` (typed options), ``_errors`` (the error
table), ``_types`` (column types), ``_compiled`` (statements run on a raw cursor),
``_tables`` (an entity's table and its statements), ``_shard`` (engine, connections,
ensure, drop, describe), ``_rows`` (reads and writes by key), ``_queries`` (find,
count, scan, partition), ``_json`` (JSON paths in SQL), ``_ttl`` (expiry),
``_changes`` and ``_markers`` (increments, apply-once, partial updates), ``_edges`` and
``_graph`` (relationships), ``_ranges`` (range checksum and delete), ``_stored`` (the
stored-form copy) and ``_adapter`` (the capability set).
"""

from __future__ import annotations

from adapters.base import EXPIRES_FIELD
from adapters.relational._adapter import RelationalAdapter
from adapters.relational._errors import ERRORS
from adapters.relational._options import RelationalOptions
from adapters.relational._types import UTCDateTime

__all__ = ["ERRORS", "EXPIRES_FIELD", "RelationalAdapter", "RelationalOptions", "UTCDateTime"]
