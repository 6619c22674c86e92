"""Filters as server conditions with Python's semantics (``Filter.matches``).

MongoDB's ``null`` matches missing fields, ``$ne`` keeps them and ``$lt`` never matches
null, as Python does. Inside json values the server's array traversal, type brackets and
``True != 1`` differ from Python, so each nested filter carries guards (no array on the
way to the leaf, explicit bool/number sets) that make it exact. Filters whose value is
itself a dict or list cannot be expressed exactly (embedded documents compare in key
order); they send a superset to the server and are re-checked in Python (``Plan``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from adapters.base import Filter, Row
from adapters.document._json import Doc, escape_key
from adapters.document._scalars import MISMATCH, encode_operand
from sharding.core.model import ScalarType

__all__ = ["NOTHING", "JsonPath", "Plan", "all_of", "any_of", "safe_match", "scalar_clause", "tuple_compare"]

NOTHING: Final[Doc] = {"_id": {"$in": []}}
"""A filter no document matches (an impossible condition such as ``lt None``)."""

_COMPARE: Final[dict[str, tuple[str, Callable[[Any, Any], bool]]]] = {
    "lt": ("$lt", operator.lt),
    "le": ("$lte", operator.le),
    "gt": ("$gt", operator.gt),
    "ge": ("$gte", operator.ge),
}


def all_of(clauses: Sequence[Doc]) -> Doc:
    """Every clause (empty ones dropped): ``{}`` matches all, one needs no ``$and``."""
    clauses = [clause for clause in clauses if clause]
    if not clauses:
        return {}
    return clauses[0] if len(clauses) == 1 else {"$and": list(clauses)}


def any_of(clauses: Sequence[Doc]) -> Doc:
    """At least one clause (there is at least one)."""
    return clauses[0] if len(clauses) == 1 else {"$or": list(clauses)}


def safe_match(item: Filter, row: Row) -> bool:
    """``item.matches(row)``, with values Python cannot order counting as no match (as on the server)."""
    try:
        return item.matches(row)
    except TypeError:
        return False


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _equal_set(value: Any) -> list[Any]:
    """The stored scalars Python's ``==`` equates with ``value`` (``True == 1 == 1.0``)."""
    if isinstance(value, bool):
        return [value, int(value)]
    if isinstance(value, int | float) and value in (0, 1):
        return [value, bool(value)]
    return [value]


def scalar_clause(path: str, kind: ScalarType, item: Filter) -> Doc:
    """The exact server condition for ``item`` on a scalar field stored at ``path``."""
    if kind == "bool":  # three possible values: ask Python which of them match
        values = [flag for flag in (None, False, True) if safe_match(item, {item.field: flag})]
        return {path: {"$in": values}} if values else NOTHING
    if item.op == "in":
        values = [encode_operand(kind, value) for value in item.value]
        return {path: {"$in": [value for value in values if value is not MISMATCH]}}
    value = encode_operand(kind, item.value)
    if item.op == "eq":
        return NOTHING if value is MISMATCH else {path: value}
    if item.op == "ne":
        return {} if value is MISMATCH else {path: {"$ne": value}}
    if value is None or value is MISMATCH:
        return NOTHING  # ordering comparisons never match null (nor another type)
    return {path: {_COMPARE[item.op][0]: value}}


class JsonPath:
    """Exact server conditions for a filter on a path inside a json field.

    ``guards`` say that no proper prefix of the path is an array: under them the server
    resolves the path exactly as ``resolve_path`` does (a scalar on the way gives
    "missing"); without them Python sees None.
    """

    def __init__(self, field: str, steps: Sequence[str]) -> None:
        names = [field, *(escape_key(step) for step in steps)]
        self.leaf = ".".join(names)
        prefixes = [".".join(names[:end]) for end in range(1, len(names))]
        self.guards: list[Doc] = [{prefix: {"$not": {"$type": "array"}}} for prefix in prefixes]
        self.breaks: list[Doc] = [{prefix: {"$type": "array"}} for prefix in prefixes]
        self.leaf_not_array: Doc = {self.leaf: {"$not": {"$type": "array"}}}

    def equal(self, value: Any) -> Doc:
        if value is None:
            return any_of([*self.breaks, all_of([{self.leaf: None}, self.leaf_not_array])])
        return self.one_of([value])

    def one_of(self, values: Sequence[Any]) -> Doc:
        wanted = [candidate for value in values if value is not None for candidate in _equal_set(value)]
        clauses = [all_of([*self.guards, {self.leaf: {"$in": wanted}}, self.leaf_not_array])] if wanted else []
        if any(value is None for value in values):
            clauses.append(self.equal(None))
        return any_of(clauses) if clauses else NOTHING

    def compare(self, op: str, value: Any) -> Doc:
        if value is None:
            return NOTHING
        mongo_op, python_op = _COMPARE[op]
        if isinstance(value, str):
            leaf: Doc = {self.leaf: {mongo_op: value}}
        else:
            leaf = {self.leaf: {mongo_op: int(value) if isinstance(value, bool) else value}}
            bools = [flag for flag in (False, True) if python_op(flag, value)]
            if bools:
                leaf = any_of([leaf, {self.leaf: {"$in": bools}}])
        return all_of([*self.guards, leaf, self.leaf_not_array])

    def contains(self, value: Any) -> Doc:
        return all_of([*self.guards, {self.leaf: {"$type": "array"}}, {self.leaf: {"$in": _equal_set(value)}}])

    def superset(self, op: str) -> Doc:
        """A condition every match of an inexact filter (dict/list operand) satisfies."""
        if op == "eq":
            return all_of(self.guards)
        if op == "contains":
            return all_of([*self.guards, {self.leaf: {"$type": "array"}}])
        return {}

    def clause(self, item: Filter) -> tuple[Doc, bool]:
        """(server condition, exact?) for ``item``."""
        value = item.value
        if item.op == "in":
            if all(_is_scalar(v) for v in value):
                return self.one_of(list(value)), True
            return {}, False
        if not _is_scalar(value):
            return self.superset(item.op), False
        if item.op == "eq":
            return self.equal(value), True
        if item.op == "ne":
            return {"$nor": [self.equal(value)]}, True
        if item.op == "contains":
            return self.contains(value), True
        return self.compare(item.op, value), True


@dataclass(frozen=True, slots=True)
class Plan:
    """A server filter plus the filters Python must re-check on its candidates."""

    query: Doc
    residual: tuple[Filter, ...]

    def accepts(self, row: Row) -> bool:
        return all(safe_match(item, row) for item in self.residual)


def tuple_compare(paths: Sequence[str], values: Sequence[Any], *, greater: bool, inclusive: bool) -> Doc:
    """``(paths) > values`` (or ``>=``, ``<``, ``<=``) in lexicographic tuple order."""
    clauses: list[Doc] = []
    for index, path in enumerate(paths):
        last = index == len(paths) - 1
        op = ("$gt" if greater else "$lt") + ("e" if inclusive and last else "")
        clause: Doc = {paths[j]: values[j] for j in range(index)}
        clause[path] = {op: values[index]}
        clauses.append(clause)
    return any_of(clauses)
