"""stack/stack itself: safe on an empty state directory, ignores stale pid files,
and its stdlib wire probes agree with the real servers."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.servers import ROOT, connect

SCRIPT = ROOT / "stack" / "stack"


def run_stack(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, POLYSTORE_STACK_DIR=str(state))
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120)


def load_script(state: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("POLYSTORE_STACK_DIR", str(state))
    loader = importlib.machinery.SourceFileLoader("polystore_stack_script_t", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module
    try:
        loader.exec_module(module)
    finally:
        del sys.modules[loader.name]
    return module


def test_down_on_an_empty_state_dir_is_safe(tmp_path: Path) -> None:
    result = run_stack("down", state=tmp_path / "state")
    assert result.returncode == 0, result.stderr
    assert "not running" in result.stdout


def test_status_on_an_empty_state_dir_lists_every_service_down(tmp_path: Path) -> None:
    result = run_stack("status", state=tmp_path / "state")
    assert result.returncode == 1  # something is down
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["SERVICE", "PORT", "PID", "HEALTH"]
    services = {line.split()[0] for line in lines[1:-1]}
    assert services == {"postgres", "redis", "redis-cluster", "mongo", "neo4j", "cassandra"}
    assert all(" down " in line for line in lines[1:-1])


def test_unknown_service_is_refused(tmp_path: Path) -> None:
    result = run_stack("up", "oracle", state=tmp_path / "state")
    assert result.returncode != 0
    assert "unknown service 'oracle'" in result.stderr


def test_stale_pid_files_are_ignored_and_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = load_script(tmp_path / "state", monkeypatch)
    stack.RUN.mkdir(parents=True)
    dead = stack.pid_file("redis-16379")
    dead.write_text("999999999\n")  # no such process
    alive_but_other = stack.pid_file("neo4j-17687")
    alive_but_other.write_text(f"{os.getpid()}\n")  # this pytest: alive, not a neo4j
    garbage = stack.pid_file("mongo")
    garbage.write_text("not a pid\n")
    assert stack.owned_pid("redis-16379", "16379") is None
    assert stack.owned_pid("neo4j-17687", "polystore.stack.Neo4jServer") is None
    assert stack.owned_pid("mongo", "ferretdb-polystore") is None
    assert not dead.exists()
    assert not alive_but_other.exists()
    assert not garbage.exists()


def test_ports_come_from_endpoints_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ep = load_script(tmp_path / "state", monkeypatch).EP
    assert ep.pg_port == 15432
    assert ep.redis_ports == (16379, 16380)
    assert ep.cluster_ports == (17001, 17002, 17003)
    assert (ep.cassandra_port, ep.neo4j_ports, ep.mongo_port) == (19042, (17687, 17688), 27027)
    assert ep.pg_databases == ("polystore", "polystore_s0", "polystore_s1")


# The stack's own readiness probes, against the real servers.


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_script(tmp_path / "state", monkeypatch)


@pytest.mark.redis
def test_probe_redis(stack: ModuleType) -> None:
    for port in stack.EP.redis_ports:
        assert connect("redis", lambda port=port: stack.redis_ping(port))
    for port in stack.EP.cluster_ports:
        assert connect("redis-cluster", lambda port=port: stack.redis_cluster_ok(port))


@pytest.mark.mongo
def test_probe_mongo(stack: ModuleType) -> None:
    assert connect("mongo", lambda: stack.mongo_ping(stack.EP.mongo_port))


@pytest.mark.cassandra
def test_probe_cassandra(stack: ModuleType) -> None:
    connect("cassandra", lambda: stack.cql_query(stack.EP.cassandra_port, "SELECT now() FROM system.local"))
    with pytest.raises(RuntimeError, match="CQL error"):
        stack.cql_query(stack.EP.cassandra_port, "SELECT nonsense FROM no_such_keyspace.t")


@pytest.mark.neo4j
def test_probe_neo4j(stack: ModuleType) -> None:
    for port in stack.EP.neo4j_ports:
        assert connect("neo4j", lambda port=port: stack.bolt_handshake(port))
