"""Fault injection: run checkouts in a child process, SIGKILL it, recover, check every store.

One *run* (one seed) forks a child that places a few checkout orders (some of them
told to fail at a step, so compensations are under fire too) and dies by SIGKILL:

* ``self`` runs: the child kills itself at the k-th fault point of the coordinator
  (before/after every log write, action and compensation), k drawn from the seed, so
  the run replays exactly;
* ``timer`` runs: the parent kills the child after a random delay, which lands
  anywhere, also inside a step between two of its writes.

Then a recoverer (whose clock is moved past the dead child's lease) runs
``recover``, and the invariant is checked for every order the child began: the saga
is ``completed`` and all of its effects exist, or it is ``compensated`` (or was never
logged) and none exist; the stock counters moved by exactly the completed orders.
Replay one seed with ``POLYSTORE_SAGA_SEEDS=1234`` (comma-separated).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from examples.checkout.app import CHECKOUT, STEPS, Stock, effects, setup
from toolkit import Toolkit
from toolkit.resilience import ManualClock
from toolkit.saga import LeasePolicy, SagaCoordinator, SagaState

LEASE = LeasePolicy(ttl=5.0, heartbeat=1.0, margin=0.5, wait_interval=0.02)
CUSTOMERS = ["ada", "grace", "alan"]
SKUS = {"A": 1_000_000, "B": 1_000_000}


@dataclass
class Report:
    runs: int = 0
    self_kills: int = 0
    timer_kills: int = 0
    finished: int = 0
    """Runs whose child ended before its kill point."""
    sagas: int = 0
    states: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    def line(self, where: str) -> str:
        return (
            f"saga fault injection on {where}: {self.runs} runs (seeds {self.seeds[0]}..{self.seeds[-1]}), "
            f"kills: {self.self_kills} at a fault point + {self.timer_kills} by timer, {self.finished} unkilled; "
            f"{self.sagas} sagas checked {dict(sorted(self.states.items()))}; {len(self.violations)} violations"
        )


def _order(run_tag: str, seed: int, index: int) -> dict[str, Any]:
    rng = random.Random(seed * 1000 + index)
    payload: dict[str, Any] = {
        "order": f"{run_tag}-{seed}-{index}",
        "customer": rng.choice(CUSTOMERS),
        "sku": rng.choice(sorted(SKUS)),
        "qty": rng.randint(1, 3),
    }
    if rng.random() < 0.3:
        payload["fail_at"] = rng.choice(STEPS)
    return payload


def embedded_toolkit(data: str) -> Toolkit:
    """The embedded default under ``data`` (a module-level function: children are forked by a server)."""
    return Toolkit.embedded(data)


def _context() -> Any:
    """A fork server: children forked from a process that imported everything but never connected.

    A plain fork would copy this process's live driver state (the Cassandra driver's
    event loop is a module-global with a thread that a forked child does not get, so
    its connections never complete); spawning a fresh interpreter per run would cost
    seconds of imports. The fork server is started once, with the modules preloaded.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        ["tests.saga.harness", "tests.saga.servers", "examples.checkout.app", "adapters.relational"]
    )
    return context


def _child(
    make: Callable[[str], Toolkit], arg: str, run_tag: str, seed: int, orders: int, kill_at: int | None, conn: Any
) -> None:
    try:
        points = 0

        def hook(point: str) -> None:
            nonlocal points
            points += 1
            if kill_at is not None and points >= kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        toolkit = make(arg)
        coordinator = SagaCoordinator(toolkit, lease=LEASE, fault_hook=hook)
        _warm_up(toolkit)  # connect and ensure tables first: kills should land in sagas, not in set-up
        conn.send("ready")
        for index in range(orders):
            payload = _order(run_tag, seed, index)
            conn.send(index)
            coordinator.run(CHECKOUT, payload, key=f"fi:{payload['order']}")
        conn.send("done")
    except BaseException as exc:  # report, never run the parent's cleanup in a fork
        try:
            conn.send(f"error: {type(exc).__name__}: {exc}")
        finally:
            os._exit(3)
    os._exit(0)


def _warm_up(toolkit: Toolkit) -> None:
    from examples.checkout.app import Customer, OrderDocument, OrderEvent, Purchase
    from examples.checkout.app import Order as OrderRow

    for entity in (OrderRow, OrderDocument, Purchase, Customer):
        toolkit.repository(entity).get("warm-up")
    toolkit.repository(OrderEvent).get(("warm-up", "placed"), shard_key="warm-up")
    _stock(toolkit)


def _stock(toolkit: Toolkit) -> dict[str, int]:
    found = toolkit.repository(Stock).get_many(list(SKUS))
    return {sku: found[sku].units for sku in SKUS}


def run_faults(
    toolkit: Toolkit,
    make: Callable[[str], Toolkit],
    arg: str,
    seeds: list[int],
    *,
    orders: int,
    max_point: int,
    max_delay: float,
    run_tag: str,
    log: Callable[[str], None] = print,
) -> Report:
    """One fault-injection run per seed: children build ``make(arg)``; ``toolkit`` recovers and checks."""
    setup(toolkit, skus=SKUS, customers=CUSTOMERS)
    _warm_up(toolkit)  # tables, collections, constraints exist before any child starts
    context = _context()
    report = Report(seeds=seeds)
    for seed in seeds:
        began = time.perf_counter()
        rng = random.Random(seed)
        self_kill = seed % 2 == 0
        mode: Literal["resume", "compensate"] = "resume" if seed % 3 else "compensate"
        kill_at = rng.randint(1, max_point) if self_kill else None
        delay = rng.uniform(0.0, max_delay)
        before = _stock(toolkit)
        receiver, sender = context.Pipe(duplex=False)
        # A timer kill needs the child busy whenever it lands: give it orders to spare.
        count = orders if self_kill else orders * 10
        child = context.Process(target=_child, args=(make, arg, run_tag, seed, count, kill_at, sender), daemon=True)
        child.start()
        sender.close()
        started: list[int] = []
        messages: list[Any] = []
        if not receiver.poll(120):
            child.kill()
            raise RuntimeError(f"seed {seed}: the child never got ready")
        messages.append(receiver.recv())
        if not self_kill:
            time.sleep(delay)
            if child.is_alive():
                os.kill(child.pid or 0, signal.SIGKILL)
        child.join(120)
        if child.is_alive():
            child.kill()
            child.join()
        while receiver.poll():
            try:
                messages.append(receiver.recv())
            except EOFError:
                break
        receiver.close()
        errors = [m for m in messages if isinstance(m, str) and m.startswith("error")]
        if errors:
            report.violations.append(f"seed {seed}: child failed: {errors[0]}")
        started = [m for m in messages if isinstance(m, int)]
        killed = child.exitcode == -signal.SIGKILL
        if not killed:
            report.finished += 1
        elif self_kill:
            report.self_kills += 1
        else:
            report.timer_kills += 1
        recovering = time.perf_counter()
        clock = ManualClock(start=time.time() + LEASE.ttl + 1)  # past the dead child's lease
        recoverer = SagaCoordinator(toolkit, lease=LEASE, clock=clock, recovery=mode)
        recovery = recoverer.recover([CHECKOUT])
        expected = dict(before)
        states: list[str] = []
        for index in started:
            payload = _order(run_tag, seed, index)
            record = toolkit.sagas.log.by_key(f"fi:{payload['order']}")
            state = "unlogged" if record is None else str(record.state)
            states.append(state)
            report.states[state] = report.states.get(state, 0) + 1
            present = effects(toolkit, payload["order"], payload["customer"])
            if state == SagaState.COMPLETED:
                expected[payload["sku"]] -= payload["qty"]
                if not all(present.values()):
                    report.violations.append(f"seed {seed} order {index}: completed but missing {present}")
            elif state in ("unlogged", SagaState.COMPENSATED):
                if any(present.values()):
                    report.violations.append(f"seed {seed} order {index}: {state} but left {present}")
            else:
                report.violations.append(f"seed {seed} order {index}: still {state} after recovery")
        after = _stock(toolkit)
        if after != expected:
            report.violations.append(f"seed {seed}: stock {after}, expected {expected} (before {before})")
        report.runs += 1
        report.sagas += len(started)
        how = f"self-kill at point {kill_at}" if self_kill else f"timer kill after {delay:.3f}s"
        log(
            f"seed {seed}: {how}, {'killed' if killed else 'finished'}, recovery={mode}, "
            f"recovered {len(recovery.recovered)}, states {states}; child {recovering - began:.2f}s, "
            f"recovery and checks {time.perf_counter() - recovering:.2f}s"
        )
    return report
