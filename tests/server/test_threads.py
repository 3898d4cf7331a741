"""The dispatcher's handler threads (crmkit.server.threads): results, exceptions, context
variables and cancellation behave as with anyio.to_thread.run_sync."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from crmkit.server.threads import HandlerThreads

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def test_results_exceptions_and_threads() -> None:
    threads = HandlerThreads(2)

    def fail() -> None:
        raise ValueError("refused")

    async def main() -> None:
        assert await threads.run(lambda a, b: a + b, 2, 3) == 5
        with pytest.raises(ValueError, match="refused"):
            await threads.run(fail)
        names = await asyncio.gather(
            *(threads.run(lambda: (time.sleep(0.05), threading.current_thread().name)[1])
              for _ in range(4))
        )  # fmt: skip
        assert set(names) == {"crmkit-handler-0", "crmkit-handler-1"}
        assert threading.current_thread().name not in names

    try:
        asyncio.run(main())
    finally:
        threads.close()


def test_each_call_runs_in_a_copy_of_the_callers_context() -> None:
    """What one call sets is not seen by the next on the same thread; the caller's
    values are."""
    threads = HandlerThreads(1)

    def set_and_read() -> str:
        seen = VAR.get()
        VAR.set("set by a call")
        return seen

    async def main() -> list[str]:
        VAR.set("the caller's")
        first = await threads.run(set_and_read)
        VAR.set("the caller's, later")
        second = await threads.run(set_and_read)
        assert VAR.get() == "the caller's, later"
        return [first, second]

    try:
        assert asyncio.run(main()) == ["the caller's", "the caller's, later"]
    finally:
        threads.close()


def test_a_cancelled_task_waits_for_its_call() -> None:
    threads = HandlerThreads(1)
    finished: list[float] = []

    def slow() -> None:
        time.sleep(0.3)
        finished.append(time.monotonic())

    async def main() -> float:
        task = asyncio.create_task(threads.run(slow))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic()

    try:
        stopped = asyncio.run(main())
        assert finished and finished[0] <= stopped
    finally:
        threads.close()
