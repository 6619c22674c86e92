"""The bulkhead: a bounded number of calls in flight, a bounded wait for a slot."""

from __future__ import annotations

import threading

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
    clock = ManualClock()
    bulkhead = Bulkhead(BulkheadPolicy(max_concurrent=1, max_wait=30.0), clock, store="pg")
    bulkhead.acquire()
    got = threading.Event()

    def waiter() -> None:
        bulkhead.acquire()
        got.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert clock.until_waiting(1)
    assert bulkhead.stats().waiting == 1
    assert not got.is_set()
    bulkhead.release()
    assert got.wait(10)
    thread.join()
    assert bulkhead.stats().in_use == 1
    assert bulkhead.stats().rejected == 0


def test_the_wait_is_bounded() -> None:
    clock = ManualClock()
    bulkhead = Bulkhead(BulkheadPolicy(max_concurrent=1, max_wait=0.05), clock, store="pg")
    bulkhead.acquire()
    refused: list[BaseException] = []

    def waiter() -> None:
        try:
            bulkhead.acquire()
        except BulkheadFull as exc:
            refused.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    assert clock.until_waiting(1)
    clock.advance(0.049)  # not yet: it waits on
    assert clock.until_waiting(1)
    assert not refused
    clock.advance(0.001)
    thread.join(10)
    assert len(refused) == 1
    assert "waited 0.05 s" in str(refused[0])
    assert bulkhead.stats().waiting == 0
    assert bulkhead.stats().rejected == 1


def test_concurrency_never_exceeds_the_limit() -> None:
    bulkhead = Bulkhead(BulkheadPolicy(max_concurrent=3, max_wait=10.0), SystemClock(), store="pg")
    lock = threading.Lock()
    inside = peak = 0
    full = threading.Barrier(3, timeout=10)  # the first three in meet inside: the limit is reached

    def work(index: int) -> None:
        nonlocal inside, peak
        for turn in range(50):
            bulkhead.acquire()
            with lock:
                inside += 1
                peak = max(peak, inside)
            if turn == 0 and index < 3:
                full.wait()
            with lock:
                inside -= 1
            bulkhead.release()

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 3 == bulkhead.stats().peak
    assert bulkhead.stats().in_use == 0
