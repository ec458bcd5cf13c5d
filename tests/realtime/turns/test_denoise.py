"""Noise reduction as an input stage: what it does to the audio and to the real silero VAD."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.harness.noise import false_starts, fan_noise, noisy_conversation, speech_starts
from realtime.protocol.session_config import NoiseReduction, ServerVad
from realtime.turns.denoise import (
    NOISE_REDUCTION_STAGE,
    SUPPRESSION_LEVELS,
    WebRtcNoiseSuppressor,
    noise_reduction_stage,
)
from realtime.turns.vad import VadBatcher

RATE = 16_000


def level_db(pcm: np.ndarray) -> float:
    return 10 * np.log10(np.mean(pcm.astype(np.float64) ** 2) + 1e-9)


def run_in_frames(stage: WebRtcNoiseSuppressor, pcm: np.ndarray, sizes: list[int]) -> np.ndarray:
    out, at, k = [], 0, 0
    while at < len(pcm):
        size = sizes[k % len(sizes)]
        piece = stage.process(pcm[at : at + size])
        assert len(piece) == len(pcm[at : at + size]), "the stage keeps the sample count"
        out.append(piece)
        at, k = at + size, k + 1
    return np.concatenate(out)


@pytest.fixture(scope="module")
def conversation_5db():  # type: ignore[no-untyped-def]
    return noisy_conversation(fan_noise(30.0), snr_db=5.0)


def test_the_session_setting_picks_the_stage_and_null_turns_it_off() -> None:
    assert noise_reduction_stage(None) is None
    near = noise_reduction_stage(NoiseReduction(type="near_field"))
    far = noise_reduction_stage(NoiseReduction(type="far_field"))
    assert isinstance(near, WebRtcNoiseSuppressor) and isinstance(far, WebRtcNoiseSuppressor)
    assert near.name == far.name == NOISE_REDUCTION_STAGE
    assert near.level == SUPPRESSION_LEVELS["near_field"] < far.level


def test_any_frame_size_gives_the_same_audio_one_block_late(conversation_5db) -> None:  # type: ignore[no-untyped-def]
    pcm = conversation_5db.pcm[: 3 * RATE]
    in_20ms = run_in_frames(WebRtcNoiseSuppressor(2), pcm, [320])
    in_odd = run_in_frames(WebRtcNoiseSuppressor(2), pcm, [7, 480, 161, 1000])
    assert np.array_equal(in_20ms, in_odd)
    assert not in_20ms[:160].any(), "the first 10 ms is the block of delay"


def test_it_lowers_the_noise_between_utterances_and_keeps_the_speech(conversation_5db) -> None:  # type: ignore[no-untyped-def]
    conversation = conversation_5db
    cleaned = run_in_frames(WebRtcNoiseSuppressor(2), conversation.pcm, [320])
    cleaned = np.concatenate([cleaned[160:], np.zeros(160, np.int16)])  # undo the block delay
    gaps = np.ones(len(conversation.pcm), bool)
    for start, end in conversation.speech_spans:
        gaps[start - RATE // 2 : end + RATE // 2] = False
    noise_drop = level_db(conversation.pcm[gaps]) - level_db(cleaned[gaps])
    speech = ~gaps
    speech_drop = level_db(conversation.pcm[speech]) - level_db(cleaned[speech])
    assert noise_drop > 10.0, f"noise only {noise_drop:.1f} dB lower"
    assert speech_drop < noise_drop - 6.0, (
        f"speech {speech_drop:.1f} dB lower, noise {noise_drop:.1f}"
    )


@pytest.mark.parametrize("snr_db", [5.0, 10.0])
async def test_with_the_real_vad_every_utterance_still_starts_a_turn_and_no_false_one(
    batcher: VadBatcher, snr_db: float
) -> None:
    """Silero already gives no false starts on steady noise at 5-10 dB (see the benchmark):
    noise reduction must keep it so, and keep finding each utterance near where it starts
    (a soft onset the suppressor thins out can be found up to a few chunks later, which the
    turn's 300 ms of prefix padding covers)."""
    conversation = noisy_conversation(fan_noise(30.0, seed=1), snr_db=snr_db)
    stage = WebRtcNoiseSuppressor(SUPPRESSION_LEVELS["far_field"])
    starts = await speech_starts(batcher, conversation.pcm, stage, ServerVad())
    assert false_starts(starts, conversation.speech_spans) == 0
    assert len(starts) == len(conversation.speech_spans)
    for start_ms, (begin, _) in zip(starts, conversation.speech_spans, strict=True):
        assert abs(start_ms - begin * 1000 / RATE) < 450
