"""An entity's label: its name on the server, how its rows are encoded, and its key patterns.

An entity is a node whose label is ``namespace + shard prefix + entity name``. Every
call needs the label's key pattern and field plan, so they are resolved once per
declaration and reused: a batch encodes every field of every row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from adapters.base import TOKEN_FIELD, Row
from adapters.graph._cypher import IDENT, columns, tick
from adapters.graph._values import EXACT_PREFIX, INT64, decode, encode, encode_key, exact_key
from sharding.core.errors import QueryError
from sharding.core.model import EntitySchema, FieldSpec

__all__ = ["Label"]

_TOKEN_KIND: Final = "int"

_Plan = tuple[tuple[str, str, Callable[[str, Any], Any], bool], ...]


@dataclass(frozen=True, slots=True)
class Label:
    """An entity's label and the query fragments built from it."""

    schema: EntitySchema
    name: str
    specs: Mapping[str, FieldSpec]
    plan: _Plan = field(init=False)
    """(field, storage type, encoder, native) per field, for ``encode_row``."""
    upsert: str = field(init=False)
    """The ``UNWIND ... MERGE`` of put and put_many (built once, not per call)."""
    read: str = field(init=False)
    """The ``MATCH`` of get."""
    decimal_keys: tuple[str, ...] = field(init=False)
    """The Decimal key fields, stored canonical with their exact text beside them."""

    @classmethod
    def of(cls, schema: EntitySchema, prefix: str) -> Label:
        """``schema``'s label under ``prefix``, or a QueryError if it is no identifier."""
        name = f"{prefix}{schema.name}"
        if not IDENT.match(name):
            raise QueryError(f"label {name!r} is not a valid identifier")
        return cls(schema, name, {spec.name: spec for spec in schema.fields})

    def __post_init__(self) -> None:
        plan = tuple(
            (spec.name, spec.type, encode_key if spec.name in self.schema.key else encode, spec.type != "json")
            for spec in self.schema.fields
        )
        object.__setattr__(self, "plan", plan)
        object.__setattr__(self, "decimal_keys", tuple(f for f in self.schema.key if self.specs[f].type == "decimal"))
        object.__setattr__(self, "upsert", f"UNWIND $rows AS row MERGE {self.node('n', 'row')} SET n = row")
        object.__setattr__(self, "read", f"MATCH {self.node('n', '$key')} RETURN properties(n) AS p")

    @property
    def q(self) -> str:
        """The label as it goes into query text."""
        return tick(self.name)

    @property
    def key(self) -> tuple[str, ...]:
        return self.schema.key

    def kind(self, field: str) -> str:
        return _TOKEN_KIND if field == TOKEN_FIELD else self.specs[field].type

    def spec(self, field: str) -> FieldSpec:
        """The declared field, or a QueryError naming the fields there are."""
        found = self.specs.get(field)
        if found is None:
            fields = ", ".join(self.schema.field_names)
            raise QueryError(f"{self.schema.name}: unknown field {field!r} (fields: {fields})")
        return found

    def node(self, variable: str, source: str) -> str:
        """``(v:`Label` {`a`: <source>.`a`, ...})``: this label's node whose key is read from
        ``source``, a map (``$key``, or an ``UNWIND`` variable) that ``key_params`` made."""
        pairs = ", ".join(f"{tick(f)}: {source}.{tick(f)}" for f in self.key)
        return f"({variable}:{self.q} {{{pairs}}})"

    def key_params(self, key: Any) -> dict[str, Any]:
        """The key as a map of encoded field values (what ``node`` patterns read)."""
        parts = (key,) if len(self.key) == 1 else tuple(key)
        if len(parts) != len(self.key):
            raise QueryError(f"{self.schema.name}: the key is a tuple of {len(self.key)}, not {key!r}")
        return {f: encode_key(self.kind(f), part) for f, part in zip(self.key, parts, strict=True)}

    def encode_row(self, row: Mapping[str, Any], with_token: bool) -> dict[str, Any]:
        """A row as node properties (nulls left out: Neo4j stores none)."""
        props: dict[str, Any] = {}
        for name, kind, encoder, native in self.plan:
            try:
                value = row[name]
            except KeyError:
                raise QueryError(f"row for {self.schema.name} lacks field {name!r}") from None
            if value is None:
                continue
            # What a validated entity mostly holds, and Neo4j stores as is (``encode``
            # returns these unchanged for every type but json): no call per field.
            cls = type(value)
            if native and (cls is str or cls is float or cls is bool or (cls is int and INT64[0] <= value <= INT64[1])):
                props[name] = value
                continue
            value = encoder(kind, value)
            if value is not None:
                props[name] = value
        for name in self.decimal_keys:
            exact = exact_key(row[name])
            if exact is not None:
                props[EXACT_PREFIX + name] = exact
        if with_token and row.get(TOKEN_FIELD) is not None:
            props[TOKEN_FIELD] = int(row[TOKEN_FIELD])
        return props

    def decode(self, props: Mapping[str, Any]) -> Row:
        """Node properties as a row (absent properties as None)."""
        row: Row = {spec.name: decode(spec.type, props.get(spec.name)) for spec in self.schema.fields}
        for name in self.decimal_keys:
            exact = props.get(EXACT_PREFIX + name)
            if exact is not None:
                row[name] = decode("decimal", exact)
        if TOKEN_FIELD in props:
            row[TOKEN_FIELD] = int(props[TOKEN_FIELD])
        return row

    def key_of(self, row: Mapping[str, Any]) -> Any:
        return self.schema.key_of(row)

    def order_key(self, variable: str = "n") -> str:
        """The key's properties of ``variable``, for ``ORDER BY``."""
        return columns(variable, self.key)
