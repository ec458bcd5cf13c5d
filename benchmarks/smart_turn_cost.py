"""Benchmark: what Smart Turn v3.2 costs on this CPU, per model call and per scored turn.

Three measurements, each the median of ``--repeats`` runs after a warm-up:

- features: ``smart_turn_features`` of one turn (2 s and 8 s of audio; the window is always
  8 s, so the length barely matters);
- model: ``SmartTurnModel.infer`` at each batch size (1 intra-op thread, as the service runs
  it), per call and per item;
- batcher: ``--sessions`` concurrent ``SmartTurnBatcher.score`` calls from the event loop,
  features and model included: wall time, model calls, and per-turn cost.

    .venv/bin/python benchmarks/smart_turn_cost.py [--batches 1 8 32] [--sessions 32]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from realtime.turns.smart_turn import SmartTurnBatcher, SmartTurnModel
from tokenizer.turn_features import smart_turn_feature_batch, smart_turn_features


def make_turn(seconds: float, seed: int) -> npt.NDArray[np.int16]:
    """Speech-like test audio: a pitch-wobbling buzz gated at syllable rate, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * 16_000)) / 16_000
    pitch = 120 + 20 * np.sin(2 * np.pi * 0.7 * t) + 10 * seed
    buzz = sum(np.sin(2 * np.pi * k * np.cumsum(pitch) / 16_000) / k for k in range(1, 8))
    gate = np.sin(2 * np.pi * 4 * t) > -0.3
    audio = 0.1 * buzz * gate + rng.normal(0, 0.003, t.size)
    return np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)


def median_seconds(action: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``action`` (CPU: this thread's own time, which leaves
    out what a busy or oversubscribed VM steals; onnxruntime with one intra-op thread
    computes on the calling thread)."""
    action()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.thread_time()
        action()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.thread_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


async def batcher_round(
    model: SmartTurnModel, turns: list[npt.NDArray[np.int16]]
) -> tuple[float, int, int]:
    """Wall seconds, model calls and largest batch for all turns scored at once."""
    async with SmartTurnBatcher(model, max_batch=len(turns)) as batcher:
        started = time.perf_counter()
        await asyncio.gather(*(batcher.score(pcm) for pcm in turns))
        wall = time.perf_counter() - started
        return wall, batcher.model_calls, batcher.max_batch_seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--sessions", type=int, default=32, help="concurrent batcher scores")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    args = parser.parse_args()
    model = SmartTurnModel(intra_op_threads=args.threads)

    print("features (smart_turn_features, one turn)")
    for seconds in (2.0, 8.0):
        pcm = make_turn(seconds, seed=0)
        wall, cpu = median_seconds(lambda pcm=pcm: smart_turn_features(pcm), args.repeats * 4)
        print(f"  {seconds:>4g} s of audio: {wall * 1e3:6.2f} ms wall, {cpu * 1e3:6.2f} ms CPU")

    print(f"\nmodel call (SmartTurnModel.infer, {args.threads} intra-op thread(s))")
    print(f"{'batch':>6} {'ms/call':>9} {'ms/item':>9} {'CPU ms/item':>12}")
    for batch in args.batches:
        features = smart_turn_feature_batch([make_turn(2.5, seed=i) for i in range(batch)])
        wall, cpu = median_seconds(lambda features=features: model.infer(features), args.repeats)
        print(
            f"{batch:>6} {wall * 1e3:>9.1f} {wall / batch * 1e3:>9.1f} {cpu / batch * 1e3:>12.1f}"
        )

    turns = [make_turn(2.5, seed=i) for i in range(args.sessions)]
    asyncio.run(batcher_round(model, turns[:2]))  # warm-up
    rounds = [asyncio.run(batcher_round(model, turns)) for _ in range(max(1, args.repeats // 2))]
    wall, calls, largest = min(rounds, key=lambda row: row[0])
    print(
        f"\nbatcher: {args.sessions} concurrent score() calls, features + model: "
        f"{wall * 1e3:.0f} ms wall, {calls} model call(s) (largest batch {largest}), "
        f"{wall / args.sessions * 1e3:.1f} ms per turn"
    )


if __name__ == "__main__":
    main()
