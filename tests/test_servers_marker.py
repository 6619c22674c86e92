"""The ``servers`` marker is enforced: an unmarked test that reaches the stack fails.

These tests run without servers (they never get past the guard), and each is its own
negative control: the guard must refuse the connection a forgetful test would make.
"""

from __future__ import annotations

import socket

import pytest

from tests.servers import ServerGuard, UnmarkedServerAccess, stack_ports


@pytest.fixture
def guard(_servers_marker: ServerGuard | None) -> ServerGuard:
    assert _servers_marker is not None, "an unmarked test must run under the guard"
    return _servers_marker


def test_an_unmarked_test_cannot_open_a_socket_to_a_stack_port(guard: ServerGuard) -> None:
    port = next(iter(stack_ports()))
    with pytest.raises(UnmarkedServerAccess, match="without the `servers` marker"):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    assert guard.violations  # the test would be failed at teardown
    guard.violations.clear()


def test_an_unmarked_test_cannot_reach_postgresql_through_libpq(guard: ServerGuard) -> None:
    import psycopg

    port = next(port for port, service in stack_ports().items() if service == "postgres")
    with pytest.raises(UnmarkedServerAccess, match=r"postgres.*@pytest\.mark\.postgres"):
        psycopg.connect(f"postgresql://nobody:secret@127.0.0.1:{port}/nothing", connect_timeout=1)
    guard.violations.clear()


def test_other_hosts_and_ports_are_left_alone() -> None:
    checker = ServerGuard({15432: "postgres"})
    checker.check("127.0.0.1", 15433)
    checker.check("10.0.0.1", 15432)
    checker.check("127.0.0.1", "not a port")
    assert checker.violations == []
    with pytest.raises(UnmarkedServerAccess):
        checker.check("localhost", 15432)


@pytest.mark.servers
def test_a_marked_test_runs_without_the_guard(request: pytest.FixtureRequest) -> None:
    assert request.getfixturevalue("_servers_marker") is None
