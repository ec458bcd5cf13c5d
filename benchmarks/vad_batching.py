"""Benchmark: silero-vad cost per chunk for 1/10/100 concurrent streams, batched vs one call each.

Two measurements, both with every stream fed 20 ms frames and awaiting each call, as a
session does:

- throughput: all audio is available at once; wall time / chunks = CPU cost per chunk, and
  how many real-time streams (31.25 chunks/s each) that cost would let one core serve;
- paced: frames arrive in real time (streams staggered over the 20 ms frame period); the
  latency from ``process()`` to its result, p50/p99, is what turn detection waits for.

"batched" is ``VadBatcher`` (one model call per round for all streams); "per-stream" sends
each stream's chunk to the same single worker thread as its own batch-1 model call.

    .venv/bin/python benchmarks/vad_batching.py [--streams 1 10 100] [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from realtime.turns.silero import (
    SILERO_CHUNK_SAMPLES,
    SILERO_CONTEXT_SAMPLES,
    SILERO_SAMPLE_RATE,
    SileroVadModel,
)
from realtime.turns.vad import VadBatcher

FRAME_SAMPLES = 320  # 20 ms
CHUNKS_PER_SECOND = SILERO_SAMPLE_RATE / SILERO_CHUNK_SAMPLES

Process = Callable[[npt.NDArray[np.int16]], Awaitable[int]]


class PerStreamVad:
    """The unbatched baseline: one executor job and one batch-1 model call per chunk."""

    def __init__(self, model: SileroVadModel, executor: ThreadPoolExecutor) -> None:
        self._model = model
        self._executor = executor
        self._state = SileroVadModel.initial_states(1)
        self._context = np.zeros((1, SILERO_CONTEXT_SAMPLES), dtype=np.float32)
        self._remainder = np.zeros(0, dtype=np.float32)
        self.model_calls = 0

    async def process(self, pcm: npt.NDArray[np.int16]) -> int:
        loop = asyncio.get_running_loop()
        buffered = np.concatenate([self._remainder, pcm.astype(np.float32) / 32768.0])
        count = len(buffered) // SILERO_CHUNK_SAMPLES
        for k in range(count):
            chunk = buffered[None, k * SILERO_CHUNK_SAMPLES : (k + 1) * SILERO_CHUNK_SAMPLES]
            _, self._state = await loop.run_in_executor(
                self._executor, self._model.infer, chunk, self._context, self._state
            )
            self._context = chunk[:, -SILERO_CONTEXT_SAMPLES:]
            self.model_calls += 1
        self._remainder = buffered[count * SILERO_CHUNK_SAMPLES :]
        return count


@dataclass
class Row:
    streams: int
    mode: str
    chunks: int
    model_calls: int
    wall_s: float
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def us_per_chunk(self) -> float:
        return self.wall_s / self.chunks * 1e6


def make_audio(streams: int, seconds: float) -> list[npt.NDArray[np.int16]]:
    rng = np.random.default_rng(0)
    samples = int(seconds * SILERO_SAMPLE_RATE)
    t = np.arange(samples) / SILERO_SAMPLE_RATE
    audio = []
    for index in range(streams):
        tone = 0.2 * np.sin(2 * np.pi * (150 + 10 * index) * t) * (np.sin(2 * np.pi * 2 * t) > 0)
        noise = rng.normal(0, 0.01, samples)
        audio.append(np.round((tone + noise) * 32767).astype(np.int16))
    return audio


async def feed(
    process: Process, pcm: npt.NDArray[np.int16], paced_start: float | None
) -> tuple[int, list[float]]:
    """Feeds ``pcm`` in 20 ms frames; if paced, frame i is sent at paced_start + i * 20 ms."""
    chunks = 0
    latencies: list[float] = []
    for index, start in enumerate(range(0, len(pcm), FRAME_SAMPLES)):
        if paced_start is not None:
            delay = paced_start + index * FRAME_SAMPLES / SILERO_SAMPLE_RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        sent = time.perf_counter()
        produced = await process(pcm[start : start + FRAME_SAMPLES])
        if produced:
            latencies.append(time.perf_counter() - sent)
        chunks += produced
    return chunks, latencies


async def run_mode(
    model: SileroVadModel, mode: str, audio: list[npt.NDArray[np.int16]], paced: bool
) -> Row:
    period = FRAME_SAMPLES / SILERO_SAMPLE_RATE
    stagger = [period * i / len(audio) for i in range(len(audio))]
    if mode == "batched":
        batcher = VadBatcher(model)
        await batcher.start()
        streams = [batcher.open_stream() for _ in audio]

        async def run_stream(i: int, base: float | None) -> tuple[int, list[float]]:
            async def process(pcm: npt.NDArray[np.int16]) -> int:
                return len(await streams[i].process(pcm))

            return await feed(process, audio[i], None if base is None else base + stagger[i])

        started = time.perf_counter()
        base = started + 0.05 if paced else None
        results = await asyncio.gather(*(run_stream(i, base) for i in range(len(audio))))
        wall = time.perf_counter() - started
        calls = batcher.model_calls
        await batcher.aclose()
    else:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vad-per-stream")
        baselines = [PerStreamVad(model, executor) for _ in audio]
        started = time.perf_counter()
        base = started + 0.05 if paced else None
        results = await asyncio.gather(
            *(
                feed(b.process, pcm, None if base is None else base + stagger[i])
                for i, (b, pcm) in enumerate(zip(baselines, audio, strict=True))
            )
        )
        wall = time.perf_counter() - started
        calls = sum(b.model_calls for b in baselines)
        executor.shutdown(wait=True)
    chunks = sum(count for count, _ in results)
    latencies = sorted(lat for _, lats in results for lat in lats)
    row = Row(len(audio), mode, chunks, calls, wall)
    if paced and latencies:
        row.p50_ms = statistics.median(latencies) * 1e3
        row.p99_ms = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1e3
    return row


def raw_model_table(model: SileroVadModel, sizes: list[int]) -> list[tuple[int, float]]:
    """µs per chunk of bare ``infer`` calls at each batch size (no asyncio, no threads)."""
    rows = []
    for batch in sizes:
        chunks = np.random.default_rng(1).normal(0, 0.1, (batch, 512)).astype(np.float32)
        contexts = np.zeros((batch, SILERO_CONTEXT_SAMPLES), dtype=np.float32)
        states = SileroVadModel.initial_states(batch)
        model.infer(chunks, contexts, states)
        repeats = max(20, 3000 // batch)
        started = time.perf_counter()
        for _ in range(repeats):
            model.infer(chunks, contexts, states)
        rows.append((batch, (time.perf_counter() - started) / repeats / batch * 1e6))
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--seconds", type=float, default=4.0, help="audio per stream")
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs; best is kept")
    args = parser.parse_args()
    model = SileroVadModel()
    for mode in ("batched", "per-stream"):  # warm up threads, allocator and the model
        await run_mode(model, mode, make_audio(2, 1.0), paced=False)

    print("bare model call (1 intra-op thread)")
    print(f"{'batch':>6} {'us/chunk':>9}")
    for batch, us in raw_model_table(model, sorted({1, *args.streams})):
        print(f"{batch:>6} {us:>9.1f}")

    print(
        f"\nthroughput: {args.seconds:g} s of audio per stream, 20 ms frames, all at once "
        f"(best of {args.repeats})"
    )
    header = (
        f"{'streams':>7} {'mode':>10} {'chunks':>7} {'calls':>6} {'wall s':>7} "
        f"{'us/chunk':>9} {'RT streams/core':>15}"
    )
    print(header)
    for count in args.streams:
        audio = make_audio(count, args.seconds)
        for mode in ("batched", "per-stream"):
            runs = [await run_mode(model, mode, audio, paced=False) for _ in range(args.repeats)]
            row = min(runs, key=lambda r: r.wall_s)
            capacity = 1e6 / row.us_per_chunk / CHUNKS_PER_SECOND
            print(
                f"{row.streams:>7} {row.mode:>10} {row.chunks:>7} {row.model_calls:>6} "
                f"{row.wall_s:>7.2f} {row.us_per_chunk:>9.1f} {capacity:>15.0f}"
            )

    print(f"\npaced: real-time 20 ms frames for {args.seconds:g} s; latency of calls with results")
    print(f"{'streams':>7} {'mode':>10} {'calls':>6} {'p50 ms':>7} {'p99 ms':>7}")
    for count in args.streams:
        audio = make_audio(count, args.seconds)
        for mode in ("batched", "per-stream"):
            row = await run_mode(model, mode, audio, paced=True)
            print(
                f"{row.streams:>7} {row.mode:>10} {row.model_calls:>6} "
                f"{row.p50_ms or 0:>7.2f} {row.p99_ms or 0:>7.2f}"
            )


if __name__ == "__main__":
    asyncio.run(main())
