"""Entity declarations: a pydantic model that also says where and how it is stored.

An application declares each entity once::

    class User(Entity, store="users", key="id", shard_key="tenant", indexes=["email"]):
        id: int
        tenant: str
        email: str
        address: Address | None = None   # nested -> stored as JSON

The class keywords are checked when the class is created (a key naming a missing field,
or a misspelled keyword such as ``kye=``, fails at import time, not at the first write),
and every instance is validated before any I/O: a bad value raises
``EntityValidationError`` (a ``ValidationError``) naming the field.

``EntitySchema`` is the backend-neutral description that adapters create tables,
collections or keyspaces from; adapters never look at pydantic directly.
"""

from __future__ import annotations

import datetime as dt
import decimal
import difflib
import enum
import re
import types
import typing
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from sharding.core.errors import EntityError, ValidationError

__all__ = [
    "Entity",
    "EntitySchema",
    "EntityValidationError",
    "FieldSpec",
    "ScalarType",
    "schema_of",
]

E = TypeVar("E", bound="Entity")

ScalarType = Literal["str", "int", "float", "bool", "bytes", "datetime", "date", "decimal", "uuid", "json"]
"""How a field is stored. Everything that is not a plain scalar is ``json``."""

_SCALARS: dict[type, ScalarType] = {
    bool: "bool",  # before int: bool is an int subclass
    str: "str",
    int: "int",
    float: "float",
    bytes: "bytes",
    dt.datetime: "datetime",  # before date: datetime is a date subclass
    dt.date: "date",
    decimal.Decimal: "decimal",
    uuid.UUID: "uuid",
}

_KEY_TYPES: frozenset[ScalarType] = frozenset({"str", "int", "bytes", "uuid", "date", "datetime", "decimal"})
"""Scalar types that can be (part of) a key: they have a canonical byte encoding."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
"""Store, table and field names: safe as identifiers in every backend."""


_KEYWORDS: Final = ("store", "key", "shard_key", "indexes", "ttl", "table")
"""The class keywords of ``Entity`` (pydantic's own config keywords are pydantic's)."""


class EntityValidationError(ValidationError, ValueError):
    """An entity instance failed pydantic's validation. ``errors`` holds every problem found.

    A ``ValidationError`` like the storage limits' refusals, so one ``except`` catches
    every "this value cannot be put"; still a ``ValueError`` for code that expects one.
    """

    def __init__(self, entity: str, exc: PydanticValidationError) -> None:
        self.errors = exc.errors(include_url=False)
        first = self.errors[0] if self.errors else {"loc": (), "msg": str(exc)}
        field = ".".join(str(part) for part in first["loc"]) or None
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(f"{first['msg']}{more}", entity=entity, field=field)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One stored field: its name, storage type and whether it may be null."""

    name: str
    type: ScalarType
    nullable: bool


@dataclass(frozen=True, slots=True)
class EntitySchema:
    """What an adapter needs to know about an entity to store it.

    ``key`` and ``shard_key`` are tuples of field names (one name for a simple key).
    ``ttl`` is a default time-to-live in seconds for stores that support expiry.
    """

    name: str
    store: str
    fields: tuple[FieldSpec, ...]
    key: tuple[str, ...]
    shard_key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...]
    ttl: float | None

    def field(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.fields)

    def key_of(self, row: Mapping[str, Any]) -> Any:
        """The key value of a row: a scalar for a simple key, a tuple for a composite one."""
        if len(self.key) == 1:
            return row[self.key[0]]
        return tuple(row[name] for name in self.key)

    def shard_key_of(self, row: Mapping[str, Any]) -> Any:
        if len(self.shard_key) == 1:
            return row[self.shard_key[0]]
        return tuple(row[name] for name in self.shard_key)


def _storage_type(annotation: Any) -> tuple[ScalarType, bool]:
    """Map a field annotation to (storage type, nullable)."""
    nullable = False
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _storage_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            inner, inner_nullable = _storage_type(args[0])
            return inner, nullable or inner_nullable
        return "json", nullable
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return ("int" if issubclass(annotation, int) else "str"), nullable
        for python_type, scalar in _SCALARS.items():
            if issubclass(annotation, python_type):
                return scalar, nullable
    return "json", nullable


def _names(value: str | Sequence[str] | None, what: str, entity: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = (value,) if isinstance(value, str) else tuple(value)
    if not names or not all(isinstance(name, str) for name in names):
        raise EntityError(f"{what} must be a field name or a list of field names", entity=entity)
    return names


class Entity(BaseModel):
    """Base class of every stored entity. See the module docstring for the keywords.

    Keywords: ``store`` (required), ``key`` (field name or names, default ``"id"``),
    ``shard_key`` (default: the key), ``indexes`` (field names, or tuples for compound
    indexes), ``ttl`` (seconds), ``table`` (the table/collection name, default the
    class name in snake_case).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    __schema__: ClassVar[EntitySchema]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Swallow our keywords here; pydantic hands them to __pydantic_init_subclass__ too,
        # where the fields are known and the declaration can be checked.
        super().__init_subclass__()

    @classmethod
    def __pydantic_init_subclass__(
        cls,
        *,
        store: str | None = None,
        key: str | Sequence[str] = "id",
        shard_key: str | Sequence[str] | None = None,
        indexes: Iterable[str | Sequence[str]] = (),
        ttl: float | None = None,
        table: str | None = None,
        **kwargs: Any,
    ) -> None:
        # pydantic consumes its own config keywords (frozen=...) before this; anything
        # left is a misspelled keyword of ours, which would otherwise vanish silently.
        if kwargs:
            unknown = next(iter(kwargs))
            close = difflib.get_close_matches(unknown, _KEYWORDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise EntityError(
                f"unknown class keyword {unknown!r}{hint} (valid: {', '.join(_KEYWORDS)})", entity=cls.__name__
            )
        super().__pydantic_init_subclass__()
        if store is None:
            if isinstance(getattr(cls, "__schema__", None), EntitySchema):
                raise EntityError(
                    "a subclass of a stored entity must declare its own store= (and key=)",
                    entity=cls.__name__,
                )
            return  # an abstract intermediate base: nothing to check yet
        cls.__schema__ = _build_schema(cls, store, key, shard_key, indexes, ttl, table)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            raise EntityValidationError(type(self).__name__, exc) from None

    @classmethod
    def parse(cls, data: Mapping[str, Any] | Self) -> Self:
        """Validate a mapping (or re-validate an instance) into this entity."""
        if isinstance(data, cls):
            data = data.model_dump()
        try:
            return cls.model_validate(data)
        except PydanticValidationError as exc:
            raise EntityValidationError(cls.__name__, exc) from None

    @property
    def entity_key(self) -> Any:
        """This instance's key (a tuple for a composite key)."""
        return type(self).__schema__.key_of(self.__dict__)

    @property
    def entity_shard_key(self) -> Any:
        """This instance's shard key (a tuple for a composite one)."""
        return type(self).__schema__.shard_key_of(self.__dict__)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _build_schema(
    cls: type[Entity],
    store: str,
    key: str | Sequence[str],
    shard_key: str | Sequence[str] | None,
    indexes: Iterable[str | Sequence[str]],
    ttl: float | None,
    table: str | None,
) -> EntitySchema:
    entity = cls.__name__
    if not isinstance(store, str) or not _NAME.match(store):
        raise EntityError(f"store {store!r} is not a valid name (letters, digits, _)", entity=entity)
    name = table or _snake(entity)
    if not _NAME.match(name):
        raise EntityError(f"table name {name!r} is not a valid name (letters, digits, _)", entity=entity)
    fields: list[FieldSpec] = []
    for field_name, info in cls.model_fields.items():
        if not _NAME.match(field_name) or field_name.startswith("_ps_"):
            raise EntityError(
                "field names must be letters, digits and _, and may not start with _ps_",
                entity=entity,
                field=field_name,
            )
        storage, nullable = _storage_type(info.annotation)
        fields.append(FieldSpec(field_name, storage, nullable))
    by_name = {spec.name: spec for spec in fields}

    key_names = _names(key, "key", entity) or ()
    shard_names = _names(shard_key, "shard_key", entity) or key_names
    for what, names in (("key", key_names), ("shard_key", shard_names)):
        for field_name in names:
            spec = by_name.get(field_name)
            if spec is None:
                raise EntityError(
                    f"{what} names a field the entity does not have (fields: {', '.join(by_name)})",
                    entity=entity,
                    field=field_name,
                )
            if spec.type not in _KEY_TYPES:
                raise EntityError(
                    f"a {what} field must be str, int, bytes, UUID, date, datetime or Decimal, not {spec.type}",
                    entity=entity,
                    field=field_name,
                )
            if spec.nullable:
                raise EntityError(f"a {what} field cannot be optional", entity=entity, field=field_name)

    index_list: list[tuple[str, ...]] = []
    for index in indexes:
        names = _names(index, "indexes", entity) or ()
        for field_name in names:
            if field_name not in by_name:
                raise EntityError("index names a field the entity does not have", entity=entity, field=field_name)
        index_list.append(names)

    if ttl is not None and (not isinstance(ttl, (int, float)) or ttl <= 0):
        raise EntityError(f"ttl must be a positive number of seconds, not {ttl!r}", entity=entity)

    return EntitySchema(
        name=name,
        store=store,
        fields=tuple(fields),
        key=key_names,
        shard_key=shard_names,
        indexes=tuple(index_list),
        ttl=float(ttl) if ttl is not None else None,
    )


def schema_of(entity: type[Entity]) -> EntitySchema:
    """The schema of a declared entity class; a clear error for an undeclared one."""
    schema = getattr(entity, "__schema__", None)
    if not isinstance(schema, EntitySchema):
        raise EntityError(
            "is not a stored entity: declare it with class X(Entity, store=...)",
            entity=getattr(entity, "__name__", repr(entity)),
        )
    return schema
