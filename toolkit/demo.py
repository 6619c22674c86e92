"""``polystore demo``: the shop example (``examples/shop``) on the embedded default, narrated.

Four short acts, all on SQLite files in a fresh directory (no server, no optional driver):

1. the shop's stores (five kinds, hash/range/directory routers) and where the seeded
   data went: rows per shard with bars;
2. a few reads, each with the shards it had to visit;
3. two checkouts through the saga: one completes, one has its card declined and is
   compensated (the order and the stock reservation are undone);
4. a rebalance that adds a shard to ``customers``: the plan, the progress bars of the real
   rebalancer (``sharding.rebalance``), and the distribution before and after.

The shop is imported from the source checkout (``examples/`` is not part of the installed
distribution), which is where the README's first command runs it.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from toolkit.errors import ToolkitError
from toolkit.facade import Toolkit
from toolkit.render import bar, distribution_table
from toolkit.saga import SagaRecord

__all__ = ["REBALANCED_STORE", "load_shop", "run_demo"]

REBALANCED_STORE = "customers"
"""The store the demo grows by one shard."""
_SHARD_BAR = 8


def load_shop() -> ModuleType:
    """``examples.shop`` from the source checkout this toolkit was installed from."""
    try:
        return importlib.import_module("examples.shop")
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parent.parent
        if not (root / "examples" / "shop" / "__init__.py").exists():
            raise ToolkitError(
                "polystore demo runs examples/shop from a source checkout; "
                "clone the repository and `pip install -e .` there"
            ) from None
        sys.path.insert(0, str(root))
        return importlib.import_module("examples.shop")


def run_demo(
    console: Console, data_dir: Path | None = None, *, customers: int = 600, seed: int = 7
) -> dict[str, dict[str, int]]:
    """Run the narrated demo. Returns rows per shard per store at the end (after the rebalance)."""
    shop_module = load_shop()
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="polystore-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    config = shop_module.embedded_config(data_dir)
    console.rule("[bold]polystore demo · a shop in five kinds of database")
    console.print(
        f"Embedded default: every shard is a SQLite file under [cyan]{config.data_dir}[/]; no server runs.\n"
        f"The same application runs on PostgreSQL, MongoDB, Redis, Cassandra and Neo4j with "
        f"[bold]--config examples/shop/polystore.stack.toml[/].\n"
    )
    with Toolkit(config) as toolkit:
        shop = shop_module.build(toolkit)
        with console.status("seeding: sellers, products, customers and two years of orders"):
            report = shop.seed(customers=customers, seed=seed)
        console.print(f"[bold]1. What was written where[/] · {report.total:,} entities\n")
        console.print(_placements_table(shop.placements()))

        console.print("\n[bold]2. Reads, and the shards each one visited[/]\n")
        console.print(_reads_table(shop))

        console.print("\n[bold]3. Checkout is a saga across six stores[/]\n")
        _checkouts(console, toolkit, shop, shop_module)

        console.print(f"\n[bold]4. Rebalance: add a shard to [cyan]{REBALANCED_STORE}[/] while it holds data[/]\n")
        _rebalance(console, toolkit, shop, config)

        counts = {name: _store_counts(shop, name) for name in dict.fromkeys(p.store for p in shop.placements())}
    console.print(
        "\nNext: read [bold]examples/shop/[/] (the application), [bold]docs/index.md[/] (the guide); "
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


def _placements_table(placements: Sequence[Any]) -> Table:
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


def _reads_table(shop: Any) -> Table:
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


def _checkouts(console: Console, toolkit: Toolkit, shop: Any, module: ModuleType) -> None:
    session = shop.login(7)
    console.print(
        f"customer 7 logs in (session expires in {shop.sessions.ttl(session.token):.0f}s) and fills a cart "
        f"(expires in {module.models.CART_TTL // 3600}h):"
    )
    for sku, qty in [("KIT-000", 1), ("OFF-001", 2), ("HOM-003", 1)]:
        shop.add_to_cart(7, sku, qty)
    units = {line["sku"]: shop.stock.get(line["sku"]).units for line in shop.carts.get(7).lines}
    paid = shop.checkout(7, "demo-1")
    console.print(_saga_line(toolkit.sagas.get(paid.id)))
    after = {sku: shop.stock.get(sku).units for sku in units}
    console.print(
        "  stock "
        + ", ".join(f"{sku} {units[sku]}→{after[sku]}" for sku in units)
        + f" · order status {shop.orders.get('demo-1', shard_key=7).status}"
        + f" · bought together with KIT-000 now: {', '.join(shop.bought_together('KIT-000'))}"
    )

    shop.add_to_cart(8, "GAR-002", 3)
    before = shop.stock.get("GAR-002").units
    declined = shop.checkout(8, "demo-2", card=module.BAD_CARD)
    console.print(_saga_line(toolkit.sagas.get(declined.id)))
    order = shop.orders.get("demo-2", shard_key=8)
    console.print(
        f"  compensated: order demo-2 {'is gone' if order is None else 'is still there!'}, "
        f"GAR-002 stock {before}→{shop.stock.get('GAR-002').units} (reserved, then given back), "
        f"the cart is kept ({len(shop.carts.get(8).lines)} line)"
    )
    console.print("  [dim]polystore saga list / show ID: the saga log in the catalog[/]")


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


def _store_counts(shop: Any, store: str) -> dict[str, int]:
    """Rows per shard of a store, summed over the entities it holds."""
    totals: dict[str, int] = {}
    for placement in shop.placements():
        if placement.store == store:
            for shard, rows in placement.shards.items():
                totals[shard] = totals.get(shard, 0) + rows
    return totals


def _rebalance(console: Console, toolkit: Toolkit, shop: Any, config: Any) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from sharding.rebalance import RebalanceOptions, Rebalancer, plan_rebalance
    from toolkit.cli_rebalance import _Bars, plan_table, summary_table
    from toolkit.config import RouterConfig, ShardConfig, sqlite_url

    current = config.stores[REBALANCED_STORE]
    added = ShardConfig(f"s{len(current.shards)}", sqlite_url(config.data_dir / f"{REBALANCED_STORE}.added.db"))
    target_store = dataclasses.replace(current, shards=(*current.shards, added), router=RouterConfig("hash"))
    target = dataclasses.replace(config, stores={REBALANCED_STORE: target_store}, source="demo target")

    before = _store_counts(shop, REBALANCED_STORE)
    epoch = toolkit.store(REBALANCED_STORE).topology.epoch
    (plan,) = plan_rebalance(toolkit, target, REBALANCED_STORE)
    console.print(plan_table(plan))
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        drawing = _Bars(progress)
        # One process and no concurrent writers: a short settle keeps the demo quick. A live
        # application keeps the default (1 s), longer than every process's poll interval.
        rebalancer = Rebalancer(toolkit, options=RebalanceOptions(settle=0.15), progress=drawing)
        summary = rebalancer.run(rebalancer.start(plan))
        drawing.close()
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
