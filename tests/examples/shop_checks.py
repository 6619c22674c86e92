"""What the shop must do on any configuration: shared by the embedded and server tests."""

from __future__ import annotations

import datetime as dt

from toolkit.demo.shop import BAD_CARD, CHECKOUT, Placement, Shop
from toolkit.saga import SagaState


def exercise(shop: Shop, run: str) -> list[Placement]:
    """Seed, read through every store, check out twice; returns where the rows went."""
    report = shop.seed(customers=40, products=16, seed=3)
    assert report.written["Customer"] == 40
    placements = {p.entity: p for p in shop.placements()}
    for entity, written in report.written.items():
        assert placements[entity].rows == written, entity

    # Routing: a big seller's payouts are on its pinned shard; a month is on its range's shard.
    if shop.payouts.store.router.kind == "directory":
        assert shop.payouts.shards_for({"seller_id": "megamart"}) == ("big",)
        assert placements["Payout"].shards["big"] > 0
    if shop.ledger.store.router.kind == "range":
        assert shop.ledger.shards_for({"month": "2024-11"}) == ("y2024",)
        assert shop.ledger.shards_for({"month": "2025-02"}) == ("y2025",)

    # Reads that each use their kind's capability.
    customer = next(c for c in range(1, 41) if len(shop.orders_of(c)) > 1)
    orders = shop.orders_of(customer)
    assert [o.placed_at for o in orders] == sorted((o.placed_at for o in orders), reverse=True)
    history = shop.history(customer, limit=50)
    assert [e.at for e in history] == sorted((e.at for e in history), reverse=True)
    assert {e.order_id for e in history} == {o.id for o in orders}
    month = orders[0].month
    assert shop.revenue(month) == round(sum(e.amount for e in shop.ledger.find({"month": month})), 2)
    assert shop.revenue(month) >= orders[0].total
    for product in shop.search("kitchen", "red", 1000.0):
        assert (product.category, product.attributes["color"]) == ("kitchen", "red")
    assert shop.payouts_of("megamart") > 0

    # Sessions and carts expire by themselves.
    session = shop.login(customer)
    remaining = shop.sessions.ttl(session.token)
    assert remaining is not None
    assert 0 < remaining <= 1800
    shop.add_to_cart(1, "KIT-000", 1)
    shop.add_to_cart(1, "OFF-001", 2)
    shop.add_to_cart(1, "OFF-001", 1)
    cart = shop.carts.get(1)
    assert cart is not None
    assert {line["sku"]: line["qty"] for line in cart.lines} == {"KIT-000": 1, "OFF-001": 3}
    cart_ttl = shop.carts.ttl(1)
    assert cart_ttl is not None
    assert cart_ttl > 1800

    # A checkout that completes: every store has its part.
    units = {sku: _units(shop, sku) for sku in ("KIT-000", "OFF-001")}
    at = dt.datetime(2026, 3, 14, 15, 9, 26, tzinfo=dt.UTC)
    paid = shop.checkout(1, f"{run}-1", at=at)
    assert paid.state == SagaState.COMPLETED, paid.error
    order = shop.orders.get(f"{run}-1", shard_key=1)
    assert order is not None
    assert order.status == "paid"
    assert {sku: _units(shop, sku) for sku in units} == {
        "KIT-000": units["KIT-000"] - 1,
        "OFF-001": units["OFF-001"] - 3,
    }
    entry = shop.ledger.get(f"{run}-1", shard_key="2026-03")
    assert entry is not None
    assert entry.amount == order.total
    assert [e.kind for e in shop.history(1, limit=2)] == ["paid", "placed"]
    assert {p.order_id for p in shop.payouts.find({"order_id": f"{run}-1"})} == {f"{run}-1"}
    assert shop.bought(1) == ["KIT-000", "OFF-001"]
    assert "OFF-001" in shop.bought_together("KIT-000")
    assert shop.carts.get(1) is None
    # The same order again (a client retrying the request) is not charged twice.
    again = shop.toolkit.sagas.run(CHECKOUT, shop.toolkit.sagas.get(paid.id).payload, key=f"checkout:{run}-1")
    assert again.replayed
    assert again.id == paid.id
    assert {sku: _units(shop, sku) for sku in units} == {
        "KIT-000": units["KIT-000"] - 1,
        "OFF-001": units["OFF-001"] - 3,
    }

    # A checkout whose card is declined: compensated, nothing left behind.
    shop.add_to_cart(2, "GAR-002", 2)
    before = _units(shop, "GAR-002")
    declined = shop.checkout(2, f"{run}-2", card=BAD_CARD, at=at)
    assert declined.state == SagaState.COMPENSATED
    assert "PaymentDeclined" in (declined.error or "")
    assert shop.orders.get(f"{run}-2", shard_key=2) is None
    assert shop.ledger.get(f"{run}-2", shard_key="2026-03") is None
    assert _units(shop, "GAR-002") == before
    assert shop.carts.get(2) is not None  # the customer can try another card
    return shop.placements()


def _units(shop: Shop, sku: str) -> int:
    stock = shop.stock.get(sku)
    assert stock is not None
    return stock.units
