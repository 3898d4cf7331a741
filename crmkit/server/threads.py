"""The handler threads: where an API request's blocking work (database, hooks) runs.

:meth:`HandlerThreads.run` is what ``anyio.to_thread.run_sync`` does for the
dispatcher, at a tenth of its CPU (measured on this machine: about 3 us a call instead
of 27-50 us; no cancel scope, capacity limiter or run-variable lookups on each call):
a fixed set of threads takes calls from one queue, each call runs in a copy of the
calling task's context (as anyio runs it: context variables set by a handler never leak
into the next request on that thread), and its result comes back through the event
loop's thread-safe callback. As with anyio's default, a task cancelled while its call
runs waits for the call to finish before the cancellation goes on, so a request never
outlives what it started.

Routes that stream their body (bulk import) keep anyio's threads: their handler reads
the body through ``anyio.from_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _Call:
    """One call's answer: ``future`` (what the task awaits) and, once the task was
    cancelled before the call finished, ``waiter`` (set when it has)."""

    __slots__ = ("finished", "future", "waiter")

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future
        self.waiter: asyncio.Future[None] | None = None
        self.finished = False


_Item = tuple[asyncio.AbstractEventLoop, _Call, contextvars.Context, Callable[..., Any], tuple]


class HandlerThreads:
    """``count`` daemon threads, started on first use, stopped by :meth:`close`."""

    def __init__(self, count: int, name: str = "crmkit-handler") -> None:
        self.count = max(1, count)
        self.name = name
        self._calls: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in one of the threads; its result or its exception."""
        if not self._threads:
            self._start()
        loop = asyncio.get_running_loop()
        call = _Call(loop.create_future())
        self._calls.put((loop, call, contextvars.copy_context(), func, args))
        try:
            return await call.future
        except asyncio.CancelledError:
            # like anyio.to_thread.run_sync: the call finishes before the task stops
            if not call.finished:
                call.waiter = loop.create_future()
                while not call.waiter.done():
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.shield(call.waiter)
            raise

    def close(self) -> None:
        """Let the threads finish what they run and stop."""
        with self._lock:
            for _ in self._threads:
                self._calls.put(None)
            self._threads = []

    def _start(self) -> None:
        with self._lock:
            while len(self._threads) < self.count:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        calls = self._calls
        while (item := calls.get()) is not None:
            loop, call, context, func, args = item
            result = failure = None
            try:
                result = context.run(func, *args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                failure = exc
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for it
                loop.call_soon_threadsafe(_settle, call, result, failure)
            # keep nothing of the request while waiting for the next one
            item = call = context = func = args = result = failure = None


def _settle(call: _Call, result: Any, failure: BaseException | None) -> None:
    """On the event loop: hand the answer to the waiting task (unless cancelled)."""
    call.finished = True
    future = call.future
    if not future.done():
        if failure is not None:
            future.set_exception(failure)
        else:
            future.set_result(result)
    if call.waiter is not None and not call.waiter.done():
        call.waiter.set_result(None)
