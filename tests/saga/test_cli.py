"""``polystore saga list / show / recover`` over the embedded default."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolkit import Toolkit
from toolkit.cli import app, load_definitions
from toolkit.errors import ConfigError, NotFoundError, StoreUnavailable
from toolkit.saga import SagaCoordinator, SagaState

APP = """
from toolkit.errors import NotFoundError, StoreUnavailable
from toolkit.saga import RetryPolicy, Saga, Step

FAST = RetryPolicy(max_attempts=2, initial_interval=0.001, retry_all=True)

def fail(ctx):
    raise NotFoundError("the card was declined")

def stuck(ctx):
    raise StoreUnavailable("the ledger is down")

SAGAS = [
    Saga("ok", [Step("a", lambda ctx: 1)]),
    Saga("undone", [Step("a", lambda ctx: None, lambda ctx: None), Step("charge", fail)]),
    Saga("stuck", [Step("a", lambda ctx: None, stuck, compensation_retry=FAST), Step("charge", fail)]),
]
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "sagaapp.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    (tmp_path / "polystore.toml").write_text('data_dir = "data"\n[catalog]\nurl = "sqlite:///data/catalog.db"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("sagaapp", None)
    return tmp_path


def _run_all(project: Path) -> dict[str, str]:
    sagas = {saga.name: saga for saga in load_definitions("sagaapp:SAGAS")}
    ids = {}
    with Toolkit(project / "polystore.toml") as toolkit:
        for name, saga in sagas.items():
            ids[name] = toolkit.sagas.run(saga, {"n": 1}).id
    return ids


def test_list_shows_every_state_and_filters(project: Path) -> None:
    ids = _run_all(project)
    runner = CliRunner()
    result = runner.invoke(app, ["saga", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for saga_id in ids.values():
        assert saga_id in result.output
    assert "completed: 1" in result.output
    assert "needs_attention: 1" in result.output
    only = runner.invoke(app, ["saga", "list", "--state", "needs_attention"], env={"COLUMNS": "250"})
    assert ids["stuck"] in only.output
    assert ids["ok"] not in only.output
    assert "the ledger is down" in only.output
    bad = runner.invoke(app, ["saga", "list", "--state", "nope"])
    assert bad.exit_code == 1
    assert "--state must be one of" in bad.output


def test_show_draws_the_timeline(project: Path) -> None:
    ids = _run_all(project)
    result = CliRunner().invoke(app, ["saga", "show", ids["stuck"]], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for kind in ("started", "step_failed", "compensating", "comp_retry", "comp_failed", "needs_attention"):
        assert kind in result.output
    assert "the card was declined" in result.output
    missing = CliRunner().invoke(app, ["saga", "show", "no-such-id"])
    assert missing.exit_code == 1
    assert "no saga no-such-id" in missing.output


class Crash(BaseException):
    """Stands in for the runner's process dying: not an Exception, so nothing catches it."""


def _die_at(project: Path, saga_name: str, point: str) -> None:
    """Run ``saga_name`` until the fault point ``point``, where its runner "dies", then make
    the dead runner's lease run out now rather than in 15 seconds."""
    sagas = {saga.name: saga for saga in load_definitions("sagaapp:SAGAS")}

    def hook(reached: str) -> None:
        if reached == point:
            raise Crash

    with Toolkit(project / "polystore.toml") as toolkit:
        with pytest.raises(Crash):
            SagaCoordinator(toolkit, fault_hook=hook).run(sagas[saga_name], {})
        with toolkit.catalog.engine.begin() as connection:
            connection.exec_driver_sql("UPDATE ps_saga SET lease_until = 0")


def test_recover_imports_the_definitions_and_finishes_dead_sagas(project: Path) -> None:
    _die_at(project, "ok", "after-write:started")
    dry = CliRunner().invoke(app, ["saga", "recover", "--app", "sagaapp:SAGAS", "--dry-run"], env={"COLUMNS": "250"})
    assert dry.exit_code == 0, dry.output
    assert "1 saga(s) left in flight by a dead runner" in dry.output
    result = CliRunner().invoke(app, ["saga", "recover", "--app", "sagaapp:SAGAS"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "recovered 1 saga(s)" in result.output
    assert "completed" in result.output
    with Toolkit(project / "polystore.toml") as toolkit:
        assert toolkit.sagas.log.counts() == {"completed": 1}


def test_recover_exits_1_when_a_recovered_saga_needs_attention(project: Path) -> None:
    _die_at(project, "stuck", "before-action:1")
    result = CliRunner().invoke(app, ["saga", "recover", "--app", "sagaapp:SAGAS"], env={"COLUMNS": "250"})
    assert result.exit_code == 1
    assert "needs_attention" in result.output


@pytest.mark.parametrize("spec", ["nomodule", "no_such_module_x:SAGAS", "sagaapp:MISSING", "sagaapp:FAST"])
def test_bad_app_specs_are_one_clear_error(project: Path, spec: str) -> None:
    with pytest.raises(ConfigError):
        load_definitions(spec)
    result = CliRunner().invoke(app, ["saga", "recover", "--app", spec])
    assert result.exit_code == 1
    assert "Traceback" not in result.output


def test_states_are_the_documented_ones() -> None:
    assert [str(state) for state in SagaState] == [
        "running",
        "compensating",
        "completed",
        "compensated",
        "needs_attention",
    ]
    assert NotFoundError.retryable is False
    assert StoreUnavailable.retryable is True
