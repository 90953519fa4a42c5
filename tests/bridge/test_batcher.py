"""MicroBatcher: batching of concurrent submissions, order, errors, shutdown."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bridge.batcher import BatcherClosed, MicroBatcher


async def test_concurrent_submissions_share_one_batch_and_keep_order() -> None:
    seen: list[list[int]] = []

    def double(items: list[int]) -> list[int]:
        seen.append(list(items))
        return [2 * i for i in items]

    b: MicroBatcher[int, int] = MicroBatcher(double, max_batch=32, max_wait_ms=20)
    await b.start()
    try:
        results = await asyncio.gather(*(b.submit(i) for i in range(10)))
    finally:
        await b.close()
    assert results == [2 * i for i in range(10)]
    assert seen == [list(range(10))]


async def test_batches_are_capped_at_max_batch() -> None:
    sizes: list[int] = []

    def ident(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    b: MicroBatcher[int, int] = MicroBatcher(ident, max_batch=4, max_wait_ms=20)
    await b.start()
    try:
        assert await asyncio.gather(*(b.submit(i) for i in range(10))) == list(range(10))
    finally:
        await b.close()
    assert max(sizes) <= 4
    assert sum(sizes) == 10


async def test_fn_runs_off_the_event_loop_one_batch_at_a_time() -> None:
    loop_thread = threading.get_ident()
    threads: set[int] = set()
    active = 0
    max_active = 0
    lock = threading.Lock()

    def slow(items: list[int]) -> list[int]:
        nonlocal active, max_active
        with lock:
            active += 1
            max_active = max(max_active, active)
        threads.add(threading.get_ident())
        time.sleep(0.02)
        with lock:
            active -= 1
        return items

    b: MicroBatcher[int, int] = MicroBatcher(slow, max_batch=2, max_wait_ms=1)
    await b.start()
    try:
        await asyncio.gather(*(b.submit(i) for i in range(8)))
    finally:
        await b.close()
    assert loop_thread not in threads
    assert max_active == 1


async def test_exception_reaches_every_waiter_of_the_batch_and_batcher_survives() -> None:
    def failing(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("boom")
        return items

    b: MicroBatcher[int, int] = MicroBatcher(failing, max_batch=8, max_wait_ms=20)
    await b.start()
    try:
        results = await asyncio.gather(*(b.submit(i) for i in (1, 13, 2)), return_exceptions=True)
        assert all(isinstance(r, ValueError) for r in results)
        assert await b.submit(5) == 5  # next batch still served
    finally:
        await b.close()


async def test_wrong_result_count_is_an_error_for_the_batch() -> None:
    b: MicroBatcher[int, int] = MicroBatcher(lambda items: items[:1], max_batch=8, max_wait_ms=20)
    await b.start()
    try:
        results = await asyncio.gather(b.submit(1), b.submit(2), return_exceptions=True)
    finally:
        await b.close()
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_submit_before_start_and_after_close_is_refused() -> None:
    b: MicroBatcher[int, int] = MicroBatcher(lambda items: items)
    with pytest.raises(BatcherClosed):
        await b.submit(1)
    await b.start()
    assert await b.submit(1) == 1
    await b.close()
    assert not b.running
    with pytest.raises(BatcherClosed):
        await b.submit(1)


async def test_close_fails_waiters_of_a_running_batch() -> None:
    started = threading.Event()

    def slow(items: list[int]) -> list[int]:
        started.set()
        time.sleep(0.2)
        return items

    b: MicroBatcher[int, int] = MicroBatcher(slow, max_batch=4, max_wait_ms=1)
    await b.start()
    waiter = asyncio.create_task(b.submit(1))
    await asyncio.to_thread(started.wait, 2)
    await b.close()
    with pytest.raises(BatcherClosed):
        await waiter


async def test_a_cancelled_waiter_does_not_break_the_batch() -> None:
    gate = threading.Event()

    def wait_then_echo(items: list[int]) -> list[int]:
        gate.wait(2)
        return items

    b: MicroBatcher[int, int] = MicroBatcher(wait_then_echo, max_batch=8, max_wait_ms=30)
    await b.start()
    try:
        first = asyncio.create_task(b.submit(1))
        second = asyncio.create_task(b.submit(2))
        await asyncio.sleep(0)
        first.cancel()
        gate.set()
        assert await second == 2
        with pytest.raises(asyncio.CancelledError):
            await first
    finally:
        await b.close()
