"""One entity's table: its layout, its DDL, the statements prepared for it, its rows.

``PRIMARY KEY ((shard key), clustering)`` when the shard key is a proper part of the key
(the clustering columns are the other key fields, in key order: that is what
``partition`` reads natively, in clustering order); otherwise ``PRIMARY KEY ((key))``.
Hidden regular columns follow the fields: one ``_ps_exact_<name>`` text per decimal
field (its exact text where the decimal column keeps another form: ``_codecs``), then
``_ps_token`` (our 64-bit token, on hash-routed stores), ``_ps_skey`` (an
order-preserving 64-bit prefix of the first shard-key field) and ``_ps_expires`` (the
exact expiry instant of a TTL row, in microseconds). The token, the prefix and declared
indexes get a Storage-Attached Index (SAI, Cassandra 5.0); SAI cannot index a sole
partition-key column.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cassandra.query import PreparedStatement

from adapters import base
from adapters.base import TOKEN_FIELD, Row
from adapters.column._codecs import EXACT_PREFIX, PYTHON_TYPES, Codec, Layout, codecs_for, exact_text, same, skey_prefix
from sharding.core.errors import QueryError
from sharding.core.model import EntitySchema

__all__ = [
    "EXPIRES_FIELD",
    "SKEY_FIELD",
    "Table",
    "cols",
    "design",
    "is_live",
    "now_micros",
    "q",
    "with_expiry",
]

SKEY_FIELD: Final = "_ps_skey"
"""Hidden, SAI-indexed, order-preserving 64-bit prefix of the first shard-key field."""
EXPIRES_FIELD: Final = base.EXPIRES_FIELD
"""Hidden: the exact expiry instant of a TTL row (microseconds since the epoch), or null.
(The column shares the contract's name; ``*_expiring`` rows carry it in seconds.)"""


def q(name: str) -> str:
    """A quoted CQL identifier: keeps case, allows a leading _ and reserved words.

    Names are already checked (letters, digits, _), so quoting cannot be escaped.
    """
    return f'"{name}"'


def cols(names: Iterable[str]) -> str:
    """Quoted column names, comma separated."""
    return ", ".join(q(name) for name in names)


def now_micros() -> int:
    """Now, in ``_ps_expires``'s unit."""
    return time.time_ns() // 1000


def is_live(expires: int | None, now: int) -> bool:
    """Whether a row with this ``_ps_expires`` is still there at ``now``."""
    return expires is None or expires > now


@dataclass(slots=True)
class Table:
    """One entity's table in one keyspace, and the statements prepared for it."""

    schema: EntitySchema
    qualified: str
    partition: tuple[str, ...]
    clustering: tuple[str, ...]
    codecs: dict[str, Codec]
    columns: tuple[str, ...]
    """Every stored column, in SELECT order: fields, then the hidden ones."""
    with_token: bool
    indexed: frozenset[str]
    insert: PreparedStatement
    insert_ttl: PreparedStatement
    get: PreparedStatement
    exists: PreparedStatement
    delete: PreparedStatement
    cache: OrderedDict[str, PreparedStatement] = field(default_factory=OrderedDict)
    writers: tuple[tuple[str, Callable[[Any], Any] | None], ...] = ()
    """(field, conversion or None when stored as is) in INSERT order: every write row
    goes through it, so the codecs are looked up once per table, not per field. The
    decimal fields come twice: their column, then their ``_ps_exact_`` column."""
    exact: tuple[tuple[int, str], ...] = ()
    """(position in ``columns``, field) of each ``_ps_exact_`` column."""

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self.partition + self.clustering

    def key_params(self, key: Any) -> tuple[Any, ...]:
        """Bound values of ``WHERE`` over the primary key, in its column order."""
        names = self.schema.key
        if len(names) == 1:  # one key field: it is the whole primary key
            return (self.codecs[names[0]].to_db(key),)
        parts = dict(zip(names, key if len(names) > 1 else (key,), strict=True))
        return tuple(self.codecs[name].to_db(parts[name]) for name in self.key_columns)

    def encode(self, name: str, value: Any) -> Any:
        """A caller's key value for ``name``, stored form; QueryError for a value of the wrong type."""
        spec = self.schema.field(name)
        types = PYTHON_TYPES.get(spec.type, (decimal.Decimal,))
        wrong = (spec.type == "int" and isinstance(value, bool)) or (
            spec.type == "date" and isinstance(value, dt.datetime)
        )
        if wrong or not isinstance(value, types):
            raise QueryError(f"{self.schema.name}.{name} is {spec.type}, not {type(value).__name__} {value!r}")
        return self.codecs[name].to_db(value)

    def decode(self, values: Sequence[Any], now: int) -> Row | None:
        """A row from a full SELECT, or None if it has expired (see ``_ps_expires``)."""
        if not is_live(values[-1], now):
            return None
        row: Row = {}
        for name, value in zip(self.columns[:-2], values, strict=False):
            codec = self.codecs.get(name)
            row[name] = codec.from_db(value) if codec is not None else value
        for position, name in self.exact:
            text = row.pop(self.columns[position])
            if text is not None:
                row[name] = decimal.Decimal(text)
        return row

    def values(self, row: Row, expires: int | None) -> list[Any]:
        """The bound values of ``insert`` for ``row`` (``expires``: its ``_ps_expires``)."""
        try:
            values = [row[name] if to_db is None else to_db(row[name]) for name, to_db in self.writers]
            if self.with_token:
                values.append(row[TOKEN_FIELD])
        except KeyError as exc:
            raise QueryError(f"row for {self.schema.name} lacks field {exc.args[0]!r}") from None
        values.append(skey_prefix(self.schema.shard_key_of(row)))
        values.append(expires)
        return values


def with_expiry(table: Table, values: Sequence[Any], now: int) -> Row | None:
    """``Table.decode`` plus the row's expiry instant in seconds (None: never)."""
    row = table.decode(values, now)
    if row is not None:
        row[EXPIRES_FIELD] = None if values[-1] is None else values[-1] / 1_000_000
    return row


@dataclass(frozen=True, slots=True)
class Design:
    """What ``ensure`` creates for an entity, before anything is prepared."""

    schema: EntitySchema
    name: str
    qualified: str
    layout: Layout
    codecs: dict[str, Codec]
    with_token: bool
    indexed: frozenset[str]

    @property
    def decimals(self) -> tuple[str, ...]:
        """The decimal fields: each has a ``_ps_exact_`` text column."""
        return tuple(spec.name for spec in self.schema.fields if spec.type == "decimal")

    @property
    def stored(self) -> tuple[str, ...]:
        exact = [EXACT_PREFIX + name for name in self.decimals]
        hidden = ([TOKEN_FIELD] if self.with_token else []) + [SKEY_FIELD, EXPIRES_FIELD]
        return (*self.schema.field_names, *exact, *hidden)

    def _writers(self) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
        """``Table.writers``: each field's conversion, then each decimal's exact text."""
        keys = set(self.layout[0]) | set(self.layout[1])
        fields = tuple(
            (name, None if self.codecs[name].to_db is same else self.codecs[name].to_db)
            for name in self.schema.field_names
        )
        return fields + tuple((name, _exact_writer(name in keys)) for name in self.decimals)

    def create_table(self) -> str:
        """``CREATE TABLE IF NOT EXISTS`` with the layout's primary key."""
        columns = [f"{q(spec.name)} {self.codecs[spec.name].cql}" for spec in self.schema.fields]
        columns += [f"{q(EXACT_PREFIX + name)} text" for name in self.decimals]
        columns += [f"{q(column)} bigint" for column in self.stored[len(columns) :]]
        partition, clustering = self.layout
        key = f"(({cols(partition)}){''.join(f', {q(column)}' for column in clustering)})"
        return f"CREATE TABLE IF NOT EXISTS {self.qualified} ({', '.join(columns)}, PRIMARY KEY {key})"

    def create_indexes(self) -> list[str]:
        """One ``CREATE CUSTOM INDEX`` (SAI) per indexed column."""
        return [
            f"CREATE CUSTOM INDEX IF NOT EXISTS {_index_name(self.name, column)} ON {self.qualified} ({q(column)}) "
            "USING 'StorageAttachedIndex'"
            for column in sorted(self.indexed)
        ]

    def prepare(self, prepare: Callable[[str], PreparedStatement]) -> Table:
        """The table with its statements prepared (``prepare``: the session's)."""
        partition, clustering = self.layout
        stored = self.stored
        marks = ", ".join("?" for _ in stored)
        where = " AND ".join(f"{q(column)} = ?" for column in (*partition, *clustering))
        insert = f"INSERT INTO {self.qualified} ({cols(stored)}) VALUES ({marks})"
        return Table(
            schema=self.schema,
            qualified=self.qualified,
            partition=partition,
            clustering=clustering,
            codecs=self.codecs,
            columns=stored,
            with_token=self.with_token,
            indexed=self.indexed,
            insert=prepare(insert),
            insert_ttl=prepare(f"{insert} USING TTL ?"),
            get=prepare(f"SELECT {cols(stored)} FROM {self.qualified} WHERE {where}"),
            exists=prepare(f"SELECT {q(EXPIRES_FIELD)} FROM {self.qualified} WHERE {where}"),
            delete=prepare(f"DELETE FROM {self.qualified} WHERE {where}"),
            writers=self._writers(),
            exact=tuple((stored.index(EXACT_PREFIX + name), name) for name in self.decimals),
        )


def _exact_writer(key: bool) -> Callable[[Any], Any]:
    def exact(value: Any) -> str | None:
        return exact_text(value, key=key)

    return exact


def design(schema: EntitySchema, keyspace: str, name: str, *, with_token: bool) -> Design:
    """The table ``keyspace.name`` for ``schema``: layout, codecs and indexes."""
    layout = _layout(schema)
    return Design(
        schema=schema,
        name=name,
        qualified=f"{keyspace}.{name}",
        layout=layout,
        codecs=codecs_for(schema, layout),
        with_token=with_token,
        indexed=_indexed(schema, layout[0], with_token),
    )


def _layout(schema: EntitySchema) -> Layout:
    """(partition columns, clustering columns) of an entity's table."""
    shard, key = schema.shard_key, schema.key
    if set(shard) < set(key) and len(set(shard)) == len(shard):
        return shard, tuple(name for name in key if name not in shard)
    return key, ()


def _indexed(schema: EntitySchema, partition: tuple[str, ...], with_token: bool) -> frozenset[str]:
    """Columns with an SAI index: the token, the shard-key prefix and declared indexes."""
    names = {SKEY_FIELD, *([TOKEN_FIELD] if with_token else [])}
    for index in schema.indexes:
        for name in index:
            if schema.field(name).type == "json" or (len(partition) == 1 and name == partition[0]):
                continue
            names.add(name)
    return frozenset(names)


def _index_name(table: str, column: str) -> str:
    name = f"{table}_{column}_idx"
    if len(name) <= 48:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{table[:30]}_{digest}_idx"
