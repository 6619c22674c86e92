"""The guard on the embedded default (real SQLite files): health API and `polystore status`."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from toolkit import Entity, Toolkit
from toolkit.cli import app
from toolkit.config import parse_config
from toolkit.resilience import BreakerState, GuardedAdapter


class Note(Entity, store="notes", key="id"):
    id: int
    text: str


def test_every_shard_adapter_is_guarded_and_health_reports_it(tmp_path: Path) -> None:
    with Toolkit.embedded(tmp_path / "data") as toolkit:
        notes = toolkit.repository(Note)
        notes.put_many(Note(id=index, text=f"n{index}") for index in range(20))
        assert notes.get(3) == Note(id=3, text="n3")
        assert isinstance(toolkit.store("notes").adapter("s0"), GuardedAdapter)
        health = toolkit.health()
        assert list(health) == ["notes"]
        notes_health = health["notes"]
        assert notes_health.healthy
        assert notes_health.enabled
        assert [shard.shard for shard in notes_health.shards] == ["s0"]
        breaker = notes_health.shards[0].breaker
        assert breaker is not None
        assert breaker.state is BreakerState.CLOSED
        assert breaker.failures == 0
        assert notes_health.bulkhead is not None
        assert (notes_health.bulkhead.in_use, notes_health.bulkhead.limit) == (0, 32)
        assert notes_health.bulkhead.peak >= 1  # calls did pass through it
        assert notes_health.throttle is None  # no rate configured


def test_a_store_can_turn_the_guard_off(tmp_path: Path) -> None:
    text = (
        "[catalog]\nurl = 'sqlite:///catalog.db'\n"
        "[stores.notes]\n[stores.notes.shards]\ns0 = 'sqlite:///notes.db'\n"
        "[stores.notes.resilience]\nenabled = false\n"
    )
    with Toolkit(parse_config(text, base_dir=tmp_path)) as toolkit:
        toolkit.repository(Note).put(Note(id=1, text="x"))
        assert not isinstance(toolkit.store("notes").adapter("s0"), GuardedAdapter)
        assert toolkit.health() == {}


def test_status_shows_breakers_bulkheads_and_throttles(tmp_path: Path) -> None:
    Path("polystore.toml").write_text(
        "[catalog]\nurl = 'sqlite:///catalog.db'\n"
        "[stores.notes]\n[stores.notes.shards]\ns0 = 'sqlite:///n0.db'\ns1 = 'sqlite:///n1.db'\n"
        "[stores.notes.resilience.throttle]\nrate = 200\nalgorithm = 'leaky_bucket'\n"
        "[stores.notes.resilience.bulkhead]\nmax_concurrent = 7\n"
    )
    result = CliRunner().invoke(app, ["status"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "circuit breakers (this process)" in result.output
    rows = [line.split("│") for line in result.output.splitlines() if "│ closed" in line]
    assert [[cell.strip() for cell in row[1:4]] for row in rows] == [["notes", "s0", "closed"], ["", "s1", "closed"]]
    assert "0/7" in result.output
    assert "200/s leaky_bucket" in result.output
