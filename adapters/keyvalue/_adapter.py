"""``KeyValueAdapter``: rows on Redis and Redis Cluster (writes, reads by key, TTL).

Every write is one Lua script per row that updates the row hash and its index members
atomically (``_scripts``); many rows are pipelined. ``put_ttl`` sets ``PEXPIRE`` on the
row hash inside that script. The hot single-row paths (``put``, ``get``) translate
errors inline rather than through a context manager (a generator per call).
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar, Final, cast

from adapters.base import EXPIRES_FIELD, Capability, Row
from adapters.keyvalue import _scripts as lua
from adapters.keyvalue._changes import ChangeOps
from adapters.keyvalue._errors import ERRORS
from adapters.keyvalue._layout import KEY_FIELD, Layout
from adapters.keyvalue._queries import QueryOps
from sharding.core.errors import QueryError
from sharding.core.limits import DEFAULT_LIMITS, ValueLimits
from sharding.core.model import EntitySchema

__all__ = ["KeyValueAdapter"]

_TEXT_INT: Final = 10**sys.int_info.default_max_str_digits - 1
"""The largest int Python writes as decimal text by default (4,300 digits; beyond it
``str(int)`` raises ValueError): what an int stored as text can be."""


class KeyValueAdapter(ChangeOps, QueryOps):
    """One shard on Redis or Redis Cluster. See ``adapters.keyvalue`` for the layout."""

    capabilities: ClassVar[Capability] = (
        Capability.TTL
        | Capability.ATOMIC_INCREMENT
        | Capability.NESTED_FILTERS
        | Capability.PARTIAL_UPDATE
        | Capability.APPLY_ONCE
        | Capability.SCRIPTS
    )
    # Every value is text or bytes in a hash field, typed by the schema (``_values``), so
    # the limits are Python's own, each round trip tested (tests/safety).
    value_limits: ClassVar[ValueLimits] = replace(
        DEFAULT_LIMITS,
        int_min=-_TEXT_INT,  # decimal text: far beyond int64 (HINCRBY, an increment, stays 64-bit)
        int_max=_TEXT_INT,
        float_nan=True,  # repr() text reads back exactly, NaN, infinities and -0.0 included
        float_infinity=True,
        decimal_digits=None,  # str() text: any finite Decimal, exponent as written
        decimal_min_exponent=None,
        decimal_max_exponent=None,
        decimal_infinity=True,  # "Infinity" text (a NaN stays refused: it cannot be ordered)
        datetime_min=dt.datetime.min.replace(tzinfo=dt.UTC),  # int64 microseconds: year 1 on
        date_min=dt.date.min,  # ISO text, four-digit years from 1
        str_nul=True,  # raw UTF-8 bytes; NUL is a byte like any other
    )

    # -- writes ----------------------------------------------------------------------
    @staticmethod
    def _put_call(layout: Layout, row: Row, ttl_ms: int) -> lua.Call:
        keys, keyhex, suffix = layout.keys_of(layout.schema.key_of(row))
        pairs, tokenhex = layout.encode(row)
        ordered = layout.ordered_shard_key(row)
        args = (keyhex, suffix, tokenhex, ordered, b"%d" % ttl_ms, *pairs, KEY_FIELD, ordered)
        return lua.PUT, keys, args

    @staticmethod
    def _delete_call(layout: Layout, key: Any) -> lua.Call:
        keys, keyhex, suffix = layout.keys_of(key)
        return lua.DELETE, keys, (keyhex, suffix)

    def put(self, schema: EntitySchema, row: Row) -> None:
        layout = self._get_layout(schema)
        script, keys, args = self._put_call(layout, row, 0)
        try:
            self._script(script, keys, args)
        except ERRORS.caught as exc:  # inline, like get: the hot single write
            raise ERRORS.translate(exc, store=self.store, shard=self.shard, key=schema.key_of(row)) from exc

    def put_many(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        return self._put_rows(schema, rows, 0)

    def _put_rows(self, schema: EntitySchema, rows: Sequence[Row], ttl_ms: int) -> int:
        if not rows:
            return 0
        layout = self._get_layout(schema)
        unique = {schema.key_of(row): row for row in rows}  # last write in a batch wins
        calls = [self._put_call(layout, row, ttl_ms) for row in unique.values()]
        with ERRORS.translating(self.store, self.shard):
            self._run_scripts(calls)
        return len(unique)

    def put_ttl(self, schema: EntitySchema, rows: Sequence[Row], ttl: float) -> int:
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0 or math.isinf(ttl):
            raise QueryError(f"ttl must be a positive number of seconds, not {ttl!r}")
        return self._put_rows(schema, rows, max(1, round(ttl * 1000)))

    def put_expiring(self, schema: EntitySchema, rows: Sequence[Row]) -> int:
        """One pipelined batch of write scripts, each row with its own remaining PEXPIRE
        (0: none); rows already past their instant are deleted instead."""
        if not rows:
            return 0
        layout = self._get_layout(schema)
        unique = {schema.key_of(row): row for row in rows}
        now = time.time()
        calls = []
        for key, row in unique.items():
            instant = row.pop(EXPIRES_FIELD, None)
            if instant is None:
                calls.append(self._put_call(layout, row, 0))
            elif instant > now:
                calls.append(self._put_call(layout, row, max(1, round((instant - now) * 1000))))
            else:
                calls.append(self._delete_call(layout, key))
        with ERRORS.translating(self.store, self.shard):
            self._run_scripts(calls)
        return len(unique)

    def delete(self, schema: EntitySchema, key: Any) -> bool:
        script, keys, args = self._delete_call(self._get_layout(schema), key)
        with ERRORS.translating(self.store, self.shard, key):
            return bool(self._script(script, keys, args))

    def delete_many(self, schema: EntitySchema, keys: Sequence[Any]) -> int:
        layout = self._get_layout(schema)
        calls = [self._delete_call(layout, key) for key in dict.fromkeys(keys)]
        if not calls:
            return 0
        with ERRORS.translating(self.store, self.shard):
            return sum(int(reply) for reply in self._run_scripts(calls))

    # -- reads by key ----------------------------------------------------------------
    def get(self, schema: EntitySchema, key: Any) -> Row | None:
        # The hot read: one HGETALL, errors translated inline.
        layout = self._get_layout(schema)
        row_key = layout.locate(key)[0]
        try:
            raw = cast(dict[bytes, bytes], self.client.hgetall(row_key))
        except ERRORS.caught as exc:
            raise ERRORS.translate(exc, store=self.store, shard=self.shard, key=key) from exc
        return layout.decode(raw) if raw else None

    def get_many(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        layout = self._get_layout(schema)
        with ERRORS.translating(self.store, self.shard):
            return self._rows_by_key(layout, keys)

    def get_many_expiring(self, schema: EntitySchema, keys: Sequence[Any]) -> list[Row]:
        """``get_many``, each row with its expiry (HGETALL and PTTL pipelined)."""
        layout = self._get_layout(schema)
        with ERRORS.translating(self.store, self.shard):
            return self._rows_by_key(layout, keys, expiring=True)

    def ttl(self, schema: EntitySchema, key: Any) -> float | None:
        row_key = self._get_layout(schema).locate(key)[0]
        with ERRORS.translating(self.store, self.shard, key):
            millis = int(self.client.pttl(row_key))
        return millis / 1000 if millis >= 0 else None  # -1: no expiry, -2: no row
