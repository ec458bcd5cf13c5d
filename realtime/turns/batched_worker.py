"""A model shared by every session: work queued on the event loop, run in batches on one thread.

A ``BatchedWorker`` owns the loop task and the single worker thread. Its subclass owns the
queue: ``_take_batch`` takes what is queued (None: nothing to run), ``_job`` says what the
thread runs for it, ``_apply`` hands the result back on the event loop, ``_fail`` gives a
failed job's callers its exception, and ``_fail_queued`` the callers still queued at close.
A subclass calls ``_check_running`` before it queues, and ``_wake`` after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, Self, TypeVar

BatchT = TypeVar("BatchT")
OutputT = TypeVar("OutputT")


def _lower_thread_priority(nice: int) -> None:
    """Best effort: on Linux a nice value belongs to one thread, this worker's."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


class BatchedWorker(ABC, Generic[BatchT, OutputT]):
    """One loop task that takes all queued work at once and runs it as one job on its thread.

    ``await start()`` once (or ``async with``), ``await aclose()`` at shutdown: the loop stops
    after its current job, whose callers still get their results. ``worker_nice`` (if given)
    lowers the worker thread's CPU priority.
    """

    closed_error: type[Exception] = RuntimeError

    def __init__(self, *, thread_name: str, task_name: str, worker_nice: int | None = None) -> None:
        self._thread_name = thread_name
        self._task_name = task_name
        self._worker_nice = worker_nice
        self._wakeup = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._closed

    async def start(self) -> None:
        if self._closed:
            raise self.closed_error(f"{type(self).__name__} is closed")
        if self._task is not None:
            return
        if self._worker_nice is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._thread_name)
        else:
            self._executor = ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix=self._thread_name,
                initializer=_lower_thread_priority,
                initargs=(self._worker_nice,),
            )
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._task_name)

    async def aclose(self) -> None:
        """Stops the loop after its current job; work still queued raises ``closed_error``."""
        if self._closed:
            return
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await asyncio.wait([self._task])  # never raises; the loop ends after its current job
        self._fail_queued()
        if self._executor is not None:
            self._executor.shutdown(wait=True)  # idle by now: the loop has finished its job

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _check_running(self) -> None:
        """Raise unless work may be queued now."""
        if self._closed:
            raise self.closed_error(f"{type(self).__name__} is closed")
        if self._task is None:
            raise RuntimeError(f"{type(self).__name__}.start() has not been awaited")
        if self._task.done():
            cause = None if self._task.cancelled() else self._task.exception()
            raise RuntimeError(f"{type(self).__name__}'s loop has stopped") from cause

    def _wake(self) -> None:
        self._wakeup.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            batch = self._take_batch()
            if batch is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            try:
                output = await loop.run_in_executor(self._executor, self._job(batch))
            except Exception as exc:
                self._fail(batch, exc)
                continue
            self._apply(batch, output)

    @abstractmethod
    def _take_batch(self) -> BatchT | None:
        """Take the queued work to run next; None when there is none."""

    @abstractmethod
    def _job(self, batch: BatchT) -> Callable[[], OutputT]:
        """What the worker thread runs for ``batch`` (a snapshot: no live objects)."""

    @abstractmethod
    def _apply(self, batch: BatchT, output: OutputT) -> None:
        """On the event loop: hand the job's results to their callers."""

    @abstractmethod
    def _fail(self, batch: BatchT, error: Exception) -> None:
        """On the event loop: the job raised ``error``; its callers get it."""

    @abstractmethod
    def _fail_queued(self) -> None:
        """At close: the callers whose work was never run get ``closed_error``."""
