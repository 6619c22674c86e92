"""What each server adapter's ``value_limits`` allow reads back exactly; what they do not
allow, ``check_row`` refuses (issue 14's round-trip property, for the document,
key-value, column and graph kinds; the relational adapter is not covered here).

On the real servers: random rows of an entity with every scalar type and a JSON field,
values drawn within the adapter's declared limits (``tests/safety/within.py``), go through
the adapter contract (put_many and put, get, get_many, find by key, scan) and must come
back the same: the same type and value, Decimals with their exponent, floats with their
sign, datetimes as aware UTC instants. The negative control disables one adapter's fix
(a codec that normalises Decimals) and the same check must fail.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import TOKEN_FIELD, Adapter, Filter, Query, Row
from adapters.keyvalue import _values as kv_values
from adapters.registry import adapter_class
from sharding.core.errors import ValidationError
from sharding.core.limits import DEFAULT_LIMITS, check_row, check_value
from sharding.core.model import ScalarType
from sharding.keys import token
from tests.backends import Backend, discover
from tests.safety.strategies import key_decimals
from tests.safety.within import beyond, characters, nested, same, within
from toolkit import Entity
from toolkit.model import schema_of


class Sample(Entity, store="items", key=("name", "amount"), shard_key="name"):
    """Every storage type, and a Decimal key part (Cassandra clusters by it)."""

    name: str
    amount: decimal.Decimal
    s: str | None = None
    i: int | None = None
    f: float | None = None
    b: bool | None = None
    by: bytes | None = None
    t: dt.datetime | None = None
    d: dt.date | None = None
    n: decimal.Decimal | None = None
    u: uuid.UUID | None = None
    j: Any = None


SAMPLE = schema_of(Sample)
SERVER_BACKENDS = [cls for cls in discover() if cls.kind != "relational"]
KINDS = sorted({cls.kind for cls in SERVER_BACKENDS})


def _param(cls: type[Backend]) -> Any:
    return pytest.param(cls, id=cls.name, marks=[getattr(pytest.mark, cls.marker or "servers"), pytest.mark.servers])


@pytest.fixture(params=[_param(cls) for cls in SERVER_BACKENDS])
def adapter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Adapter]:
    """One shard's adapter on the backend's server, ``SAMPLE`` ensured; cleaned up after."""
    spec: Backend = request.param(tmp_path)
    spec.connect()
    built = adapter_class(spec.scheme)(spec.url("s0"), store="items", shard="s0", options=spec.options())
    built.ensure(SAMPLE, with_token=True)
    yield built
    built.close()
    spec.cleanup()


def _rows(adapter: Adapter) -> st.SearchStrategy[list[Row]]:
    """1-3 rows with distinct keys, every field drawn within the adapter's limits."""
    limits = adapter.value_limits
    fields = {spec.name: within(spec.type, limits) for spec in SAMPLE.fields if spec.name not in SAMPLE.key}
    fields["name"] = st.text(characters(nul=False), max_size=8)
    fields["amount"] = key_decimals
    rows = st.lists(st.fixed_dictionaries(fields), min_size=1, max_size=3)
    return rows.map(lambda drawn: list({_key(row): row for row in drawn}.values()))


def _key(row: Row) -> tuple[Any, ...]:
    """A row's key; ``1.10`` and ``1.1`` are one key (Decimals hash as their numbers)."""
    return (row["name"], row["amount"])


def check_round_trip(adapter: Adapter, rows: list[Row]) -> None:
    """Write ``rows`` and read each back every way the contract allows; assert they are the same."""
    for row in rows:
        check_row(SAMPLE, row, adapter.value_limits)  # the strategy stays within the limits
        row[TOKEN_FIELD] = token(SAMPLE.shard_key_of(row))
    first, *rest = rows
    adapter.put(SAMPLE, dict(first))
    adapter.put_many(SAMPLE, [dict(row) for row in rest])
    try:
        by_key = {_key(row): row for row in rows}
        reads: dict[str, list[Any]] = {
            "get": [adapter.get(SAMPLE, key) for key in by_key],
            "get_many": adapter.get_many(SAMPLE, list(by_key)),
            "find": [
                found
                for name, amount in by_key
                for found in adapter.find(SAMPLE, Query((Filter("name", "eq", name), Filter("amount", "eq", amount))))
            ],
            "scan": [row for batch in adapter.scan(SAMPLE, batch_size=2) for row in batch],
        }
        for how, got in reads.items():
            assert len(got) == len(rows), f"{how}: {len(got)} rows, not {len(rows)}"
            for read in got:
                assert read is not None, how
                expected = by_key[_key(read)]
                problems = [p for spec in SAMPLE.fields for p in same(expected[spec.name], read[spec.name], spec.name)]
                assert not problems, f"{how}: {problems}"
    finally:
        adapter.delete_many(SAMPLE, [_key(row) for row in rows])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_what_the_limits_allow_reads_back_exactly(adapter: Adapter, data: st.DataObject) -> None:
    check_round_trip(adapter, data.draw(_rows(adapter)))


def _edge_row(adapter: Adapter) -> Row:
    """One row at the edges of the adapter's limits (what random draws reach rarely)."""
    limits = adapter.value_limits
    return {
        "name": "",
        "amount": decimal.Decimal("1.10"),
        "s": "\U0010ffff" + ("\x00" if limits.str_nul else ""),
        "i": limits.int_max if limits.int_max is not None else 10**40,
        "f": -0.0,
        "b": False,
        "by": bytes(range(256)),
        "t": limits.datetime_min,
        "d": limits.date_max,
        "n": decimal.Decimal("-0.00"),
        "u": uuid.UUID(int=2**128 - 1),
        "j": {"deep": nested(limits.json_max_depth - 1, -0.0), "big": limits.int_min, "": [1, 1.0, True, None]},
    }


def test_the_edges_read_back_exactly(adapter: Adapter) -> None:
    check_round_trip(adapter, [_edge_row(adapter)])


_NORMALISING = {
    # kind: (module, attribute, a replacement that drops what the fix keeps)
    "document": ("adapters.document._entity", "exact_decimal", lambda value: None),
    "column": ("adapters.column._table", "exact_text", lambda value, *, key: None),
    "graph": ("adapters.graph._label", "exact_key", lambda value: None),
}


def test_the_check_fails_with_the_fix_disabled(adapter: Adapter, monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control: the same round trip, through a codec that normalises Decimals
    (``1.10`` stored as ``1.1``), must fail the equality."""
    kind = type(adapter).__module__.split(".")[1]
    if kind == "keyvalue":  # exact text from the start: normalise it, in a new adapter's codec
        monkeypatch.setitem(kv_values.ENCODE, "decimal", lambda value: str(value.normalize()).encode())
        adapter = type(adapter)(adapter.url, store="items", shard="s1", options=adapter.options)
        adapter.ensure(SAMPLE, with_token=True)
    else:
        module, name, replacement = _NORMALISING[kind]
        monkeypatch.setattr(module + "." + name, replacement)
    with pytest.raises(AssertionError, match=r"1\.10"):
        check_round_trip(adapter, [_edge_row(adapter)])


def _refusals() -> list[Any]:
    """One case per (adapter class, value just past one of its limits)."""
    params = []
    for cls in {adapter_class(backend.scheme) for backend in SERVER_BACKENDS}:
        for index, (kind, value) in enumerate(beyond(cls.value_limits)):
            params.append(pytest.param(cls, kind, value, id=f"{cls.__name__}-{kind}-{index}"))
    return sorted(params, key=lambda param: param.id)


@pytest.mark.parametrize(("cls", "kind", "value"), _refusals())
def test_what_the_limits_refuse_check_row_refuses(cls: type[Adapter], kind: ScalarType, value: Any) -> None:
    """Each value just past one of an adapter's limits is a ValidationError naming the
    field, before any write (no server needed: the limits are a class attribute)."""
    limits = cls.value_limits
    field = next(spec.name for spec in SAMPLE.fields if spec.type == kind and spec.name not in SAMPLE.key)
    row: Row = {spec.name: None for spec in SAMPLE.fields} | {"name": "k", "amount": decimal.Decimal(1), field: value}
    with pytest.raises(ValidationError) as refused:
        check_row(SAMPLE, row, limits)
    assert refused.value.field is not None
    assert refused.value.field.split(".")[0] == field
    assert check_value(kind, value, limits) is not None


def test_the_server_adapters_declare_their_limits() -> None:
    """Each server adapter says what it stores (none is left at the bare defaults)."""
    for cls in SERVER_BACKENDS:
        assert adapter_class(cls.scheme).value_limits != DEFAULT_LIMITS, cls.name
