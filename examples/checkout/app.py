"""Checkout across five stores, as one saga: all of it happens, or none of it stays.

README
======

A checkout writes to five databases, each holding the kind of data it suits:

==========  ==========================  ===============================================  ===========================
step        store (kind)                effect                                           compensation
==========  ==========================  ===============================================  ===========================
order       checkout_orders (relat.)    the order row (PostgreSQL, two shards)           delete it if present
stock       checkout_stock (keyvalue)   units -= qty on the SKU's counter (Redis), once  undo it if it was applied
                                        per saga (``increment_once``)                    (``undo_increment``)
document    checkout_documents (doc.)   the order document with its lines (MongoDB)      delete it if present
event       checkout_events (column)    an "order placed" event row (Cassandra)          delete it if present
purchase    checkout_purchases (graph)  (:Customer)-[:PURCHASED]->(:Purchase) (Neo4j)   remove the edge and node
==========  ==========================  ===============================================  ===========================

Store names carry a ``checkout_`` prefix because a catalog is shared: a store name
means one topology in it.

No database offers a transaction across these, so ``CHECKOUT`` is a saga
(``toolkit.saga``): each transition is logged in the catalog before its effect, each
step is idempotent (deterministic keys, ``increment_once``), and a failure at any step
(out of stock, a server down for good) compensates the steps before it, in reverse.
A process that dies mid-checkout leaves the saga to ``polystore saga recover``.

Run it on the embedded default (SQLite files under ``.polystore/``, no server)::

    python examples/checkout/app.py

or against the local server stack (``stack/stack up``)::

    python examples/checkout/app.py --config examples/checkout/polystore.toml

It places a few orders, one of which fails at a chosen step (``--fail-at stock`` etc.)
and shows that it left nothing behind; then ``polystore saga list`` (with the same
``--config``) shows the sagas and ``polystore saga show ID`` one's timeline.
``polystore saga recover --app examples.checkout.app:SAGAS`` recovers checkouts a
crashed process left in flight.

``fail_at`` in the payload is a demonstration switch: the named step raises a
non-retryable error after doing its write, which is the hardest case for the
compensations (they must undo a half-done step).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from toolkit import Entity, Toolkit, ToolkitError
from toolkit.saga import Saga, SagaOutcome, Step, StepContext

__all__ = [
    "CHECKOUT",
    "SAGAS",
    "STEPS",
    "Customer",
    "Order",
    "OrderDocument",
    "OrderEvent",
    "OutOfStock",
    "Purchase",
    "Stock",
    "effects",
    "place_order",
    "setup",
]


class Order(Entity, store="checkout_orders", key="id"):
    id: str
    customer: str
    sku: str
    qty: int
    status: str = "placed"


class Stock(Entity, store="checkout_stock", key="sku"):
    sku: str
    units: int


class OrderDocument(Entity, store="checkout_documents", key="id"):
    id: str
    customer: str
    lines: list[dict[str, Any]]
    shipping: dict[str, Any]


class OrderEvent(Entity, store="checkout_events", key=("order_id", "kind"), shard_key="order_id"):
    order_id: str
    kind: str
    at: float


class Customer(Entity, store="checkout_purchases", key="id"):
    id: str
    name: str


class Purchase(Entity, store="checkout_purchases", key="id"):
    id: str
    sku: str
    qty: int


class OutOfStock(ToolkitError):
    """Not enough units: a business failure, never retried."""


class DemoFailure(ToolkitError):
    """The ``fail_at`` switch: a step that fails for good after writing."""


def _maybe_fail(ctx: StepContext) -> None:
    if ctx.payload.get("fail_at") == ctx.step:
        raise DemoFailure(f"injected failure in step {ctx.step!r}")


# -- steps and their compensations -----------------------------------------------------


def create_order(ctx: StepContext) -> None:
    p = ctx.payload
    ctx.put(Order, {"id": p["order"], "customer": p["customer"], "sku": p["sku"], "qty": p["qty"]})
    _maybe_fail(ctx)


def delete_order(ctx: StepContext) -> None:
    ctx.delete_if_present(Order, ctx.payload["order"])


def reserve_stock(ctx: StepContext) -> int | float | None:
    left = ctx.increment_once(Stock, ctx.payload["sku"], "units", -ctx.payload["qty"])
    if left is not None and left < 0:
        raise OutOfStock(f"{ctx.payload['sku']}: {left + ctx.payload['qty']} units left, {ctx.payload['qty']} wanted")
    _maybe_fail(ctx)
    return left


def release_stock(ctx: StepContext) -> None:
    ctx.undo_increment(Stock, ctx.payload["sku"], "units", -ctx.payload["qty"])


def write_document(ctx: StepContext) -> None:
    p = ctx.payload
    ctx.put(
        OrderDocument,
        {
            "id": p["order"],
            "customer": p["customer"],
            "lines": [{"sku": p["sku"], "qty": p["qty"]}],
            "shipping": {"method": "standard", "address": {"city": p.get("city", "Utrecht")}},
        },
    )
    _maybe_fail(ctx)


def delete_document(ctx: StepContext) -> None:
    ctx.delete_if_present(OrderDocument, ctx.payload["order"])


def record_event(ctx: StepContext) -> None:
    ctx.put(OrderEvent, {"order_id": ctx.payload["order"], "kind": "placed", "at": time.time()})
    _maybe_fail(ctx)


def delete_event(ctx: StepContext) -> None:
    ctx.delete_if_present(OrderEvent, (ctx.payload["order"], "placed"), shard_key=ctx.payload["order"])


def record_purchase(ctx: StepContext) -> None:
    p = ctx.payload
    ctx.put(Purchase, {"id": p["order"], "sku": p["sku"], "qty": p["qty"]})
    ctx.repository(Customer).relate(p["customer"], "PURCHASED", p["order"], to=Purchase, qty=p["qty"])
    _maybe_fail(ctx)


def delete_purchase(ctx: StepContext) -> None:
    p = ctx.payload
    ctx.repository(Customer).unrelate(p["customer"], "PURCHASED", p["order"], to=Purchase)
    ctx.delete_if_present(Purchase, p["order"])


STEPS = ("order", "stock", "document", "event", "purchase")

CHECKOUT = Saga(
    "checkout",
    [
        Step("order", create_order, compensation=delete_order),
        Step("stock", reserve_stock, compensation=release_stock),
        Step("document", write_document, compensation=delete_document),
        Step("event", record_event, compensation=delete_event),
        Step("purchase", record_purchase, compensation=delete_purchase),
    ],
)
SAGAS = [CHECKOUT]
"""What ``polystore saga recover --app examples.checkout.app:SAGAS`` imports."""


# -- the application around it ---------------------------------------------------------


def setup(toolkit: Toolkit, *, skus: dict[str, int], customers: list[str]) -> None:
    """Reference data the saga does not own: stock counters and customers."""
    toolkit.repository(Stock).put_many(Stock(sku=sku, units=units) for sku, units in skus.items())
    for customer in customers:
        toolkit.repository(Customer).put(Customer(id=customer, name=customer.title()))


def place_order(
    toolkit: Toolkit, order: str, customer: str, sku: str, qty: int, *, fail_at: str | None = None
) -> SagaOutcome:
    """Run the checkout saga once per order id (the idempotency key)."""
    payload: dict[str, Any] = {"order": order, "customer": customer, "sku": sku, "qty": qty}
    if fail_at is not None:
        payload["fail_at"] = fail_at
    return toolkit.sagas.run(CHECKOUT, payload, key=f"checkout:{order}")


def effects(toolkit: Toolkit, order: str, customer: str) -> dict[str, bool]:
    """Which of an order's effects exist, per step (the stock counter is checked in aggregate)."""
    edges = toolkit.repository(Customer).neighbors(customer, type="PURCHASED", to=Purchase)
    return {
        "order": toolkit.repository(Order).get(order) is not None,
        "document": toolkit.repository(OrderDocument).get(order) is not None,
        "event": toolkit.repository(OrderEvent).get((order, "placed"), shard_key=order) is not None,
        "purchase": toolkit.repository(Purchase).get(order) is not None or any(found.id == order for found, _ in edges),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--config", "-c", help="polystore.toml (default: the embedded default)")
    parser.add_argument("--fail-at", default="event", choices=STEPS, help="the step the failing order fails at")
    args = parser.parse_args(argv)
    run = f"{time.time_ns():x}"[-8:]
    with Toolkit(args.config) as toolkit:
        setup(toolkit, skus={"A-1": 10}, customers=["ada", "grace"])
        for number, (customer, qty, fail_at) in enumerate([("ada", 2, None), ("grace", 1, args.fail_at)]):
            order = f"o-{run}-{number}"
            outcome = place_order(toolkit, order, customer, "A-1", qty, fail_at=fail_at)
            left = {step: present for step, present in effects(toolkit, order, customer).items() if present}
            print(f"{order}: {outcome.state} (saga {outcome.id}); effects present: {sorted(left) or 'none'}")
            if outcome.error:
                print(f"  error: {outcome.error}")
        stock = toolkit.repository(Stock).get("A-1")
        print(f"stock A-1: {stock.units if stock else '?'} units")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
