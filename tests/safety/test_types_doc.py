"""docs/types.md says what the code does: its limits table is ``DEFAULT_LIMITS``, field by
field, and its key encodings are ``encode_key``'s type tags (issue 14's types page)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import re
import typing
import uuid

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
