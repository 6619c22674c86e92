"""The checkout example: on the embedded default, on the real servers, and with a server stopped.

A failure at any step must leave nothing behind in any of the five stores, and the
stock counter must be back where it was.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from examples.checkout.app import CHECKOUT, STEPS, Stock, effects, place_order, setup
from tests.resilience.helpers import PrivateRedis
from tests.saga.conftest import FAST, FAST_COMP
from tests.saga.servers import CONFIG, checkout_toolkit, fresh_namespace
from tests.servers import ROOT
from toolkit import Toolkit
from toolkit.cli import app
from toolkit.config import CatalogConfig, Config, ShardConfig, StoreConfig
from toolkit.resilience import BreakerPolicy, ManualClock, ResiliencePolicy, StoreGuard
from toolkit.saga import Saga, SagaCoordinator, SagaState

SCRIPT = ROOT / "examples" / "checkout" / "app.py"
QUICK = Saga(
    "checkout",
    [dataclasses.replace(step, retry=FAST, compensation_retry=FAST_COMP) for step in CHECKOUT.steps],
)
"""The example's saga with retry waits of milliseconds, so failing tests do not sleep."""


def _exercise(toolkit: Toolkit, run: str) -> None:
    """One good order, then one failing at every step: all effects, then none."""
    setup(toolkit, skus={"A-1": 100}, customers=["ada"])
    ok = place_order(toolkit, f"{run}-ok", "ada", "A-1", 3)
    assert ok.state == SagaState.COMPLETED, ok.error
    assert all(effects(toolkit, f"{run}-ok", "ada").values())
    stock = toolkit.repository(Stock)
    assert stock.get("A-1") == Stock(sku="A-1", units=97)
    for step in STEPS:
        order = f"{run}-{step}"
        outcome = place_order(toolkit, order, "ada", "A-1", 2, fail_at=step)
        assert outcome.state == SagaState.COMPENSATED, (step, outcome.error)
        assert f"injected failure in step '{step}'" in (outcome.error or "")
        assert not any(effects(toolkit, order, "ada").values()), (step, effects(toolkit, order, "ada"))
        assert stock.get("A-1") == Stock(sku="A-1", units=97), step
    # Out of stock is a business failure: compensated at once, never retried.
    outcome = place_order(toolkit, f"{run}-big", "ada", "A-1", 500)
    assert outcome.state == SagaState.COMPENSATED
    assert "OutOfStock" in (outcome.error or "")
    assert stock.get("A-1") == Stock(sku="A-1", units=97)
    # The same order again returns the recorded outcome and changes nothing.
    again = place_order(toolkit, f"{run}-ok", "ada", "A-1", 3)
    assert again.replayed
    assert again.id == ok.id
    assert stock.get("A-1") == Stock(sku="A-1", units=97)


def test_checkout_on_the_embedded_default(tmp_path: Path) -> None:
    with Toolkit.embedded(tmp_path / "data") as toolkit:
        _exercise(toolkit, "emb")


def test_the_example_script_runs_on_the_embedded_default(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--fail-at", "purchase"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "completed" in lines[0]
    assert "effects present: ['document', 'event', 'order', 'purchase']" in lines[0]
    assert "compensated" in lines[1]
    assert "effects present: none" in lines[1]
    assert lines[-1] == "stock A-1: 8 units"


def test_the_stack_config_uses_the_stack_ports() -> None:
    import tomllib

    endpoints = tomllib.loads((ROOT / "stack" / "endpoints.toml").read_text())
    text = CONFIG.read_text()
    assert endpoints["postgres"]["catalog"] in text
    for url in endpoints["postgres"]["shards"]:
        assert url in text
    assert endpoints["redis"]["shards"][0] in text
    assert endpoints["mongo"]["shards"][0] in text
    assert endpoints["neo4j"]["shards"][0] in text
    assert f"cassandra://{endpoints['cassandra']['contact_points'][0]}/" in text


@pytest.fixture
def namespace() -> Iterator[str]:
    yield from fresh_namespace("co")


@pytest.mark.servers
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.mongo
@pytest.mark.cassandra
@pytest.mark.neo4j
def test_checkout_across_the_real_servers(namespace: str) -> None:
    with checkout_toolkit(namespace) as toolkit:
        _exercise(toolkit, namespace)
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--config", str(CONFIG), "--fail-at", "event"],
            env={**os.environ, "CHECKOUT_NAMESPACE": namespace},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        assert "completed" in done.stdout
        assert "effects present: none" in done.stdout


# -- a stopped server -------------------------------------------------------------------


COOL_DOWN = 0.2


def _with_redis_stock(data: Path, port: int) -> Config:
    stock = StoreConfig(
        name="checkout_stock",
        kind="keyvalue",
        shards=(ShardConfig("s0", f"redis://127.0.0.1:{port}/0"),),
        options={"socket_timeout": 2, "connect_timeout": 1},
        # The stock server's breaker opens during the outage; a short cool-down lets the
        # resume right after the restart probe it instead of failing fast.
        resilience=ResiliencePolicy(breaker=BreakerPolicy(cool_down=COOL_DOWN)),
    )
    embedded = Config.embedded_default(data)
    return Config(catalog=CatalogConfig(embedded.catalog.url), stores={"checkout_stock": stock}, data_dir=data)


def _stock_toolkit(data: Path, port: int, clock: ManualClock) -> Toolkit:
    """The toolkit of ``_with_redis_stock``, its stock store's guard on ``clock``: the test
    moves the breaker past its cool-down instead of sleeping through it."""
    toolkit = Toolkit(_with_redis_stock(data, port))
    store = toolkit.store("checkout_stock")
    store.guard = StoreGuard(store.name, store.config.resilience, clock=clock)
    return toolkit


def test_a_stopped_server_compensates_and_a_failed_compensation_needs_attention(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path, persistent=True)
    server.start()
    data = tmp_path / "data"
    clock = ManualClock()
    try:
        with _stock_toolkit(data, server.port, clock) as toolkit:
            setup(toolkit, skus={"A-1": 10}, customers=["ada"])
            # 1. The stock server is down when the step runs: retried, then compensated, and
            # the stock step's own compensation must confirm on the server that nothing was
            # taken: until the server is back the saga needs attention.
            server.stop()
            down = toolkit.sagas.run(QUICK, {"order": "d1", "customer": "ada", "sku": "A-1", "qty": 1}, key="d1")
            assert down.state == SagaState.NEEDS_ATTENTION
            assert "compensation of step 1 (stock)" in (down.error or "")
            events = toolkit.sagas.get(down.id).events
            assert len([e for e in events if e.kind == "step_retry"]) == FAST.max_attempts - 1
            # the server refused, then the open circuit failed the retries fast (a StoreUnavailable too)
            assert re.search(
                r"StoreUnavailable|CircuitOpen", next(e.detail or "" for e in events if e.kind == "step_failed")
            )
            clock.advance(COOL_DOWN)  # the breaker's cool-down: the resume's first call is the probe
            server.start()
            assert toolkit.sagas.resume(down.id).state == SagaState.COMPENSATED
            assert not any(effects(toolkit, "d1", "ada").values())

            # 2. The server stops after the stock was taken and before it is given back.
            def stop_before_release(point: str) -> None:
                if point == "before-comp:1" and server.process is not None:
                    server.stop()

            stopping = SagaCoordinator(toolkit, fault_hook=stop_before_release)
            payload = {"order": "d2", "customer": "ada", "sku": "A-1", "qty": 4, "fail_at": "event"}
            stuck = stopping.run(QUICK, payload, key="d2")
            assert stuck.state == SagaState.NEEDS_ATTENTION
            assert "compensation of step 1 (stock)" in (stuck.error or "")
            assert not effects(toolkit, "d2", "ada")["document"]  # steps above the stock were undone
            assert effects(toolkit, "d2", "ada")["order"]  # the order row waits for the stock
        _write_config(tmp_path / "polystore.toml", data, server.port)
        shown = CliRunner().invoke(
            app,
            ["saga", "list", "--state", "needs_attention", "-c", str(tmp_path / "polystore.toml")],
            env={"COLUMNS": "250"},
        )
        assert shown.exit_code == 0, shown.output
        assert stuck.id in shown.output
        assert re.search(r"StoreUnavailable|CircuitOpen", shown.output)
        # 3. The server is back: a person resumes the saga, which finishes compensating.
        server.start()
        with Toolkit(_with_redis_stock(data, server.port)) as toolkit:
            resumed = toolkit.sagas.resume(stuck.id, [QUICK])
            assert resumed.state == SagaState.COMPENSATED
            assert not any(effects(toolkit, "d2", "ada").values())
            assert toolkit.repository(Stock).get("A-1") == Stock(sku="A-1", units=10)
    finally:
        server.stop()


def _write_config(path: Path, data: Path, port: int) -> None:
    path.write_text(
        f'data_dir = "{data}"\n[catalog]\nurl = "sqlite:///{data}/catalog.db"\n'
        f'[stores.checkout_stock]\nkind = "keyvalue"\n[stores.checkout_stock.shards]\ns0 = "redis://127.0.0.1:{port}/0"\n',
        encoding="utf-8",
    )
