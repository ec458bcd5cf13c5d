"""The worker VadBatcher and SmartTurnBatcher share, with a toy job: doubling numbers."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import deque
from collections.abc import Callable

import pytest

from realtime.turns.batched_worker import BatchedWorker


class ToyClosedError(RuntimeError):
    pass


def _double(numbers: list[int], gate: threading.Event | None) -> list[int]:
    if gate is not None and not gate.wait(timeout=10):
        raise TimeoutError("the test never opened the gate")
    if any(n < 0 for n in numbers):
        raise ValueError("negative")
    return [2 * n for n in numbers]


class Doubler(BatchedWorker[list[tuple[int, "asyncio.Future[int]"]], list[int]]):
    closed_error = ToyClosedError

    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__(thread_name="toy", task_name="toy")
        self.gate = gate
        self.queue: deque[tuple[int, asyncio.Future[int]]] = deque()
        self.batches: list[list[int]] = []

    async def double(self, n: int) -> int:
        self._check_running()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.queue.append((n, future))
        self._wake()
        return await future

    def _take_batch(self) -> list[tuple[int, asyncio.Future[int]]] | None:
        batch = list(self.queue)
        self.queue.clear()
        return batch or None

    def _job(self, batch: list[tuple[int, asyncio.Future[int]]]) -> Callable[[], list[int]]:
        numbers = [n for n, _ in batch]
        self.batches.append(numbers)
        return functools.partial(_double, numbers, self.gate)

    def _apply(self, batch: list[tuple[int, asyncio.Future[int]]], output: list[int]) -> None:
        for (_, future), doubled in zip(batch, output, strict=True):
            future.set_result(doubled)

    def _fail(self, batch: list[tuple[int, asyncio.Future[int]]], error: Exception) -> None:
        for _, future in batch:
            future.set_exception(error)

    def _fail_queued(self) -> None:
        while self.queue:
            _, future = self.queue.popleft()
            future.set_exception(ToyClosedError("closed before this number was doubled"))


async def test_work_queued_together_runs_as_one_job() -> None:
    async with Doubler() as worker:
        results = await asyncio.gather(*(worker.double(n) for n in (1, 2, 3)))

    assert results == [2, 4, 6]
    assert worker.batches == [[1, 2, 3]]


async def test_a_failed_job_fails_its_callers_and_the_loop_goes_on() -> None:
    async with Doubler() as worker:
        with pytest.raises(ValueError, match="negative"):
            await worker.double(-1)
        assert await worker.double(5) == 10


async def test_queueing_before_start_or_after_close_raises() -> None:
    worker = Doubler()
    with pytest.raises(RuntimeError, match=r"Doubler.start\(\) has not been awaited"):
        await worker.double(1)
    await worker.start()
    await worker.aclose()

    assert not worker.running
    with pytest.raises(ToyClosedError, match="Doubler is closed"):
        await worker.double(1)
    with pytest.raises(ToyClosedError):
        await worker.start()


async def test_close_finishes_the_running_job_and_fails_what_is_still_queued() -> None:
    gate = threading.Event()
    worker = Doubler(gate)
    await worker.start()
    running = asyncio.ensure_future(worker.double(1))
    for _ in range(200):  # until the job is on the worker thread
        if worker.batches:
            break
        await asyncio.sleep(0.01)
    queued = asyncio.ensure_future(worker.double(2))
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(worker.aclose())
    await asyncio.sleep(0)
    gate.set()
    await asyncio.wait_for(closing, timeout=10)

    assert await asyncio.wait_for(running, timeout=10) == 2
    with pytest.raises(ToyClosedError, match="before this number"):
        await asyncio.wait_for(queued, timeout=10)
    assert worker.batches == [[1]]
