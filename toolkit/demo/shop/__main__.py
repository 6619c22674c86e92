"""``python -m toolkit.demo.shop [--config FILE]``: seed the shop, check out twice, report.

Without ``--config`` the stores are SQLite files under ``--dir`` (default: the working
directory's ``.polystore``); with it, wherever the file says.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from toolkit import Toolkit
from toolkit.demo.shop import BAD_CARD, build, embedded_config


def main(argv: list[str] | None = None, *, prog: str = "python -m toolkit.demo.shop") -> int:
    """Run the shop once and print what it did; ``prog`` is the command name ``--help`` shows."""
    parser = argparse.ArgumentParser(prog=prog, description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--config", "-c", type=Path, help="a polystore.toml (default: SQLite files, no server)")
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="where the SQLite files go without --config")
    parser.add_argument("--customers", type=int, default=200, help="how many customers to seed")
    args = parser.parse_args(argv)
    config = args.config if args.config is not None else embedded_config(args.dir)
    run = f"{time.time_ns():x}"[-8:]
    with Toolkit(config) as toolkit:
        shop = build(toolkit)
        report = shop.seed(customers=args.customers)
        print(f"seeded {report.total:,} entities: " + ", ".join(f"{n} {name}" for name, n in report.written.items()))
        for placement in shop.placements():
            shards = ", ".join(f"{shard}={rows}" for shard, rows in placement.shards.items())
            print(f"  {placement.entity:<12} {placement.store:<10} {placement.kind:<10} {placement.router:<9} {shards}")
        shop.login(1)
        for sku, qty in [("KIT-000", 1), ("OFF-001", 2)]:
            shop.add_to_cart(1, sku, qty)
        paid = shop.checkout(1, f"o-{run}-1")
        print(f"checkout o-{run}-1: {paid.state}; customer 1 bought {', '.join(shop.bought(1))}")
        shop.add_to_cart(2, "GAR-002", 1)
        declined = shop.checkout(2, f"o-{run}-2", card=BAD_CARD)
        print(f"checkout o-{run}-2: {declined.state} ({declined.error})")
        order = shop.orders.get(f"o-{run}-2", shard_key=2)
        print(f"  order o-{run}-2 after compensation: {'gone' if order is None else order.status}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
