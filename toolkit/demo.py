"""``polystore demo``: a small sharded application on the embedded default, narrated.

Three stores in SQLite files, each over several shards and routed differently:

* ``customers``: hash-routed over 4 shards (even spread, any key);
* ``orders``: range-routed by month over 3 shards (a month range visits few shards);
* ``tenants``: directory-routed over 3 shards, big tenants pinned to a shard of their own.

It writes a few thousand entities, runs reads and queries saying which shards each one
touched, and draws the distribution per shard. No server is needed.
"""

from __future__ import annotations

import datetime as dt
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from toolkit.config import CatalogConfig, Config, RouterConfig, ShardConfig, StoreConfig, sqlite_url
from toolkit.facade import Toolkit
from toolkit.model import Entity
from toolkit.render import distribution_table
from toolkit.repository import Repository

__all__ = ["Customer", "Order", "TenantDoc", "demo_config", "run_demo"]

COUNTRIES = ["NL", "DE", "FR", "PT", "JP", "BR", "KE", "CA"]
TENANTS = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell", "cyberdyne", "wonka"]


class Customer(Entity, store="customers", key="id", indexes=["country"]):
    id: int
    name: str
    country: str
    signed_up: dt.date
    lifetime_value: float = 0.0


class Order(Entity, store="orders", key="id", shard_key="month"):
    id: str
    month: str
    customer_id: int
    total: float
    items: list[dict[str, object]] = []


class TenantDoc(Entity, store="tenants", key="id", shard_key="tenant"):
    id: str
    tenant: str
    title: str


def demo_config(data_dir: Path) -> Config:
    """The demo's stores, in SQLite files under ``data_dir``."""

    def shards(store: str, count: int) -> tuple[ShardConfig, ...]:
        return tuple(ShardConfig(f"s{i}", sqlite_url(data_dir / f"{store}.s{i}.db")) for i in range(count))

    stores = {
        "customers": StoreConfig("customers", "relational", shards("customers", 4), RouterConfig("hash")),
        "orders": StoreConfig(
            "orders",
            "relational",
            shards("orders", 3),
            RouterConfig(
                "range",
                {"ranges": [{"shard": "s0", "upto": "2024-05"}, {"shard": "s1", "upto": "2024-09"}, {"shard": "s2"}]},
            ),
        ),
        "tenants": StoreConfig(
            "tenants",
            "relational",
            shards("tenants", 3),
            RouterConfig("directory", {"entries": {"acme": "s2", "globex": "s2"}}),
        ),
    }
    return Config(CatalogConfig(sqlite_url(data_dir / "catalog.db")), stores, data_dir, source="demo")


def run_demo(
    console: Console, data_dir: Path | None = None, *, customers: int = 3000, seed: int = 7
) -> dict[str, dict[str, int]]:
    """Run the narrated demo; returns rows per shard per store (what the tables draw)."""
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="polystore-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    console.rule("[bold]polystore demo")
    console.print(f"Embedded default: every shard is a SQLite file under [cyan]{data_dir}[/]; no server runs.\n")
    with Toolkit(demo_config(data_dir)) as toolkit:
        _show_layout(console, toolkit)
        customer_repo = toolkit.repository(Customer)
        order_repo = toolkit.repository(Order)
        tenant_repo = toolkit.repository(TenantDoc)

        people = [
            Customer(
                id=i,
                name=f"customer {i}",
                country=rng.choice(COUNTRIES),
                signed_up=dt.date(2020, 1, 1) + dt.timedelta(days=rng.randrange(1500)),
                lifetime_value=round(rng.uniform(0, 5000), 2),
            )
            for i in range(1, customers + 1)
        ]
        orders = [
            Order(
                id=f"o-{i:05d}",
                month=f"2024-{rng.randint(1, 12):02d}",
                customer_id=rng.randint(1, customers),
                total=round(rng.uniform(5, 500), 2),
                items=[{"sku": f"sku-{rng.randint(1, 50)}", "qty": rng.randint(1, 3)}],
            )
            for i in range(customers * 4 // 5)
        ]
        weights = [30, 20] + [5] * (len(TENANTS) - 2)  # two big tenants
        docs = [
            TenantDoc(id=f"d-{i:05d}", tenant=tenant, title=f"document {i}")
            for i, tenant in enumerate(rng.choices(TENANTS, weights=weights, k=customers // 5))
        ]
        _bulk_load(console, [(customer_repo, people), (order_repo, orders), (tenant_repo, docs)])

        _queries(console, customer_repo, order_repo, tenant_repo)

        counts = {
            "customers": customer_repo.count_by_shard(),
            "orders": order_repo.count_by_shard(),
            "tenants": tenant_repo.count_by_shard(),
        }
        console.print()
        console.print(distribution_table("customers · hash router: an even spread", counts["customers"]))
        console.print(
            distribution_table("orders · range router by month: s0 < 2024-05 <= s1 < 2024-09 <= s2", counts["orders"])
        )
        console.print(distribution_table("tenants · directory: acme and globex pinned to s2", counts["tenants"]))
        console.print(
            "\nNext: [bold]polystore status[/] and [bold]polystore route[/] on your own polystore.toml "
            "([bold]polystore init[/] writes one)."
        )
        return counts


def _show_layout(console: Console, toolkit: Toolkit) -> None:
    table = Table(title="stores", title_justify="left")
    table.add_column("store")
    table.add_column("router")
    table.add_column("shards")
    table.add_column("epoch", justify="right")
    for name in ("customers", "orders", "tenants"):
        store = toolkit.store(name)
        table.add_row(name, store.router.kind, ", ".join(store.router.shards), str(store.topology.epoch))
    console.print(table)


def _bulk_load(console: Console, batches: Sequence[tuple[Repository[Any], Sequence[Entity]]]) -> None:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        for repo, entities in batches:
            name = type(entities[0]).__name__ if entities else "?"
            task = progress.add_task(f"writing {name}", total=len(entities), rate="")
            started = dt.datetime.now()
            for start in range(0, len(entities), 250):
                chunk = entities[start : start + 250]
                repo.put_many(chunk)
                elapsed = (dt.datetime.now() - started).total_seconds() or 1e-9
                progress.update(task, advance=len(chunk), rate=f"{(start + len(chunk)) / elapsed:,.0f} rows/s")


def _queries(
    console: Console, customers: Repository[Customer], orders: Repository[Order], tenants: Repository[TenantDoc]
) -> None:
    table = Table(title="reads and queries", title_justify="left")
    table.add_column("call")
    table.add_column("shards visited")
    table.add_column("result")

    found = customers.get(42)
    table.add_row("customers.get(42)", ", ".join(customers.shards_for_key(42)), found.name if found else "-")
    where = {"country": "NL", "lifetime_value": {"ge": 4000}}
    top = customers.find(where, order_by="-lifetime_value", limit=3)
    table.add_row(
        'customers.find({"country": "NL", "lifetime_value": {"ge": 4000}}, order_by="-lifetime_value", limit=3)',
        ", ".join(customers.shards_for(where)),
        ", ".join(f"{c.name} ({c.lifetime_value:,.0f})" for c in top),
    )
    spring = {"month": {"ge": "2024-03", "lt": "2024-05"}}
    table.add_row(
        'orders.count({"month": {"ge": "2024-03", "lt": "2024-05"}})',
        ", ".join(orders.shards_for(spring)),
        f"{orders.count(spring):,} orders",
    )
    autumn = {"month": {"in": ["2024-10", "2024-11"]}, "total": {"gt": 450}}
    table.add_row(
        'orders.find({"month": {"in": ["2024-10", "2024-11"]}, "total": {"gt": 450}}, limit=3)',
        ", ".join(orders.shards_for(autumn)),
        ", ".join(f"{o.id} ({o.total:.0f})" for o in orders.find(autumn, order_by="-total", limit=3)),
    )
    acme = {"tenant": "acme"}
    table.add_row(
        'tenants.count({"tenant": "acme"})', ", ".join(tenants.shards_for(acme)), f"{tenants.count(acme):,} documents"
    )
    wonka = {"tenant": "wonka"}
    table.add_row(
        'tenants.count({"tenant": "wonka"})',
        ", ".join(tenants.shards_for(wonka)),
        f"{tenants.count(wonka):,} documents",
    )
    console.print(table)
