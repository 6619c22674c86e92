"""``QueryOps``: reading an entity through its indexes (find, count, scans).

Redis has no secondary indexes without modules, so ``find`` and ``count`` filter, sort
and limit in Python with ``Filter.matches`` semantics over the rows they read: the rows
an eq/in filter on the key names (by key), else the shard-key index span that
eq/lt/le/gt/ge filters on a one-field shard key allow, otherwise every row of the
entity (all buckets at once, pipelined, in batches): honest, linear in what is read.
``count`` fetches only the fields its filters name. Because filtering is the reference
code itself, dotted paths into json fields and ``contains`` come for free
(NESTED_FILTERS); values that Python cannot compare (a string against a number) do not
match.

Token order is the lexicographic order of the token index, so ``scan(tokens=...)`` is
one ``ZRANGEBYLEX`` per bucket (``[start`` .. ``(end``), paginated by the last member
seen (keyset, never an offset): the cost follows the rows in the range, not the
entity's size. Scores are not used because doubles cannot hold 64-bit tokens exactly.
``scan(keys=KeyRange)`` walks the shard-key index likewise. Rows come in token (or
shard key) order per bucket, not in key order.

An index member cannot expire with its row, so every read checks that the row still
exists with the same token (or shard key); members whose row is gone are never returned
and are removed lazily by a script that re-checks under the slot's atomicity.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from adapters._scans import check_batch_size, check_token_scan
from adapters.base import EXPIRES_FIELD, Filter, Query, Row, sort_key
from adapters.keyvalue import _scripts as lua
from adapters.keyvalue._errors import ERRORS
from adapters.keyvalue._layout import KEY_FIELD, TOKEN_NAME, Cursor, Layout, Span, field_spec, parse_member
from adapters.keyvalue._ordered import KEY_TYPE_CHECKS, Unordered, ordered_bound
from adapters.keyvalue._shard import RedisShard
from adapters.keyvalue._values import BIAS, expiry, safe_match, token_hex, utc_filter, utc_key
from sharding.base import KeyRange, TokenRange
from sharding.core.errors import QueryError
from sharding.core.model import EntitySchema, FieldSpec

__all__ = ["QueryOps"]

WALK_BATCH: Final = 2000
"""Index members fetched per round (over all buckets) by find/count."""


def _with_ttls(replies: list[Any], expiring: bool) -> Iterable[tuple[Any, int]]:
    """(reply, PTTL) pairs of a pipeline that sent a PTTL after each read when
    ``expiring`` (else every PTTL is -1: no expiry asked for)."""
    if expiring:
        return zip(replies[0::2], map(int, replies[1::2]), strict=True)
    return zip(replies, itertools.repeat(-1))


class QueryOps(RedisShard):
    """The read half of ``KeyValueAdapter``: index walks, find, count and scans."""

    # -- walking the indexes ---------------------------------------------------------
    def _walk(
        self,
        layout: Layout,
        span: Span,
        per_round: int,
        specs: Sequence[FieldSpec] | None = None,
        expiring: bool = False,
    ) -> Iterator[list[Row]]:
        """Rows listed in ``span`` of one of the indexes, over all buckets, a round at a time.

        Each round is two pipelined round trips: ZRANGEBYLEX on every unfinished bucket,
        then HGETALL (or HMGET of ``specs``) of the rows listed. Members whose row is
        gone (expired) or says otherwise (moved token or shard key) are skipped and
        cleaned up.
        """
        cursors = [Cursor(bucket, span.low) for bucket in range(layout.buckets)]
        index_key = layout.key_index_key if span.by_key else layout.index_key
        while True:
            active = [cursor for cursor in cursors if not cursor.done]
            if not active:
                return
            limit = max(1, -(-per_round // len(active)))
            pipe = self._pipeline()
            for cursor in active:
                pipe.zrangebylex(index_key(cursor.bucket), cursor.low, span.high, 0, limit)
            pages: list[list[bytes]] = pipe.execute()
            listed: list[tuple[int, bytes]] = []
            for cursor, members in zip(active, pages, strict=True):
                if len(members) < limit:
                    cursor.done = True
                if members:
                    cursor.low = b"(" + members[-1]
                listed += [(cursor.bucket, member) for member in members]
            if listed:
                yield self._fetch(layout, span.by_key, listed, specs, expiring)

    def _fetch(
        self,
        layout: Layout,
        by_key: bool,
        listed: list[tuple[int, bytes]],
        specs: Sequence[FieldSpec] | None,
        expiring: bool = False,
    ) -> list[Row]:
        """The rows ``listed`` names; with ``expiring``, each with its expiry instant (a
        PTTL pipelined right after its HGETALL)."""
        check = KEY_FIELD if by_key else TOKEN_NAME
        parsed = [(bucket, member, *parse_member(member, by_key)) for bucket, member in listed]
        pipe = self._pipeline()
        for bucket, _, keyhex, _ in parsed:
            row_key = layout.row_key(bucket, keyhex)
            if specs is None:
                pipe.hgetall(row_key)
            else:
                pipe.hmget(row_key, [check, *(spec.name.encode() for spec in specs)])
            if expiring:
                pipe.pttl(row_key)
        now = time.time()
        rows: list[Row] = []
        stale: list[lua.Call] = []
        for (bucket, member, keyhex, expected), (raw, millis) in zip(
            parsed, _with_ttls(pipe.execute(), expiring), strict=True
        ):
            found = raw.get(check) if isinstance(raw, dict) else raw[0]
            if found != expected:
                index = layout.key_index_key(bucket) if by_key else layout.index_key(bucket)
                stale.append((lua.CLEAN, (layout.row_key(bucket, keyhex), index), (member, check, expected)))
                continue
            if millis == -2:  # expired between the two commands: it is gone
                continue
            row = layout.decode(raw) if specs is None else layout.decode_fields(specs, raw[1:])
            if expiring:
                row[EXPIRES_FIELD] = expiry(millis, now)
            rows.append(row)
        if stale:
            self._run_scripts(stale)
        return rows

    @staticmethod
    def _token_span(tokens: TokenRange | None) -> Span:
        """The token index members of a token range: ``[start`` .. ``(end``."""
        if tokens is None:
            return Span(b"-", b"+")
        start = max(tokens.start, -BIAS)
        low = b"[" + token_hex(start) if start < BIAS else b"[g"  # "g" sorts after every hex digit
        high = b"(" + token_hex(tokens.end) if tokens.end < BIAS else b"+"
        return Span(low, high)

    @staticmethod
    def _key_span(layout: Layout, keys: KeyRange) -> Span | None:
        """The shard-key index members of ``lower <= k < upper``; None if the bounds'
        types do not match the shard key (then everything is walked and filtered)."""
        try:
            low = b"-" if keys.lower is None else b"[" + ordered_bound(layout.shard_types, keys.lower)
            high = b"+" if keys.upper is None else b"(" + ordered_bound(layout.shard_types, keys.upper)
        except Unordered:
            return None
        return Span(low, high, by_key=True)

    def _candidates(
        self, layout: Layout, filters: Sequence[Filter], specs: Sequence[FieldSpec] | None = None
    ) -> Iterator[Row]:
        """The rows ``filters`` may match, read the cheapest way: by key for eq/in on a
        one-field key, else the shard-key index span, else every row."""
        keys = self._key_lookup(layout.schema, filters)
        if keys is not None:
            yield from self._rows_by_key(layout, keys)
            return
        span = self._filter_span(layout, filters) or self._token_span(None)
        for batch in self._walk(layout, span, WALK_BATCH, specs):
            yield from batch

    @staticmethod
    def _key_lookup(schema: EntitySchema, filters: Sequence[Filter]) -> list[Any] | None:
        """The keys an eq/in filter on a one-field key names (None: no such filter)."""
        if len(schema.key) != 1:
            return None
        name = schema.key[0]
        check = KEY_TYPE_CHECKS[schema.field(name).type]
        for item in filters:
            if item.field == name and item.op in ("eq", "in"):
                values = [item.value] if item.op == "eq" else list(item.value)
                values = [value for value in values if value is not None]  # keys are never null
                if all(check(value) for value in values):
                    return values
        return None

    def _filter_span(self, layout: Layout, filters: Sequence[Filter]) -> Span | None:
        """The shard-key index span that eq/lt/le/gt/ge filters on a one-field shard key
        allow, or None (walk everything). Filters are still applied to every row."""
        if len(layout.shard_types) != 1:
            return None
        name = layout.schema.shard_key[0]
        lows: list[bytes] = []
        highs: list[bytes] = []
        for item in filters:
            if item.field != name or item.op not in ("eq", "lt", "le", "gt", "ge"):
                continue
            try:
                ordered = ordered_bound(layout.shard_types, item.value)
            except Unordered:
                continue
            # Every member of value v lies in [ordered, ordered + 0xFF): suffixes are hex.
            if item.op in ("eq", "ge"):
                lows.append(ordered)
            if item.op == "gt":
                lows.append(ordered + b"\xff")
            if item.op in ("eq", "le"):
                highs.append(ordered + b"\xff")
            if item.op == "lt":
                highs.append(ordered)
        if not lows and not highs:
            return None
        low = max(lows) if lows else None
        high = min(highs) if highs else None
        if low is not None and high is not None and low >= high:
            return Span(b"+", b"-", by_key=True)  # nothing can match
        return Span(
            b"-" if low is None else b"[" + low,
            b"+" if high is None else b"(" + high,
            by_key=True,
        )

    # -- queries ---------------------------------------------------------------------
    def _rows_by_key(self, layout: Layout, keys: Sequence[Any], *, expiring: bool = False) -> list[Row]:
        """The rows of these keys that exist, by pipelined HGETALL (with ``expiring``,
        each with its expiry: a PTTL right after its HGETALL)."""
        row_keys = [layout.locate(key)[0] for key in dict.fromkeys(keys)]
        rows: list[Row] = []
        for start in range(0, len(row_keys), lua.CHUNK):
            pipe = self._pipeline()
            for row_key in row_keys[start : start + lua.CHUNK]:
                pipe.hgetall(row_key)
                if expiring:
                    pipe.pttl(row_key)
            now = time.time()
            for raw, millis in _with_ttls(pipe.execute(), expiring):
                if raw and millis != -2:
                    row = layout.decode(raw)
                    if expiring:
                        row[EXPIRES_FIELD] = expiry(millis, now)
                    rows.append(row)
        return rows

    def _order_spec(self, schema: EntitySchema, name: str) -> FieldSpec:
        spec = field_spec(schema, name)
        if spec.type == "json":
            raise QueryError(f"{schema.name}.{name}: is a nested (JSON) field; it cannot be ordered by")
        return spec

    def _filters(self, schema: EntitySchema, filters: Sequence[Filter]) -> list[Filter]:
        """Validate filters; naive datetimes are taken as UTC, like stored values.

        A json field is filtered on a dotted path inside it (``info.city``) or with
        ``contains`` (an array holds the value); the whole field is not compared.
        """
        checked: list[Filter] = []
        for item in filters:
            head, dot, _ = item.field.partition(".")
            spec = field_spec(schema, head)
            if spec.type == "json":
                if not dot and item.op != "contains":
                    raise QueryError(
                        f"{schema.name}.{head}: is a nested (JSON) field; filter on a dotted path inside it "
                        f"({head}.<name>) or use 'contains' for an array"
                    )
            elif dot:
                raise QueryError(f"{schema.name}.{head} is {spec.type}, not a nested field: {item.field!r}")
            elif item.op == "contains":
                raise QueryError(f"{schema.name}.{head}: 'contains' needs a JSON array field, not {spec.type}")
            checked.append(utc_filter(item) if spec.type == "datetime" else item)
        return checked

    @staticmethod
    def _matches(filters: Sequence[Filter], row: Row) -> bool:
        return all(safe_match(item, row) for item in filters)

    def find(self, schema: EntitySchema, query: Query) -> list[Row]:
        layout = self._get_layout(schema)
        filters = self._filters(schema, query.filters)
        for item in query.order_by:
            self._order_spec(schema, item.field)
        if query.limit == 0:
            return []
        with ERRORS.translating(self.store, self.shard):
            rows = [row for row in self._candidates(layout, filters) if self._matches(filters, row)]
        order = sort_key(schema, query.order_by)
        try:
            if query.limit is not None and query.limit < len(rows):
                return heapq.nsmallest(query.limit, rows, key=order)
            return sorted(rows, key=order)
        except TypeError as exc:
            raise QueryError(f"{schema.name}: cannot order by {query.order_by}: {exc}") from None

    def count(self, schema: EntitySchema, filters: Sequence[Filter] = ()) -> int:
        layout = self._get_layout(schema)
        checked = self._filters(schema, filters)
        heads = dict.fromkeys(item.field.partition(".")[0] for item in checked)
        specs = [schema.field(name) for name in heads]
        with ERRORS.translating(self.store, self.shard):
            return sum(1 for row in self._candidates(layout, checked, specs) if self._matches(checked, row))

    @staticmethod
    def _in_range(schema: EntitySchema, rows: list[Row], keys: KeyRange | None) -> list[Row]:
        if keys is None:
            return rows
        try:
            return [row for row in rows if schema.shard_key_of(row) in keys]
        except TypeError as exc:
            raise QueryError(f"{schema.name}: key range bounds do not compare with the shard key: {exc}") from None

    def _scan_rows(
        self, schema: EntitySchema, tokens: TokenRange | None, keys: KeyRange | None, batch_size: int, *, expiring: bool
    ) -> Iterator[list[Row]]:
        layout = self._get_layout(schema)
        check_batch_size(batch_size)
        check_token_scan(schema.name, tokens, with_token=layout.with_token)
        if keys is not None:
            keys = KeyRange(utc_key(keys.lower), utc_key(keys.upper))
        key_span = self._key_span(layout, keys) if keys is not None and tokens is None else None
        span = key_span or self._token_span(tokens)
        pending: list[Row] = []
        with ERRORS.translating(self.store, self.shard):
            for batch in self._walk(layout, span, batch_size, expiring=expiring):
                pending += self._in_range(schema, batch, keys)
                while len(pending) >= batch_size:
                    yield pending[:batch_size]
                    pending = pending[batch_size:]
        if pending:
            yield pending
