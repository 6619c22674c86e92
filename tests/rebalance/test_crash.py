"""Crash safety: ``polystore rebalance`` is SIGKILLed at random points, ``resume`` completes
it, and a full comparison with the reference copy finds nothing lost, duplicated, misplaced
or corrupted.

Each run kills the real CLI in a subprocess once the journal reaches a randomly chosen
step, after a random extra delay (so kills land inside steps, between batches, between a
step's work and its journal update...). The seed of every run is printed; rerun one with
``POLYSTORE_CRASH_SEED=<seed>``. Runs alternate 3 -> 4 and 4 -> 3 shards on the same rows, so
every run starts from the state the previous resume left.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from sharding.rebalance import RebalanceOptions, Rebalancer
from tests.backends import Backend
from tests.backends.postgres import Postgres
from tests.backends.sqlite import SQLite
from tests.rebalance.helpers import Item, compare, config_text, item, load, reference_of, write_config
from toolkit import Toolkit
from toolkit.routing import Transitions

ROOT = Path(__file__).resolve().parents[2]
KILL_AT = ("planned", "dual", "copy", "verify", "fence", "final", "cutover", "cleanup")


def _state(catalog: Path) -> str | None:
    engine = sa.create_engine(f"sqlite:///{catalog}")
    try:
        with engine.connect() as connection:
            row = connection.execute(sa.text("SELECT state FROM ps_rebalance ORDER BY created_at DESC LIMIT 1")).first()
        return None if row is None else str(row[0])
    except sa.exc.OperationalError:
        return None
    finally:
        engine.dispose()


class _Forked:
    """The CLI run in a forked child: the same code and the same SIGKILL, without paying
    the interpreter start and imports per run (the first runs use a real subprocess)."""

    def __init__(self, argv: list[str]) -> None:
        self.process = multiprocessing.get_context("fork").Process(target=_child, args=(argv,), daemon=True)
        self.process.start()
        self.stderr = None

    def poll(self) -> int | None:
        return self.process.exitcode

    def send_signal(self, signum: int) -> None:
        if self.process.pid is not None:
            os.kill(self.process.pid, signum)

    def wait(self, timeout: float) -> None:
        self.process.join(timeout)

    @property
    def returncode(self) -> int | None:
        return self.process.exitcode


def _child(argv: list[str]) -> None:
    from toolkit.cli import app

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        app(argv, standalone_mode=False)
    except BaseException as exc:
        Path(os.environ.get("POLYSTORE_CRASH_LOG", os.devnull)).write_text(repr(exc))
        os._exit(1)
    os._exit(0)


def crash_runs(tmp_path: Path, layout: Backend, runs: int, rows: int, subprocesses: int = 5) -> Counter[str]:
    layout.connect()
    catalog = tmp_path / "catalog.db"
    configs = {
        count: write_config(
            tmp_path,
            f"shards{count}.toml",
            config_text(layout.shards(count), catalog=f"sqlite:///{catalog}", options=layout.options()),
        )
        for count in (3, 4)
    }
    reference = reference_of([item(i) for i in range(rows)])
    outcomes: Counter[str] = Counter()
    base_seed = int(os.environ.get("POLYSTORE_CRASH_SEED", random.randrange(1_000_000)))
    try:
        with Toolkit(load(tmp_path, configs[3].read_text())) as setup:
            setup.repository(Item).put_many(reference.values())
        shards = 3
        for run in range(runs):
            seed = base_seed + run
            rng = random.Random(seed)
            target = 4 if shards == 3 else 3
            step = rng.choice(KILL_AT)
            delay = rng.uniform(0, 0.08)
            command = [
                sys.executable, "-m", "toolkit.cli", "rebalance", "--to", str(configs[target]),
                "--config", str(configs[shards]), "--yes", "--settle", "0.03", "--batch-size", "100",
            ]  # fmt: skip
            process: subprocess.Popen[bytes] | _Forked
            if run < subprocesses:
                process = subprocess.Popen(
                    command,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    env={**os.environ, "NO_COLOR": "1"},
                )
            else:
                process = _Forked(command[3:])
            deadline = time.monotonic() + 60
            reached = False
            while process.poll() is None and time.monotonic() < deadline:
                state = _state(catalog)
                if state is not None and state != "done" and KILL_AT.index(state) >= KILL_AT.index(step):
                    reached = True
                    break
                time.sleep(0.002)
            if reached:
                time.sleep(delay)
            killed = process.poll() is None
            if killed:
                process.send_signal(signal.SIGKILL)
            process.wait(30)
            stderr = process.stderr.read().decode() if process.stderr else "(forked child: no stderr)"
            assert killed or process.returncode == 0, stderr
            with Toolkit(load(tmp_path, configs[target].read_text())) as toolkit:
                unfinished = Rebalancer(toolkit).journal.unfinished("items")
                state = unfinished[0].state if unfinished else "done"
                outcome = f"killed in {state}" if killed else "finished"
                how = "cli subprocess" if run < subprocesses else "cli forked"
                print(
                    f"run {run:2d} seed {seed} ({how}): {shards}->{target}, kill at {step}+{delay * 1000:.0f}ms: {outcome}"
                )
                outcomes[state if killed else "not killed"] += 1
                for record in unfinished:
                    summary = Rebalancer(toolkit, options=RebalanceOptions(batch_size=100, settle=0.03)).run(record.id)
                    assert summary.state == "done", summary
                assert toolkit.catalog.topology("items").shards.keys() == {f"s{i}" for i in range(target)}
                problems = compare(toolkit, reference)
                assert problems == [], f"seed {seed}: {problems[:10]}"
                assert Transitions(toolkit.catalog).current("items") is None
            shards = target
    finally:
        layout.cleanup()
    print(f"{runs} runs on {layout.name}: {dict(outcomes)}; 0 lost, duplicated, misplaced or corrupted rows")
    return outcomes


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_sqlite(tmp_path: Path) -> None:
    outcomes = crash_runs(tmp_path, SQLite(tmp_path), runs=50, rows=800)
    assert sum(count for state, count in outcomes.items() if state != "not killed") >= 40


@pytest.mark.slow
@pytest.mark.postgres
def test_sigkill_at_random_points_then_resume_postgres(tmp_path: Path) -> None:
    crash_runs(tmp_path, Postgres(tmp_path), runs=6, rows=800)
