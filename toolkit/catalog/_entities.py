"""The entities each store holds, so that a process without the application's classes
(``polystore rebalance``) can still read, compare and move their rows.

``Store.ensure`` records an entity's schema the first time a process uses it; a rebalance
plan reads them back (``ps_entity_schema``). Issue 15's schema history builds on this: it
keeps every version of these schemas, where this table keeps the latest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from toolkit.catalog._metadata import CatalogAccess, catalog_table, utcnow
from toolkit.catalog._topology import STORE
from toolkit.model import EntitySchema, FieldSpec

__all__ = ["entity_table", "read_schemas", "record_schema", "schema_from_json", "schema_to_json"]

entity_table = catalog_table(
    "ps_entity_schema",
    sa.Column("store", STORE, primary_key=True),
    sa.Column("entity", sa.String(63), primary_key=True),
    sa.Column("schema", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


def schema_to_json(schema: EntitySchema) -> dict[str, Any]:
    """An entity schema as JSON data (in the catalog and in rebalance plans)."""
    return {
        "name": schema.name,
        "store": schema.store,
        "fields": [[spec.name, spec.type, spec.nullable] for spec in schema.fields],
        "key": list(schema.key),
        "shard_key": list(schema.shard_key),
        "indexes": [list(index) for index in schema.indexes],
        "ttl": schema.ttl,
    }


def schema_from_json(data: Mapping[str, Any]) -> EntitySchema:
    """The inverse of ``schema_to_json``."""
    return EntitySchema(
        name=data["name"],
        store=data["store"],
        fields=tuple(FieldSpec(name, kind, bool(nullable)) for name, kind, nullable in data["fields"]),
        key=tuple(data["key"]),
        shard_key=tuple(data["shard_key"]),
        indexes=tuple(tuple(index) for index in data["indexes"]),
        ttl=data.get("ttl"),
    )


def record_schema(access: CatalogAccess, schema: EntitySchema) -> None:
    """Remember an entity's schema for its store (insert or replace; unchanged: no write)."""
    data = schema_to_json(schema)
    this = (entity_table.c.store == schema.store, entity_table.c.entity == schema.name)
    with access.writing(f"record the schema of {schema.name!r}") as connection:
        found = connection.execute(sa.select(entity_table.c.schema).where(*this)).first()
        if found is not None:
            if found.schema != data:
                connection.execute(sa.update(entity_table).where(*this).values(schema=data, updated_at=utcnow()))
            return
        try:
            with connection.begin_nested():
                connection.execute(
                    sa.insert(entity_table).values(
                        store=schema.store, entity=schema.name, schema=data, updated_at=utcnow()
                    )
                )
        except IntegrityError:
            pass  # another process recorded it first


def read_schemas(access: CatalogAccess, store: str) -> list[EntitySchema]:
    """The recorded schemas of a store's entities, by entity name."""
    stmt = sa.select(entity_table.c.schema).where(entity_table.c.store == store).order_by(entity_table.c.entity)
    with access.reading(f"read the entities of {store!r}") as connection:
        return [schema_from_json(row.schema) for row in connection.execute(stmt)]
