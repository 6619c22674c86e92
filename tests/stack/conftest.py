"""Where the stack's servers are, for the tests in tests/stack/ (see tests/servers.py).

An unreachable server FAILS the test and names the stack log to read.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def unique() -> str:
    """A fresh name suffix, safe for tables, keyspaces, labels, keys and collections."""
    import uuid

    return uuid.uuid4().hex[:12]
