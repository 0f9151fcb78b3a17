"""Micro-batching: concurrent requests for one CPU-bound function become one call of it.

The first request of a batch waits at most ``max_wait_s`` for others (fewer, larger encoder
calls: one call costs less per text the more texts it holds); while a batch runs on the single
worker thread, new requests queue and go together as soon as it ends, so under load batches
form without any wait. Everything but the call itself runs on the event loop (no locks). A
request whose caller gave up (a deadline) is dropped before its batch starts.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    def __init__(self, run: Callable[[Sequence[T]], Sequence[R]], *, max_batch: int, max_wait_s: float,
                 thread_name: str = "batcher") -> None:
        self._run = run
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max(0.0, max_wait_s)
        # One thread: the work is CPU-bound and single-threaded by design; two would contend.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._pending: list[tuple[T, asyncio.Future]] = []
        self._running = False
        self._timer: asyncio.TimerHandle | None = None
        self.batches = 0  # calls made (for tests and metrics)
        self.items = 0

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((item, future))
        if not self._running:
            if len(self._pending) >= self.max_batch or self.max_wait_s == 0.0:
                self._start(loop)
            elif self._timer is None:
                self._timer = loop.call_later(self.max_wait_s, self._start, loop)
        return await future

    def run_in_thread(self, fn: Callable[..., R], *args) -> "asyncio.Future[R]":
        """Other work that must not run beside a batch (it shares the thread)."""
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        live = [(item, f) for item, f in self._pending if not f.done()]
        batch, self._pending = live[: self.max_batch], live[self.max_batch :]
        if not batch:
            return
        self._running = True
        self.batches += 1
        self.items += len(batch)
        call = loop.run_in_executor(self._executor, self._run, [item for item, _ in batch])
        call.add_done_callback(lambda done: self._finish(loop, batch, done))

    def _finish(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[T, asyncio.Future]], done: asyncio.Future) -> None:
        self._running = False
        error = done.exception() if not done.cancelled() else asyncio.CancelledError()
        results = done.result() if error is None else None
        for i, (_, future) in enumerate(batch):
            if future.done():  # its caller gave up meanwhile
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(results[i])
        if self._pending:  # they waited for this batch already: no further wait
            self._start(loop)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for _, future in self._pending:
            if not future.done():
                future.cancel()
        self._pending.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
