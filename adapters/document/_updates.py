"""ATOMIC_INCREMENT and PARTIAL_UPDATE: ``$inc`` and ``$set``, with FerretDB's row locks.

ATOMIC_INCREMENT is ``$inc`` (a null field first becomes 0). PARTIAL_UPDATE is one
``$set`` (guarded so that no array is on a path's way); when a path crosses a null
object or an array, or two paths overlap, the adapter reads the fields, applies the
changes in Python (a null object on the way becomes ``{}``; any other non-object is a
QueryError) and writes them back with a compare-and-set on their old values (retried on
a conflict). On FerretDB both hold a row lock (``adapters.document._locks``). No
transactions: FerretDB has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pymongo import ReturnDocument
from pymongo import errors as mongo_errors

from adapters._paths import set_path
from adapters.document._entity import Entity
from adapters.document._filters import JsonPath, all_of
from adapters.document._json import Doc, decode_json, encode_json, jsonable
from adapters.document._scalars import decode
from adapters.document._shard import DocumentShard
from sharding.core.errors import NotFoundError, QueryError, StoreError
from sharding.core.model import EntitySchema

__all__ = ["UpdateOps"]

_CAS_ATTEMPTS: Final = 20
_TYPE_MISMATCH: Final = 14
"""``$inc`` on a null field: it counts as 0, so the field is set to 0 first."""
_SET_NEEDS_READ: Final = frozenset({28, 40})
"""PathNotViable (a path through a scalar or an array), ConflictingUpdateOperators
(overlapping paths): the update is done by reading instead."""


class UpdateOps(DocumentShard):
    """The increment and partial-update half of ``DocumentAdapter``."""

    def increment(self, schema: EntitySchema, key: Any, field: str, amount: int | float) -> int | float:
        entity = self._entity(schema)
        kind = entity.kinds.get(field)
        if kind not in ("int", "float") or field in schema.key:
            raise QueryError(f"{schema.name}.{field}: increment needs a numeric field that is not part of the key")
        ident = entity.key_id(key)
        if kind == "float":
            amount = float(amount)  # a double sum, never an int64 (which stores -0.0: see _scalars)
        with self._translating(key), self._row_lock(entity, ident, key):
            try:
                doc = _inc(entity, ident, field, amount)
            except mongo_errors.OperationFailure as exc:
                if exc.code != _TYPE_MISMATCH:
                    raise
                entity.collection.update_one({"_id": ident, field: None}, {"$set": {field: 0}})
                doc = _inc(entity, ident, field, amount)
        if doc is None:
            raise NotFoundError(f"no {schema.name} to increment", store=self.store, shard=self.shard, key=key)
        value = decode(kind, doc[field])
        return int(value) if kind == "int" else float(value)

    def update(self, schema: EntitySchema, key: Any, changes: Mapping[str, Any]) -> bool:
        entity = self._entity(schema)
        ident = entity.key_id(key)
        sets: Doc = {}
        guards: list[Doc] = []
        for path, value in changes.items():
            head, dot, rest = path.partition(".")
            kind = entity.kinds.get(head)
            if kind is None:
                raise entity.unknown(head)
            if head in schema.key:
                raise QueryError(f"{schema.name}.{head} is part of the key; it cannot change")
            if dot and kind != "json":
                raise QueryError(f"{schema.name}.{head} is {kind}, not a nested field: {path!r}")
            if dot:
                json_path = JsonPath(head, rest.split("."))
                guards.extend(json_path.guards)
                sets[json_path.leaf] = encode_json(value)
            else:
                sets.update(entity.stored(head, value))
        with self._translating(key), self._row_lock(entity, ident, key):
            if not sets:
                return entity.collection.count_documents({"_id": ident}, limit=1) > 0
            try:
                result = entity.collection.update_one(all_of([{"_id": ident}, *guards]), {"$set": sets})
                if result.matched_count or not guards:
                    return result.matched_count > 0
            except mongo_errors.OperationFailure as exc:
                if exc.code not in _SET_NEEDS_READ:
                    raise
            return self._update_by_read(entity, ident, key, changes)

    def _update_by_read(self, entity: Entity, ident: Any, key: Any, changes: Mapping[str, Any]) -> bool:
        """Apply ``changes`` in Python and write them back if nobody changed those fields meanwhile."""
        heads = list(dict.fromkeys(path.partition(".")[0] for path in changes))
        nested = [head for head in heads if any(path.startswith(f"{head}.") for path in changes)]
        for _ in range(_CAS_ATTEMPTS):
            doc = entity.collection.find_one({"_id": ident}, projection=dict.fromkeys(heads, True))
            if doc is None:
                return False
            values: dict[str, Any] = {}
            for path, value in changes.items():
                head, dot, rest = path.partition(".")
                if not dot:
                    values[head] = value
                    continue
                base = values[head] if head in values else decode_json(doc.get(head))
                values[head] = set_path(base, rest.split("."), value, path=path, copy=True, convert=jsonable)
            expected: list[Doc] = [{"_id": ident}]
            for head in nested:
                old = doc.get(head)
                expected.append({head: old})
                if not isinstance(old, list):
                    expected.append({head: {"$not": {"$type": "array"}}})
            sets = {}
            for head, value in values.items():
                sets.update(entity.stored(head, value))
            if entity.collection.update_one(all_of(expected), {"$set": sets}).matched_count:
                return True
        raise StoreError(
            "the row kept changing during a partial update", store=self.store, shard=self.shard, key=key, retryable=True
        )


def _inc(entity: Entity, ident: Any, field: str, amount: int | float) -> Doc | None:
    """The document after ``$inc`` (None if there is none)."""
    # No projection: FerretDB 1.24's findAndModify does not implement ``fields``.
    return entity.collection.find_one_and_update(
        {"_id": ident},
        {"$inc": {field: amount}},
        return_document=ReturnDocument.AFTER,
    )
