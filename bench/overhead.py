"""What polystore's repository costs on top of SQLAlchemy Core and the raw driver.

Runs, side by side in one process on the same SQLite file layout and the same rows:

* ``polystore``: ``Repository.get`` / ``put`` / ``put_many`` (validation, routing,
  token, adapter);
* ``sqlalchemy``: SQLAlchemy Core executing the same statements directly
  (the same table, the same upsert, a reused statement object);
* ``sqlite3``: the DBAPI driver with hand-written SQL.

It prints operations per second and the ratios. Targets (issue 2): single get/put
within 1.2x of Core; put_many at least 0.9x of Core's executemany. Nothing here is
asserted: machines are shared and noisy; compare within one run.

    python bench/overhead.py [--rows 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.dialects import sqlite as sqlite_dialect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.relational import _sqlite_pragmas
from sharding.keys import token
from toolkit import Entity, Toolkit
from toolkit.config import CatalogConfig, Config, RouterConfig, ShardConfig, StoreConfig, sqlite_url


class Account(Entity, store="bench", key="id"):
    id: int
    name: str
    balance: float
    active: bool


def rows(count: int) -> list[dict[str, object]]:
    return [{"id": i, "name": f"user-{i}", "balance": i * 1.5, "active": i % 2 == 0} for i in range(count)]


def timed(operation: Callable[[], object], repeat: int) -> float:
    """Best of ``repeat`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        operation()
        best = min(best, time.perf_counter() - start)
    return best


def polystore_ops(directory: Path, data: list[dict[str, object]]) -> dict[str, Callable[[], object]]:
    store = StoreConfig("bench", "relational", (ShardConfig("s0", sqlite_url(directory / "ps.db")),), RouterConfig())
    toolkit = Toolkit(Config(CatalogConfig(sqlite_url(directory / "catalog.db")), {"bench": store}, directory, "bench"))
    repo = toolkit.repository(Account)
    entities = [Account(**row) for row in data]  # type: ignore[arg-type]
    repo.put_many(entities)
    keys = [row["id"] for row in data]
    return {
        "get": lambda: [repo.get(key) for key in keys],
        "put": lambda: [repo.put(entity) for entity in entities],
        "put_many": lambda: repo.put_many(entities),
    }


def core_ops(directory: Path, data: list[dict[str, object]]) -> dict[str, Callable[[], object]]:
    engine = sa.create_engine(sqlite_url(directory / "core.db"))
    metadata = sa.MetaData()
    table = sa.Table(
        "account",
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("balance", sa.Double, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("_ps_token", sa.BigInteger, nullable=False),
    )
    sa.Index("ix_account_token", table.c._ps_token, table.c.id)
    # The same PRAGMAs the relational adapter sets, so both do the same I/O.
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    metadata.create_all(engine)
    insert = sqlite_dialect.insert(table)
    upsert = insert.on_conflict_do_update(
        index_elements=[table.c.id], set_={c.name: insert.excluded[c.name] for c in table.columns if c.name != "id"}
    )
    select = sa.select(table).where(table.c.id == sa.bindparam("k"))
    params = [{**row, "_ps_token": token(row["id"])} for row in data]

    def put_one() -> None:
        for row in params:
            with engine.begin() as connection:
                connection.execute(upsert, row)

    def get_one() -> None:
        for row in params:
            with engine.connect() as connection:
                connection.execute(select, {"k": row["id"]}).mappings().first()

    def put_many() -> None:
        with engine.begin() as connection:
            connection.execute(upsert, params)

    put_many()
    return {"get": get_one, "put": put_one, "put_many": put_many}


def raw_ops(directory: Path, data: list[dict[str, object]]) -> dict[str, Callable[[], object]]:
    connection = sqlite3.connect(directory / "raw.db", isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(
        "CREATE TABLE account (id INTEGER PRIMARY KEY, name TEXT NOT NULL, balance REAL NOT NULL,"
        " active BOOLEAN NOT NULL, _ps_token INTEGER NOT NULL)"
    )
    connection.execute("CREATE INDEX ix_account_token ON account (_ps_token, id)")
    sql = (
        "INSERT INTO account (id, name, balance, active, _ps_token) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, balance = excluded.balance,"
        " active = excluded.active, _ps_token = excluded._ps_token"
    )
    params = [(row["id"], row["name"], row["balance"], row["active"], token(row["id"])) for row in data]

    def put_one() -> None:
        for row in params:
            connection.execute("BEGIN")
            connection.execute(sql, row)
            connection.execute("COMMIT")

    def get_one() -> None:
        for row in params:
            connection.execute(
                "SELECT id, name, balance, active, _ps_token FROM account WHERE id = ?", (row[0],)
            ).fetchone()

    def put_many() -> None:
        connection.execute("BEGIN")
        connection.executemany(sql, params)
        connection.execute("COMMIT")

    put_many()
    return {"get": get_one, "put": put_one, "put_many": put_many}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000, help="rows per operation (default 5000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best counts (default 3)")
    args = parser.parse_args()
    console = Console()
    data = rows(args.rows)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        contenders = {"polystore": polystore_ops, "sqlalchemy": core_ops, "sqlite3": raw_ops}
        built = {name: build(directory, data) for name, build in contenders.items()}
        operations = ["get", "put", "put_many"]
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("measuring", total=len(operations) * len(built))
            for operation in operations:
                # Interleave contenders per operation so drift on a noisy machine hits all alike.
                for name, ops in built.items():
                    progress.update(task, description=f"{operation}: {name}")
                    seconds = timed(ops[operation], args.repeat)
                    results.setdefault(operation, {})[name] = args.rows / seconds
                    progress.advance(task)
    table = Table(title=f"Single-shard SQLite, {args.rows} rows, best of {args.repeat}")
    table.add_column("operation")
    for name in ("polystore", "sqlalchemy", "sqlite3"):
        table.add_column(f"{name} ops/s", justify="right")
    table.add_column("time vs Core", justify="right")
    table.add_column("time vs sqlite3", justify="right")
    table.add_column("target", justify="left")
    for operation, speeds in results.items():
        vs_core = speeds["sqlalchemy"] / speeds["polystore"]
        vs_raw = speeds["sqlite3"] / speeds["polystore"]
        if operation == "put_many":
            goal, ok = "throughput >= 0.9x Core", speeds["polystore"] >= 0.9 * speeds["sqlalchemy"]
        else:
            goal, ok = "time <= 1.2x Core", vs_core <= 1.2
        table.add_row(
            operation,
            *(f"{speeds[name]:,.0f}" for name in ("polystore", "sqlalchemy", "sqlite3")),
            f"{vs_core:.2f}x",
            f"{vs_raw:.2f}x",
            f"{goal}: {'[green]PASS' if ok else '[red]MISS'}",
        )
    console.print(table)
    median = statistics.median(speeds["sqlalchemy"] / speeds["polystore"] for speeds in results.values())
    console.print(f"median time ratio vs Core: {median:.2f}x (below 1 means polystore is faster)")


if __name__ == "__main__":
    main()
