"""``Entity``: one collection, and how the rows of one entity map onto its documents.

``_id`` is the key: the encoded value for a simple key, a sub-document ``{field: value,
...}`` (in key order) for a composite key. Key fields are not repeated as top-level
fields; filters and orders on them use ``_id`` / ``_id.<field>``. Embedded documents
compare field by field, so ordering by a composite ``_id`` is tuple order. Hash-routed
collections carry ``_ps_token``. A Decimal (key part or not) whose stored number loses
its exponent or sign carries its exact text in ``_ps_exact_<field>`` (``_scalars``).
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo.collection import Collection

from adapters.base import TOKEN_FIELD, Row
from adapters.document._json import Doc
from adapters.document._scalars import EXACT_PREFIX, decode, encode, exact_decimal
from sharding.core.errors import QueryError
from sharding.core.model import EntitySchema, ScalarType

__all__ = ["Entity"]


@dataclass(frozen=True, slots=True)
class Entity:
    """A collection and how the rows of one entity map onto its documents."""

    schema: EntitySchema
    collection: Collection[Doc]
    kinds: Mapping[str, ScalarType]
    with_token: bool

    @property
    def simple_key(self) -> bool:
        return len(self.schema.key) == 1

    def path(self, field: str) -> str:
        """The document path of a top-level field."""
        if field in self.schema.key:
            return "_id" if self.simple_key else f"_id.{field}"
        return field

    def key_id(self, key: Any) -> Any:
        """The ``_id`` of the row with ``key``."""
        if self.simple_key:
            return encode(self.kinds[self.schema.key[0]], key)
        if not isinstance(key, tuple | list) or len(key) != len(self.schema.key):
            raise QueryError(f"{self.schema.name}: the key is a tuple of ({', '.join(self.schema.key)}), not {key!r}")
        return {name: encode(self.kinds[name], part) for name, part in zip(self.schema.key, key, strict=True)}

    def unique_ids(self, keys: Sequence[Any]) -> list[Any]:
        """The ``_id`` of each distinct key, in order."""
        return [self.key_id(key) for key in dict.fromkeys(keys)]

    def unknown(self, field: str) -> QueryError:
        """The error for a filter, order or change naming a field the entity lacks."""
        schema = self.schema
        return QueryError(f"{schema.name}: unknown field {field!r} (fields: {', '.join(schema.field_names)})")

    def stored(self, name: str, value: Any) -> Doc:
        """The stored fields of a non-key field set to ``value`` (what ``$set`` writes): the
        field, and for a Decimal its exact text (or null, clearing an earlier one)."""
        kind = self.kinds[name]
        if kind != "decimal":
            return {name: encode(kind, value)}
        return {name: encode(kind, value), EXACT_PREFIX + name: exact_decimal(value)}

    def document(self, row: Row) -> Doc:
        """The document that stores ``row``."""
        try:
            doc: Doc = {"_id": self.key_id(self.schema.key_of(row))}
            for name, kind in self.kinds.items():
                if name not in self.schema.key:
                    doc[name] = encode(kind, row[name])
                if kind == "decimal" and (exact := exact_decimal(row[name])) is not None:
                    doc[EXACT_PREFIX + name] = exact
            if self.with_token:
                doc[TOKEN_FIELD] = int(row[TOKEN_FIELD])
        except KeyError as exc:
            raise QueryError(f"row for {self.schema.name} lacks field {exc.args[0]!r}") from None
        return doc

    def row(self, doc: Doc) -> Row:
        """The row a stored document holds."""
        row: Row = {}
        ident = doc["_id"]
        for name, kind in self.kinds.items():
            exact = doc.get(EXACT_PREFIX + name) if kind == "decimal" else None
            if exact is not None:
                row[name] = decimal.Decimal(exact)
            elif name in self.schema.key:
                row[name] = decode(kind, ident if self.simple_key else ident[name])
            else:
                row[name] = decode(kind, doc.get(name))
        if TOKEN_FIELD in doc:
            row[TOKEN_FIELD] = int(doc[TOKEN_FIELD])
        return row
