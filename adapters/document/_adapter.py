"""``DocumentAdapter``: rows, queries and scans on one MongoDB database.

Lifecycle (``_schema``) and increments and partial updates (``_updates``) are its other
halves; this module holds the hot path.

``put_many`` is ``bulk_write`` of ``ReplaceOne(upsert)``; on FerretDB in batches of at
most ``bulk_batch`` (option; default 8 there, unbounded on MongoDB). FerretDB 1.24 over
SQLite keeps the SQLite cursor of every *matched* replacement of one ``update`` command
open until the command ends, and its pool has 100 connections per database: a command
replacing more than 100 existing documents waits forever for a 101st connection and
holds the other 100, so every later read of that database hangs, and the next
``drop``/``create`` takes the server's catalog lock and wedges the whole server (only a
restart cures it). Small batches keep each command far below the pool, with room for
concurrent writers (the pool is shared by every client of the database); the server's
time per row dwarfs the extra round trips.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Final

from pymongo import ReplaceOne
from pymongo import errors as mongo_errors

from adapters._scans import check_batch_size
from adapters.base import Capability, ExpiringScan, Filter, Query, Row
from adapters.document import _queries as q
from adapters.document._entity import Entity
from adapters.document._errors import all_duplicates
from adapters.document._filters import all_of
from adapters.document._json import Doc
from adapters.document._schema import SchemaOps
from adapters.document._updates import UpdateOps
from sharding.base import KeyRange, TokenRange
from sharding.core.errors import StoreError
from sharding.core.limits import DEFAULT_LIMITS, ValueLimits
from sharding.core.model import EntitySchema

__all__ = ["DocumentAdapter"]

_IN_CHUNK: Final = 500
"""Keys per ``$in`` of ``get_many`` and ``delete_many``."""
_FERRETDB_BULK_BATCH: Final = 8
"""Replacements per ``bulk_write`` on FerretDB (see the module docstring: more than 100
matched replacements in one command, summed over concurrent commands on one database,
deadlock FerretDB 1.24's SQLite pool)."""


class DocumentAdapter(UpdateOps, SchemaOps, ExpiringScan):
    """One shard in one MongoDB database. See ``adapters.document``."""

    capabilities: ClassVar[Capability] = (
        Capability.NESTED_FILTERS | Capability.PARTIAL_UPDATE | Capability.ATOMIC_INCREMENT
    )
    # What MongoDB and FerretDB 1.24 both keep exactly (``_scalars``, ``_json``), each round
    # trip tested on the stack's FerretDB (tests/safety). Ints stay BSON int64, floats
    # finite (FerretDB drops the connection on a NaN and refuses infinities), Decimals
    # decimal128 (their order-preserving string is keys.py's, exact text beside it).
    value_limits: ClassVar[ValueLimits] = replace(
        DEFAULT_LIMITS,
        datetime_min=dt.datetime.min.replace(tzinfo=dt.UTC),  # int64 microseconds: year 1 on
        date_min=dt.date.min,  # ISO strings, four-digit years, sort as the dates
        str_nul=True,  # BSON strings are length-prefixed; NUL in a JSON key is escaped
        # MongoDB nests at most 100 levels, and an array inside an array is stored
        # wrapped in a document (``_json``): depth d may take 2d levels below the top one.
        json_max_depth=49,
    )

    # -- rows ------------------------------------------------------------------------
    def put(self, schema: EntitySchema, row: Row) -> None:
        entity = self._entity(schema)
        doc = entity.document(row)
        with self._translating(schema.key_of(row)):
            try:
                entity.collection.replace_one({"_id": doc["_id"]}, doc, upsert=True)
            except mongo_errors.DuplicateKeyError:  # two upserts of a new key raced: now it exists
                entity.collection.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    def put_many(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        if not rows:
            return 0
        entity = self._entity(schema)
        # Last write wins within one batch, as with a sequence of puts.
        unique = {schema.key_of(row): entity.document(row) for row in rows}
        requests = [ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in unique.values()]
        with self._translating():
            size = self._bulk_batch_size() or len(requests)
            for start in range(0, len(requests), size):
                self._bulk_write(entity, requests[start : start + size])
        return len(unique)

    def _bulk_write(self, entity: Entity, requests: list[ReplaceOne[Doc]]) -> None:
        """One unordered ``bulk_write`` of upserts, retried once after an upsert race."""
        try:
            entity.collection.bulk_write(requests, ordered=False)
        except mongo_errors.BulkWriteError as exc:
            if not all_duplicates(exc):
                raise
            entity.collection.bulk_write(requests, ordered=False)  # upsert races: idempotent retry
        except KeyError as exc:
            # pymongo reads fields of the server's reply that FerretDB omits when a
            # concurrent bulk write fails ("nModified"): the outcome is unknown, and
            # the whole batch is idempotent upserts, so retrying is safe.
            raise StoreError(
                f"incomplete bulk write reply from the server (missing {exc.args[0]!r}); retry the batch",
                store=self.store,
                shard=self.shard,
                retryable=True,
            ) from exc

    def _bulk_batch_size(self) -> int | None:
        """Requests per ``bulk_write``: the option, else a small batch on FerretDB, else
        None (unbounded: pymongo splits at the server's own limit)."""
        size = self.options.bulk_batch_size
        if size is None and self._is_ferretdb():
            return _FERRETDB_BULK_BATCH
        return size

    def get(self, schema: EntitySchema, key: Any) -> Row | None:
        entity = self._entity(schema)
        with self._translating(key):
            doc = entity.collection.find_one({"_id": entity.key_id(key)})
        return entity.row(doc) if doc is not None else None

    def get_many(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        entity = self._entity(schema)
        ids = entity.unique_ids(keys)
        rows: list[Row] = []
        with self._translating():
            for start in range(0, len(ids), _IN_CHUNK):
                cursor = entity.collection.find({"_id": {"$in": ids[start : start + _IN_CHUNK]}})
                rows.extend(entity.row(doc) for doc in cursor)
        return rows

    def delete(self, schema: EntitySchema, key: Any) -> bool:
        entity = self._entity(schema)
        with self._translating(key):
            return entity.collection.delete_one({"_id": entity.key_id(key)}).deleted_count > 0

    def delete_many(self, schema: EntitySchema, keys: Sequence[Any]) -> int:
        entity = self._entity(schema)
        ids = entity.unique_ids(keys)
        deleted = 0
        with self._translating():
            for start in range(0, len(ids), _IN_CHUNK):
                deleted += entity.collection.delete_many({"_id": {"$in": ids[start : start + _IN_CHUNK]}}).deleted_count
        return deleted

    # -- queries ---------------------------------------------------------------------
    def find(self, schema: EntitySchema, query: Query) -> list[Row]:
        entity = self._entity(schema)
        plan = q.plan(entity, query.filters)
        sort = q.sort(entity, query.order_by)
        if query.limit == 0:
            return []
        with self._translating():
            cursor = entity.collection.find(plan.query, sort=sort)
            if not plan.residual:
                if query.limit is not None:
                    cursor = cursor.limit(query.limit)
                return [entity.row(doc) for doc in cursor]
            rows: list[Row] = []
            for doc in cursor:
                row = entity.row(doc)
                if plan.accepts(row):
                    rows.append(row)
                    if query.limit is not None and len(rows) >= query.limit:
                        break
            cursor.close()
            return rows

    def count(self, schema: EntitySchema, filters: Sequence[Filter] = ()) -> int:
        entity = self._entity(schema)
        plan = q.plan(entity, filters)
        with self._translating():
            if not plan.residual:
                return entity.collection.count_documents(plan.query)
            return sum(1 for doc in entity.collection.find(plan.query) if plan.accepts(entity.row(doc)))

    def _scan_rows(
        self, schema: EntitySchema, tokens: TokenRange | None, keys: KeyRange | None, batch_size: int, *, expiring: bool
    ) -> Iterator[list[Row]]:
        # No TTL here: no row expires, so ``expiring`` (scan_expiring) adds nothing.
        entity = self._entity(schema)
        check_batch_size(batch_size)
        bounds = q.scan_bounds(entity, tokens, keys)
        if bounds is None:
            return
        by_token = tokens is not None
        sort = q.scan_sort(by_token)
        after: Doc = {}
        while True:
            with self._translating():
                docs = list(entity.collection.find(all_of([*bounds, after]), sort=sort, limit=batch_size))
            if not docs:
                return
            yield [entity.row(doc) for doc in docs]
            if len(docs) < batch_size:
                return
            after = q.after(docs[-1], by_token)
