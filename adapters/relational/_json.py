"""JSON paths in SQL for the relational adapter: nested filters and partial updates.

The reference semantics are ``adapters.base.Filter.matches`` and ``resolve_path``: a
path step is an object key (never an array index), a missing step is null, ``eq`` with
a dict or list compares JSON values, ordering comparisons never match null and only
compare a number with a number (bools count as 0/1, as in Python) or a string with a
string (by code point), ``contains`` asks whether a JSON array holds an equal element.

Both dialects evaluate all of it in SQL, with every value and every path step sent as a
parameter:

* SQLite: ``json_type``/``json_extract`` with a JSON path built here (each key written
  the way SQLite 3.40 matches it: as the escaped text of the stored JSON), ``json_each``
  for arrays and for comparing whole objects member by member.
* PostgreSQL: ``->`` chains with text parameters (``->`` with a text operand never
  indexes an array, exactly like ``resolve_path``), ``jsonb_typeof`` guards so numbers
  compare as numbers and strings as strings (``COLLATE "C"``), ``jsonb_object_keys`` /
  ``jsonb_array_elements`` for whole objects and arrays.

Whole objects and arrays are compared member by member on both, so Python's equality
holds inside them too (``{"a": 1} == {"a": 1.0} == {"a": True}``).
"""

from __future__ import annotations

import decimal
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic_core import to_jsonable_python
from sqlalchemy.dialects import postgresql as pg_dialect

from sharding.core.errors import QueryError

__all__ = ["JsonChanges", "json_filter", "jsonable"]

_NUMBER_TYPES_SQLITE = ("integer", "real", "true", "false")


def jsonable(value: Any, where: str) -> Any:
    """``value`` as pydantic would store it inside a JSON field (datetimes as ISO text...)."""
    try:
        converted = to_jsonable_python(value)
        json.dumps(converted, allow_nan=False)
    except (ValueError, TypeError) as exc:
        raise QueryError(f"{where}: {value!r} is not a JSON value ({exc})") from None
    return converted


def _number(value: Any) -> decimal.Decimal:
    """A number (or bool, as Python compares it) as an exact Decimal parameter."""
    if isinstance(value, float) and not math.isfinite(value):
        raise QueryError(f"{value!r} cannot be compared with JSON numbers")
    return decimal.Decimal(int(value)) if isinstance(value, bool | int) else decimal.Decimal(repr(value))


# -- nodes: one JSON value inside a row, per dialect ---------------------------------------
class _Node:
    """A JSON value addressed from a row: its type name, scalar value and children."""

    def is_null(self) -> sa.ColumnElement[bool]:  # missing or JSON null
        raise NotImplementedError

    def is_present_null(self) -> sa.ColumnElement[bool]:  # exists and is JSON null
        raise NotImplementedError

    def number(self) -> sa.ColumnElement[Any]:  # the value if a number/bool, else NULL
        raise NotImplementedError

    def text(self) -> sa.ColumnElement[Any]:  # the value if a string, else NULL
        raise NotImplementedError

    def is_kind(self, kind: str) -> sa.ColumnElement[bool]:  # "object" or "array"
        raise NotImplementedError

    def child(self, key: str) -> _Node:
        raise NotImplementedError

    def item(self, index: int) -> _Node:
        raise NotImplementedError

    def key_count(self) -> sa.ColumnElement[Any]:
        raise NotImplementedError

    def length(self) -> sa.ColumnElement[Any]:
        raise NotImplementedError

    def array_holds(self, value: Any) -> sa.ColumnElement[bool]:
        raise NotImplementedError

    # shared logic ------------------------------------------------------------------
    def equals(self, value: Any, *, inside: bool = False) -> sa.ColumnElement[bool]:
        if value is None:
            return self.is_present_null() if inside else self.is_null()
        if isinstance(value, bool | int | float):
            return self.number() == sa.bindparam(None, _number(value), type_=sa.Numeric())
        if isinstance(value, str):
            return self.text() == sa.bindparam(None, value, type_=sa.Text())
        if isinstance(value, dict | list):
            return self.equals_json(value)
        raise QueryError(f"{value!r} is not a JSON value")

    def equals_json(self, value: dict[str, Any] | list[Any]) -> sa.ColumnElement[bool]:
        """Python equality of a whole object or array, member by member (1 == 1.0 == True)."""
        if isinstance(value, dict):
            parts = [self.is_kind("object"), self.key_count() == len(value)]
            parts += [self.child(key).equals(item, inside=True) for key, item in value.items()]
        else:
            parts = [self.is_kind("array"), self.length() == len(value)]
            parts += [self.item(index).equals(item, inside=True) for index, item in enumerate(value)]
        return sa.and_(*parts)

    def compare(self, op: str, value: Any) -> sa.ColumnElement[bool]:
        if isinstance(value, bool | int | float):
            left: sa.ColumnElement[Any] = self.number()
            right: Any = sa.bindparam(None, _number(value), type_=sa.Numeric())
        elif isinstance(value, str):
            left, right = self.text(), sa.bindparam(None, value, type_=sa.Text())
        else:
            raise QueryError(f"ordering comparisons inside JSON take a number or a string, not {value!r}")
        comparisons: dict[str, sa.ColumnElement[bool]] = {
            "lt": left < right,
            "le": left <= right,
            "gt": left > right,
            "ge": left >= right,
        }
        return comparisons[op]


@dataclass(frozen=True)
class _SqliteNode(_Node):
    """``json_type(doc, path)`` / ``json_extract(doc, path)``; or a ``json_each`` element."""

    doc: sa.ColumnElement[Any]
    path: str = "$"
    element: Any = None  # a json_each alias whose (type, value) is this node

    def _type(self) -> sa.ColumnElement[Any]:
        if self.element is not None and self.path == "$":
            return self.element.c.type  # type: ignore[no-any-return]
        return sa.func.json_type(self.doc, sa.bindparam(None, self.path, type_=sa.Text()))

    def _value(self) -> sa.ColumnElement[Any]:
        if self.element is not None and self.path == "$":
            return self.element.c.value  # type: ignore[no-any-return]
        return sa.func.json_extract(self.doc, sa.bindparam(None, self.path, type_=sa.Text()))

    def child(self, key: str) -> _SqliteNode:
        return _SqliteNode(self.doc, f"{self.path}.{_sqlite_label(key)}", self.element)

    def item(self, index: int) -> _SqliteNode:
        return _SqliteNode(self.doc, f"{self.path}[{index}]", self.element)

    def is_null(self) -> sa.ColumnElement[bool]:
        return self._value().is_(None)

    def is_present_null(self) -> sa.ColumnElement[bool]:
        return self._type() == "null"

    def number(self) -> sa.ColumnElement[Any]:
        return sa.case((self._type().in_(_NUMBER_TYPES_SQLITE), self._value()))

    def text(self) -> sa.ColumnElement[Any]:
        return sa.case((self._type() == "text", self._value()))

    def _each(self) -> Any:
        return sa.func.json_each(self.doc, sa.bindparam(None, self.path, type_=sa.Text())).table_valued(
            "key", "value", "type"
        )

    def is_kind(self, kind: str) -> sa.ColumnElement[bool]:
        return self._type() == kind

    def key_count(self) -> sa.ColumnElement[Any]:
        return sa.select(sa.func.count()).select_from(self._each()).scalar_subquery()

    def length(self) -> sa.ColumnElement[Any]:
        return sa.func.json_array_length(self.doc, sa.bindparam(None, self.path, type_=sa.Text()))

    def array_holds(self, value: Any) -> sa.ColumnElement[bool]:
        each = self._each()
        element = _SqliteNode(each.c.value, "$", each)
        found = sa.select(sa.literal(1)).select_from(each).where(element.equals(value, inside=True)).exists()
        return sa.and_(self._type() == "array", found)


def _sqlite_label(key: str) -> str:
    """One path step as SQLite 3.40 matches it: the key's escaped JSON text, quoted if possible.

    SQLite compares a path label with the raw (escaped) text of the stored key, so a key
    is written as ``json.dumps`` (the serializer SQLAlchemy uses) writes it.
    """
    escaped = json.dumps(key)[1:-1]
    if '"' not in escaped:
        return f'"{escaped}"'
    if "[" not in escaped:
        return escaped  # unquoted: may hold a quote, but not '.' (never in a step) or '['
    raise QueryError(f"SQLite JSON paths cannot address the key {key!r} (it holds both '\"' and '[')")


@dataclass(frozen=True)
class _PostgresNode(_Node):
    """A jsonb expression reached from the column with ``->`` (text keys only)."""

    expr: sa.ColumnElement[Any]

    def child(self, key: str) -> _PostgresNode:
        step = sa.bindparam(None, key, type_=sa.Text())
        return _PostgresNode(self.expr.op("->", return_type=pg_dialect.JSONB())(step))

    def _type(self) -> sa.ColumnElement[Any]:
        return sa.func.jsonb_typeof(self.expr)

    def _scalar_text(self) -> sa.ColumnElement[Any]:
        return self.expr.op("#>>", return_type=sa.Text())(sa.literal_column("'{}'"))

    def is_null(self) -> sa.ColumnElement[bool]:
        return sa.func.coalesce(self._type(), "null") == "null"

    def is_present_null(self) -> sa.ColumnElement[bool]:
        return self._type() == "null"

    def number(self) -> sa.ColumnElement[Any]:
        return sa.case(
            (self._type() == "number", sa.cast(self._scalar_text(), sa.Numeric())),
            (self._type() == "boolean", sa.case((self._scalar_text() == "true", 1), else_=0)),
        )

    def text(self) -> sa.ColumnElement[Any]:
        return sa.case((self._type() == "string", self._scalar_text())).collate("C")

    def item(self, index: int) -> _PostgresNode:
        step = sa.bindparam(None, index, type_=sa.Integer())
        return _PostgresNode(self.expr.op("->", return_type=pg_dialect.JSONB())(step))

    def is_kind(self, kind: str) -> sa.ColumnElement[bool]:
        return self._type() == kind

    def _guarded(self, kind: str, empty: str) -> sa.ColumnElement[Any]:
        """The value if it is of ``kind``, else an empty one: jsonb functions raise on other kinds."""
        return sa.case(
            (self._type() == kind, self.expr), else_=sa.cast(sa.literal_column(f"'{empty}'"), pg_dialect.JSONB())
        )

    def key_count(self) -> sa.ColumnElement[Any]:
        keys = sa.func.jsonb_object_keys(self._guarded("object", "{}")).table_valued("key")
        return sa.select(sa.func.count()).select_from(keys).scalar_subquery()

    def length(self) -> sa.ColumnElement[Any]:
        return sa.func.jsonb_array_length(self._guarded("array", "[]"))

    def array_holds(self, value: Any) -> sa.ColumnElement[bool]:
        each = sa.func.jsonb_array_elements(self._guarded("array", "[]")).table_valued("value")
        element = _PostgresNode(each.c.value)
        found = sa.select(sa.literal(1)).select_from(each).where(element.equals(value, inside=True)).exists()
        return sa.and_(self._type() == "array", found)


def _node(dialect: str, column: sa.ColumnElement[Any], steps: Sequence[str]) -> _Node:
    node: _Node
    if dialect == "sqlite":
        node = _SqliteNode(column)
    elif dialect == "postgresql":
        node = _PostgresNode(column)
    else:
        raise QueryError(f"nested (JSON) filters are not supported on {dialect}")
    for step in steps:
        node = node.child(step)
    return node


def json_filter(
    dialect: str, column: sa.ColumnElement[Any], steps: Sequence[str], op: str, value: Any
) -> sa.ColumnElement[bool]:
    """``Filter(path, op, value)`` on a JSON column, ``steps`` the keys after the column name."""
    node = _node(dialect, column, steps)
    if op == "contains":
        return node.array_holds(jsonable(value, "contains"))
    if op == "in":
        values = [jsonable(item, "in") for item in value]
        return sa.or_(*(node.equals(item) for item in values)) if values else sa.false()
    value = jsonable(value, op)
    if op == "eq":
        return node.equals(value)
    if op == "ne":
        return sa.not_(sa.func.coalesce(node.equals(value), sa.false()))
    if value is None:
        return sa.false()  # ordering comparisons never match null
    return node.compare(op, value)


# -- partial updates -------------------------------------------------------------------------
class _Leaf:
    """A value to write at a path."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class JsonChanges:
    """The changes to one JSON column, applied in order, compiled to one SQL expression.

    A whole new value is kept in Python (later paths are set inside it before it is
    sent); paths into the stored value form a tree, so the expression reads each
    intermediate object once, straight from the column: its size grows with the
    number of changes, never exponentially with nesting.
    """

    def __init__(self, column: sa.Column[Any]) -> None:
        self.column = column
        self.whole: _Leaf | None = None
        self.tree: dict[str, Any] = {}

    def set(self, steps: Sequence[str], value: Any) -> None:
        if not steps:
            self.whole, self.tree = _Leaf(value), {}
            return
        value = jsonable(value, ".".join((self.column.name, *steps)))
        if self.whole is not None:
            self.whole.value = _python_set(self.whole.value, steps, value)
            return
        node = self.tree
        for index, step in enumerate(steps[:-1]):
            child = node.get(step)
            if isinstance(child, _Leaf):  # a value set earlier: change it in Python
                child.value = _python_set(child.value, steps[index + 1 :], value)
                return
            node = node.setdefault(step, {})
        node[steps[-1]] = _Leaf(value)

    def expression(self, dialect: str) -> Any:
        if self.whole is not None:
            return sa.bindparam(None, self.whole.value, type_=self.column.type)
        if dialect == "sqlite":
            return _sqlite_update(self.column, [], self.tree)
        if dialect == "postgresql":
            return _postgres_update(self.column, self.column, self.tree)
        raise QueryError(f"partial updates of JSON paths are not supported on {dialect}")


def _python_set(document: Any, steps: Sequence[str], value: Any) -> Any:
    """``document`` with ``value`` at ``steps`` (a copy; non-object intermediates replaced)."""
    root = dict(document) if isinstance(document, dict) else {}
    node = root
    for step in steps[:-1]:
        child = node.get(step)
        node[step] = dict(child) if isinstance(child, dict) else {}
        node = node[step]
    node[steps[-1]] = value
    return root


def _sqlite_path(steps: Sequence[str]) -> Any:
    return sa.bindparam(None, "$" + "".join(f".{_sqlite_label(step)}" for step in steps), type_=sa.Text())


def _sqlite_update(column: sa.Column[Any], prefix: list[str], tree: dict[str, Any]) -> Any:
    here = _sqlite_path(prefix)
    current = sa.case(
        (sa.func.json_type(column, here) == "object", sa.func.json_extract(column, _sqlite_path(prefix))),
        else_=sa.func.json_object(),
    )
    pairs: list[Any] = []
    for key, child in tree.items():
        pairs.append(sa.bindparam(None, f"$.{_sqlite_label(key)}", type_=sa.Text()))
        if isinstance(child, _Leaf):
            pairs.append(sa.func.json(sa.bindparam(None, json.dumps(child.value), type_=sa.Text())))
        else:
            pairs.append(_sqlite_update(column, [*prefix, key], child))
    return sa.func.json_set(current, *pairs)


def _postgres_update(column: sa.Column[Any], here: Any, tree: dict[str, Any]) -> Any:
    jsonb = pg_dialect.JSONB()
    result: Any = sa.case(
        (sa.func.jsonb_typeof(here) == "object", here), else_=sa.cast(sa.literal_column("'{}'"), jsonb)
    )
    for key, child in tree.items():
        if isinstance(child, _Leaf):
            new: Any = sa.cast(sa.bindparam(None, json.dumps(child.value), type_=sa.Text()), jsonb)
        else:
            below = here.op("->", return_type=jsonb)(sa.bindparam(None, key, type_=sa.Text()))
            new = _postgres_update(column, below, child)
        path = sa.bindparam(None, [key], type_=pg_dialect.ARRAY(sa.Text()))
        result = sa.func.jsonb_set(result, path, new, sa.true(), type_=jsonb)
    return result
