"""Echo cancellation as an input stage: where the far-end reference lands on the
microphone's timeline, and what the stage does to an echo (simulated clock and room)."""

from __future__ import annotations

import numpy as np

from benchmarks.harness.echo_room import REPLY_TEXT, Room
from benchmarks.harness.speech import synthesize
from realtime.protocol.session_config import EchoCancellation
from realtime.turns.echo import (
    ECHO_CANCELLATION_STAGE,
    EchoCancellationStage,
    FarEndReference,
    echo_cancellation_stage,
)

RATE = 16_000
FRAME = 320


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def level_db(pcm: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(pcm.astype(np.float64) ** 2) + 1e-9))


def test_the_session_setting_picks_the_stage_and_null_turns_it_off() -> None:
    assert echo_cancellation_stage(None) is None
    stage = echo_cancellation_stage(EchoCancellation())
    assert isinstance(stage, EchoCancellationStage)
    assert stage.name == ECHO_CANCELLATION_STAGE


def test_a_reply_frame_lands_where_the_microphone_hears_its_play_time() -> None:
    clock = Clock()
    reference = FarEndReference(clock)
    reference.heard(1600)  # 100 ms of microphone audio arrived at t=100: sample 0 is t=99.9
    tone = np.full(320, 1000, dtype=np.int16)
    reference.reply_sent("resp_1", tone, RATE, play_at=100.05, sent_ms=20.0)
    reference.reply_sent("resp_1", tone, RATE, play_at=100.07, sent_ms=40.0)
    out = reference.take(4800)
    # sample 2400 is t=100.05; the two frames run on from there, 640 samples in all
    assert not out[:2400].any()
    assert (out[2400:3040] == 1000).all()
    assert not out[3040:].any()
    assert reference.late_samples == 0


def test_a_frame_for_audio_already_gone_is_dropped_not_shifted() -> None:
    clock = Clock()
    reference = FarEndReference(clock)
    reference.heard(1600)
    reference.take(1600)  # the microphone's reference up to t=100 is spent
    reference.reply_sent("resp_1", np.full(320, 500, np.int16), RATE, play_at=99.99, sent_ms=20)
    assert reference.late_samples == 160  # the 10 ms before t=100
    out = reference.take(320)
    assert (out[:160] == 500).all() and not out[160:].any()


def test_a_later_frame_rate_is_resampled_to_16_khz() -> None:
    clock = Clock()
    reference = FarEndReference(clock)
    reference.heard(1600)
    for k in range(10):  # 200 ms of 8 kHz audio (a phone call's rate)
        reference.reply_sent("r", np.full(160, 800, np.int16), 8000, 100.0 + 0.02 * k, 20.0 * k)
    out = reference.take(1600 + 3200 + 800)
    assert reference.placed_samples >= 3200 - 16  # the resampler holds a sample or two back
    assert abs(float(np.mean(out[1700:4600])) - 800) < 20


def test_a_cut_reply_leaves_no_reference_after_the_cut_and_the_next_one_starts_afresh() -> None:
    clock = Clock()
    reference = FarEndReference(clock)
    reference.heard(1600)  # sample 0 is t=99.9
    for k in range(10):  # 200 ms from t=100.0, sent ahead of playback
        reference.reply_sent("resp_1", np.full(320, 900, np.int16), RATE, 100.0 + 0.02 * k, 20)
    reference.reply_stopped("resp_2", at=100.1)  # another reply's cut changes nothing here
    reference.reply_stopped("resp_1", at=100.1)  # the client drops the rest at t=100.1
    reference.reply_sent("resp_3", np.full(320, 400, np.int16), RATE, 100.12, 20.0)
    out = reference.take(RATE)
    cut, nxt = round(0.2 * RATE), round(0.22 * RATE)  # t=100.1 and t=100.12
    assert (out[1600:cut] == 900).all()
    assert not out[cut:nxt].any()
    assert (out[nxt : nxt + 320] == 400).all()
    assert not out[nxt + 320 :].any()


def test_a_mark_saying_the_audio_played_late_moves_the_reference_later() -> None:
    clock = Clock()
    reference = FarEndReference(clock)
    reference.heard(1600)
    frame = np.full(320, 700, np.int16)
    reference.reply_sent("resp_1", frame, RATE, play_at=100.0, sent_ms=20.0)
    clock.now = 100.32  # the mark for the first 20 ms comes back 300 ms after it was due
    reference.reply_played("resp_1", 20.0)
    assert abs(reference.offset_s - 0.3) < 1e-9
    reference.reply_sent("resp_2", frame, RATE, play_at=101.0, sent_ms=20.0)
    out = reference.take(RATE * 2)
    start = round((101.3 - 99.9) * RATE)
    assert (out[start : start + 320] == 700).all()


def test_any_frame_size_gives_the_same_audio_one_block_late() -> None:
    rng = np.random.default_rng(0)
    pcm = np.round(rng.normal(0, 2000, RATE)).astype(np.int16)
    outs = []
    for sizes in ([320], [7, 480, 161, 1000]):
        stage = EchoCancellationStage(FarEndReference(Clock()))
        pieces, at, k = [], 0, 0
        while at < len(pcm):
            piece = pcm[at : at + sizes[k % len(sizes)]]
            out = stage.process(piece)
            assert len(out) == len(piece), "the stage keeps the sample count"
            pieces.append(out)
            at, k = at + len(piece), k + 1
        outs.append(np.concatenate(pieces))
    assert np.array_equal(outs[0], outs[1])
    assert not outs[0][:160].any(), "the first 10 ms is the block of delay"


def run_room(stage: EchoCancellationStage, clock: Clock, near: np.ndarray, far: np.ndarray):  # type: ignore[no-untyped-def]
    """20 ms frames: the reply frame is sent as it starts to play, the microphone's frame
    arrives as it ends."""
    start_at = clock.now
    out = []
    for start in range(0, len(near) - FRAME + 1, FRAME):
        clock.now = start_at + (start + FRAME) / RATE
        stage.reference.reply_sent("r", far[start : start + FRAME], RATE,
                                   start_at + start / RATE, 0.0)  # fmt: skip
        out.append(stage.process(near[start : start + FRAME]))
    return np.concatenate(out)


def test_the_echo_of_a_reply_is_removed_and_the_users_voice_kept() -> None:
    reply = synthesize(REPLY_TEXT, RATE)[: 10 * RATE]
    room = Room(delay_ms=200, gain_db=-6)
    echo = np.convolve(reply.astype(np.float32), room.impulse_response())[: len(reply)]
    user = np.zeros(len(reply), dtype=np.float32)
    voice = synthesize("Excuse me, a question", RATE).astype(np.float32)
    user[7 * RATE : 7 * RATE + len(voice)] = voice
    mic = np.clip(np.round(echo + user), -32768, 32767).astype(np.int16)
    clock = Clock()
    stage = EchoCancellationStage(FarEndReference(clock))
    out = run_room(stage, clock, mic, reply)
    settled = slice(3 * RATE, 7 * RATE)  # the echo alone, after AEC3 has converged
    assert level_db(mic[settled]) - level_db(out[settled]) > 20
    spoken = slice(7 * RATE + 160, 7 * RATE + len(voice))
    echo_alone = slice(7 * RATE, 7 * RATE + len(voice))
    kept = level_db(out[spoken]) - level_db(user[echo_alone])
    assert kept > -10, "the user's voice over the echo keeps most of its level"


def test_the_reference_keeps_leading_its_echo_by_little_when_the_clients_clock_runs_slow() -> None:
    clock = Clock()
    start = clock.now
    reference = FarEndReference(clock)
    slow = 1.001  # the client's 20 ms of audio take 20.02 ms of the server's time
    latency_s = 0.04  # from capturing a frame's last sample to its arrival
    frames = round(600 / 0.02)  # ten minutes: 0.6 s of drift
    for k in range(1, frames + 1):
        clock.now = start + k * 0.02 * slow + latency_s
        reference.heard(FRAME)
        reference.take(FRAME)
    play_at = clock.now + 0.5
    reference.reply_sent("r", np.full(320, 900, np.int16), RATE, play_at, 20.0)
    placed = reference.take(2 * RATE).nonzero()[0][0] + frames * FRAME
    echo_at = (play_at - start) / slow * RATE  # the sample captured as the frame plays
    lead_s = (echo_at - placed) / RATE
    assert 0.0 <= lead_s < 0.1, "the reference leads its echo, and not by the 0.6 s of drift"
