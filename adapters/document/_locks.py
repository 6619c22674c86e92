"""Per-row lock documents: what serialises read-modify-write updates on FerretDB.

MongoDB applies ``$inc``/``$set`` atomically per document. FerretDB 1.24 reads the
document, applies the operator and writes it back without a condition, so two concurrent
updates of one document lose one of them. There the adapter takes a lock document per
row around every increment and partial update: an insert into ``<namespace>_ps_locks``,
whose unique ``_id`` makes it a mutex across processes, taken over after ``LEASE``
seconds if its writer died. A concurrent full ``put`` is not locked and may still
interleave with an update.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Final

from pymongo import errors as mongo_errors
from pymongo.collection import Collection

from adapters.document._json import Doc
from sharding.core.errors import StoreTimeout

__all__ = ["LEASE", "LOCKS", "RowLocks"]

LOCKS: Final = "_ps_locks"
"""The lock collection's name after the namespace."""
LEASE: Final = 30.0
"""Seconds after which a row lock left by a crashed writer may be taken over."""
_STRIPES: Final = 64


class RowLocks:
    """Row mutexes in one lock collection, for one shard."""

    def __init__(self, collection: Collection[Doc], *, timeout: float, store: str, shard: str) -> None:
        self._collection = collection
        self._timeout = timeout
        self._store, self._shard = store, shard
        # Threads of this process queue here instead of spinning on the lock document.
        self._stripes = tuple(threading.Lock() for _ in range(_STRIPES))

    @contextlib.contextmanager
    def hold(self, lock_id: Doc, key: Any) -> Iterator[None]:
        """The row named by ``lock_id`` locked for the block (``StoreTimeout`` if it stays busy)."""
        with self._stripes[hash(repr(lock_id)) % len(self._stripes)], self._server_lock(lock_id, key):
            yield

    @contextlib.contextmanager
    def _server_lock(self, lock_id: Doc, key: Any) -> Iterator[None]:
        locks = self._collection
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + self._timeout
        delay = 0.001
        while True:
            try:
                locks.insert_one({"_id": lock_id, "owner": owner, "at": time.time()})
                break
            except mongo_errors.DuplicateKeyError:
                held = locks.find_one({"_id": lock_id})
                if held is not None and time.time() - float(held.get("at", 0)) > LEASE:
                    locks.delete_one({"_id": lock_id, "owner": held.get("owner")})  # its writer died
                    continue
                if time.monotonic() > deadline:
                    raise StoreTimeout(
                        "the row is locked by another writer", store=self._store, shard=self._shard, key=key
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            locks.delete_one({"_id": lock_id, "owner": owner})
