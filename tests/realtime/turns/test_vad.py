"""VadStream and VadBatcher: streaming silero-vad, batched across sessions off the event loop."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from benchmarks.harness.speech import energy_spans, frames_of, low_noise, silence, synthesize
from realtime.turns.silero import SILERO_CHUNK_SAMPLES, SILERO_CONTEXT_SAMPLES, SileroVadModel
from realtime.turns.vad import (
    LEVEL_SUBFRAMES,
    VadBatcher,
    VadChunkResult,
    VadClosedError,
    VadStream,
    levels_db,
)

FRAME_20MS = 320


async def _stream_frames(stream: VadStream, pcm: np.ndarray, frame: int) -> list[VadChunkResult]:
    results: list[VadChunkResult] = []
    for piece in frames_of(pcm, frame):
        results.extend(await stream.process(piece))
    return results


def _probabilities(results: list[VadChunkResult]) -> np.ndarray:
    return np.array([r.probability for r in results])


async def test_speech_scores_high_and_silence_or_quiet_noise_low(
    batcher: VadBatcher, sentence_16k: np.ndarray
) -> None:
    audio = np.concatenate([silence(0.5), sentence_16k, low_noise(1.0, dbfs=-60.0)])
    (speech,) = energy_spans(audio)
    results = await _stream_frames(batcher.open_stream(), audio, FRAME_20MS)

    inside = [
        r.probability
        for r in results
        if speech.start_sample + 3200 <= r.end_sample - 512
        and r.end_sample + 3200 <= speech.end_sample
    ]
    outside = [
        r.probability
        for r in results
        if r.end_sample <= speech.start_sample or r.end_sample - 512 >= speech.end_sample + 4800
    ]
    assert len(inside) > 30 and len(outside) > 30
    assert np.mean(np.array(inside) > 0.5) > 0.85
    assert max(outside) < 0.2


async def test_stream_matches_silero_streaming_with_64_sample_context(
    batcher: VadBatcher, silero_model: SileroVadModel, sentence_16k: np.ndarray
) -> None:
    # The reference is silero's own streaming rule (utils_vad.OnnxWrapper): each 512-sample
    # chunk is prefixed by the last 64 samples of the previous one, zeros at the start.
    audio = sentence_16k.astype(np.float32) / 32768.0
    state = SileroVadModel.initial_states(1)
    context = np.zeros((1, SILERO_CONTEXT_SAMPLES), dtype=np.float32)
    expected = []
    for start in range(0, len(audio) - SILERO_CHUNK_SAMPLES + 1, SILERO_CHUNK_SAMPLES):
        chunk = audio[None, start : start + SILERO_CHUNK_SAMPLES]
        probability, state = silero_model.infer(chunk, context, state)
        context = chunk[:, -SILERO_CONTEXT_SAMPLES:]
        expected.append(float(probability[0]))

    results = await _stream_frames(batcher.open_stream(), sentence_16k, FRAME_20MS)

    np.testing.assert_allclose(_probabilities(results), expected, atol=1e-5)


async def test_every_complete_chunk_gets_a_result_and_the_remainder_is_kept(
    batcher: VadBatcher, sentence_16k: np.ndarray
) -> None:
    stream = batcher.open_stream()
    first = await stream.process(sentence_16k[:1000])
    second = await stream.process(sentence_16k[1000:1100])
    third = await stream.process(sentence_16k[1100:1600])
    assert [r.end_sample for r in first] == [512]
    assert [r.end_sample for r in second] == [1024]
    assert [r.end_sample for r in third] == [1536]
    assert stream.position == 1600
    assert await stream.process(np.zeros(0, np.int16)) == []


async def test_frame_size_does_not_change_the_probabilities(
    batcher: VadBatcher, sentence_16k: np.ndarray
) -> None:
    whole = await batcher.open_stream().process(sentence_16k)
    in_20ms_frames = await _stream_frames(batcher.open_stream(), sentence_16k, FRAME_20MS)
    in_odd_frames = await _stream_frames(batcher.open_stream(), sentence_16k, 777)

    expected_ends = [SILERO_CHUNK_SAMPLES * (k + 1) for k in range(len(sentence_16k) // 512)]
    for results in (whole, in_20ms_frames, in_odd_frames):
        assert [r.end_sample for r in results] == expected_ends
    np.testing.assert_allclose(_probabilities(in_20ms_frames), _probabilities(whole), atol=1e-5)
    np.testing.assert_allclose(_probabilities(in_odd_frames), _probabilities(whole), atol=1e-5)


async def test_int16_and_float32_audio_give_the_same_probabilities(
    batcher: VadBatcher, sentence_16k: np.ndarray
) -> None:
    from_int16 = await batcher.open_stream().process(sentence_16k)
    from_float = await batcher.open_stream().process(sentence_16k.astype(np.float32) / 32768.0)
    np.testing.assert_allclose(_probabilities(from_float), _probabilities(from_int16), atol=1e-6)


async def test_rejects_stereo_and_integer_types_other_than_int16(batcher: VadBatcher) -> None:
    stream = batcher.open_stream()
    with pytest.raises(ValueError):
        await stream.process(np.zeros((2, 512), np.int16))
    with pytest.raises(TypeError):
        await stream.process(np.zeros(512, np.int32))


@pytest.fixture(scope="module")
def eight_voices(sentence_16k: np.ndarray) -> list[np.ndarray]:
    """Eight different 3 s signals: speech at different offsets, silence, noise."""
    other = synthesize("Seven quick brown foxes jumped over the lazy dog.")
    signals = []
    for index in range(8):
        source = sentence_16k if index % 2 == 0 else other
        lead = silence(0.1 * index)
        signal = np.concatenate([lead, source, low_noise(3.0, dbfs=-50.0, seed=index)])
        signals.append(signal[: 3 * 16_000])
    signals[5] = low_noise(3.0, dbfs=-45.0, seed=99)
    return signals


async def test_concurrent_streams_match_streams_processed_alone_with_fewer_model_calls(
    silero_model: SileroVadModel, eight_voices: list[np.ndarray]
) -> None:
    alone: list[list[VadChunkResult]] = []
    for signal in eight_voices:
        async with VadBatcher(silero_model) as solo:
            alone.append(await _stream_frames(solo.open_stream(), signal, FRAME_20MS))

    async with VadBatcher(silero_model) as shared:
        streams = [shared.open_stream() for _ in eight_voices]
        together = await asyncio.gather(
            *(_stream_frames(s, v, FRAME_20MS) for s, v in zip(streams, eight_voices, strict=True))
        )
        chunks = sum(len(r) for r in together)
        assert shared.chunks_processed == chunks
        assert shared.model_calls < chunks / 4
        assert shared.max_batch_seen == len(eight_voices)

    for mine, reference in zip(together, alone, strict=True):
        assert [r.end_sample for r in mine] == [r.end_sample for r in reference]
        np.testing.assert_allclose(_probabilities(mine), _probabilities(reference), atol=1e-5)
    # The signals differ, so the streams must not have shared state.
    assert not np.allclose(_probabilities(together[0]), _probabilities(together[1]), atol=0.05)


async def test_rounds_larger_than_max_batch_are_split_into_several_calls(
    silero_model: SileroVadModel, eight_voices: list[np.ndarray]
) -> None:
    sizes: list[int] = []
    async with VadBatcher(silero_model, max_batch=3, observe_call=sizes.append) as small:
        streams = [small.open_stream() for _ in eight_voices]
        together = await asyncio.gather(
            *(s.process(v) for s, v in zip(streams, eight_voices, strict=True))
        )
        assert small.max_batch_seen == 3
        assert len(sizes) == small.model_calls
        assert sum(sizes) == small.chunks_processed == sum(len(r) for r in together)
    async with VadBatcher(silero_model) as solo:
        reference = await solo.open_stream().process(eight_voices[4])
    np.testing.assert_allclose(_probabilities(together[4]), _probabilities(reference), atol=1e-5)


async def test_streams_with_different_amounts_queued_share_rounds_correctly(
    batcher: VadBatcher, sentence_16k: np.ndarray
) -> None:
    # Streams queue 1, 3 and all chunks of the sentence in the same round; each must match
    # the sentence processed on its own.
    framed, in_thirds, whole = await asyncio.gather(
        _stream_frames(batcher.open_stream(), sentence_16k, SILERO_CHUNK_SAMPLES),
        _stream_frames(batcher.open_stream(), sentence_16k, 3 * SILERO_CHUNK_SAMPLES),
        batcher.open_stream().process(sentence_16k),
    )
    reference = await batcher.open_stream().process(sentence_16k)
    for results in (framed, in_thirds, whole):
        np.testing.assert_allclose(_probabilities(results), _probabilities(reference), atol=1e-5)


async def test_reset_forgets_the_audio_but_keeps_counting_samples(
    batcher: VadBatcher, sentence_16k: np.ndarray
) -> None:
    stream = batcher.open_stream()
    await stream.process(sentence_16k[:10_000])  # leaves a remainder of 10_000 % 512 samples
    stream.reset()
    after_reset = await stream.process(sentence_16k)
    fresh = await batcher.open_stream().process(sentence_16k)

    assert [r.end_sample - 10_000 for r in after_reset] == [r.end_sample for r in fresh]
    np.testing.assert_allclose(_probabilities(after_reset), _probabilities(fresh), atol=1e-5)

    stream.reset(position=0)
    assert [r.end_sample for r in await stream.process(sentence_16k[:1024])] == [512, 1024]


async def test_reset_while_waiting_makes_the_pending_call_return_nothing(
    batcher: VadBatcher, sentence_16k: np.ndarray
) -> None:
    stream = batcher.open_stream()
    pending = asyncio.create_task(stream.process(sentence_16k))
    await asyncio.sleep(0)  # the call has queued its chunks
    stream.reset()
    assert await pending == []
    # The stream goes on from a clean state.
    after = await stream.process(sentence_16k)
    fresh = await batcher.open_stream().process(sentence_16k)
    np.testing.assert_allclose(_probabilities(after), _probabilities(fresh), atol=1e-5)


async def test_closed_stream_drops_pending_work_and_refuses_more_audio(
    batcher: VadBatcher, sentence_16k: np.ndarray
) -> None:
    stream = batcher.open_stream()
    pending = asyncio.create_task(stream.process(sentence_16k))
    await asyncio.sleep(0)
    stream.close()
    assert await pending == []
    with pytest.raises(VadClosedError):
        await stream.process(sentence_16k)


async def test_closing_the_batcher_fails_queued_calls_with_a_clear_error(
    silero_model: SileroVadModel, sentence_16k: np.ndarray
) -> None:
    vad = VadBatcher(silero_model)
    await vad.start()
    stream = vad.open_stream()
    pending = asyncio.create_task(stream.process(sentence_16k))
    await asyncio.sleep(0)  # queued, not yet taken by the batcher's loop
    await vad.aclose()
    with pytest.raises(VadClosedError, match="closed"):
        await pending
    with pytest.raises(VadClosedError):
        await stream.process(sentence_16k)
    with pytest.raises(VadClosedError):
        vad.open_stream()
    await vad.aclose()  # idempotent


async def test_process_before_start_is_an_error(
    silero_model: SileroVadModel, sentence_16k: np.ndarray
) -> None:
    vad = VadBatcher(silero_model)
    with pytest.raises(RuntimeError, match="start"):
        await vad.open_stream().process(sentence_16k)
    await vad.aclose()


async def test_cancelled_call_still_advances_the_stream(
    batcher: VadBatcher, sentence_16k: np.ndarray
) -> None:
    stream = batcher.open_stream()
    first = asyncio.create_task(stream.process(sentence_16k[:8192]))
    await asyncio.sleep(0)
    first.cancel()
    rest = await stream.process(sentence_16k[8192:])
    reference = await batcher.open_stream().process(sentence_16k)
    assert rest[0].end_sample == 8192 + 512
    np.testing.assert_allclose(_probabilities(rest), _probabilities(reference)[16:], atol=1e-5)


def test_levels_are_the_rms_of_each_part_and_of_a_shorter_last_part() -> None:
    full_scale_half = np.full(64, 16384, dtype=np.int16)  # RMS 0.5: -6.02 dBFS
    quiet = np.full(10, 164, dtype=np.int16)  # RMS 0.005: -46.0 dBFS
    levels = levels_db(np.concatenate([full_scale_half, np.zeros(32, np.int16), quiet]), 32)
    assert levels[:2] == pytest.approx([-6.02, -6.02], abs=0.01)
    assert levels[2] < -100.0
    assert levels[3] == pytest.approx(-46.0, abs=0.05)
    assert levels_db(np.zeros(0, np.int16), 32) == []


async def test_each_result_carries_the_levels_of_its_chunk_parts(
    batcher: VadBatcher, sentence_16k: np.ndarray
) -> None:
    results = await batcher.open_stream().process(sentence_16k)
    part = SILERO_CHUNK_SAMPLES // LEVEL_SUBFRAMES
    for result in results[::7]:
        chunk = sentence_16k[result.end_sample - SILERO_CHUNK_SAMPLES : result.end_sample]
        assert result.levels_db == pytest.approx(levels_db(chunk, part), abs=0.05)
