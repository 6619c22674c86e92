"""Checkout as a saga: an order touches six stores, and no database spans them.

==========  ============  =====================================  ===========================
step        kind          effect                                 compensation
==========  ============  =====================================  ===========================
order       relational    the Order row, status ``pending``      delete it
stock       keyvalue      units -= qty per line, exactly once    give the units back, once
                          per saga (``increment_once``)
payment     relational    charge the card, then the ledger       (pivot: the point of no
            (range)       entry of the month                     return)
confirm     relational    the Order's status becomes ``paid``    (retriable: forward only)
events      column        "placed" and "paid" in the customer's  (retriable)
                          history partition
payouts     relational    one Payout per line, on the seller's   (retriable)
            (directory)   shard
graph       graph         BOUGHT and BOUGHT_WITH relationships   (retriable)
cart        keyvalue      the cart is emptied                    (retriable)
==========  ============  =====================================  ===========================

Before the payment, a failure (out of stock, a declined card) compensates what was
done, in reverse order: the order disappears and the units come back. The payment is
the *pivot*: once the card is charged the saga only goes forward, and every later step
is retried until it succeeds. Every step is idempotent, because a step may run twice
(a retry after a timeout whose write did land, or recovery after a crash): keys are
derived from the payload (the order id), never from the clock, writes are upserts, and
counters go through ``increment_once``.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from toolkit import ToolkitError
from toolkit.demo.shop.models import Cart, Item, LedgerEntry, Order, OrderEvent, Payout, Shopper, Stock
from toolkit.saga import RetryPolicy, Saga, Step, StepContext

__all__ = ["CHECKOUT", "DECLINED", "SAGAS", "OutOfStock", "PaymentDeclined", "charge", "payload"]


class OutOfStock(ToolkitError):
    """Fewer units left than the order wants: a business failure, never retried."""


class PaymentDeclined(ToolkitError):
    """The card was declined: never retried, the checkout is compensated."""


DECLINED = "tok_chargeDeclined"
"""The card token the pretend payment provider declines (real providers have such test tokens).
The saga's payload holds a token and the last four digits, never a card number: the
payload is stored in the saga log."""


def charge(token: str, amount: float, idempotency_key: str) -> str:
    """A stand-in for a payment provider's API: returns the charge id, or declines.

    Real providers take an idempotency key too (a retried charge with the same key is
    charged once): the step passes its ``step_key``, which stays the same across retries
    and recovery.
    """
    if token == DECLINED:
        raise PaymentDeclined(f"card {token} was declined ({amount:.2f})")
    return f"ch_{idempotency_key}"


def _at(ctx: StepContext) -> dt.datetime:
    return dt.datetime.fromisoformat(ctx.payload["at"])


# -- compensatable steps ----------------------------------------------------------------


def create_order(ctx: StepContext) -> None:
    p = ctx.payload
    ctx.put(
        Order,
        {
            "id": p["order"],
            "customer_id": p["customer"],
            "month": p["month"],
            "placed_at": _at(ctx),
            "status": "pending",
            "total": p["total"],
            "lines": p["lines"],
        },
    )


def delete_order(ctx: StepContext) -> None:
    ctx.delete_if_present(Order, ctx.payload["order"], shard_key=ctx.payload["customer"])


def reserve_stock(ctx: StepContext) -> dict[str, int | float | None]:
    left = {}
    for line in ctx.payload["lines"]:
        units = ctx.increment_once(Stock, line["sku"], "units", -line["qty"], tag=line["sku"])
        if units is not None and units < 0:
            raise OutOfStock(f"{line['sku']}: {units + line['qty']} units left, {line['qty']} wanted")
        left[line["sku"]] = units
    return left


def release_stock(ctx: StepContext) -> None:
    for line in ctx.payload["lines"]:  # safe for lines never reserved: it leaves a tombstone
        ctx.undo_increment(Stock, line["sku"], "units", -line["qty"], tag=line["sku"])


# -- the pivot ----------------------------------------------------------------------------


def take_payment(ctx: StepContext) -> str:
    p = ctx.payload
    charge_id = charge(p["card"]["token"], p["total"], ctx.step_key)
    ctx.put(
        LedgerEntry,
        {
            "id": p["order"],
            "month": p["month"],
            "customer_id": p["customer"],
            "amount": p["total"],
            "card_last4": p["card"]["last4"],
        },
    )
    return charge_id


# -- forward-only steps -----------------------------------------------------------------


def confirm_order(ctx: StepContext) -> None:
    ctx.repository(Order).update(ctx.payload["order"], {"status": "paid"}, shard_key=ctx.payload["customer"])


def record_events(ctx: StepContext) -> None:
    p, at = ctx.payload, _at(ctx)
    paid_at = at + dt.timedelta(microseconds=1)  # the key is (customer, time): two events, two instants
    ctx.repository(OrderEvent).put_many(
        [
            OrderEvent(customer_id=p["customer"], at=at, kind="placed", order_id=p["order"]),
            OrderEvent(customer_id=p["customer"], at=paid_at, kind="paid", order_id=p["order"]),
        ]
    )


def record_payouts(ctx: StepContext) -> None:
    p = ctx.payload
    ctx.repository(Payout).put_many(
        Payout(
            id=f"{p['order']}:{line['sku']}",
            seller_id=line["seller"],
            order_id=p["order"],
            month=p["month"],
            amount=round(line["price"] * line["qty"] * 0.9, 2),  # the shop keeps 10%
        )
        for line in p["lines"]
    )


def record_graph(ctx: StepContext) -> None:
    p = ctx.payload
    shoppers, items = ctx.repository(Shopper), ctx.repository(Item)
    skus = sorted({line["sku"] for line in p["lines"]})
    items.put_many(Item(sku=line["sku"], name=line["name"]) for line in p["lines"])
    for sku in skus:
        shoppers.relate(p["customer"], "BOUGHT", sku, to=Item, order=p["order"])
    for first, second in itertools.combinations(skus, 2):
        items.relate(first, "BOUGHT_WITH", second)


def empty_cart(ctx: StepContext) -> None:
    ctx.delete_if_present(Cart, ctx.payload["customer"])


FORWARD = RetryPolicy(max_attempts=10, initial_interval=0.2, max_interval=10.0, timeout=None)
"""After the payment there is no way back: be patient with a backend that is down (about a
minute of retries) before the saga stops in ``needs_attention`` for an operator. No
``timeout``: the policy's 5 s default would cut that minute short."""

CHECKOUT = Saga(
    "shop.checkout",
    [
        Step("order", create_order, compensation=delete_order),
        Step("stock", reserve_stock, compensation=release_stock),
        Step("payment", take_payment, pivot=True),
        Step("confirm", confirm_order, retriable=True, retry=FORWARD),
        Step("events", record_events, retriable=True, retry=FORWARD),
        Step("payouts", record_payouts, retriable=True, retry=FORWARD),
        Step("graph", record_graph, retriable=True, retry=FORWARD),
        Step("cart", empty_cart, retriable=True, retry=FORWARD),
    ],
)
SAGAS = [CHECKOUT]
"""What ``polystore saga recover --app toolkit.demo.shop.checkout:SAGAS`` imports."""


def payload(
    order: str, customer: int, lines: list[dict[str, Any]], card: tuple[str, str], at: dt.datetime
) -> dict[str, Any]:
    """The saga's input: everything a step needs, so that every step is deterministic."""
    total = round(sum(line["price"] * line["qty"] for line in lines), 2)
    return {
        "order": order,
        "customer": customer,
        "lines": lines,
        "card": {"token": card[0], "last4": card[1]},
        "total": total,
        "at": at.isoformat(),
        "month": at.strftime("%Y-%m"),
    }
