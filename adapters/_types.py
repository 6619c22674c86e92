"""The vocabulary of the adapter contract: rows, queries, edges and shard reports.

Plain data shared by every adapter, the repository and the rebalance; ``adapters.base``
re-exports all of it, so callers name one module. Queries are data, never strings: a
``Filter``'s value reaches the driver as a parameter, and ``Filter.matches`` and
``sort_key`` are the reference semantics every backend follows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

from sharding.core.errors import QueryError

if TYPE_CHECKING:
    from sharding.core.model import EntitySchema

__all__ = [
    "OPERATORS",
    "Direction",
    "Filter",
    "Neighbor",
    "Operator",
    "Order",
    "Query",
    "RangeChecksum",
    "Relationship",
    "Row",
    "ShardInfo",
    "resolve_path",
    "sort_key",
]

Row: TypeAlias = dict[str, Any]

Operator = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "contains"]
OPERATORS: Final[tuple[Operator, ...]] = ("eq", "ne", "lt", "le", "gt", "ge", "in", "contains")
"""``contains``: a JSON array field holds the value (needs NESTED_FILTERS)."""

Direction = Literal["out", "in", "both"]
"""Which relationships of a node count: outgoing, incoming or either."""

_MISSING: Final = object()


def resolve_path(row: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``"address.city"``) of a row; None if any step is missing.

    Path steps are field names; a step into a list is not indexed (``contains`` is the
    operator for arrays). This is the reference semantics of nested filters.
    """
    value: Any = row
    for step in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(step, _MISSING)
        if value is _MISSING:
            return None
    return value


@dataclass(frozen=True, slots=True)
class Relationship:
    """A typed, directed edge between two entities on the same shard, with properties."""

    type: str
    source: Any
    target: Any
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Neighbor:
    """A node next to another, with the relationship that connects them."""

    row: Row
    relationship: Relationship


@dataclass(frozen=True, slots=True)
class Filter:
    """``field op value``; ``in`` takes a sequence. ``eq None`` matches missing/null."""

    field: str
    op: Operator
    value: Any

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise QueryError(f"{self.field}: unknown operator {self.op!r} (expected one of {', '.join(OPERATORS)})")
        if self.op == "in" and (
            isinstance(self.value, (str, bytes)) or not isinstance(self.value, Sequence | set | frozenset)
        ):
            raise QueryError(f"{self.field}: 'in' takes a list of values, not {type(self.value).__name__}")

    def matches(self, row: Mapping[str, Any]) -> bool:
        """Evaluate this filter in Python: the reference semantics every adapter follows."""
        value = resolve_path(row, self.field) if "." in self.field else row.get(self.field)
        if self.op == "contains":
            return isinstance(value, list) and self.value in value
        if self.op == "eq":
            return bool(value == self.value)
        if self.op == "ne":
            return bool(value != self.value)
        if self.op == "in":
            return value in self.value
        if value is None or self.value is None:
            return False  # ordering comparisons never match null
        if self.op == "lt":
            return bool(value < self.value)
        if self.op == "le":
            return bool(value <= self.value)
        if self.op == "gt":
            return bool(value > self.value)
        return bool(value >= self.value)


@dataclass(frozen=True, slots=True)
class Order:
    """Sort by ``field``; nulls sort before every value (as the smallest)."""

    field: str
    descending: bool = False


class _Descending:
    """Inverts comparison, so one ascending sort handles mixed directions."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Descending) -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and bool(self.value == other.value)

    def __hash__(self) -> int:
        return hash(self.value)


def sort_key(schema: EntitySchema, order: Sequence[Order]) -> Callable[[Row], tuple[Any, ...]]:
    """The reference order of query results, as a ``sorted`` key.

    Fields in ``order`` (nulls sort first ascending, last descending), then the key
    fields ascending. Adapters that sort client-side use this; the repository uses it to
    merge the shards' results, so every backend agrees on one order.
    """
    fields = [(item.field, item.descending) for item in order]
    named = {item.field for item in order}
    fields += [(name, False) for name in schema.key if name not in named]

    def key(row: Row) -> tuple[Any, ...]:
        parts: list[Any] = []
        for name, descending in fields:
            value = row.get(name)
            part = (0, 0) if value is None else (1, value)
            parts.append(_Descending(part) if descending else part)
        return tuple(parts)

    return key


@dataclass(frozen=True, slots=True)
class Query:
    """Filters (all must hold), an order and a limit. Ties are broken by the key, ascending."""

    filters: tuple[Filter, ...] = ()
    order_by: tuple[Order, ...] = ()
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """What ``polystore status`` shows per shard."""

    reachable: bool
    tables: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None
    server: str | None = None


@dataclass(frozen=True, slots=True)
class RangeChecksum:
    """A span's row count and an order-independent 64-bit checksum of its rows, computed
    by the backend itself (see ``Adapter.range_checksum``).

    Two checksums say anything only when their ``method`` is equal: the same expression
    over the same table layout. Equal counts and sums then mean equal rows (but for a
    2**-64 chance); anything else means "compare row by row", never "different".
    """

    method: str
    rows: int
    checksum: int
