"""The catalog: polystore's own metadata, in one SQL database (SQLite or PostgreSQL).

One ``MetaData`` holds every catalog table (``_metadata``, which lists them all and who
owns each); ``Catalog`` creates them with one ``create_all`` when it opens. This package
owns the tables of the store's topology:

* the topology history: every epoch's shards (name -> URL), kind and router spec. The
  current topology is the highest epoch. A topology is never edited in place: a change
  (a rebalance) inserts epoch e + 1 with a compare-and-set on e, so two processes can
  never both advance a store, and every process can tell which owner is current;
* the directory router's key -> shard table (keys stored in their canonical encoding);
* a small ``ps_store`` row with the current epoch and a directory version, so a
  process checks for changes with one cheap query instead of re-reading everything;
* the schemas of the entities each store holds.

The routing state of a rebalance in flight (``toolkit.routing``), the rebalance journal
(``sharding.rebalance``) and the saga log (``toolkit.saga``) declare their own tables on
the same ``MetaData`` with ``catalog_table`` and read and write them through
``CatalogAccess``.

Modules: ``_metadata`` (the MetaData, ``catalog_table``, ``CatalogAccess``), ``_topology``
(epochs and the directory), ``_entities`` (entity schemas), ``_catalog`` (``Catalog``).
"""

from __future__ import annotations

from toolkit.catalog._catalog import Catalog
from toolkit.catalog._entities import schema_from_json, schema_to_json
from toolkit.catalog._metadata import METADATA, CatalogAccess, catalog_table, optional, required, utcnow
from toolkit.catalog._topology import STORE, StoreVersion, Topology, store_table

__all__ = [
    "METADATA",
    "STORE",
    "Catalog",
    "CatalogAccess",
    "StoreVersion",
    "Topology",
    "catalog_table",
    "optional",
    "required",
    "schema_from_json",
    "schema_to_json",
    "store_table",
    "utcnow",
]
