"""The public spelling of polystore's entity model: ``sharding.core.model`` defines it (see there)."""

from sharding.core.model import (
    Entity,
    EntitySchema,
    EntityValidationError,
    FieldSpec,
    ScalarType,
    schema_of,
)

__all__ = [
    "Entity",
    "EntitySchema",
    "EntityValidationError",
    "FieldSpec",
    "ScalarType",
    "schema_of",
]
