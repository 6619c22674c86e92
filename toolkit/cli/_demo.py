"""``polystore demo``: the shop (``toolkit.demo.shop``) on the embedded default, narrated.

Four short acts, all on SQLite files in a fresh directory (no server, no optional driver):

1. the shop's stores (five kinds, hash/range/directory routers) and where the seeded
   data went: rows per shard with bars;
2. a few reads, each with the shards it had to visit;
3. two checkouts through the saga: one completes, one has its card declined and is
   compensated (the order and the stock reservation are undone);
4. a rebalance that adds a shard to ``customers``: the plan, the progress bars of the real
   rebalancer (``sharding.rebalance``), and the distribution before and after.

The shop ships in the distribution, so this runs from an installed wheel as well as
from a source checkout.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sharding.rebalance import RebalanceOptions, Rebalancer, plan_rebalance
from toolkit.cli._common import console as default_console
from toolkit.cli._common import errors
from toolkit.cli._rebalance_view import plan_table, rebalance_bars, summary_table
from toolkit.cli._render import bar, distribution_table
from toolkit.config import Config, RouterConfig, ShardConfig, sqlite_url
from toolkit.demo import shop as shop_app
from toolkit.demo.shop import Placement, Shop
from toolkit.facade import Toolkit
from toolkit.saga import SagaRecord

__all__ = ["REBALANCED_STORE", "demo", "run_demo"]

REBALANCED_STORE = "customers"
"""The store the demo grows by one shard."""
_SHARD_BAR = 8


def demo(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where the demo's SQLite files go (default: a new temp dir).")
    ] = None,
    customers: Annotated[int, typer.Option(min=10, max=1_000_000, help="How many customers to seed.")] = 600,
) -> None:
    """Run the shop example on the embedded default: what went where, a saga, a rebalance."""
    with errors():
        run_demo(default_console, data_dir, customers=customers)


def run_demo(
    console: Console, data_dir: Path | None = None, *, customers: int = 600, seed: int = 7
) -> dict[str, dict[str, int]]:
    """Run the narrated demo. Returns rows per shard per store at the end (after the rebalance)."""
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="polystore-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    config = shop_app.embedded_config(data_dir)
    console.rule("[bold]polystore demo · a shop in five kinds of database")
    console.print(
        f"Embedded default: every shard is a SQLite file under [cyan]{config.data_dir}[/]; no server runs.\n"
        f"The same application runs on PostgreSQL, MongoDB, Redis, Cassandra and Neo4j with "
        f"[bold]python -m toolkit.demo.shop --config {shop_app.STACK_CONFIG}[/].\n"
    )
    with Toolkit(config) as toolkit:
        shop = shop_app.build(toolkit)
        with console.status("seeding: sellers, products, customers and two years of orders"):
            report = shop.seed(customers=customers, seed=seed)
        console.print(f"[bold]1. What was written where[/] · {report.total:,} entities\n")
        console.print(_placements_table(shop.placements()))

        console.print("\n[bold]2. Reads, and the shards each one visited[/]\n")
        console.print(_reads_table(shop))

        console.print("\n[bold]3. Checkout is a saga across six stores[/]\n")
        _checkouts(console, toolkit, shop)

        console.print(f"\n[bold]4. Rebalance: add a shard to [cyan]{REBALANCED_STORE}[/] while it holds data[/]\n")
        _rebalance(console, toolkit, shop, config)

        counts = {name: _store_counts(shop, name) for name in dict.fromkeys(p.store for p in shop.placements())}
    console.print(
        f"\nNext: read [bold]{Path(shop_app.__file__).parent}[/] (the application), "
        "[bold]docs/index.md[/] (the guide); "
        "[bold]polystore init[/] writes a polystore.toml of your own."
    )
    return counts


# -- act 1: placements --------------------------------------------------------------------


def _shard_bars(shards: Mapping[str, int], largest: int) -> Text:
    text = Text()
    width = max((len(shard) for shard in shards), default=0)
    for index, (shard, rows) in enumerate(shards.items()):
        if index:
            text.append("\n")
        text.append(f"{shard:<{width}} ")
        text.append_text(bar(rows, largest, _SHARD_BAR) if rows else Text("·", style="dim"))
        text.append(f" {rows:,}")
    return text


def _placements_table(placements: Sequence[Placement]) -> Table:
    table = Table(title_justify="left")
    table.add_column("entity", no_wrap=True)
    table.add_column("store · kind · router", no_wrap=True)
    table.add_column("rows", justify="right")
    table.add_column("rows per shard", no_wrap=True)
    for placement in placements:
        largest = max(placement.shards.values(), default=0)
        table.add_row(
            placement.entity,
            Text.assemble(placement.store, "\n", (f"{placement.kind} · {placement.router}", "dim")),
            f"{placement.rows:,}",
            _shard_bars(placement.shards, largest),
        )
    table.caption = "hash spreads evenly · range keeps months together · directory pins big sellers to 'big'"
    return table


# -- act 2: reads ---------------------------------------------------------------------------


def _reads_table(shop: Shop) -> Table:
    table = Table(title_justify="left")
    table.add_column("call")
    table.add_column("shards visited")
    table.add_column("result", overflow="fold")

    def visited(repository: Any, where: Mapping[str, Any] | None = None) -> str:
        return ", ".join(repository.shards_for(where))

    who = next(customer for customer in range(1, 1000) if len(shop.orders_of(customer)) > 1)
    orders = shop.orders_of(who)
    table.add_row(
        f"shop.orders_of({who})",
        visited(shop.orders, {"customer_id": who}),
        ", ".join(f"{o.id} {o.total:.2f}" for o in orders[:3]),
    )
    table.add_row(
        "shop.revenue('2024-11')", visited(shop.ledger, {"month": "2024-11"}), f"{shop.revenue('2024-11'):,.2f}"
    )
    table.add_row(
        "shop.payouts_of('megamart')",
        visited(shop.payouts, {"seller_id": "megamart"}),
        f"{shop.payouts_of('megamart'):,.2f}",
    )
    found = shop.search("kitchen", "red", 100.0)
    table.add_row(
        "shop.search('kitchen', 'red', 100.0)",
        visited(shop.products, {"category": "kitchen"}),
        ", ".join(f"{p.name} {p.price:.2f}" for p in found[:3]) or "none",
    )
    history = shop.history(who, limit=3)
    table.add_row(
        f"shop.history({who}, limit=3)",
        visited(shop.events, {"customer_id": who}),
        ", ".join(f"{e.at:%Y-%m-%d} {e.kind}" for e in history) or "none",
    )
    table.add_row(
        "shop.bought_together('KIT-000')",
        visited(shop.items, {"sku": "KIT-000"}),
        ", ".join(shop.bought_together("KIT-000")) or "none yet",
    )
    return table


# -- act 3: sagas ---------------------------------------------------------------------------


def _checkouts(console: Console, toolkit: Toolkit, shop: Shop) -> None:
    session = shop.login(7)
    console.print(
        f"customer 7 logs in (session expires in {shop.sessions.ttl(session.token) or 0:.0f}s) and fills a cart "
        f"(expires in {shop_app.CART_TTL // 3600}h):"
    )
    for sku, qty in [("KIT-000", 1), ("OFF-001", 2), ("HOM-003", 1)]:
        shop.add_to_cart(7, sku, qty)
    units = {line["sku"]: _units(shop, line["sku"]) for line in _cart_lines(shop, 7)}
    paid = shop.checkout(7, "demo-1")
    console.print(_saga_line(toolkit.sagas.get(paid.id)))
    after = {sku: _units(shop, sku) for sku in units}
    order = shop.orders.get("demo-1", shard_key=7)
    console.print(
        "  stock "
        + ", ".join(f"{sku} {units[sku]}→{after[sku]}" for sku in units)
        + f" · order status {'missing!' if order is None else order.status}"
        + f" · bought together with KIT-000 now: {', '.join(shop.bought_together('KIT-000'))}"
    )

    shop.add_to_cart(8, "GAR-002", 3)
    before = _units(shop, "GAR-002")
    declined = shop.checkout(8, "demo-2", card=shop_app.BAD_CARD)
    console.print(_saga_line(toolkit.sagas.get(declined.id)))
    order = shop.orders.get("demo-2", shard_key=8)
    console.print(
        f"  compensated: order demo-2 {'is gone' if order is None else 'is still there!'}, "
        f"GAR-002 stock {before}→{_units(shop, 'GAR-002')} (reserved, then given back), "
        f"the cart is kept ({len(_cart_lines(shop, 8))} line)"
    )
    console.print("  [dim]polystore saga list / show ID: the saga log in the catalog[/]")


def _units(shop: Shop, sku: str) -> int:
    """Units in stock (the demo seeded every SKU it uses)."""
    stock = shop.stock.get(sku)
    return 0 if stock is None else stock.units


def _cart_lines(shop: Shop, customer: int) -> list[dict[str, Any]]:
    cart = shop.carts.get(customer)
    return [] if cart is None else cart.lines


def _saga_line(record: SagaRecord) -> Text:
    """One line per saga: each step's fate, then the compensations in the order they ran."""
    marks = {"step_done": ("✓", "green"), "step_failed": ("✗", "bold red"), "comp_done": ("↺", "yellow")}
    text = Text(f"  {record.idempotency_key} · ")
    text.append(str(record.state), style="bold green" if record.state == "completed" else "bold yellow")
    text.append(": ")
    parts = []
    for event in record.events:
        if event.kind in marks and event.step is not None and event.step >= 0:
            mark, style = marks[event.kind]
            name = record.steps[event.step]
            parts.append(Text(f"{'undo ' if event.kind == 'comp_done' else ''}{name} {mark}", style=style))
    text.append_text(Text(" → ").join(parts))
    if record.error:
        text.append(f"\n    {record.error}", style="red")
    return text


# -- act 4: rebalance -------------------------------------------------------------------------


def _store_counts(shop: Shop, store: str) -> dict[str, int]:
    """Rows per shard of a store, summed over the entities it holds."""
    totals: dict[str, int] = {}
    for placement in shop.placements():
        if placement.store == store:
            for shard, rows in placement.shards.items():
                totals[shard] = totals.get(shard, 0) + rows
    return totals


def _rebalance(console: Console, toolkit: Toolkit, shop: Shop, config: Config) -> None:
    current = config.stores[REBALANCED_STORE]
    added = ShardConfig(f"s{len(current.shards)}", sqlite_url(config.data_dir / f"{REBALANCED_STORE}.added.db"))
    target_store = dataclasses.replace(current, shards=(*current.shards, added), router=RouterConfig("hash"))
    target = dataclasses.replace(config, stores={REBALANCED_STORE: target_store}, source="demo target")

    before = _store_counts(shop, REBALANCED_STORE)
    epoch = toolkit.store(REBALANCED_STORE).topology.epoch
    (plan,) = plan_rebalance(toolkit, target, REBALANCED_STORE)
    console.print(plan_table(plan))
    with rebalance_bars(console) as drawing:
        # One process and no concurrent writers: a short settle keeps the demo quick. A live
        # application keeps the default (1 s), longer than every process's poll interval.
        rebalancer = Rebalancer(toolkit, options=RebalanceOptions(settle=0.15), progress=drawing)
        summary = rebalancer.run(rebalancer.start(plan))
    console.print(summary_table(summary))
    toolkit.refresh()
    after = _store_counts(shop, REBALANCED_STORE)
    new_epoch = toolkit.store(REBALANCED_STORE).topology.epoch
    console.print(distribution_table(f"{REBALANCED_STORE} before · epoch {epoch}", before))
    console.print(distribution_table(f"{REBALANCED_STORE} after · epoch {new_epoch}", after))
    moved = sum(before.values()) - sum(after[shard] for shard in before)
    console.print(
        f"{moved:,} of {sum(before.values()):,} rows moved ({moved / max(1, sum(before.values())):.1%}), "
        f"all onto {added.name}: a hash router gives the new shard a quarter of the slots, and only their rows "
        "move (orders move with their customer). "
        "Every step was journaled: [bold]polystore rebalance status[/], "
        "[bold]resume[/] after a crash, [bold]abort[/] before the cut-over."
    )
