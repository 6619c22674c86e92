"""``ColumnAdapter``: rows, queries, TTLs, scans and partitions over one keyspace.

* Upserts are native (``INSERT`` is an upsert; null fields are written as nulls, so a
  put replaces the row). ``delete`` must say whether the row existed: it reads the row
  (one single-partition read) and then deletes it, instead of ``DELETE ... IF EXISTS``,
  which is a Paxos round (about four times the latency) and buys no linearizability
  while the writes are not LWTs too. Two concurrent deletes of one row may both
  answer True.
* TTL: ``INSERT ... USING TTL`` with the TTL rounded so that Cassandra's second-granular
  expiry happens at most one second late, never early, and ``_ps_expires`` holds the
  exact instant: reads drop rows past it, so expiry observed through get is exact.
  ``ttl()`` reads ``_ps_expires``.
* Token ranges (what a rebalance moves): Cassandra partitions by Murmur3 of the partition
  key bytes, not by our token, so ``token()`` cannot select our ranges. ``scan(tokens=...)``
  is the SAI range query ``_ps_token >= ? AND _ps_token < ?``: an index range read, not
  a full scan. Shard-key ranges use the SAI index on ``_ps_skey`` (a monotone prefix):
  the index returns a superset that the exact bound then trims.
* ``find``/``count`` push what ``_plan`` allows, re-check every row with
  ``Filter.matches``, then order (nulls first, ties by key) and limit client-side: CQL
  orders only by clustering within a partition. ``count`` reads only the filtered
  columns, never whole rows.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, ClassVar, TypeAlias

from adapters._scans import check_batch_size, check_token_scan
from adapters.base import TOKEN_FIELD, Capability, Filter, Query, Row
from adapters.column._codecs import skey_prefix
from adapters.column._errors import ERRORS
from adapters.column._plan import bound, normalise, order_key, plan
from adapters.column._shard import CqlShard
from adapters.column._table import EXPIRES_FIELD, SKEY_FIELD, Table, cols, is_live, now_micros, q, with_expiry
from sharding.base import KeyRange, TokenRange
from sharding.core.errors import QueryError
from sharding.core.limits import DEFAULT_LIMITS, ValueLimits
from sharding.core.model import EntitySchema

__all__ = ["ColumnAdapter"]

_CAUGHT = ERRORS.caught
"""What the hot single-row calls catch inline (a context manager costs a microsecond)."""

Decode: TypeAlias = Callable[[Table, Sequence[Any], int], "Row | None"]
"""A stored row (all columns, at an instant) as the caller's row, or None if expired."""


def _ttl_seconds(now: float, instant: float) -> int:
    """Cassandra's TTL for a row that must expire at ``instant``: it expires at (whole
    second of the write) + TTL, so this is the first whole second at or after ``instant``
    (``_ps_expires`` keeps the exact instant)."""
    return max(1, math.ceil(instant) - math.floor(now))


def _key_params(table: Table, keys: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The primary-key values of ``keys``, each once, in order."""
    return list(dict.fromkeys(table.key_params(key) for key in keys))


class ColumnAdapter(CqlShard):
    """One shard: one keyspace on a Cassandra cluster. See the package docstring."""

    capabilities: ClassVar[Capability] = Capability.PARTITION_RANGE | Capability.TTL
    # The CQL types of ``_codecs``, each round trip tested on the stack's Cassandra
    # (tests/safety). Integers stay bigint (64-bit), JSON text holds only finite floats.
    value_limits: ClassVar[ValueLimits] = replace(
        DEFAULT_LIMITS,
        float_nan=True,  # CQL double: IEEE, NaN, infinities and -0.0 kept
        float_infinity=True,
        # CQL decimal is BigDecimal: an int32 scale (the exponent negated; the scale -2**31
        # does not come back, so both ends stop one short) and any coefficient, which the
        # driver converts through int(str), limited to 4,300 digits.
        decimal_digits=sys.int_info.default_max_str_digits,
        decimal_min_exponent=-(2**31) + 1,
        decimal_max_exponent=2**31 - 1,
        datetime_min=dt.datetime.min.replace(tzinfo=dt.UTC),  # bigint microseconds: year 1 on
        date_min=dt.date.min,  # CQL date spans millions of years
        str_nul=True,  # CQL text is length-prefixed UTF-8
    )

    # -- writes ----------------------------------------------------------------------
    def put(self, schema: EntitySchema, row: Row) -> None:
        table = self._table(schema)
        values = table.values(row, None)
        try:  # inline rather than ERRORS.translating: the hot single write
            self.session.execute(table.insert, values)
        except _CAUGHT as exc:
            raise ERRORS.translate(exc, store=self.store, shard=self.shard, key=schema.key_of(row)) from exc

    def put_many(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        table = self._table(schema)
        unique = {schema.key_of(row): table.values(row, None) for row in rows}
        self._concurrent(table.insert, list(unique.values()))
        return len(unique)

    def put_ttl(self, schema: EntitySchema, rows: Sequence[Row], ttl: float) -> int:
        table = self._table(schema)
        if ttl <= 0:
            raise QueryError(f"ttl must be positive, not {ttl!r}")
        now = time.time()
        seconds = _ttl_seconds(now, now + ttl)
        expires = int((now + ttl) * 1_000_000)
        unique = {schema.key_of(row): [*table.values(row, expires), seconds] for row in rows}
        self._concurrent(table.insert_ttl, list(unique.values()))
        return len(unique)

    def put_expiring(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        """Each row with its own ``USING TTL`` (rounded as ``put_ttl`` does) and exact
        ``_ps_expires``; rows without an instant plainly; rows past it are deleted."""
        table = self._table(schema)
        now = time.time()
        plain: dict[Any, list[Any]] = {}
        timed: dict[Any, list[Any]] = {}
        gone: list[Any] = []
        for row in rows:
            key = schema.key_of(row)
            instant = row.pop(EXPIRES_FIELD, None)
            if instant is None:
                plain[key] = table.values(row, None)
            elif instant > now:
                timed[key] = [*table.values(row, int(instant * 1_000_000)), _ttl_seconds(now, instant)]
            else:
                gone.append(key)
        self._concurrent(table.insert, list(plain.values()))
        self._concurrent(table.insert_ttl, list(timed.values()))
        if gone:
            self.delete_many(schema, gone)
        return len(plain) + len(timed) + len(gone)

    def delete(self, schema: EntitySchema, key: Any) -> bool:
        table = self._table(schema)
        params = table.key_params(key)
        found = self._execute(table.exists, params, key=key).one()
        if found is None:
            return False
        self._execute(table.delete, params, key=key)
        return is_live(found[0], now_micros())

    def delete_many(self, schema: EntitySchema, keys: Sequence[Any]) -> int:
        table = self._table(schema)
        params = _key_params(table, keys)
        now = now_micros()
        found = [
            (values, result.one())
            for values, result in zip(params, self._concurrent(table.exists, params), strict=True)
        ]
        present = [(values, is_live(first[0], now)) for values, first in found if first is not None]
        self._concurrent(table.delete, [values for values, _ in present])
        return sum(1 for _, live in present if live)

    # -- reads -----------------------------------------------------------------------
    def get(self, schema: EntitySchema, key: Any) -> Row | None:
        table = self._table(schema)
        params = table.key_params(key)
        try:  # inline rather than ERRORS.translating: the hot read
            found = self.session.execute(table.get, params).one()
        except _CAUGHT as exc:
            raise ERRORS.translate(exc, store=self.store, shard=self.shard, key=key) from exc
        return None if found is None else table.decode(found, now_micros())

    def get_many(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        return self._get_rows(schema, keys, Table.decode)

    def get_many_expiring(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        return self._get_rows(schema, keys, with_expiry)

    def _get_rows(self, schema: EntitySchema, keys: Sequence[Any], decode: Decode) -> list[Row]:
        """The live rows of ``keys`` (each once), read concurrently."""
        table = self._table(schema)
        now = now_micros()
        results = self._concurrent(table.get, _key_params(table, keys))
        rows = (decode(table, values, now) for result in results for values in result)
        return [row for row in rows if row is not None]

    def ttl(self, schema: EntitySchema, key: Any) -> float | None:
        table = self._table(schema)
        found = self._execute(table.exists, table.key_params(key), key=key).one()
        if found is None or found[0] is None:
            return None
        remaining = (found[0] - now_micros()) / 1_000_000
        return remaining if remaining > 0 else None

    def _rows(self, table: Table, cql: str, params: Sequence[Any], fetch_size: int = 1000) -> Iterator[Row]:
        """Every live row a full-column SELECT returns, page by page."""
        for page, now in self._pages(table, cql, params, fetch_size):
            for values in page:
                row = table.decode(values, now)
                if row is not None:
                    yield row

    # -- queries ---------------------------------------------------------------------
    def find(self, schema: EntitySchema, query: Query) -> list[Row]:
        table = self._table(schema)
        filters = normalise(schema, query.filters)
        planned = plan(table, filters)
        if planned is None or query.limit == 0:
            return []
        select = f"SELECT {cols(table.columns)} FROM {table.qualified}{planned.where}"
        rows = (row for row in self._rows(table, select, planned.params) if all(f.matches(row) for f in filters))
        sort_key = order_key(schema, query)
        if query.limit is not None:
            return heapq.nsmallest(query.limit, rows, key=sort_key)
        return sorted(rows, key=sort_key)

    def count(self, schema: EntitySchema, filters: Sequence[Filter] = ()) -> int:
        table = self._table(schema)
        checks = normalise(schema, filters)
        planned = plan(table, checks)
        if planned is None:
            return 0
        names = list(dict.fromkeys([f.field for f in checks] or [table.key_columns[0]]))
        select = f"SELECT {cols([*names, EXPIRES_FIELD])} FROM {table.qualified}{planned.where}"
        total = 0
        for page, now in self._pages(table, select, planned.params, 5000):
            for values in page:
                if not is_live(values[-1], now):
                    continue
                row = {name: table.codecs[name].from_db(value) for name, value in zip(names, values, strict=False)}
                total += all(f.matches(row) for f in checks)
        return total

    # -- scans -----------------------------------------------------------------------
    def _scan_rows(
        self, schema: EntitySchema, tokens: TokenRange | None, keys: KeyRange | None, batch_size: int, *, expiring: bool
    ) -> Iterator[list[Row]]:
        table = self._table(schema)
        check_batch_size(batch_size)
        clauses: list[str] = []
        params: list[Any] = []
        if tokens is not None:
            check_token_scan(schema.name, tokens, with_token=table.with_token)
            if tokens.start >= tokens.end:
                return
            bound(clauses, params, TOKEN_FIELD, tokens.start, tokens.end - 1)
        if keys is not None:
            bound(
                clauses,
                params,
                SKEY_FIELD,
                None if keys.lower is None else skey_prefix(keys.lower),
                None if keys.upper is None else skey_prefix(keys.upper),
            )
        where = f" WHERE {' AND '.join(clauses)} ALLOW FILTERING" if clauses else ""
        select = f"SELECT {cols(table.columns)} FROM {table.qualified}{where}"
        decode: Decode = with_expiry if expiring else Table.decode
        for page, now in self._pages(table, select, params, batch_size):
            rows = [row for row in (decode(table, values, now) for values in page) if row is not None]
            if keys is not None:
                rows = [row for row in rows if schema.shard_key_of(row) in keys]
            if rows:
                yield rows

    # -- partitions ------------------------------------------------------------------
    def partition(
        self,
        schema: EntitySchema,
        partition: Any,
        *,
        start: Any = None,
        end: Any = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[Row]:
        table = self._table(schema)
        if not table.clustering:
            raise QueryError(
                f"{schema.name}: a partition read needs key=(partition, clustering...) with shard_key=partition"
            )
        if limit is not None and limit <= 0:
            return []
        values = partition if len(table.partition) > 1 else (partition,)
        if not isinstance(values, tuple) or len(values) != len(table.partition):
            raise QueryError(f"{schema.name}: the partition is a value of {', '.join(table.partition)}")
        clauses = [f"{q(column)} = ?" for column in table.partition]
        params = [table.encode(column, value) for column, value in zip(table.partition, values, strict=True)]
        first = table.clustering[0]
        for value, op in ((start, ">="), (end, "<")):
            if value is not None:
                clauses.append(f"{q(first)} {op} ?")
                params.append(table.encode(first, value))
        order = ", ".join(f"{q(column)} {'DESC' if descending else 'ASC'}" for column in table.clustering)
        select = f"SELECT {cols(table.columns)} FROM {table.qualified} WHERE {' AND '.join(clauses)}"
        rows = self._rows(table, f"{select} ORDER BY {order}", params, fetch_size=min(limit or 1000, 1000))
        if limit is None:
            return list(rows)
        return [row for _, row in zip(range(limit), rows, strict=False)]
