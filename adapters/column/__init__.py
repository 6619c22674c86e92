"""The column adapter: cassandra-driver over Apache Cassandra (5.0+) and ScyllaDB.

URL: ``cassandra://[user:password@]HOST[:PORT][,HOST[:PORT]...]/KEYSPACE`` (port 9042 by
default). One keyspace per shard, created on first ``ensure`` if missing with
``SimpleStrategy`` RF 1, or with the store option ``replication``. The other options
(``namespace``, ``consistency``, timeouts, ``local_dc``, ``protocol_version``) are the
typed ``ColumnOptions``; URL parameters may give them too.

Design choices, and why (each module's docstring says more):

* One ``Cluster``/``Session`` per contact-point set, shared by every adapter in the
  process and reference counted (``_connection``); every statement is prepared once and
  executed with bound values, so keys and values that look like CQL are data
  (``_shard``).
* Tables: ``PRIMARY KEY ((shard key), clustering)`` when the shard key is a proper part
  of the key, with hidden SAI-indexed ``_ps_token`` and ``_ps_skey`` columns and an exact
  expiry instant ``_ps_expires`` (``_table``); types are stored losslessly (``_codecs``).
* Token and shard-key ranges are SAI index range reads, paged by the driver's paging
  state (keyset, never an offset).
* ``find``/``count`` push to the server only what CQL evaluates exactly as Python
  (``_plan``), with ``ALLOW FILTERING``: a filter on a field without an index FILTERS
  DURING A FULL SCAN of the shard's table on the server, so declare ``indexes`` for
  fields you filter on. Every row is re-checked, ordered and limited client-side.
* Upserts are native; TTLs are exact through reads (``_adapter``).
* Every driver exception is translated into polystore's errors by one table
  (``ERRORS``, ``_errors``).

Layout, one job per module: ``_options`` (typed options), ``_errors`` (the error table),
``_connection`` (the URL, shared sessions), ``_codecs`` (Python <-> CQL values, the
shard-key prefix), ``_table`` (an entity's table, DDL and prepared statements),
``_plan`` (what a query pushes down), ``_shard`` (keyspace, statements, schema, health)
and ``_adapter`` (rows, queries, TTLs, scans, partitions).
"""

from __future__ import annotations

from adapters.column._adapter import ColumnAdapter
from adapters.column._codecs import skey_prefix
from adapters.column._connection import Target, parse_url
from adapters.column._errors import ERRORS
from adapters.column._options import ColumnOptions
from adapters.column._shard import CONCURRENCY

__all__ = ["CONCURRENCY", "ERRORS", "ColumnAdapter", "ColumnOptions", "Target", "parse_url", "skey_prefix"]
