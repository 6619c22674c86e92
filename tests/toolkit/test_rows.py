"""``toolkit._rows.row_builder``: the stored row of an entity, on the fast path (a copy of
the instance's ``__dict__``) and on the general one, must be the same row."""

from __future__ import annotations

import datetime as dt
import enum
import functools
from typing import Any

import pytest

from adapters.base import TOKEN_FIELD
from sharding.keys import token
from toolkit import Entity
from toolkit._rows import row_builder
from toolkit.model import schema_of


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Flat(Entity, store="s", key="id"):
    id: int
    name: str
    score: float = 0.0
    when: dt.date | None = None


class Aliased(Entity, store="s", key="id"):
    id: str
    label: str = ""

    @functools.cached_property
    def shout(self) -> str:  # cached in the instance's __dict__ once read
        return self.label.upper()


class Painted(Entity, store="s", key=("tenant", "seq"), shard_key="tenant"):
    tenant: str
    seq: int
    color: Color
    extra: dict[str, Any] | None = None


class Wide(Flat, store="wide", key="id"):
    more: int = 1


def _reference(instance: Entity) -> dict[str, Any]:
    """The row by definition: every field by getattr, enums as values, nested as JSON."""
    schema = schema_of(type(instance))
    row: dict[str, Any] = {}
    for spec in schema.fields:
        value = getattr(instance, spec.name)
        if spec.type == "json":
            value = instance.model_dump(mode="json", include={spec.name})[spec.name]
        row[spec.name] = value.value if isinstance(value, enum.Enum) else value
    row[TOKEN_FIELD] = token(schema.shard_key_of(row))
    return row


@pytest.mark.parametrize(
    "instance",
    [
        Flat(id=7, name="x"),
        Flat(id=-(2**63), name="", score=2, when=dt.date(2024, 2, 29)),
        Aliased(id="k", label="a"),
        Painted(tenant="t", seq=3, color=Color.BLUE, extra={"a": [1, {"b": None}]}),
        Painted(tenant="t", seq=4, color="red"),  # validated into Color.RED
    ],
    ids=repr,
)
def test_rows_equal_the_reference(instance: Entity) -> None:
    build = row_builder(type(instance), schema_of(type(instance)))
    row = build(instance)
    assert row == _reference(instance)
    assert list(row) == [*(spec.name for spec in schema_of(type(instance)).fields), TOKEN_FIELD]
    assert row is not instance.__dict__
    row["name" if "name" in row else "seq"] = "changed"  # the row is a copy: the entity is untouched
    assert build(instance) == _reference(instance)


def test_anything_else_in_the_instance_dict_takes_the_general_path() -> None:
    item = Aliased(id="k", label="a")
    assert item.shout == "A"
    assert "shout" in item.__dict__
    assert row_builder(Aliased, schema_of(Aliased))(item) == {"id": "k", "label": "a", TOKEN_FIELD: token("k")}
    wide = Wide(id=1, name="w", more=5)  # an instance of a subclass, built by the parent's builder
    assert row_builder(Flat, schema_of(Flat))(wide) == {
        "id": 1,
        "name": "w",
        "score": 0.0,
        "when": None,
        TOKEN_FIELD: token(1),
    }


def test_assignment_and_construct_are_seen() -> None:
    build = row_builder(Flat, schema_of(Flat))
    item = Flat(id=1, name="a")
    item.name = "b"  # validated assignment updates __dict__
    assert build(item)["name"] == "b"
    built = Flat.model_construct(id=2, name="c")  # defaults filled in, no validation
    assert build(built) == _reference(built)
