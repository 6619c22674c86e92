"""Entity -> stored row: the per-row work of every write, built once per entity class.

A row is what adapters store: the entity's fields by name (enums as their values, nested
fields as JSON-ready data) plus ``_ps_token``, the token of its shard key. Writes do this
for every entity, so ``row_builder`` picks, once per class, the cheapest correct way:

* flat entities (no enum, no nested field), the common case: a validated pydantic
  instance keeps exactly its field values in ``__dict__``, keyed by field name (aliases
  only affect input and dumps), so a copy of it is the row, without ``model_dump`` or a
  getattr per field. Anything else in ``__dict__`` (a ``cached_property``, a subclass's
  extra field) fails the key check and takes the general path;
* otherwise: the scalar fields by getattr, enums replaced by their values, nested fields
  through ``model_dump(mode="json")``.

Private: used by ``toolkit.repository``.
"""

from __future__ import annotations

import enum
import operator
import typing
from collections.abc import Callable
from typing import Any

from adapters.base import TOKEN_FIELD, Row
from sharding.keys import token
from toolkit.model import Entity, EntitySchema

__all__ = ["row_builder"]


def _is_enum(annotation: Any) -> bool:
    """Whether a field may hold an Enum (stored as its value)."""
    candidates = typing.get_args(annotation) or (annotation,)
    return any(isinstance(c, type) and issubclass(c, enum.Enum) for c in candidates)


def row_builder(entity: type[Entity], schema: EntitySchema) -> Callable[[Entity], Row]:
    """A function from a validated instance of ``entity`` to its stored row, with token."""
    scalar_fields = tuple(spec.name for spec in schema.fields if spec.type != "json")
    json_fields = {spec.name for spec in schema.fields if spec.type == "json"}
    enum_fields = tuple(
        name for name, info in entity.model_fields.items() if name in scalar_fields and _is_enum(info.annotation)
    )
    single = schema.shard_key[0] if len(schema.shard_key) == 1 else None
    shard_key_of = schema.shard_key_of
    getter = operator.attrgetter(*scalar_fields) if scalar_fields else None

    def fields_of(instance: Entity) -> Row:
        if getter is None:
            return {}
        if len(scalar_fields) == 1:
            return {scalar_fields[0]: getter(instance)}
        return dict(zip(scalar_fields, getter(instance), strict=True))

    if not json_fields and not enum_fields:
        names = frozenset(scalar_fields)

        def flat(instance: Entity) -> Row:
            values = instance.__dict__
            row = values.copy() if values.keys() == names else fields_of(instance)
            row[TOKEN_FIELD] = token(row[single] if single is not None else shard_key_of(row))
            return row

        return flat

    def general(instance: Entity) -> Row:
        row = fields_of(instance)
        for name in enum_fields:
            value = row[name]
            if isinstance(value, enum.Enum):
                row[name] = value.value
        if json_fields:
            row.update(instance.model_dump(mode="json", include=json_fields))
        row[TOKEN_FIELD] = token(row[single] if single is not None else shard_key_of(row))
        return row

    return general
