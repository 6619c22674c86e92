"""The shop as an application: ``build(toolkit)`` and what a web handler would call.

Nothing here knows which database holds what: the same code runs on the SQLite files of
``polystore.toml`` (no server), on the plain embedded default (``Toolkit.embedded()``),
and on the real servers of ``polystore.stack.toml``. Only the configuration changes.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from toolkit import Entity, Toolkit
from toolkit.demo.shop.checkout import CHECKOUT, DECLINED, payload
from toolkit.demo.shop.models import (
    Cart,
    Customer,
    Item,
    LedgerEntry,
    Order,
    OrderEvent,
    Payout,
    Product,
    Seller,
    Session,
    Shopper,
    Stock,
)
from toolkit.saga import SagaOutcome

__all__ = ["BAD_CARD", "ENTITIES", "GOOD_CARD", "Placement", "SeedReport", "Shop", "build"]

ENTITIES: tuple[type[Entity], ...] = (
    Customer,
    Order,
    LedgerEntry,
    Seller,
    Payout,
    Product,
    Cart,
    Session,
    Stock,
    OrderEvent,
    Shopper,
    Item,
)
"""Every entity of the shop, in the order the stores are listed in ``models``."""

GOOD_CARD = ("tok_visa", "4242")
BAD_CARD = (DECLINED, "0002")

SELLERS = {
    "megamart": ("MegaMart", "enterprise"),
    "bigbox": ("BigBox", "enterprise"),
    "inkwell": ("Inkwell Paper Co", "standard"),
    "tealeaf": ("Tea Leaf", "standard"),
    "ferrum": ("Ferrum Tools", "standard"),
    "looms": ("Looms & Yarn", "standard"),
    "pixel": ("Pixel Goods", "standard"),
    "verde": ("Verde Plants", "standard"),
}
"""The two enterprise sellers are pinned to their own shard in both configs (``entries``)."""
CATEGORIES = {
    "kitchen": ["kettle", "teapot", "knife", "pan"],
    "office": ["notebook", "pen", "lamp", "stapler"],
    "garden": ["trowel", "pot", "hose", "seeds"],
    "home": ["blanket", "rug", "mug", "candle"],
}
COLORS = ["red", "green", "blue", "black", "white"]
COUNTRIES = ["NL", "DE", "FR", "PT", "JP", "BR", "KE", "CA"]
HISTORY_START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
HISTORY_MONTHS = 24


@dataclass(frozen=True, slots=True)
class SeedReport:
    """How many entities ``Shop.seed`` wrote, per entity class name."""

    written: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.written.values())


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one entity's rows are: its store, the store's kind and router, rows per shard."""

    store: str
    kind: str
    router: str
    entity: str
    shards: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.shards.values())


class Shop:
    """The shop's use cases over one Toolkit. Cheap to build; holds no state of its own."""

    def __init__(self, toolkit: Toolkit) -> None:
        self.toolkit = toolkit
        self.customers = toolkit.repository(Customer)
        self.orders = toolkit.repository(Order)
        self.ledger = toolkit.repository(LedgerEntry)
        self.sellers = toolkit.repository(Seller)
        self.payouts = toolkit.repository(Payout)
        self.products = toolkit.repository(Product)
        self.carts = toolkit.repository(Cart)
        self.sessions = toolkit.repository(Session)
        self.stock = toolkit.repository(Stock)
        self.events = toolkit.repository(OrderEvent)
        self.shoppers = toolkit.repository(Shopper)
        self.items = toolkit.repository(Item)

    # -- reference data and history ---------------------------------------------------
    def seed(self, *, customers: int = 300, products: int = 48, seed: int = 7) -> SeedReport:
        """Sellers, products, stock, customers and two years of order history.

        History is imported in bulk (``put_many``), as a migration would: the saga is for
        live checkouts, where a failure must not leave half an order behind.
        """
        rng = random.Random(seed)
        written: dict[str, int] = {}

        def count(entity: type[Entity], n: int) -> None:
            written[entity.__name__] = written.get(entity.__name__, 0) + n

        count(Seller, self.sellers.put_many(Seller(id=s, name=n, plan=p) for s, (n, p) in SELLERS.items()))
        catalogue = list(_products(rng, products))
        count(Product, self.products.put_many(catalogue))
        count(Stock, self.stock.put_many(Stock(sku=p.sku, units=rng.randint(40, 90)) for p in catalogue))
        count(Item, self.items.put_many(Item(sku=p.sku, name=p.name) for p in catalogue))
        people = [
            Customer(id=i, name=f"customer {i}", email=f"c{i}@example.com", country=rng.choice(COUNTRIES))
            for i in range(1, customers + 1)
        ]
        count(Customer, self.customers.put_many(people))
        count(Shopper, self.shoppers.put_many(Shopper(id=c.id, name=c.name) for c in people))
        for customer in people[: max(1, customers // 10)]:  # a few shoppers follow others
            for other in rng.sample(people, 2):
                if other.id != customer.id:
                    self.shoppers.relate(customer.id, "FOLLOWS", other.id)

        # Live state: some shoppers are logged in, some left a cart (both expire by themselves).
        count(Session, self.sessions.put_many(Session(token=f"s{c.id}-{seed}", customer_id=c.id) for c in people[::12]))
        count(
            Cart,
            self.carts.put_many(
                Cart(customer_id=c.id, lines=[{"sku": p.sku, "qty": 1} for p in rng.sample(catalogue, 2)])
                for c in people[10::15]
            ),
        )

        orders: list[Order] = []
        ledger: list[LedgerEntry] = []
        payouts: list[Payout] = []
        events: list[OrderEvent] = []
        for customer in people:
            for number in range(rng.choice([0, 1, 1, 2, 3, 4])):
                at = HISTORY_START + dt.timedelta(days=rng.randrange(HISTORY_MONTHS * 30), minutes=number)
                lines = [_line(product, rng.randint(1, 2)) for product in rng.sample(catalogue, rng.randint(1, 3))]
                order_id = f"h{customer.id}-{number}"
                total = round(sum(line["price"] * line["qty"] for line in lines), 2)
                month = at.strftime("%Y-%m")
                orders.append(
                    Order(
                        id=order_id,
                        customer_id=customer.id,
                        month=month,
                        placed_at=at,
                        status="delivered",
                        total=total,
                        lines=lines,
                    )
                )
                ledger.append(
                    LedgerEntry(id=order_id, month=month, customer_id=customer.id, amount=total, card_last4="4242")
                )
                payouts.extend(
                    Payout(
                        id=f"{order_id}:{line['sku']}",
                        seller_id=line["seller"],
                        order_id=order_id,
                        month=month,
                        amount=round(line["price"] * line["qty"] * 0.9, 2),
                    )
                    for line in lines
                )
                events.append(OrderEvent(customer_id=customer.id, at=at, kind="placed", order_id=order_id))
                events.append(
                    OrderEvent(
                        customer_id=customer.id, at=at + dt.timedelta(days=2), kind="delivered", order_id=order_id
                    )
                )
        count(Order, self.orders.put_many(orders))
        count(LedgerEntry, self.ledger.put_many(ledger))
        count(Payout, self.payouts.put_many(payouts))
        count(OrderEvent, self.events.put_many(events))
        for order in orders[:40]:  # "bought together" from a sample of the history
            skus = sorted({line["sku"] for line in order.lines})
            for first, second in itertools.pairwise(skus):
                self.items.relate(first, "BOUGHT_WITH", second)
        return SeedReport(written)

    # -- what the web pages do ----------------------------------------------------------
    def login(self, customer: int) -> Session:
        """A session that expires by itself (the store's TTL), no cleanup job needed."""
        return self.sessions.put(Session(token=uuid.uuid4().hex, customer_id=customer))

    def add_to_cart(self, customer: int, sku: str, qty: int = 1) -> Cart:
        """Add a product to the customer's cart; every change restarts the cart's TTL."""
        cart = self.carts.get(customer) or Cart(customer_id=customer)
        lines = [line for line in cart.lines if line["sku"] != sku]
        previous = next((line["qty"] for line in cart.lines if line["sku"] == sku), 0)
        lines.append({"sku": sku, "qty": previous + qty})
        return self.carts.put(Cart(customer_id=customer, lines=lines))

    def checkout(
        self, customer: int, order: str, *, card: tuple[str, str] = GOOD_CARD, at: dt.datetime | None = None
    ) -> SagaOutcome:
        """Turn the cart into an order with the checkout saga (at most once per order id)."""
        cart = self.carts.get(customer)
        if cart is None or not cart.lines:
            raise LookupError(f"customer {customer} has an empty cart")
        found = self.products.get_many(line["sku"] for line in cart.lines)
        lines = [_line(found[line["sku"]], line["qty"]) for line in cart.lines]
        when = at or dt.datetime.now(dt.UTC)
        return self.toolkit.sagas.run(CHECKOUT, payload(order, customer, lines, card, when), key=f"checkout:{order}")

    def orders_of(self, customer: int) -> list[Order]:
        """A customer's orders, newest first: one shard (orders live beside their customer)."""
        return self.orders.find({"customer_id": customer}, order_by="-placed_at")

    def history(self, customer: int, limit: int = 5) -> list[OrderEvent]:
        """The latest events of a customer: one partition, read in clustering order."""
        return self.events.partition(customer, descending=True, limit=limit)

    def revenue(self, month: str) -> float:
        """A month's takings: the ledger is range-routed by month, so one shard answers."""
        return round(sum(entry.amount for entry in self.ledger.find({"month": month})), 2)

    def payouts_of(self, seller: str) -> float:
        """What a seller is owed: a directory lookup names the seller's shard."""
        return round(sum(payout.amount for payout in self.payouts.find({"seller_id": seller})), 2)

    def search(self, category: str, color: str, max_price: float) -> list[Product]:
        """Products by a nested attribute, cheapest first (a document query)."""
        where = {"category": category, "attributes.color": color, "price": {"le": max_price}}
        return self.products.find(where, order_by="price")

    def bought_together(self, sku: str) -> list[str]:
        """Products bought with this one (graph neighbours, either direction)."""
        return sorted(item.sku for item, _ in self.items.neighbors(sku, type="BOUGHT_WITH", direction="both"))

    def bought(self, customer: int) -> list[str]:
        """What a shopper bought through checkout (BOUGHT relationships)."""
        return sorted(item.sku for item, _ in self.shoppers.neighbors(customer, type="BOUGHT", to=Item))

    def placements(self) -> list[Placement]:
        """Rows per shard of every entity: what was written where."""
        found = []
        for entity in ENTITIES:
            repository = self.toolkit.repository(entity)
            store = repository.store
            found.append(
                Placement(store.name, store.kind, store.router.kind, entity.__name__, repository.count_by_shard())
            )
        return found


def build(toolkit: Toolkit) -> Shop:
    """The shop over ``toolkit`` (any config that declares its stores, or the embedded default)."""
    return Shop(toolkit)


def _products(rng: random.Random, count: int) -> Iterator[Product]:
    sellers = list(SELLERS)
    weights = [6, 4] + [1] * (len(sellers) - 2)  # the enterprise sellers list most products
    for index in range(count):
        category = list(CATEGORIES)[index % len(CATEGORIES)]
        noun = rng.choice(CATEGORIES[category])
        color = rng.choice(COLORS)
        yield Product(
            sku=f"{category[:3].upper()}-{index:03d}",
            name=f"{color} {noun}",
            seller_id=rng.choices(sellers, weights=weights)[0],
            category=category,
            price=round(rng.uniform(3, 120), 2),
            attributes={"color": color, "size": rng.choice(["S", "M", "L"]), "eco": rng.random() < 0.3},
            tags=rng.sample(["new", "sale", "gift", "bestseller", "handmade"], 2),
        )


def _line(product: Product, qty: int) -> dict[str, Any]:
    return {"sku": product.sku, "name": product.name, "qty": qty, "price": product.price, "seller": product.seller_id}
