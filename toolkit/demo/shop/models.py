"""The shop's entities, each declared for the store whose data model suits it.

=================  ==========  ===================================================
store              kind        entities (shard key)
=================  ==========  ===================================================
``customers``      relational  Customer, Order (customer id: a customer's orders
                               live on the customer's shard)
``ledger``         relational  LedgerEntry (month: range-routed, old months on an
                               archive shard)
``sellers``        relational  Seller, Payout (seller id: directory-routed, big
                               sellers pinned to a shard of their own)
``products``       document    Product (sku; nested attributes and tags)
``carts``          keyvalue    Cart, Session (expire on their own: TTL)
``inventory``      keyvalue    Stock (atomic counters)
``events``         column      OrderEvent (partition: customer, clustering: time)
``social``         graph       Shopper, Item (FOLLOWS, BOUGHT, BOUGHT_WITH)
=================  ==========  ===================================================
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from toolkit import Entity

__all__ = [
    "CART_TTL",
    "SESSION_TTL",
    "Cart",
    "Customer",
    "Item",
    "LedgerEntry",
    "Order",
    "OrderEvent",
    "Payout",
    "Product",
    "Seller",
    "Session",
    "Shopper",
    "Stock",
]

CART_TTL = 3 * 24 * 3600
"""An abandoned cart disappears after three days."""
SESSION_TTL = 30 * 60
"""A login lasts half an hour."""


# -- relational, hash-routed by customer -----------------------------------------------


class Customer(Entity, store="customers", key="id", indexes=["country"]):
    id: int
    name: str
    email: str
    country: str


class Order(Entity, store="customers", key="id", shard_key="customer_id", indexes=["customer_id", "month"]):
    """An order lives beside its customer: "my orders" reads one shard."""

    id: str
    customer_id: int
    month: str
    placed_at: dt.datetime
    status: str
    total: float
    lines: list[dict[str, Any]]


# -- relational, range-routed by month --------------------------------------------------


class LedgerEntry(Entity, store="ledger", key="id", shard_key="month", indexes=["month"]):
    """The money side of an order: finance reads by month, so months stay together."""

    id: str
    month: str
    customer_id: int
    amount: float
    card_last4: str


# -- relational, directory-routed by seller ----------------------------------------------


class Seller(Entity, store="sellers", key="id"):
    id: str
    name: str
    plan: str


class Payout(Entity, store="sellers", key="id", shard_key="seller_id", indexes=["seller_id"]):
    """What a seller is owed for one order line; a big seller's rows are on its own shard."""

    id: str
    seller_id: str
    order_id: str
    month: str
    amount: float


# -- document -------------------------------------------------------------------------------


class Product(Entity, store="products", key="sku", indexes=["category"]):
    sku: str
    name: str
    seller_id: str
    category: str
    price: float
    attributes: dict[str, Any] = {}
    tags: list[str] = []


# -- key-value ------------------------------------------------------------------------------


class Cart(Entity, store="carts", key="customer_id", ttl=CART_TTL):
    customer_id: int
    lines: list[dict[str, Any]] = []


class Session(Entity, store="carts", key="token", ttl=SESSION_TTL):
    token: str
    customer_id: int
    pages: int = 0


class Stock(Entity, store="inventory", key="sku"):
    sku: str
    units: int


# -- column family ---------------------------------------------------------------------------


class OrderEvent(Entity, store="events", key=("customer_id", "at"), shard_key="customer_id"):
    """A customer's order history: one partition per customer, in time order."""

    customer_id: int
    at: dt.datetime
    kind: str
    order_id: str


# -- graph ----------------------------------------------------------------------------------


class Shopper(Entity, store="social", key="id"):
    id: int
    name: str


class Item(Entity, store="social", key="sku"):
    sku: str
    name: str
