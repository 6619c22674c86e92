"""``Repository[E]``: the one interface an application uses for every store.

The repository validates entities, computes shard keys and tokens, asks the store's
routing state (``toolkit.routing``) which shards to touch, and calls those shards'
adapters: one shard for a read by key, every shard the router cannot rule out for a
query, in parallel, merged with the query's order and limit. Filters are data (see
``_query``); nothing is ever interpolated into a query string.

During a rebalance the routing state may send a write to two shards (and ask for the key
to be logged first), hold it while the key is fenced, or say that a row found on a shard
is a copy the shard does not own; fan-out queries then drop such copies. Reads by key keep
going to the current epoch's owner. The repository knows no rebalance phase: without a
rebalance the only added cost is ``store.poll()``.

Modules: ``_query`` (filters, order, typed keys), ``_repository`` (``Repository``).
"""

from __future__ import annotations

from toolkit.repository._query import parse_order, parse_where
from toolkit.repository._repository import Repository

__all__ = ["Repository", "parse_order", "parse_where"]
