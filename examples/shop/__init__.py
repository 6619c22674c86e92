"""A small but real shop whose data lives in five kinds of database.

Customers and orders are relational (hash-sharded by customer), the ledger is
range-routed by month, sellers are directory-routed (big sellers pinned to their own
shard), the product catalogue is documents, carts and sessions are key-value with a
TTL, each customer's order events are a column-family partition in time order, and
"follows" and "bought together" are a graph. Checkout is a saga (``checkout``).

Run it with no server (SQLite files under ``./.polystore``)::

    python -m examples.shop

or, unchanged, on the real servers (``stack/stack up`` or docker-compose)::

    python -m examples.shop --config examples/shop/polystore.stack.toml

``polystore demo`` runs this application and narrates what went where.
"""

from __future__ import annotations

from pathlib import Path

from examples.shop.app import BAD_CARD, ENTITIES, GOOD_CARD, Placement, SeedReport, Shop, build
from examples.shop.checkout import CHECKOUT, SAGAS, OutOfStock, PaymentDeclined
from toolkit.config import Config, parse_config

__all__ = [
    "BAD_CARD",
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
