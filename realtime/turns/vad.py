"""Streaming silero-vad for every session of the process, batched into one model call per round.

Each session owns a ``VadStream`` (its LSTM state, 64-sample context, sub-chunk remainder and
sample counter). ``VadStream.process`` cuts audio into 512-sample chunks and queues them on the
app-wide ``VadBatcher``; the batcher's loop task takes every queued chunk of every stream at
once and runs them as one job on its own worker thread, in rounds: round ``k`` holds the
``k``-th queued chunk of each stream that has one (a stream's chunks depend on its previous
state, so they cannot share a round). A hundred sessions thus cost one model call per round
instead of a hundred, and the event loop never runs the model.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from realtime.turns.batched_worker import BatchedWorker
from realtime.turns.silero import (
    SILERO_CHUNK_SAMPLES,
    SILERO_CONTEXT_SAMPLES,
    SILERO_STATE_SIZE,
    SileroVadModel,
)

_INT16_SCALE = 32768.0
_log = logging.getLogger(__name__)


class VadClosedError(RuntimeError):
    """The VAD batcher or stream was closed while work was pending, or used after closing."""


@dataclass(frozen=True)
class VadChunkResult:
    """Speech probability of one 512-sample chunk.

    ``end_sample`` is the absolute index, in the stream's 16 kHz samples, just after the chunk.
    ``levels_db`` is the RMS level (dBFS) of each sixteenth of the chunk (2 ms), oldest first:
    the turn detector uses it to find where the voice actually ended, since silero's
    probability trails the audio by a couple of chunks.
    """

    end_sample: int
    probability: float
    levels_db: tuple[float, ...] = ()


LEVEL_SUBFRAMES = 16


def levels_db(pcm: np.ndarray, part_samples: int) -> list[float]:
    """RMS level in dBFS of each ``part_samples`` part of int16 audio, a shorter last part
    included."""
    if part_samples < 1:
        raise ValueError(f"part_samples must be at least 1, got {part_samples}")
    samples = np.asarray(pcm, dtype=np.float64) / 32768.0
    whole = len(samples) // part_samples * part_samples
    power = np.mean(np.square(samples[:whole].reshape(-1, part_samples)), axis=1)
    if whole < len(samples):
        power = np.append(power, np.mean(np.square(samples[whole:])))
    levels: list[float] = _decibels(power).tolist()
    return levels


def chunk_levels_db(chunks: np.ndarray) -> list[list[float]]:
    """RMS level in dBFS of each of the ``LEVEL_SUBFRAMES`` parts of each float chunk."""
    if not len(chunks):
        return []
    parts = chunks.reshape(len(chunks), LEVEL_SUBFRAMES, -1).astype(np.float64)
    levels: list[list[float]] = _decibels(np.mean(parts * parts, axis=2)).tolist()
    return levels


def _decibels(power: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Mean powers (full scale = 1) as dBFS, to 0.01 dB."""
    return np.round(10.0 * np.log10(power + 1e-12), 2)


@dataclass(eq=False)
class _ChunkRequest:
    """The chunks of one ``process`` call, waiting for their probabilities."""

    chunks: npt.NDArray[np.float32]  # [n, 512]
    first_end_sample: int
    generation: int
    future: asyncio.Future[list[VadChunkResult]]


@dataclass
class _StreamInput:
    """A snapshot of one stream's work, handed to the worker thread (no live objects)."""

    chunks: npt.NDArray[np.float32]  # [n, 512], all queued requests concatenated
    state: npt.NDArray[np.float32]  # [2, 128]
    context: npt.NDArray[np.float32]  # [64]


@dataclass
class _StreamOutput:
    probabilities: npt.NDArray[np.float32]  # [n]
    state: npt.NDArray[np.float32]
    context: npt.NDArray[np.float32]


@dataclass
class _JobOutput:
    streams: list[_StreamOutput]
    call_sizes: list[int]


@dataclass
class _Dispatched:
    stream: VadStream
    requests: list[_ChunkRequest]
    generation: int
    input: _StreamInput


def _as_float_pcm(pcm: npt.ArrayLike) -> npt.NDArray[np.float32]:
    samples = np.asarray(pcm)
    if samples.ndim != 1:
        raise ValueError(f"VAD needs mono (1-D) audio, got shape {samples.shape}")
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / _INT16_SCALE
    if np.issubdtype(samples.dtype, np.floating):
        return samples.astype(np.float32, copy=False)
    raise TypeError(f"VAD needs int16 or float32 samples, got dtype {samples.dtype}")


def _run_rounds(model: SileroVadModel, inputs: list[_StreamInput], max_batch: int) -> _JobOutput:
    """Runs on the batcher's worker thread: all queued chunks of all streams, round by round."""
    # Longest queue first, so the streams active in round k are always a prefix of the list.
    order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i].chunks))
    counts = [len(inputs[i].chunks) for i in order]
    states = np.stack([inputs[i].state for i in order], axis=1)  # [2, S, 128]
    contexts = np.stack([inputs[i].context for i in order])  # [S, 64]
    probabilities = [np.empty(count, dtype=np.float32) for count in counts]
    call_sizes: list[int] = []
    for round_index in range(counts[0] if counts else 0):
        active = sum(1 for count in counts if count > round_index)
        round_chunks = np.stack([inputs[order[s]].chunks[round_index] for s in range(active)])
        for start in range(0, active, max_batch):
            stop = min(start + max_batch, active)
            probs, new_states = model.infer(
                round_chunks[start:stop], contexts[start:stop], states[:, start:stop]
            )
            states[:, start:stop] = new_states
            for offset, probability in enumerate(probs):
                probabilities[start + offset][round_index] = probability
            call_sizes.append(stop - start)
        contexts[:active] = round_chunks[:, -SILERO_CONTEXT_SAMPLES:]
    position_of = {index: position for position, index in enumerate(order)}
    outputs = [
        _StreamOutput(
            probabilities=probabilities[position_of[index]],
            state=states[:, position_of[index]].copy(),
            context=contexts[position_of[index]].copy(),
        )
        for index in range(len(inputs))
    ]
    return _JobOutput(streams=outputs, call_sizes=call_sizes)


class VadBatcher(BatchedWorker[list[_Dispatched], _JobOutput]):
    """Runs silero-vad for all streams of the process, batched, on one worker thread.

    One per app: ``await start()`` once, ``open_stream()`` per session, ``await aclose()`` at
    shutdown. ``observe_call`` (if given) is called on the event loop with the batch size of
    every model call, e.g. to feed a metrics histogram.
    """

    closed_error = VadClosedError

    def __init__(
        self,
        model: SileroVadModel,
        max_batch: int = 512,
        observe_call: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        super().__init__(thread_name="silero-vad", task_name="vad-batcher")
        self._model = model
        self._max_batch = max_batch
        self._observe_call = observe_call
        self._ready: dict[VadStream, None] = {}  # streams with queued chunks, in arrival order
        self.model_calls = 0
        self.chunks_processed = 0
        self.max_batch_seen = 0

    def _fail_queued(self) -> None:
        for stream in list(self._ready):
            stream._fail_queued(VadClosedError("VadBatcher closed before this audio was processed"))
        self._ready.clear()

    def open_stream(self) -> VadStream:
        if self._closed:
            raise VadClosedError("VadBatcher is closed")
        return VadStream(self)

    def _enqueue(self, stream: VadStream) -> None:
        self._check_running()
        self._ready[stream] = None
        self._wake()

    def _forget(self, stream: VadStream) -> None:
        self._ready.pop(stream, None)

    def _take_batch(self) -> list[_Dispatched] | None:
        dispatched: list[_Dispatched] = []
        streams = list(self._ready)
        self._ready.clear()
        for stream in streams:
            requests = stream._take_queued()
            if not requests:
                continue
            snapshot = _StreamInput(
                chunks=np.concatenate([r.chunks for r in requests]),
                state=stream._state.copy(),
                context=stream._context.copy(),
            )
            dispatched.append(_Dispatched(stream, requests, stream._generation, snapshot))
        return dispatched or None

    def _job(self, batch: list[_Dispatched]) -> Callable[[], _JobOutput]:
        inputs = [item.input for item in batch]
        return functools.partial(_run_rounds, self._model, inputs, self._max_batch)

    def _fail(self, batch: list[_Dispatched], error: Exception) -> None:
        for item in batch:
            item.stream._in_flight = []
            for request in item.requests:
                if not request.future.done():
                    request.future.set_exception(error)

    def _apply(self, dispatched: list[_Dispatched], job: _JobOutput) -> None:
        self.model_calls += len(job.call_sizes)
        self.chunks_processed += sum(job.call_sizes)
        if job.call_sizes:
            self.max_batch_seen = max(self.max_batch_seen, *job.call_sizes)
        if self._observe_call is not None:
            try:
                for size in job.call_sizes:
                    self._observe_call(size)
            except Exception:
                _log.exception("VAD batch-size observer failed")
        for item, output in zip(dispatched, job.streams, strict=True):
            item.stream._in_flight = []
            if item.generation == item.stream._generation:
                item.stream._state = output.state
                item.stream._context = output.context
            offset = 0
            for request in item.requests:
                count = len(request.chunks)
                probabilities = output.probabilities[offset : offset + count]
                offset += count
                if request.future.done():  # cancelled by its caller, or dropped by reset()
                    continue
                levels = chunk_levels_db(request.chunks)
                request.future.set_result(
                    [
                        VadChunkResult(
                            end_sample=request.first_end_sample + k * SILERO_CHUNK_SAMPLES,
                            probability=float(p),
                            levels_db=tuple(levels[k]),
                        )
                        for k, p in enumerate(probabilities)
                    ]
                )


class VadStream:
    """One session's streaming VAD state; created by ``VadBatcher.open_stream()``.

    Calls to ``process`` may overlap (each call's chunks are queued in call order, and the
    batcher processes a stream's chunks strictly in that order), but the results are only
    meaningful to a turn detector if it is fed them in call order, so a session normally
    awaits one call before making the next. Cancelling a ``process`` call does not un-feed
    its audio: the chunks are still run to keep the stream's state continuous.
    """

    def __init__(self, batcher: VadBatcher) -> None:
        self._batcher = batcher
        self._state = np.zeros((2, SILERO_STATE_SIZE), dtype=np.float32)
        self._context = np.zeros(SILERO_CONTEXT_SAMPLES, dtype=np.float32)
        self._remainder = np.zeros(0, dtype=np.float32)
        self._position = 0
        self._generation = 0
        self._queued: deque[_ChunkRequest] = deque()
        self._in_flight: list[_ChunkRequest] = []
        self._closed = False

    @property
    def position(self) -> int:
        """Absolute index of the next sample this stream will receive."""
        return self._position

    @property
    def chunked_until(self) -> int:
        """Absolute index just after the last sample handed to the model (the rest waits
        for a whole chunk)."""
        return self._position - len(self._remainder)

    @property
    def closed(self) -> bool:
        return self._closed

    async def process(self, pcm16k: npt.ArrayLike) -> list[VadChunkResult]:
        """Probabilities for every complete 512-sample chunk, in order; keeps the remainder.

        ``pcm16k`` is mono 16 kHz, int16 or float32 in [-1, 1]. Returns [] if the audio
        completes no chunk, or if ``reset()``/``close()`` is called before the result is ready.
        """
        if self._closed:
            raise VadClosedError("VadStream is closed")
        samples = _as_float_pcm(pcm16k)
        buffered = np.concatenate([self._remainder, samples]) if len(self._remainder) else samples
        first_sample = self._position - len(self._remainder)
        self._position += len(samples)
        chunk_count = len(buffered) // SILERO_CHUNK_SAMPLES
        used = chunk_count * SILERO_CHUNK_SAMPLES
        self._remainder = buffered[used:].copy()
        if chunk_count == 0:
            return []
        future: asyncio.Future[list[VadChunkResult]] = asyncio.get_running_loop().create_future()
        self._queued.append(
            _ChunkRequest(
                chunks=buffered[:used].reshape(chunk_count, SILERO_CHUNK_SAMPLES).copy(),
                first_end_sample=first_sample + SILERO_CHUNK_SAMPLES,
                generation=self._generation,
                future=future,
            )
        )
        self._batcher._enqueue(self)
        return await future

    def reset(self, position: int | None = None) -> None:
        """Forget the audio so far: zero LSTM state and context, drop the remainder.

        The sample counter keeps running (the next chunk starts at the next sample received,
        so ``end_sample`` stays on the session's audio timeline) unless ``position`` is given,
        which becomes the index of the next sample. ``process`` calls still waiting return [].
        """
        self._generation += 1
        self._state = np.zeros((2, SILERO_STATE_SIZE), dtype=np.float32)
        self._context = np.zeros(SILERO_CONTEXT_SAMPLES, dtype=np.float32)
        self._remainder = np.zeros(0, dtype=np.float32)
        if position is not None:
            if position < 0:
                raise ValueError("position must be >= 0")
            self._position = position
        self._resolve_pending([])

    def close(self) -> None:
        """Drop pending work (waiting ``process`` calls return []); later calls raise."""
        if self._closed:
            return
        self._closed = True
        self._generation += 1
        self._resolve_pending([])
        self._batcher._forget(self)

    def _take_queued(self) -> list[_ChunkRequest]:
        """Hands every queued request to the batcher (including ones whose caller gave up)."""
        requests = list(self._queued)
        self._queued.clear()
        self._in_flight = requests
        return list(requests)

    def _resolve_pending(self, results: list[VadChunkResult]) -> None:
        while self._queued:
            request = self._queued.popleft()
            if not request.future.done():
                request.future.set_result(list(results))
        self._batcher._forget(self)
        # Chunks already on the worker thread finish there; their results are dropped
        # (the futures are resolved now) and their state is not applied (new generation).
        for request in self._in_flight:
            if not request.future.done():
                request.future.set_result(list(results))

    def _fail_queued(self, error: Exception) -> None:
        while self._queued:
            request = self._queued.popleft()
            if not request.future.done():
                request.future.set_exception(error)
