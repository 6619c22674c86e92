"""Driver clients shared by every adapter that points at the same server.

A store with eight shards on one server must not open eight connection pools, and a
client must close when its last adapter does. ``SharedClients`` counts the users of
each client by a key the adapter chooses (server URL, credentials, pool settings).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SharedClients"]

C = TypeVar("C")


class SharedClients(Generic[C]):
    """Reference-counted clients, one per key (thread-safe)."""

    def __init__(self, close: Callable[[C], object]) -> None:
        self._close = close
        self._lock = threading.Lock()
        self._open: dict[Hashable, tuple[C, int]] = {}

    def acquire(self, key: Hashable, create: Callable[[], C]) -> C:
        """The client for ``key``, created on first use; pair with ``release(key)``."""
        with self._lock:
            found = self._open.get(key)
            if found is None:
                client = create()
                self._open[key] = (client, 1)
                return client
            client, users = found
            self._open[key] = (client, users + 1)
            return client

    def release(self, key: Hashable) -> None:
        """One user fewer; the last one closes the client (errors on close are ignored)."""
        with self._lock:
            found = self._open.pop(key, None)
            if found is None:
                return
            client, users = found
            if users > 1:
                self._open[key] = (client, users - 1)
                return
        with contextlib.suppress(Exception):
            self._close(client)

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)
