"""Smart Turn v3.2 end-of-turn model for every session of the process, batched per round.

Smart Turn (Daily, BSD-2-Clause) looks at the last 8 s of a user's turn and says how likely
it is that the turn is complete: a finished question scores high, a clause cut off
mid-thought low, whatever the length of the pause. Its ONNX file ships in the ``pipecat-ai``
wheel, which ``scripts/install.sh`` installs without dependencies; pipecat is never imported.

``SmartTurnBatcher.score`` queues one turn's audio; the batcher's loop task takes every queued
turn at once (up to ``max_batch``) and runs features and model for all of them as one job on
its own worker thread, so sessions asking in the same moment share model calls, the model
never runs on more than one core however many sessions ask, and the event loop never
computes a spectrogram or runs the model.

Cost on a 2-vCPU Xeon (``benchmarks/smart_turn_cost.py``): about 100 ms of CPU per turn
for the model and 10 ms for the features, whatever the batch size (the model is
compute-bound, so batching saves calls, not arithmetic). Everyone in a batch waits for the
whole batch, which is why ``max_batch`` defaults to a small 8: 32 turns at once come back
in four rounds of about 0.8 s rather than all after 3.4 s.

The worker thread runs at a lower CPU priority (``worker_nice``): it is the one heavy job of
the gateway, and every session's input frames (VAD, turn events) must never wait behind it,
while a decision at a pause can wait a little.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime

from realtime.turns.batched_worker import BatchedWorker
from realtime.turns.packaged_models import packaged_file
from tokenizer.turn_features import (
    SMART_TURN_FRAMES,
    SMART_TURN_N_MELS,
    SMART_TURN_WINDOW_SAMPLES,
    smart_turn_feature_batch,
)

SMART_TURN_THRESHOLD = 0.5
"""Probabilities above this mean "the turn is complete" (the model's own decision rule)."""
SMART_TURN_VERSION = "3.2"

_MODEL_FILE = ("audio", "turn", "smart_turn", "data", "smart-turn-v3.2-cpu.onnx")
_NOT_INSTALLED = (
    "the Smart Turn v3.2 model is not installed: pip install --no-deps pipecat-ai==1.14.0 "
    "(or run scripts/install.sh); it provides "
    "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
)
_INPUT_NAME = "input_features"
_log = logging.getLogger(__name__)


def smart_turn_model_path() -> Path:
    """Path of ``smart-turn-v3.2-cpu.onnx`` in the installed ``pipecat-ai`` wheel.

    Found through the import system's metadata only: importing ``pipecat`` would pull in its
    many dependencies, none of which the service installs.
    """
    return packaged_file("pipecat", _MODEL_FILE, _NOT_INSTALLED)


class SmartTurnModel:
    """One onnxruntime session of Smart Turn v3.2; ``infer`` is synchronous and thread-safe."""

    def __init__(self, path: Path | None = None, intra_op_threads: int = 1) -> None:
        self.path = path if path is not None else smart_turn_model_path()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = onnxruntime.InferenceSession(
            str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def infer(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """P(turn complete) ``[B]`` for features ``[B, 80, 800]`` (``smart_turn_features``)."""
        expected = (SMART_TURN_N_MELS, SMART_TURN_FRAMES)
        if features.ndim != 3 or features.shape[1:] != expected or features.shape[0] < 1:
            raise ValueError(f"features must be [B, 80, 800] with B >= 1, got {features.shape}")
        (output,) = self._session.run(
            None, {_INPUT_NAME: np.ascontiguousarray(features, dtype=np.float32)}
        )
        return np.asarray(output, dtype=np.float32).reshape(features.shape[0])

    def score(self, turns: Sequence[npt.ArrayLike]) -> npt.NDArray[np.float32]:
        """Features and P(turn complete) ``[B]`` for the audio of each turn, in one model call
        (16 kHz mono, int16 or float32 in [-1, 1]; only the last 8 s of each are used)."""
        return self.infer(smart_turn_feature_batch(turns))


class SmartTurnClosedError(RuntimeError):
    """The Smart Turn batcher was closed while a score was pending, or used after closing."""


@dataclass(eq=False)
class _ScoreRequest:
    pcm: np.ndarray  # the last 8 s of the turn, copied
    future: asyncio.Future[float]


@dataclass
class _JobOutput:
    probabilities: npt.NDArray[np.float32]
    seconds: float


def _run_job(model: SmartTurnModel, turns: list[np.ndarray]) -> _JobOutput:
    """Runs on the batcher's worker thread: features and one model call for all turns."""
    started = time.perf_counter()
    probabilities = model.score(turns)
    return _JobOutput(probabilities, time.perf_counter() - started)


class SmartTurnBatcher(BatchedWorker[list[_ScoreRequest], _JobOutput]):
    """Scores the turns of all sessions with Smart Turn, batched, on one worker thread.

    One per app: ``await start()`` once (or ``async with``), ``await score(pcm)`` from any
    session, ``await aclose()`` at shutdown. Each round takes every queued request, up to
    ``max_batch``, as one model call; the rest wait for the next round. ``observe_call`` (if
    given) is called on the event loop after every model call with its batch size and the
    seconds the worker spent on it (features and model), e.g. to feed metrics.
    """

    closed_error = SmartTurnClosedError

    def __init__(
        self,
        model: SmartTurnModel,
        max_batch: int = 8,
        observe_call: Callable[[int, float], None] | None = None,
        worker_nice: int = 10,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        super().__init__(thread_name="smart-turn", task_name="smart-turn", worker_nice=worker_nice)
        self._model = model
        self._max_batch = max_batch
        self._observe_call = observe_call
        self._queue: deque[_ScoreRequest] = deque()
        self.model_calls = 0
        self.turns_scored = 0
        self.max_batch_seen = 0

    @property
    def max_batch(self) -> int:
        return self._max_batch

    def _fail_queued(self) -> None:
        error = SmartTurnClosedError("SmartTurnBatcher closed before this turn was scored")
        while self._queue:
            request = self._queue.popleft()
            if not request.future.done():
                request.future.set_exception(error)

    async def score(self, pcm16k: npt.ArrayLike) -> float:
        """P(turn complete) for the audio of the user's turn so far.

        ``pcm16k`` is 16 kHz mono, int16 (or float32 in [-1, 1]), of any length: the last 8 s
        are copied at once, so the caller may keep appending to its buffer. Compare with
        ``SMART_TURN_THRESHOLD``. Cancelling the call drops its result.
        """
        samples = np.asarray(pcm16k)
        if samples.ndim != 1:
            raise ValueError(f"Smart Turn needs mono (1-D) audio, got shape {samples.shape}")
        if samples.dtype != np.int16 and samples.dtype != np.float32:
            raise TypeError(f"Smart Turn needs int16 or float32 samples, got {samples.dtype}")
        if samples.size == 0:
            raise ValueError("Smart Turn needs some audio to score, got none")
        self._check_running()
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._queue.append(_ScoreRequest(samples[-SMART_TURN_WINDOW_SAMPLES:].copy(), future))
        self._wake()
        return await future

    def _take_batch(self) -> list[_ScoreRequest] | None:
        """Up to ``max_batch`` queued requests whose callers are still waiting, oldest first."""
        batch: list[_ScoreRequest] = []
        while self._queue and len(batch) < self._max_batch:
            request = self._queue.popleft()
            if not request.future.done():  # a cancelled caller's turn is never run
                batch.append(request)
        return batch or None

    def _job(self, batch: list[_ScoreRequest]) -> Callable[[], _JobOutput]:
        return functools.partial(_run_job, self._model, [r.pcm for r in batch])

    def _fail(self, batch: list[_ScoreRequest], error: Exception) -> None:
        for request in batch:
            if not request.future.done():
                request.future.set_exception(error)

    def _apply(self, batch: list[_ScoreRequest], job: _JobOutput) -> None:
        self.model_calls += 1
        self.turns_scored += len(batch)
        self.max_batch_seen = max(self.max_batch_seen, len(batch))
        if self._observe_call is not None:
            try:
                self._observe_call(len(batch), job.seconds)
            except Exception:
                _log.exception("Smart Turn call observer failed")
        for request, probability in zip(batch, job.probabilities, strict=True):
            if not request.future.done():  # cancelled by its caller while the model ran
                request.future.set_result(float(probability))
