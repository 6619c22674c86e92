"""What a repository call's arguments mean, checked before any I/O: filters, order,
typed keys, relationship types and directions.

Filters are data::

    users.find(where={"age": {"ge": 18}, "country": "NL"}, order_by=["-age", "name"], limit=10)

A field maps to a value (equality) or to ``{operator: value}`` with operators
``eq ne lt le gt ge in contains`` (``contains``: a JSON array holds the value).
Dotted fields (``"address.city"``) filter inside nested fields on stores whose adapter
has NESTED_FILTERS. A dict that is a value rather than operators is written as
``{"eq": {...}}``. Nothing is ever interpolated into a query string.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from adapters.base import OPERATORS, Direction, Filter, Order
from sharding.base import KeyConstraint
from toolkit.errors import InvalidKeyError, QueryError
from toolkit.model import EntitySchema

__all__ = ["KeyCheck", "direction", "key_constraint", "parse_order", "parse_where", "rel_type"]

_KEY_CHECKS: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "bytes": lambda v: isinstance(v, bytes),
    "uuid": lambda v: isinstance(v, uuid.UUID),
    "date": lambda v: isinstance(v, dt.date) and not isinstance(v, dt.datetime),
    "datetime": lambda v: isinstance(v, dt.datetime),
    "decimal": lambda v: isinstance(v, decimal.Decimal),
}


def parse_where(where: Mapping[str, Any] | Iterable[Filter] | None) -> tuple[Filter, ...]:
    """Turn the ``where`` argument into ``Filter`` objects (see the module docstring)."""
    if where is None:
        return ()
    if not isinstance(where, Mapping):
        filters = tuple(where)
        for item in filters:
            if not isinstance(item, Filter):
                raise QueryError(f"where must be a mapping or a list of Filter, found {type(item).__name__}")
        return filters
    result: list[Filter] = []
    for field, condition in where.items():
        if not isinstance(field, str):
            raise QueryError(f"where: field names are strings, not {type(field).__name__}")
        if isinstance(condition, Mapping) and condition:
            unknown = [op for op in condition if op not in OPERATORS]
            if unknown:
                raise QueryError(
                    f"where.{field}: unknown operator {unknown[0]!r} (operators: {', '.join(OPERATORS)}; "
                    "to compare a whole mapping write {'eq': {...}})"
                )
            result.extend(Filter(field, op, value) for op, value in condition.items())
        else:
            result.append(Filter(field, "eq", condition))
    return tuple(result)


def parse_order(order_by: str | Sequence[str | Order] | None) -> tuple[Order, ...]:
    """``"name"`` / ``"-age"`` / ``Order(...)`` items to ``Order`` objects."""
    if order_by is None:
        return ()
    items = [order_by] if isinstance(order_by, str) else list(order_by)
    result: list[Order] = []
    for item in items:
        if isinstance(item, Order):
            result.append(item)
        elif isinstance(item, str) and item:
            result.append(Order(item[1:], True) if item.startswith("-") else Order(item))
        else:
            raise QueryError(f"order_by items are field names ('-name' descending), not {item!r}")
    return tuple(result)


def key_constraint(schema: EntitySchema, filters: Sequence[Filter]) -> KeyConstraint | None:
    """What ``filters`` say about a single-field shard key: the router narrows a query by it."""
    if len(schema.shard_key) != 1:
        return None
    name = schema.shard_key[0]
    values: tuple[Any, ...] | None = None
    bounds: dict[str, Any] = {}
    for item in filters:
        if item.field != name:
            continue
        if item.op == "eq":
            values = (item.value,)
        elif item.op == "in":
            values = tuple(item.value)
        elif item.op in ("gt", "ge"):
            bounds.update(lower=item.value, lower_inclusive=item.op == "ge")
        elif item.op in ("lt", "le"):
            bounds.update(upper=item.value, upper_inclusive=item.op == "le")
    if values is not None:
        return KeyConstraint(values=values)
    return KeyConstraint(**bounds) if bounds else None


class KeyCheck:
    """Refuses a key of the wrong type or arity, naming the entity and field: keys are
    typed (1 and "1" are different keys), so a wrong type is a mistake, never a miss."""

    def __init__(self, entity: str, schema: EntitySchema) -> None:
        self.entity = entity
        self.names = schema.key
        self.types = tuple(schema.field(name).type for name in schema.key)

    def __call__(self, key: Any, what: str = "key") -> Any:
        types = self.types
        parts = (key,) if len(types) == 1 else key
        if len(types) > 1 and (not isinstance(key, tuple) or len(key) != len(types)):
            raise InvalidKeyError(
                f"{self.entity}: the {what} is a tuple of {len(types)} ({', '.join(self.names)}), not {key!r}"
            )
        for name, kind, part in zip(self.names, types, parts, strict=True):
            if not _KEY_CHECKS[kind](part):
                raise InvalidKeyError(
                    f"{self.entity}.{name} is {kind}, not {type(part).__name__} {part!r} "
                    "(keys are typed: 1 and '1' are different keys)"
                )
        return key


_REL_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def rel_type(name: str) -> str:
    """Relationship types become identifiers in some backends: letters, digits, _ only."""
    if not isinstance(name, str) or not _REL_TYPE.match(name):
        raise QueryError(f"relationship type {name!r} must be letters, digits and _ (at most 63)")
    return name


def direction(value: str) -> Direction:
    if value not in ("out", "in", "both"):
        raise QueryError(f"direction must be 'out', 'in' or 'both', not {value!r}")
    return value  # type: ignore[return-value]
