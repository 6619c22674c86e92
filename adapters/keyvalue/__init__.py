"""The key-value adapter: redis-py over standalone Redis (``redis://``, ``rediss://``)
and Redis Cluster (``redis-cluster://[user:pass@]host:port[,host:port...][?ssl=true]``).

Design choices, and why:

* One Redis hash per row, plus two sorted-set indexes per entity (tokens, and the shard
  key in an order-preserving byte encoding), bucketed; see ``_layout`` for the keys.
* Hash tags. Everything between the first ``{`` and ``}`` picks the cluster slot, so a
  row and the index bucket that lists it always share a slot: every write is one Lua
  script that updates both atomically, which Redis Cluster allows only within a slot.
  A row's bucket is ``crc32(encoded key) % buckets``; standalone Redis uses one bucket,
  Redis Cluster 64 by default (option ``index_buckets``) so that one entity's rows are
  spread over the whole cluster (one sorted set would pin an entity's index to one
  slot, and every write to it). Reads that walk the index query all buckets, pipelined.
  The bucket count of an entity is stored in a meta hash on first use, so every
  process agrees on it. ``scan`` therefore returns rows in token order per bucket,
  not in key order.
* Values are typed by the schema, not tagged (``_values``); no pickle.
* Token ranges and key ranges are ``ZRANGEBYLEX`` spans of the indexes, paged by keyset
  (``_queries``): what a rebalance moves costs what is in the range.
* Redis has no secondary indexes without modules, so ``find`` and ``count`` filter,
  sort and limit in Python over the rows they read (by key, else a shard-key index
  span, otherwise every row of the entity): honest, linear in what is read.
* TTL is ``PEXPIRE`` on the row hash, set inside the write script; index members of
  expired rows are skipped and removed lazily.
* ``increment`` is exact (``HINCRBY``, or ``%.17g`` doubles); ``increment_once``
  (APPLY_ONCE) keeps its marker beside the row, in the same slot, and checks and sets
  it in the same script: exactly once. ``run_script`` (SCRIPTS) runs a caller's Lua.
* One client per server and settings, shared by the shards on it (``_connection``).
  Driver retries are off by default for standalone Redis (``retries`` option): the
  toolkit's resilience layer owns retrying, and a blind retry could apply an
  increment twice. The cluster client keeps its own handling of MOVED/ASK redirects.
* Every redis-py exception is translated into polystore's errors by one table
  (``ERRORS``).

Layout, one job per module: ``_options`` (typed options), ``_errors`` (the error
table), ``_connection`` (URLs, shared clients), ``_values`` (value codecs), ``_ordered``
(the order-preserving shard-key encoding), ``_layout`` (an entity's keys and row codec),
``_scripts`` (the Lua scripts and how they run), ``_shard`` (connection, ensure, drop,
describe), ``_queries`` (index walks, find, count, scans), ``_changes`` (increments,
partial updates, scripts) and ``_adapter`` (writes and reads by key).
"""

from __future__ import annotations

from adapters.keyvalue._adapter import KeyValueAdapter
from adapters.keyvalue._connection import RedisTarget, parse_url
from adapters.keyvalue._errors import ERRORS
from adapters.keyvalue._layout import Layout
from adapters.keyvalue._options import KeyValueOptions

__all__ = ["ERRORS", "KeyValueAdapter", "KeyValueOptions", "Layout", "RedisTarget", "parse_url"]
