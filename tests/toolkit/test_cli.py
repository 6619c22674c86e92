"""The polystore command, called the way a person does: init, demo, status, route."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from toolkit.cli import app

runner = CliRunner()


def test_init_writes_a_valid_config_then_refuses_to_overwrite(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert Path("polystore.toml").read_text().startswith("# polystore.toml")
    again = runner.invoke(app, ["init"])
    assert again.exit_code == 1
    assert "polystore.toml: already exists" in again.output
    assert runner.invoke(app, ["init", "--force"]).exit_code == 0


def test_status_shows_every_store_and_shard(tmp_path: Path) -> None:
    runner.invoke(app, ["init"])
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    for name in ("store users", "store orders", "store tenants", "hash router", "range router", "directory router"):
        assert name in result.output


def test_status_exits_non_zero_when_a_shard_is_down(tmp_path: Path) -> None:
    Path("bad.toml").write_text(
        "[stores.u]\nshards = { s0 = 'sqlite:///ok.db', s1 = 'sqlite:////nonexistent/dir/x.db' }\n"
    )
    result = runner.invoke(app, ["status", "--config", "bad.toml"])
    assert result.exit_code == 1
    assert "DOWN" in result.output


def test_route_explains_typed_keys(tmp_path: Path) -> None:
    runner.invoke(app, ["init"])
    as_int = runner.invoke(app, ["route", "--store", "users", "--key-type", "int", "42"])
    as_str = runner.invoke(app, ["route", "--store", "users", "42"])
    assert as_int.exit_code == 0, as_int.output
    assert "key 42 (int)" in as_int.output
    assert "key '42' (str)" in as_str.output
    assert "hash slot" in as_int.output
    pinned = runner.invoke(app, ["route", "-s", "tenants", "acme"])
    assert "pinned to s1" in pinned.output
    ranged = runner.invoke(app, ["route", "-s", "orders", "2025-01"])
    assert "['2025-01', +inf) owned by s1" in ranged.output  # the split point belongs to the upper range


def test_errors_are_one_red_line_and_exit_1(tmp_path: Path) -> None:
    runner.invoke(app, ["init"])
    for args, message in [
        (["route", "-s", "nope", "x"], "error: no store 'nope'"),
        (["route", "-s", "users", "-t", "int", "abc"], "error: 'abc' is not a valid int key"),
        (["route", "-s", "users", "-t", "float", "1"], "error: --key-type must be one of"),
        (["status", "--config", "missing.toml"], "error: missing.toml: no such file"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, result.output
        assert "Traceback" not in result.output


def test_bad_config_error_names_the_field(tmp_path: Path) -> None:
    Path("p.toml").write_text("[stores.u]\nshards = { s0 = 'sqlite:///a.db' }\nrouter = { type = 'modulo' }\n")
    result = runner.invoke(app, ["status", "-c", "p.toml"])
    assert result.exit_code == 1
    assert "p.toml: stores.u.router.type: expected one of hash, range, directory" in result.output


# The demo (the shop example, narrated) is tested in tests/examples/test_demo.py.
