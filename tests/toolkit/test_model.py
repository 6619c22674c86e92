"""Entity declarations are checked at class creation; instances before any I/O."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal

import pytest
from pydantic import BaseModel

from sharding.core.errors import ValidationError
from toolkit import Entity, EntityError, EntityValidationError, Toolkit
from toolkit.model import schema_of


class Address(BaseModel):
    city: str
    zip: str | None = None


class Tier(enum.Enum):
    FREE = "free"
    PRO = "pro"


class Customer(Entity, store="customers", key="id", indexes=["email", ("country", "city")]):
    id: uuid.UUID
    email: str
    country: str
    city: str | None = None
    balance: Decimal = Decimal(0)
    born: dt.date | None = None
    seen: dt.datetime | None = None
    tier: Tier = Tier.FREE
    address: Address | None = None
    tags: list[str] = []


def test_schema_from_the_declaration() -> None:
    schema = schema_of(Customer)
    assert schema.name == "customer"
    assert schema.store == "customers"
    assert schema.key == ("id",)
    assert schema.shard_key == ("id",)
    assert schema.indexes == (("email",), ("country", "city"))
    assert schema.ttl is None

    class Session(Entity, store="sessions", key="token", ttl=60):
        token: str

    assert schema_of(Session).ttl == 60.0
    types = {spec.name: (spec.type, spec.nullable) for spec in schema.fields}
    assert types == {
        "id": ("uuid", False),
        "email": ("str", False),
        "country": ("str", False),
        "city": ("str", True),
        "balance": ("decimal", False),
        "born": ("date", True),
        "seen": ("datetime", True),
        "tier": ("str", False),
        "address": ("json", True),
        "tags": ("json", False),
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"store": "s", "key": "nope"}, "Bad.nope: key names a field the entity does not have"),
        ({"store": "s", "shard_key": "missing"}, "Bad.missing: shard_key names a field"),
        ({"store": "s", "key": "doc"}, "Bad.doc: a key field must be str, int"),
        ({"store": "s", "key": "maybe"}, "Bad.maybe: a key field cannot be optional"),
        ({"store": "s", "indexes": ["ghost"]}, "Bad.ghost: index names a field"),
        ({"store": "s", "ttl": -1}, "Bad: ttl must be a positive number"),
        ({"store": "bad-store"}, "Bad: store 'bad-store' is not a valid name"),
        ({"store": "s", "table": "drop table"}, "Bad: table name 'drop table' is not a valid name"),
    ],
)
def test_bad_declarations_fail_at_class_creation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(EntityError) as caught:

        class Bad(Entity, **kwargs):  # type: ignore[call-arg]
            id: int
            doc: dict[str, int] = {}
            maybe: str | None = None

    assert str(caught.value).startswith(message), str(caught.value)


def test_invalid_instances_name_the_field() -> None:
    with pytest.raises(EntityValidationError) as caught:
        Customer(id="not-a-uuid", email="a@b", country="NL")  # type: ignore[arg-type]
    assert str(caught.value).startswith("Customer.id:")
    assert caught.value.field == "id"
    with pytest.raises(EntityValidationError, match=r"Customer\.address\.city"):
        Customer.parse({"id": uuid.uuid4(), "email": "e", "country": "NL", "address": {"zip": "1"}})
    with pytest.raises(EntityValidationError, match=r"Customer\.unknown"):
        Customer.parse({"id": uuid.uuid4(), "email": "e", "country": "NL", "unknown": 1})


def test_invalid_instance_writes_nothing(tmp_path: object) -> None:
    with Toolkit.embedded(".data") as toolkit:
        customers = toolkit.repository(Customer)
        with pytest.raises(EntityValidationError):
            customers.put_many([{"id": uuid.uuid4(), "email": "ok", "country": "NL"}, {"id": "bad"}])
        assert customers.count() == 0


def test_entities_round_trip_through_the_embedded_default() -> None:
    item = Customer(
        id=uuid.uuid4(),
        email="ada@example.org",
        country="UK",
        balance=Decimal("12.5"),
        born=dt.date(1815, 12, 10),
        seen=dt.datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=dt.UTC),
        tier=Tier.PRO,
        address=Address(city="London"),
        tags=["math", "engines"],
    )
    with Toolkit.embedded(".data") as toolkit:
        customers = toolkit.repository(Customer)
        customers.put(item)
        assert customers.get(item.id) == item


def test_subclassing_a_stored_entity_needs_its_own_store() -> None:
    with pytest.raises(EntityError, match="must declare its own store"):

        class Special(Customer):
            extra: int = 0


def test_abstract_bases_are_allowed() -> None:
    class Timestamped(Entity):
        created: dt.datetime | None = None

    class Note(Timestamped, store="notes", key="id"):
        id: int

    assert schema_of(Note).field_names == ("created", "id")
    with pytest.raises(EntityError, match="is not a stored entity"):
        schema_of(Timestamped)


@pytest.mark.parametrize(
    ("keyword", "closest"),
    [("kye", "key"), ("stor", "store"), ("shardkey", "shard_key"), ("index", "indexes"), ("tll", "ttl")],
)
def test_a_misspelled_class_keyword_is_refused_with_the_closest_one(keyword: str, closest: str) -> None:
    """A typo used to vanish: ``kye="id"`` silently kept the default key (and ``stor=``
    silently declared an abstract base, stored nowhere)."""
    with pytest.raises(EntityError) as caught:

        class User(Entity, store="users", **{keyword: "id"}):  # type: ignore[call-arg]
            id: str

    message = str(caught.value)
    assert message.startswith(f"User: unknown class keyword {keyword!r}; did you mean {closest!r}?"), message
    assert "valid: store, key, shard_key, indexes, ttl, table" in message


def test_an_unknown_class_keyword_without_a_close_one_lists_the_valid_ones() -> None:
    with pytest.raises(EntityError, match=r"^Thing: unknown class keyword 'colour' \(valid: store, key"):

        class Thing(Entity, store="things", colour="red"):  # type: ignore[call-arg]
            id: int


def test_pydantic_config_keywords_still_work() -> None:
    class Frozen(Entity, store="frozen", frozen=True):
        id: int

    assert Frozen.model_config["frozen"] is True


def test_entity_validation_errors_are_validation_errors() -> None:
    """One ``except ValidationError`` catches a bad instance and a value no backend can store."""
    with pytest.raises(ValidationError) as caught:
        Customer(id="not-a-uuid", email="a@b", country="NL")  # type: ignore[arg-type]
    assert isinstance(caught.value, EntityValidationError)
    assert isinstance(caught.value, EntityError)
    assert isinstance(caught.value, ValueError)
