"""``RangeOps``: whole token/key ranges on the SQL server: a checksum and a delete that
read no rows back (see ``Adapter.range_checksum``/``delete_range`` for the contract).

They exist for the rebalance: its verify compares a moving span on two shards, and its
cleanup deletes the span from the old owner. Done row by row through Python, both cost
more than the copy itself; done here they cost one aggregate and a few ``DELETE``
statements.

* ``range_checksum``: ``count(*)`` and a 64-bit hash of every live row's stored
  fields. PostgreSQL sums (mod 2**64) a hash of each row's text
  (``md5(ROW(...)::text)``, first 16 hex digits). SQLite, which has no hash function,
  renders each row in SQL (``quote()`` of every value, which is exact: text quoted and
  escaped, blobs in hex, floats with 20 significant digits) and a small aggregate
  registered on the connection hashes those texts in key order (blake2b-64 over the
  sequence, fed a few thousand rows at a time), so Python does one list append per row
  (the database runs in this process, so that is still "where the rows are"). The
  ``method`` names the dialect, the hash and the table layout, so only two shards with
  the same expression over the same columns compare; the caller treats any difference,
  including a different method, as "compare row by row", so a representation that
  differs for equal rows (another session time zone, JSON written with another key
  order, rows met in another order) costs time, never correctness.
* ``delete_range``: one ``DELETE ... WHERE range`` (each index page rewritten once: on a
  large table, batches would rewrite the same pages of the token index again and
  again), or with ``batch_size`` ``DELETE ... WHERE key IN (SELECT key ... LIMIT n)``
  until fewer than n go, for callers that prefer short transactions. Refused (None) on
  a shard with an edge table, where deleting a node must delete its edges too (the row
  path does that), and on dialects other than SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import typing
from collections.abc import Iterable, Iterator
from typing import Any, Final

import sqlalchemy as sa

from adapters._scans import check_batch_size
from adapters.base import RangeChecksum
from adapters.relational._shard import SqlShard
from adapters.relational._tables import TableSet
from sharding.base import KeyRange, TokenRange
from sharding.core.model import EntitySchema

__all__ = ["RangeOps", "fingerprint", "roomy_cache"]

_SQLITE_AGGREGATE: Final = "ps_range_checksum"
_MODULUS: Final = 2**64
_SQLITE_CACHE_KIB: Final = 64 * 1024


class _SqliteChecksum:
    """The SQLite aggregate: blake2b-64 of the rows' texts in the order they arrive.

    Rows are buffered and hashed a few thousand at a time (one C call per chunk instead
    of one hash per row); each row ends with a separator no ``quote()`` output contains
    unquoted, so chunk boundaries do not change the result.
    """

    CHUNK: Final = 4096

    def __init__(self) -> None:
        self.hasher = hashlib.blake2b(digest_size=8)
        self.rows: list[str] = []

    def step(self, row: str) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.rows.append("")
            self.hasher.update("\x1e".join(self.rows).encode())
            self.rows.clear()

    def finalize(self) -> str:
        self._flush()
        return self.hasher.hexdigest()  # text: SQLite integers are signed 64-bit


@contextlib.contextmanager
def roomy_cache(dialect: str, driver_connection: Any) -> Iterator[None]:
    """On SQLite, a page cache of ``_SQLITE_CACHE_KIB`` for one large write transaction.

    A range delete or a stored-copy batch touches rows in key order but the token index
    in hash order, i.e. nearly every page of a large table's token index. With SQLite's
    default 2 MiB cache, dirty pages spill to the WAL in the middle of the transaction
    and are written again when touched again (measured: deleting 20,000 rows from a
    500,000-row shard 0.43 s, with room for the pages 0.16-0.23 s). The setting is the
    connection's, so the previous one is restored before the pooled connection is reused.
    """
    if dialect != "sqlite":
        yield
        return
    (previous,) = driver_connection.execute("PRAGMA cache_size").fetchone()
    driver_connection.execute(f"PRAGMA cache_size = -{_SQLITE_CACHE_KIB}")
    try:
        yield
    finally:
        driver_connection.execute(f"PRAGMA cache_size = {int(previous)}")


def fingerprint(tables: TableSet, names: Iterable[str], dialect: sa.Dialect) -> str:
    """A short hash of columns and their declared types: part of a layout's name, so two
    layouts compare equal only over the same columns of the same types."""
    columns = ",".join(f"{name}:{tables.table.c[name].type.compile(dialect=dialect)}" for name in names)
    return hashlib.sha1(columns.encode()).hexdigest()[:12]


class RangeOps(SqlShard):
    """``range_checksum`` and ``delete_range`` for SQLite and PostgreSQL."""

    def range_checksum(
        self,
        schema: EntitySchema,
        *,
        tokens: TokenRange | None = None,
        keys: KeyRange | None = None,
        now: float | None = None,
    ) -> RangeChecksum | None:
        if self.dialect not in ("sqlite", "postgresql"):
            return None
        tables = self._tableset(schema)
        where = [tables.live(time.time() if now is None else now), *tables.range_bounds(schema.name, tokens, keys)]
        columns = [tables.table.c[name] for name in schema.field_names]
        quote = self.engine.dialect.identifier_preparer.quote
        stmt: Any
        if self.dialect == "sqlite":
            # Ordered by key (after the token for token ranges: the token index's order),
            # a total order, so equal rows arrive in the same order on both shards. An
            # aggregate over an ordered subquery is never flattened, so the order holds.
            row_text = " || ',' || ".join(f"quote({quote(column.name)})" for column in columns)
            rows = (
                sa.select(sa.literal_column(row_text, sa.String()).label("row"))
                .select_from(tables.table)
                .where(*where)
                .order_by(*tables.range_order(tokens))
                .subquery()
            )
            stmt = sa.select(sa.func.count(), getattr(sa.func, _SQLITE_AGGREGATE)(rows.c.row, type_=sa.String()))
        else:
            row_text = f"ROW({', '.join(quote(column.name) for column in columns)})::text"
            row_hash = f"('x' || substr(md5({row_text}), 1, 16))::bit(64)::bigint"
            digest = sa.literal_column(f"coalesce(sum(({row_hash})::numeric), 0)::text", sa.String())
            stmt = sa.select(sa.func.count(), digest).select_from(tables.table).where(*where)
        with self._connect() as connection:
            if self.dialect == "sqlite":
                driver = typing.cast(Any, connection.connection.driver_connection)
                driver.create_aggregate(_SQLITE_AGGREGATE, 1, _SqliteChecksum)
            count, total = connection.execute(stmt).one()
        # SQLite's aggregate answers in hex; PostgreSQL the (signed) bigints' exact sum.
        checksum = int(total or "0", 16 if self.dialect == "sqlite" else 10) % _MODULUS
        version = "v2" if self.dialect == "sqlite" else "v1"  # v2: SQLite's ordered quote() hash
        method = f"{self.dialect}/{version}/{fingerprint(tables, schema.field_names, self.engine.dialect)}"
        return RangeChecksum(method, int(count), checksum)

    def delete_range(
        self,
        schema: EntitySchema,
        *,
        tokens: TokenRange | None = None,
        keys: KeyRange | None = None,
        batch_size: int | None = None,
    ) -> int | None:
        if self.dialect not in ("sqlite", "postgresql"):
            return None
        if batch_size is not None:
            check_batch_size(batch_size)
        if self.may_have_edges(schema):  # nodes must take their edges along: the row path does
            return None
        tables = self._tableset(schema)
        bounds = tables.range_bounds(schema.name, tokens, keys)
        key_columns = tables.key_columns
        if batch_size is None:  # one statement: every index page is rewritten once, not once per batch
            with (
                self._connect(write=True) as connection,
                roomy_cache(self.dialect, connection.connection.driver_connection),
            ):
                return int(connection.execute(tables.table.delete().where(*bounds)).rowcount)
        chosen = sa.select(*key_columns).where(*bounds).limit(batch_size)
        target = sa.tuple_(*key_columns) if len(key_columns) > 1 else key_columns[0]
        stmt = tables.table.delete().where(target.in_(chosen))
        deleted = 0
        while True:  # one short transaction per batch: writers of other keys are not held up
            with self._connect(write=True) as connection:
                count = connection.execute(stmt).rowcount
            deleted += count
            if count < batch_size:
                return deleted
