"""Column types: how each entity field type is stored on each SQL dialect.

Strings use the byte-order ``"C"`` collation on PostgreSQL, so ``ORDER BY`` and range
filters agree with Python's ordering (which the fan-out merge and the range router rely
on); SQLite's default BINARY collation already does. Key-like strings on MySQL are
``VARCHAR(255)`` with a binary collation, because MySQL cannot index ``TEXT`` without a
length. Nested (JSON) fields are JSONB on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect

from sharding.core.model import FieldSpec

__all__ = ["UTCDateTime", "c_text", "column_type", "json_type"]


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Datetimes stored as UTC instants on every dialect.

    Naive values are taken as UTC; values come back timezone-aware in UTC. On SQLite
    (which has no datetime type) they are fixed-width ISO strings, so text order is
    time order and range filters and ORDER BY stay correct.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(26))
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, not {type(value).__name__}")
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")
        return value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]
        return value.astimezone(dt.UTC)  # type: ignore[no-any-return]


def c_text() -> sa.types.TypeEngine[Any]:
    """Text in byte order everywhere (the ``"C"`` collation on PostgreSQL)."""
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def json_type() -> sa.types.TypeEngine[Any]:
    """A JSON value: JSONB on PostgreSQL (indexable, compared by value), JSON elsewhere."""
    return sa.JSON().with_variant(pg_dialect.JSONB(), "postgresql")


def column_type(spec: FieldSpec, *, keyish: bool) -> sa.types.TypeEngine[Any]:
    """The column type of one field; ``keyish``: part of the key, shard key or an index."""
    string = c_text()
    if keyish:  # MySQL cannot index TEXT without a length
        string = string.with_variant(sa.String(255, collation="utf8mb4_bin"), "mysql", "mariadb")
    types: dict[str, sa.types.TypeEngine[Any]] = {
        "str": string,
        "int": sa.BigInteger(),
        "float": sa.Double(),
        "bool": sa.Boolean(),
        "bytes": sa.LargeBinary(),
        "datetime": UTCDateTime(),
        "date": sa.Date(),
        "decimal": sa.Numeric(asdecimal=True),
        "uuid": sa.Uuid(),
        "json": json_type(),
    }
    return types[spec.type]
