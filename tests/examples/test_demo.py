"""``polystore demo``: the shop on the embedded default, narrated to the end."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console

from tests.examples.processes import run_ok
from toolkit.cli import REBALANCED_STORE, run_demo


def test_the_demo_runs_to_the_end(tmp_path: Path) -> None:
    console = Console(record=True, width=160)
    counts = run_demo(console, tmp_path / "demo", customers=120)
    text = console.export_text()
    # act 1: what was written where, in every kind of store
    for kind in ("relational", "document", "keyvalue", "column", "graph"):
        assert kind in text
    for router in ("hash", "range", "directory"):
        assert router in text
    # act 3: one saga completes, one is compensated
    assert "checkout:demo-1 · completed: order ✓ → stock ✓ → payment ✓" in text
    assert "checkout:demo-2 · compensated: order ✓ → stock ✓ → payment ✗ → undo stock ↺ → undo order ↺" in text
    assert "PaymentDeclined" in text
    assert "order demo-2 is gone" in text
    # act 4: the rebalance added a shard, with its progress bars and both distributions
    assert "rebalance plan · store customers · epoch 1 → 2" in text
    for phase in ("copy", "verify", "cutover", "cleanup"):
        assert phase in text
    assert "customers before · epoch 1" in text
    assert "customers after · epoch 2" in text
    shards = counts[REBALANCED_STORE]
    assert list(shards) == ["s0", "s1", "s2", "s3"]
    assert all(rows > 0 for rows in shards.values()), shards
    assert counts["sellers"]["big"] > 0
    assert counts["ledger"]["y2024"] > 0


def test_the_console_script_runs_the_demo_from_anywhere(tmp_path: Path) -> None:
    """What the README's first command ends with: a real process, outside the checkout."""
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("PYTHONPATH", None)
    out = run_ok(
        [sys.executable, "-m", "toolkit.cli", "demo", "--customers", "60", "--data-dir", str(tmp_path / "d")],
        tmp_path,
        env,
    )
    assert "compensated" in out
    assert "customers after · epoch 2" in out
    assert (tmp_path / "d" / ".polystore" / "customers.added.db").exists()
