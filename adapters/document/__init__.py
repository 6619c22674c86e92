"""The document adapter: pymongo over MongoDB and MongoDB-wire servers (FerretDB 1.x).

Layout, and why:

* One collection per entity, named ``namespace + schema.name``; one adapter per shard,
  each shard its own database (the URL's path, e.g. ``mongodb://host/polystore_s0``).
* ``_id`` is the key (a sub-document for a composite key); key fields are not repeated
  as top-level fields (``_entity``).
* Scalar fields are top-level fields, encoded so that the server's order is Python's
  order and nothing is lost (``_scalars``); ``json`` fields are nested documents and
  arrays with their keys escaped reversibly (``_json``).
* Hash-routed collections carry ``_ps_token``, indexed with ``_id``: token-range scans
  are keyset-paged index range scans (``_queries``).
* Filters run on the server with Python's semantics; the few that cannot be expressed
  exactly send a superset and are re-checked in Python before the limit (``_filters``).
  Ordering is always on the server; ordering by a json field or path is refused.
* PARTIAL_UPDATE is one ``$set``, ATOMIC_INCREMENT one ``$inc`` (``_updates``); on
  FerretDB, whose update operators lose concurrent writes, both hold a per-row lock
  document (``_locks``; option ``row_locks``). No TTL (MongoDB's monitor runs once a
  minute), no transactions (FerretDB has none).
* ``put_many`` is ``bulk_write`` of upserts, in small batches on FerretDB, whose 1.24
  pool deadlocks on a large replacing command (``_adapter``; option ``bulk_batch``).
* Every pymongo/bson exception is translated into polystore's errors by one table
  (``ERRORS``).

Layout, one job per module: ``_options`` (typed options), ``_errors`` (the error
table), ``_json`` and ``_scalars`` (Python <-> stored values), ``_entity`` (rows <->
documents), ``_filters`` and ``_queries`` (server conditions, orders, scan pages),
``_locks`` (FerretDB row locks), ``_shard`` (the connection and shared state),
``_schema`` (ensure, drop, describe), ``_updates`` (increments and partial updates) and
``_adapter`` (rows, queries, scans).
"""

from __future__ import annotations

from adapters.document._adapter import DocumentAdapter
from adapters.document._errors import ERRORS
from adapters.document._json import ARRAY_WRAPPER, decode_json, encode_json, escape_key, unescape_key
from adapters.document._options import DocumentOptions

__all__ = [
    "ARRAY_WRAPPER",
    "ERRORS",
    "DocumentAdapter",
    "DocumentOptions",
    "decode_json",
    "encode_json",
    "escape_key",
    "unescape_key",
]
