"""An asyncio micro-batcher: concurrent ``submit`` calls are gathered into one batch for ``fn``.

Model inference is faster per item in batches, and it must not run on the event loop. The batcher
collects items submitted while a batch is forming (up to ``max_batch`` items or ``max_wait_ms`` after
the first one), runs ``fn`` on them in a single worker thread (so inference runs one batch at a
time and never competes with itself for the CPU), and resolves each waiter with its own result.
An exception raised by ``fn`` is set on every waiter of that batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


class BatcherClosed(RuntimeError):
    """The batcher is not running (not started, or closed)."""


class MicroBatcher(Generic[T, R]):
    """Gathers concurrent submissions into batches for ``fn(list[T]) -> list[R]``.

    Use ``await start()`` on the running loop, ``await submit(item)`` from any task, and
    ``await close()`` at shutdown (pending waiters get :class:`BatcherClosed`).
    """

    def __init__(
        self,
        fn: Callable[[list[T]], list[R]],
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        name: str = "batcher",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.name = name
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.batches = 0  # number of batches run (for tests and metrics)
        self.items = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the collecting task on the running loop (idempotent)."""
        if self.running:
            return
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-loop")
        self._task.add_done_callback(self._log_crash)

    async def submit(self, item: T) -> R:
        """Queue ``item`` for the next batch and wait for its result."""
        if not self.running or self._queue is None:
            raise BatcherClosed(f"{self.name} is not running")
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, fut))
        return await fut

    async def close(self) -> None:
        """Stop collecting, fail pending waiters with :class:`BatcherClosed`, release the thread.

        A batch already running in the worker thread finishes; its waiters are failed too.
        """
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._queue is not None:
            while not self._queue.empty():
                _, fut = self._queue.get_nowait()
                if not fut.done():
                    fut.set_exception(BatcherClosed(f"{self.name} closed"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                if queue.empty():
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(queue.get(), remaining))
                    except TimeoutError:
                        break
                else:
                    batch.append(queue.get_nowait())
            live = [(item, fut) for item, fut in batch if not fut.done()]  # drop cancelled waiters
            if live:
                await self._run_batch(live)

    async def _run_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._executor, self.fn, items)
            if len(results) != len(items):
                raise RuntimeError(f"{self.name}: fn returned {len(results)} results for {len(items)} items")
        except asyncio.CancelledError:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(BatcherClosed(f"{self.name} closed"))
            raise
        except Exception as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        finally:
            self.batches += 1
            self.items += len(items)
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)

    def _log_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s loop crashed", self.name, exc_info=task.exception())
