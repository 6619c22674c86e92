"""Pure routing: shard key -> shard, for hash, range and directory topologies.

Callers (the repository, the catalog, ``polystore rebalance``) use the ``Router``
protocol and the two factories here, never a router class by name:

* ``router_from_config(type, shards, options)`` builds a fresh router from a store's
  ``[stores.X.router]`` table;
* ``router_from_spec(spec)`` rebuilds the router a topology epoch stored in the catalog.

Every error names the offending option or field (``router.weights.s9: ...``).
"""

from sharding.base import (
    DirectoryKeys,
    KeyConstraint,
    KeyRange,
    Move,
    Router,
    ShardId,
    TokenRange,
)
from sharding.directory import DirectoryRouter
from sharding.factories import router_from_config, router_from_spec
from sharding.hashring import HashRouter
from sharding.keys import MAX_TOKEN, MIN_TOKEN, decode_key, encode_key, token
from sharding.range import RangeRouter

__all__ = [
    "MAX_TOKEN",
    "MIN_TOKEN",
    "DirectoryKeys",
    "DirectoryRouter",
    "HashRouter",
    "KeyConstraint",
    "KeyRange",
    "Move",
    "RangeRouter",
    "Router",
    "ShardId",
    "TokenRange",
    "decode_key",
    "encode_key",
    "router_from_config",
    "router_from_spec",
    "token",
]
