"""A checkout whose process dies after the payment is finished by ``polystore saga recover``.

The command the docs give (``--app toolkit.demo.shop.checkout:SAGAS``), against the shop's
own config file: the order ends up paid, its events, payouts and graph edges written and
the cart emptied, exactly as if the process had not died.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolkit import Toolkit
from toolkit.cli import app
from toolkit.demo.shop import EMBEDDED_CONFIG, build
from toolkit.saga import LeasePolicy, SagaCoordinator, SagaState


class Crash(BaseException):
    """Stands in for the process dying: not an Exception, so nothing catches it."""


def test_a_checkout_killed_after_the_payment_is_recovered(tmp_path: Path) -> None:
    config = tmp_path / "polystore.toml"
    shutil.copy(EMBEDDED_CONFIG, config)  # its SQLite files go under tmp_path/.polystore

    def die_after_confirm(point: str) -> None:
        if point == "after-action:3":  # payment (2, the pivot) and confirm (3) are done
            raise Crash(point)

    with Toolkit(config) as toolkit:
        shop = build(toolkit)
        shop.seed(customers=20, products=16, seed=5)
        shop.add_to_cart(3, "KIT-000", 2)
        shop.add_to_cart(3, "OFF-001", 1)
        toolkit.__dict__["_sagas"] = SagaCoordinator(
            toolkit, lease=LeasePolicy(ttl=1.0, heartbeat=0.3, margin=0.1), fault_hook=die_after_confirm
        )
        with pytest.raises(Crash):
            shop.checkout(3, "crash-1")
        (record,) = toolkit.sagas.list()
        assert record.state == SagaState.RUNNING
        assert record.step == 3

    time.sleep(1.2)  # the dead runner's lease runs out
    result = CliRunner().invoke(
        app, ["saga", "recover", "--app", "toolkit.demo.shop.checkout:SAGAS", "-c", str(config)]
    )
    assert result.exit_code == 0, result.output
    assert "recovered 1 saga(s)" in result.output

    with Toolkit(config) as toolkit:
        shop = build(toolkit)
        assert toolkit.sagas.get(record.id).state == SagaState.COMPLETED
        order = shop.orders.get("crash-1", shard_key=3)
        assert order is not None
        assert order.status == "paid"
        assert [e.kind for e in shop.history(3, limit=2)] == ["paid", "placed"]
        assert {p.order_id for p in shop.payouts.find({"order_id": "crash-1"})} == {"crash-1"}
        assert shop.bought(3) == ["KIT-000", "OFF-001"]
        assert shop.carts.get(3) is None
