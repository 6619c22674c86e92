"""The graph adapter: the neo4j driver (Bolt) over Neo4j 5 (Community or Enterprise).

Design choices, and why:

* One driver per server per process, shared (reference-counted) by the adapters of
  every shard on it; every call opens a session and runs a *managed* transaction, so
  the driver retries transient failures (for at most the ``retry_time`` option, 5 s)
  and no connection is shared between threads. Constraints and indexes are created
  once per server and label per process.
* Every value is a query parameter; only validated identifiers (labels, property
  names, relationship types) and validated integers (traversal depths, which Cypher
  cannot parameterise) are written into query text, always backticked.
* An entity is a node whose label is ``namespace + shard prefix + entity name``. The
  store option ``namespace`` isolates applications (and tests); the URL parameter
  ``?prefix=NAME`` isolates shards that share one server (Community Edition has a
  single user database), and ``?database=NAME`` picks a database on Enterprise.
* The key has a node property uniqueness constraint (composite keys too), so ``MERGE``
  on it is an indexed, race-free upsert; ``put_many`` is one ``UNWIND ... MERGE``.
* Token-range scans seek a RANGE index on ``_ps_token``, paged by keyset on ``(token,
  key)``; key-range scans seek the key's (or shard key's) index; never a label scan.
* Values are stored in the types Neo4j has (JSON as text, decimals and UUIDs as
  strings, datetimes in UTC) and come back as the Python types written.
* Neo4j stores no nulls, so filters and orders spell out Python's null semantics; they
  run on the server, except on ``decimal`` fields (text on the server), finished in
  Python.
* GRAPH uses Neo4j 5's quantified path patterns and ``ANY SHORTEST`` (Neo4j 5.21+).
* Every driver exception is translated into polystore's errors by one table (``ERRORS``).

Layout, one job per module: ``_connection`` (typed options, the URL, shared drivers),
``_errors`` (the error table), ``_values`` (Python <-> Neo4j values), ``_cypher`` (query
text pieces), ``_label`` (an entity's label and row codec), ``_session`` (managed
transactions), ``_queries`` (filters, orders, scan pages), ``_schema`` (ensure, drop,
describe), ``_graph`` (GRAPH) and ``_adapter`` (rows, queries, increments, updates).
"""

from __future__ import annotations

from adapters.graph._adapter import GraphAdapter
from adapters.graph._connection import GraphOptions
from adapters.graph._errors import ERRORS, translating

__all__ = ["ERRORS", "GraphAdapter", "GraphOptions", "translating"]
