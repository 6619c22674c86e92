"""A small but real shop whose data lives in five kinds of database.

Customers and orders are relational (hash-sharded by customer), the ledger is
range-routed by month, sellers are directory-routed (big sellers pinned to their own
shard), the product catalogue is documents, carts and sessions are key-value with a
TTL, each customer's order events are a column-family partition in time order, and
"follows" and "bought together" are a graph. Checkout is a saga (``checkout``).

It ships inside the distribution (with its two configuration files as package data)
so that ``polystore demo``, which runs it and narrates what went where, works from an
installed wheel; ``examples/shop/`` in the source tree points here. It uses only the
public API (``toolkit``, ``toolkit.saga``, ``toolkit.config``), as an application would.

Run it with no server (SQLite files under ``./.polystore``)::

    python -m toolkit.demo.shop

or, unchanged, on the real servers (``stack/stack up`` or docker-compose)::

    python -m toolkit.demo.shop --config toolkit/demo/shop/polystore.stack.toml
"""

from __future__ import annotations

from pathlib import Path

from toolkit.config import Config, parse_config
from toolkit.demo.shop.app import BAD_CARD, ENTITIES, GOOD_CARD, Placement, SeedReport, Shop, build
from toolkit.demo.shop.checkout import CHECKOUT, SAGAS, OutOfStock, PaymentDeclined
from toolkit.demo.shop.models import CART_TTL

__all__ = [
    "BAD_CARD",
    "CART_TTL",
    "CHECKOUT",
    "EMBEDDED_CONFIG",
    "ENTITIES",
    "GOOD_CARD",
    "SAGAS",
    "STACK_CONFIG",
    "OutOfStock",
    "PaymentDeclined",
    "Placement",
    "SeedReport",
    "Shop",
    "build",
    "embedded_config",
]

EMBEDDED_CONFIG = Path(__file__).resolve().parent / "polystore.toml"
"""The shop's stores as SQLite files (relative paths, anchored where you choose)."""
STACK_CONFIG = Path(__file__).resolve().parent / "polystore.stack.toml"
"""The same stores on the real servers."""


def embedded_config(directory: Path) -> Config:
    """``polystore.toml`` with its SQLite files under ``directory/.polystore``."""
    return parse_config(EMBEDDED_CONFIG.read_text(encoding="utf-8"), file=str(EMBEDDED_CONFIG), base_dir=directory)
