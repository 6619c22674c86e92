"""docs/types.md says what the code does: its limits table is ``DEFAULT_LIMITS``, field by
field, and its key encodings are ``encode_key``'s type tags (issue 14's types page)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import re
import typing
import uuid

from adapters.registry import adapter_class
from sharding.core.limits import DEFAULT_LIMITS
from sharding.core.model import ScalarType
from sharding.keys import encode_key
from tests.servers import ROOT

PAGE = (ROOT / "docs" / "types.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    """The text of one ``## title`` section."""
    start = PAGE.index(f"\n## {title}\n")
    end = PAGE.find("\n## ", start + 1)
    return PAGE[start : end if end >= 0 else len(PAGE)]


def _shown(value: object) -> str:
    """A default as the page writes it."""
    if value is None:
        return "any"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.date):  # datetimes too
        return value.isoformat()
    if isinstance(value, int) and len(str(abs(value))) > 30:  # 10**4300 - 1, not its 4,300 digits
        digits = len(str(abs(value)))
        assert abs(value) == 10**digits - 1, value
        return f"-(10**{digits} - 1)" if value < 0 else f"10**{digits} - 1"
    return str(value)


def test_the_limits_table_is_the_default_limits() -> None:
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", _section("Default limits"), re.MULTILINE))
    expected = {field.name: _shown(getattr(DEFAULT_LIMITS, field.name)) for field in dataclasses.fields(DEFAULT_LIMITS)}
    assert rows == expected


def test_the_key_encodings_are_the_codes() -> None:
    """Each key type's row starts its key column with the tag ``encode_key`` writes."""
    samples: dict[str, object] = {
        "str": "a",
        "int": 1,
        "bool": False,
        "bytes": b"a",
        "datetime.datetime": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        "datetime.date": dt.date(2024, 1, 1),
        "decimal.Decimal": decimal.Decimal("1.5"),
        "uuid.UUID": uuid.UUID(int=1),
        "tuple": ("a", 1),
    }
    table = _section("The supported types")
    for name, sample in samples.items():
        row = re.search(rf"^\| `{re.escape(name)}`(?: of the key types)? \| [^|]+ \| `([^`]+)`", table, re.MULTILINE)
        assert row is not None, name
        assert encode_key(sample).startswith(row.group(1).encode()), (name, row.group(1))
    assert table.count("| not a key |") == 2  # float and json


def test_every_storage_type_has_a_row_in_both_tables() -> None:
    types = _section("The supported types")
    backends = _section("How each backend stores each type")
    for kind in typing.get_args(ScalarType):
        assert f"| `{kind}` |" in types or f"| `{kind}` or" in types, kind
        assert re.search(rf"^\| `{kind}` \|", backends, re.MULTILINE), kind


def test_the_limits_per_backend_are_the_adapters_value_limits() -> None:
    """Each column of "Limits per backend" names a URL scheme; its cells are that adapter
    class's ``value_limits``, field by field, and every field has a row."""
    section = _section("Limits per backend")
    header, _, *rows = [line for line in section.splitlines() if line.startswith("|")]
    schemes = [re.search(r"`([\w+-]+)://`", cell) for cell in header.strip("|").split("|")[1:]]
    assert schemes
    assert all(found is not None for found in schemes), header
    table = {
        row.split("|")[1].strip().strip("`"): [cell.strip().strip("`") for cell in row.split("|")[2:-1]] for row in rows
    }
    assert list(table) == [field.name for field in dataclasses.fields(DEFAULT_LIMITS)]
    for column, found in enumerate(schemes):
        assert found is not None
        limits = adapter_class(found.group(1)).value_limits
        written = {name: cells[column] for name, cells in table.items()}
        assert written == {name: _shown(getattr(limits, name)) for name in table}, found.group(1)
