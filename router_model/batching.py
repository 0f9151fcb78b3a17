"""Micro-batching: concurrent requests for one CPU-bound function become one call of it.

The first request of a batch waits at most ``max_wait_s`` for others (0: one turn of the event
loop, which gathers the requests that arrived together) — fewer, larger encoder calls, each
cheaper per text; while a batch runs on the single worker thread, new requests queue and go
together as soon as it ends, so under load batches form without any wait. A request whose
caller gave up (a deadline) is dropped before its batch starts.

A batch has three steps: ``prepare`` and ``finish`` run on the event loop, ``run`` on the worker
thread. Only ``run`` should be there, and it should release the GIL (ONNX Runtime does): every
time the worker thread needs the GIL back while the event loop is busy it can wait up to the
interpreter's switch interval (5 ms), so Python work on it (tokenising, scoring) costs latency
out of proportion to its CPU. Everything but ``run`` runs on the loop, without locks.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


P = TypeVar("P")
Q = TypeVar("Q")


def _identity(items):
    return items


def _pass_through(_items, results):
    return results


class MicroBatcher(Generic[T, R]):
    def __init__(self, run: Callable[[P], Q], *, max_batch: int, max_wait_s: float,
                 prepare: Callable[[Sequence[T]], P] = _identity,
                 finish: Callable[[Sequence[T], Q], Sequence[R]] = _pass_through,
                 thread_name: str = "batcher") -> None:
        self._run = run
        self._prepare = prepare
        self._finish_batch = finish
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
        if not self._running and self._timer is None:
            if len(self._pending) >= self.max_batch:
                self._start(loop)
            elif self.max_wait_s == 0.0:
                self._timer = loop.call_soon(self._start, loop)
            else:
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
        items = [item for item, _ in batch]
        try:
            payload = self._prepare(items)
        except Exception as exc:  # noqa: BLE001 - handed to the callers
            self._settle(loop, batch, None, exc)
            return
        call = loop.run_in_executor(self._executor, self._run, payload)
        call.add_done_callback(lambda done: self._finish(loop, batch, items, done))

    def _finish(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[T, asyncio.Future]], items: list[T],
                done: asyncio.Future) -> None:
        error = done.exception() if not done.cancelled() else asyncio.CancelledError()
        results = None
        if error is None:
            try:
                results = self._finish_batch(items, done.result())
            except Exception as exc:  # noqa: BLE001 - handed to the callers
                error = exc
        self._settle(loop, batch, results, error)

    def _settle(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[T, asyncio.Future]], results,
                error: BaseException | None) -> None:
        self._running = False
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
