"""The reference check shared by the query contract tests (flat and nested filters).

A backend's ``find`` and ``count`` must agree with the in-memory reference: the same
filters applied by ``Filter.matches`` and the same order by ``sort_key``. One helper keeps
the two suites checking exactly the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.base import sort_key
from tests.contract.conftest import Backend
from toolkit import Entity, Repository
from toolkit.repository import parse_order, parse_where


def assert_matches_reference(
    backend: Backend, data: Sequence[Entity], where: dict[str, Any], order: list[str], limit: int | None
) -> None:
    """Once ``data`` is put on three shards, ``find`` returns the reference's ids in its
    order, and ``count`` its number of rows."""
    repository: Repository[Any] = backend.toolkit(shards=3).repository(type(data[0]))
    repository.put_many(data)
    filters = parse_where(where)
    rows = [entity.model_dump() for entity in data if all(f.matches(entity.model_dump()) for f in filters)]
    rows.sort(key=sort_key(repository.schema, parse_order(order)))
    expected = [row["id"] for row in rows][:limit]
    assert [entity.id for entity in repository.find(where, order_by=order, limit=limit)] == expected
    assert repository.count(where) == len(rows)
