"""The bulkhead: a bounded number of calls in flight, a bounded wait for a slot."""

from __future__ import annotations

import threading
import time

import pytest

from toolkit.errors import BulkheadFull
from toolkit.resilience import Bulkhead, BulkheadPolicy, ManualClock, SystemClock


def test_limit_and_immediate_rejection_without_wait() -> None:
    bulkhead = Bulkhead(BulkheadPolicy(max_concurrent=2, max_wait=0), ManualClock(), store="pg")
    bulkhead.acquire()
    bulkhead.acquire()
    with pytest.raises(BulkheadFull) as raised:
        bulkhead.acquire()
    assert raised.value.limit == 2
    assert raised.value.store == "pg"
    assert raised.value.retryable
    assert "pg: all 2 concurrent calls of the store are busy" in str(raised.value)
    bulkhead.release()
    bulkhead.acquire()  # a released slot is free again
    stats = bulkhead.stats()
    assert (stats.in_use, stats.limit, stats.waiting, stats.peak, stats.rejected) == (2, 2, 0, 2, 1)


def test_a_waiting_caller_gets_the_slot_released_meanwhile() -> None:
    bulkhead = Bulkhead(BulkheadPolicy(max_concurrent=1, max_wait=30.0), SystemClock(), store="pg")
    bulkhead.acquire()
    got = threading.Event()

    def waiter() -> None:
        bulkhead.acquire()
        got.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    for _ in range(1000):
        if bulkhead.stats().waiting == 1:
            break
        time.sleep(0.001)
    assert bulkhead.stats().waiting == 1
    assert not got.is_set()
    bulkhead.release()
    assert got.wait(10)
    thread.join()
    assert bulkhead.stats().in_use == 1
    assert bulkhead.stats().rejected == 0


def test_the_wait_is_bounded() -> None:
    bulkhead = Bulkhead(BulkheadPolicy(max_concurrent=1, max_wait=0.05), SystemClock(), store="pg")
    bulkhead.acquire()
    with pytest.raises(BulkheadFull, match=r"waited 0\.05 s"):
        bulkhead.acquire()
    assert bulkhead.stats().waiting == 0


def test_concurrency_never_exceeds_the_limit() -> None:
    bulkhead = Bulkhead(BulkheadPolicy(max_concurrent=3, max_wait=10.0), SystemClock(), store="pg")
    lock = threading.Lock()
    inside = peak = 0

    def work() -> None:
        nonlocal inside, peak
        for _ in range(50):
            bulkhead.acquire()
            with lock:
                inside += 1
                peak = max(peak, inside)
            time.sleep(0.0005)
            with lock:
                inside -= 1
            bulkhead.release()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 3 == bulkhead.stats().peak
    assert bulkhead.stats().in_use == 0
