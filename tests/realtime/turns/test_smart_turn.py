"""Smart Turn v3.2: the model from the pipecat-ai wheel, and the batcher shared by sessions."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest

from benchmarks.harness.speech import low_noise, silence, synthesize
from realtime.turns.smart_turn import (
    SMART_TURN_THRESHOLD,
    SmartTurnBatcher,
    SmartTurnClosedError,
    SmartTurnModel,
    smart_turn_model_path,
)

COMPLETE = "Can you tell me what the weather is like today?"
CUT_OFF = "I was thinking that maybe we could"
# Measured with espeak-ng 1.51 (bare audio / +0.2 s silence / 0.5 s silence both sides /
# +0.3 s of -60 dBFS noise): COMPLETE 0.92/0.91/0.89/0.95, CUT_OFF 0.61/0.88/0.80/0.81.
# The model hears espeak's flat prosody as fairly final even mid-clause, so CUT_OFF is
# only asserted to score below COMPLETE on the bare audio; the clearly complete and clearly
# cut-off texts below are far from 0.5 in every variant (min 0.89, max 0.12).
OTHER_COMPLETE = ("What time is it?", "How are you doing today?", "Thank you very much.")
CLEARLY_CUT_OFF = "I was thinking that maybe we could go to the"


@pytest.fixture(scope="module")
def model() -> SmartTurnModel:
    return SmartTurnModel()


@pytest.fixture(scope="module")
def speech() -> dict[str, np.ndarray]:
    texts = [COMPLETE, CUT_OFF, *OTHER_COMPLETE, CLEARLY_CUT_OFF]
    return {text: synthesize(text) for text in texts}


@pytest.fixture
async def batcher(model: SmartTurnModel) -> AsyncIterator[SmartTurnBatcher]:
    async with SmartTurnBatcher(model) as running:
        yield running


def _variants(pcm: np.ndarray) -> list[np.ndarray]:
    """The turn as a turn detector might hand it over: bare, with trailing silence, with
    silence both sides, with a quiet room's noise after it."""
    return [
        pcm,
        np.concatenate([pcm, silence(0.2)]),
        np.concatenate([silence(0.5), pcm, silence(0.5)]),
        np.concatenate([pcm, low_noise(0.3, dbfs=-60.0)]),
    ]


class _StubModel:
    """Stands in for SmartTurnModel in the batcher: records calls, may wait or fail."""

    def __init__(self, inner: SmartTurnModel | None = None) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_with: Exception | None = None
        self.batches: list[list[np.ndarray]] = []
        self.threads: list[str] = []

    def score(self, turns: Sequence[npt.ArrayLike]) -> npt.NDArray[np.float32]:
        self.threads.append(threading.current_thread().name)
        self.batches.append([np.asarray(t).copy() for t in turns])
        self.entered.set()
        self.gate.wait(10)
        if self.fail_with is not None:
            raise self.fail_with
        if self.inner is not None:
            return self.inner.score(turns)
        return np.array([len(np.asarray(t)) / 1e6 for t in turns], dtype=np.float32)


def _stub_batcher(stub: _StubModel, **options: Any) -> SmartTurnBatcher:
    return SmartTurnBatcher(cast(SmartTurnModel, stub), **options)


async def _wait_for(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 10)


def test_model_file_comes_from_the_pipecat_wheel() -> None:
    path = smart_turn_model_path()
    assert path.name == "smart-turn-v3.2-cpu.onnx"
    assert path.parts[-6:-1] == ("pipecat", "audio", "turn", "smart_turn", "data")
    assert 8_000_000 < path.stat().st_size < 9_500_000


def test_a_missing_model_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps pipecat-ai==1\.14\.0"):
        smart_turn_model_path()


def test_scoring_imports_neither_pipecat_nor_torch() -> None:
    script = (
        "import sys, numpy as np\n"
        "from realtime.turns.smart_turn import SmartTurnModel\n"
        "SmartTurnModel().score([np.zeros(1600, dtype=np.int16)])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pipecat', 'torch')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert result.stdout.strip() == "[]"


def test_infer_checks_the_feature_shape(model: SmartTurnModel) -> None:
    for shape in [(80, 800), (1, 128, 800), (1, 80, 799), (0, 80, 800)]:
        with pytest.raises(ValueError, match=r"\[B, 80, 800\]"):
            model.infer(np.zeros(shape, dtype=np.float32))


def test_a_complete_question_scores_high_and_a_cut_off_clause_lower(
    model: SmartTurnModel, speech: dict[str, np.ndarray]
) -> None:
    complete, cut_off = model.score([speech[COMPLETE], speech[CUT_OFF]])
    assert complete > SMART_TURN_THRESHOLD
    assert cut_off < complete - 0.15  # measured 0.61 against 0.92


def test_clear_cases_hold_with_silence_and_noise_around_the_speech(
    model: SmartTurnModel, speech: dict[str, np.ndarray]
) -> None:
    complete = [v for text in (COMPLETE, *OTHER_COMPLETE) for v in _variants(speech[text])]
    cut_off = _variants(speech[CLEARLY_CUT_OFF])
    probabilities = model.score(complete + cut_off)
    assert probabilities.min() >= 0.0 and probabilities.max() <= 1.0
    assert probabilities[: len(complete)].min() > 0.7  # measured min 0.89
    assert probabilities[len(complete) :].max() < 0.3  # measured max 0.12


async def test_concurrent_scores_share_model_calls_and_equal_unbatched_results(
    model: SmartTurnModel, speech: dict[str, np.ndarray]
) -> None:
    turns = [v for pcm in speech.values() for v in _variants(pcm)][:8]
    calls: list[tuple[int, float]] = []
    async with SmartTurnBatcher(model, observe_call=lambda n, s: calls.append((n, s))) as batcher:
        batched = await asyncio.gather(*(batcher.score(pcm) for pcm in turns))
        assert batcher.model_calls < len(turns)
        assert batcher.max_batch_seen > 1
        assert batcher.turns_scored == len(turns)
    assert len(calls) == batcher.model_calls
    assert sum(n for n, _ in calls) == len(turns)
    assert all(seconds > 0 for _, seconds in calls)
    unbatched = [float(model.score([pcm])[0]) for pcm in turns]
    np.testing.assert_allclose(batched, unbatched, atol=1e-6)


async def test_batches_are_capped_at_max_batch() -> None:
    stub = _StubModel()
    sizes: list[int] = []
    turns = [np.full(100 + i, 100, dtype=np.int16) for i in range(10)]
    async with _stub_batcher(stub, max_batch=4, observe_call=lambda n, s: sizes.append(n)) as b:
        results = await asyncio.gather(*(b.score(pcm) for pcm in turns))
    assert max(sizes) <= 4 and sum(sizes) == 10 and len(sizes) >= 3
    assert results == pytest.approx([(100 + i) / 1e6 for i in range(10)])


async def test_features_and_model_run_on_the_worker_thread_not_the_event_loop() -> None:
    stub = _StubModel()
    async with _stub_batcher(stub) as batcher:
        await batcher.score(np.ones(1600, dtype=np.int16))
    assert stub.threads and all(name.startswith("smart-turn") for name in stub.threads)


async def test_only_the_last_8_seconds_are_taken_and_copied_at_once() -> None:
    stub = _StubModel()
    stub.gate.clear()
    async with _stub_batcher(stub) as batcher:
        first = asyncio.create_task(batcher.score(np.zeros(10, dtype=np.int16)))
        await _wait_for(stub.entered)  # the worker is busy: the next turn waits in the queue
        buffer = np.arange(200_000, dtype=np.int64).astype(np.int16)
        queued = asyncio.create_task(batcher.score(buffer))
        await asyncio.sleep(0)
        buffer[:] = 0  # the session keeps using its buffer
        stub.gate.set()
        await asyncio.gather(first, queued)
    taken = stub.batches[1][0]
    np.testing.assert_array_equal(taken, np.arange(72_000, 200_000).astype(np.int16))


async def test_a_cancelled_score_is_dropped_and_others_are_unaffected() -> None:
    stub = _StubModel()
    stub.gate.clear()
    async with _stub_batcher(stub, max_batch=1) as batcher:
        in_flight = asyncio.create_task(batcher.score(np.zeros(11, dtype=np.int16)))
        await _wait_for(stub.entered)
        queued = asyncio.create_task(batcher.score(np.zeros(22, dtype=np.int16)))
        kept = asyncio.create_task(batcher.score(np.zeros(33, dtype=np.int16)))
        await asyncio.sleep(0)
        in_flight.cancel()  # while the model runs: its result is dropped
        queued.cancel()  # while queued: never run at all
        stub.gate.set()
        assert await kept == pytest.approx(33 / 1e6)
        for task in (in_flight, queued):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert await batcher.score(np.zeros(44, dtype=np.int16)) == pytest.approx(44 / 1e6)
        assert [len(batch[0]) for batch in stub.batches] == [11, 33, 44]
        assert batcher.turns_scored == 3


async def test_a_model_error_reaches_its_callers_and_the_batcher_carries_on() -> None:
    stub = _StubModel()
    stub.fail_with = RuntimeError("onnxruntime fell over")
    async with _stub_batcher(stub) as batcher:
        with pytest.raises(RuntimeError, match="fell over"):
            await batcher.score(np.zeros(10, dtype=np.int16))
        stub.fail_with = None
        assert await batcher.score(np.zeros(10, dtype=np.int16)) == pytest.approx(10 / 1e6)


async def test_a_failing_observer_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def observe(batch: int, seconds: float) -> None:
        raise ValueError("metrics broke")

    async with _stub_batcher(_StubModel(), observe_call=observe) as batcher:
        assert await batcher.score(np.zeros(10, dtype=np.int16)) == pytest.approx(10 / 1e6)
    assert "observer failed" in caplog.text


async def test_aclose_finishes_the_running_call_and_fails_queued_ones() -> None:
    stub = _StubModel()
    stub.gate.clear()
    batcher = _stub_batcher(stub, max_batch=1)
    await batcher.start()
    assert batcher.running
    in_flight = asyncio.create_task(batcher.score(np.zeros(10, dtype=np.int16)))
    await _wait_for(stub.entered)
    queued = asyncio.create_task(batcher.score(np.zeros(20, dtype=np.int16)))
    await asyncio.sleep(0)
    closing = asyncio.create_task(batcher.aclose())
    await asyncio.sleep(0)
    stub.gate.set()
    await closing
    assert await in_flight == pytest.approx(10 / 1e6)
    with pytest.raises(SmartTurnClosedError):
        await queued
    assert not batcher.running
    with pytest.raises(SmartTurnClosedError):
        await batcher.score(np.zeros(10, dtype=np.int16))
    with pytest.raises(SmartTurnClosedError):
        await batcher.start()
    await batcher.aclose()  # again: nothing to do


async def test_score_needs_a_started_batcher_and_mono_audio(batcher: SmartTurnBatcher) -> None:
    with pytest.raises(RuntimeError, match="start"):
        await _stub_batcher(_StubModel()).score(np.zeros(10, dtype=np.int16))
    with pytest.raises(ValueError, match="mono"):
        await batcher.score(np.zeros((2, 10), dtype=np.int16))
    with pytest.raises(TypeError, match="int16 or float32"):
        await batcher.score(np.zeros(10, dtype=np.float64))
    with pytest.raises(ValueError, match="no"):
        await batcher.score(np.zeros(0, dtype=np.int16))
    with pytest.raises(ValueError, match="max_batch"):
        _stub_batcher(_StubModel(), max_batch=0)


async def test_real_scores_through_the_batcher(
    batcher: SmartTurnBatcher, speech: dict[str, np.ndarray]
) -> None:
    complete, cut_off = await asyncio.gather(
        batcher.score(speech[COMPLETE]), batcher.score(speech[CLEARLY_CUT_OFF])
    )
    assert complete > SMART_TURN_THRESHOLD > cut_off


async def test_the_model_runs_at_a_lower_priority_than_the_event_loop() -> None:
    import os
    import threading

    seen: list[int] = []

    class NiceProbe(SmartTurnModel):
        def __init__(self) -> None:  # no model file needed
            pass

        def score(self, turns):  # type: ignore[no-untyped-def, override]
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return np.zeros(len(turns), dtype=np.float32)

    async with SmartTurnBatcher(NiceProbe(), worker_nice=7) as batcher:
        await batcher.score(np.zeros(1600, dtype=np.int16))
    loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen == [max(loop_nice, 7)]  # an absolute nice value, never raised back
