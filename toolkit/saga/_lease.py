"""Leases: one heartbeat thread per coordinator renews every lease it holds.

A runner holds the lease of each saga it drives (``ps_saga.lease_owner`` and
``lease_until``). Every transition it writes renews it; between transitions (a slow
step) this thread renews all of the coordinator's leases in one UPDATE every
``LeasePolicy.heartbeat`` seconds, so recovery, which only takes sagas whose lease
ran out, never races a live runner. Leases the UPDATE no longer finds are reported in
``lost``: the runner checks it before every effect and stops (``LeaseLost``).

The beat waits on the coordinator's clock (``Clock.wait``), so a test moves a manual
clock past a heartbeat instead of sleeping through it. The thread lives while the coordinator holds
a lease: it stops when the last one is released, and the next ``hold`` starts another.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from toolkit.errors import ToolkitError

if TYPE_CHECKING:
    from toolkit.saga._coordinator import SagaCoordinator

__all__ = ["Heartbeat"]


class Heartbeat:
    """One thread per coordinator renewing every lease it holds, in one UPDATE per beat."""

    def __init__(self, coordinator: SagaCoordinator) -> None:
        self._coordinator = coordinator
        self._held: dict[str, int] = {}
        self.lost: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def hold(self, saga_id: str) -> None:
        with self._lock:
            self._held[saga_id] = self._held.get(saga_id, 0) + 1
            self.lost.discard(saga_id)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._loop, name="polystore-saga-heartbeat", daemon=True)
                self._thread.start()

    def release(self, saga_id: str) -> None:
        with self._lock:
            count = self._held.get(saga_id, 0) - 1
            if count > 0:
                self._held[saga_id] = count
            else:
                self._held.pop(saga_id, None)
            idle = not self._held
        if idle:  # wake the beat now: with nothing to renew it stops (a manual clock may never move again)
            with self._wake:
                self._wake.notify_all()

    def _sleep(self) -> None:
        """Wait one heartbeat on the coordinator's clock, or less if closed or nothing is held."""
        coordinator = self._coordinator
        clock = coordinator.clock
        with self._wake:
            deadline = clock.monotonic() + coordinator.lease.heartbeat
            while not self._closed and self._held:
                left = deadline - clock.monotonic()
                if left <= 0 or not clock.wait(self._wake, left):
                    return

    def _loop(self) -> None:
        coordinator = self._coordinator
        while True:
            self._sleep()
            with self._lock:
                held = list(self._held)
                if self._closed or not held:  # nothing to renew: stop; the next hold starts a new thread
                    self._thread = None
                    return
            try:
                lost = coordinator.log.renew(coordinator.owner, held, coordinator.clock.now() + coordinator.lease.ttl)
            except ToolkitError:
                continue  # the catalog is unreachable: the next transition write will tell the runner
            if lost:
                with self._lock:
                    self.lost |= lost

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
