"""The outgoing WebRTC track (real-time frames, silence between replies, stale audio dropped
within a frame) and the decoding of inbound frames."""

from __future__ import annotations

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection

from realtime.webrtc_media.media import PacedAudioTrack, mono_pcm, shorten_receive_buffer

FRAME = 960  # 20 ms at 48 kHz


class Playback:
    def __init__(self) -> None:
        self.notices: list[tuple[str, str]] = []

    def playback_started(self, tag: str) -> None:
        self.notices.append(("started", tag))

    def playback_finished(self, tag: str) -> None:
        self.notices.append(("finished", tag))


def ramp(n: int, start: int = 1) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.int16)


async def samples_of(track: PacedAudioTrack) -> np.ndarray:
    frame = await track.recv()
    assert frame.sample_rate == 48_000 and frame.samples == FRAME
    assert frame.format.name == "s16" and frame.layout.name == "mono"
    return frame.to_ndarray().reshape(-1)


async def test_the_track_sends_silence_when_no_reply_is_queued() -> None:
    track = PacedAudioTrack()
    frames = [await samples_of(track) for _ in range(3)]
    assert all(not frame.any() for frame in frames)


async def test_frames_carry_consecutive_timestamps_at_the_rtp_clock() -> None:
    track = PacedAudioTrack()
    stamps = [(await track.recv()).pts for _ in range(3)]
    assert stamps == [0, FRAME, 2 * FRAME]


async def test_pushed_audio_plays_in_order_then_silence_follows() -> None:
    track = PacedAudioTrack()
    audio = ramp(2 * FRAME + 100)
    track.push("resp_a", audio[:1000])
    track.push("resp_a", audio[1000:])
    track.finish("resp_a")
    played = np.concatenate([await samples_of(track) for _ in range(4)])
    assert np.array_equal(played[: len(audio)], audio)
    assert not played[len(audio) :].any()


async def test_a_cancelled_reply_stops_within_one_frame() -> None:
    stale: set[str] = set()
    track = PacedAudioTrack(is_stale=stale.__contains__)
    track.push("resp_a", ramp(10 * FRAME))
    assert (await samples_of(track)).any()
    stale.add("resp_a")  # the outbox cancelled the response (a barge-in)
    assert not (await samples_of(track)).any()
    assert track.queued_ms() == 0.0


async def test_a_paused_reply_holds_within_one_frame_and_resumes_where_it_stopped() -> None:
    paused: set[str] = set()
    track = PacedAudioTrack(is_paused=paused.__contains__)
    audio = ramp(4 * FRAME)
    track.push("resp_a", audio)
    track.finish("resp_a")
    first = await samples_of(track)
    paused.add("resp_a")  # speech over the reply, not yet judged
    held = [await samples_of(track) for _ in range(2)]
    paused.discard("resp_a")  # a backchannel: play on
    rest = [await samples_of(track) for _ in range(3)]
    assert all(not frame.any() for frame in held)
    played = np.concatenate([first, *rest])
    assert np.array_equal(played, audio)


async def test_a_reply_starts_on_a_whole_frame_not_on_a_scrap() -> None:
    track = PacedAudioTrack()
    track.push("resp_a", ramp(FRAME // 2))
    assert not (await samples_of(track)).any(), "half a frame so far: wait for the rest"
    track.push("resp_a", ramp(FRAME // 2, start=FRAME // 2 + 1))
    assert np.array_equal(await samples_of(track), ramp(FRAME))


async def test_playback_notices_and_the_sent_future_follow_the_audio() -> None:
    listener = Playback()
    track = PacedAudioTrack(listener=listener)
    track.push("resp_a", ramp(FRAME + 10))
    sent = track.finish("resp_a")
    await samples_of(track)
    assert listener.notices == [("started", "resp_a")]
    assert not sent.done()
    await samples_of(track)
    assert listener.notices == [("started", "resp_a"), ("finished", "resp_a")]
    assert sent.done() and sent.result() is not None


async def test_dropping_a_tag_discards_its_audio_and_settles_its_future() -> None:
    listener = Playback()
    track = PacedAudioTrack(listener=listener)
    track.push("resp_a", ramp(3 * FRAME))
    track.push("resp_b", ramp(FRAME, start=7))
    sent = track.finish("resp_a")
    track.drop("resp_a")
    assert sent.done() and sent.result() is None
    assert np.array_equal(await samples_of(track), ramp(FRAME, start=7))
    assert ("started", "resp_a") not in listener.notices


@pytest.mark.parametrize("layout", ["stereo", "mono"])
def test_inbound_frames_become_mono_int16(layout: str) -> None:
    left = np.full(FRAME, 1000, dtype=np.int16)
    right = np.full(FRAME, -200, dtype=np.int16)
    if layout == "stereo":
        packed = np.stack([left, right], axis=1).reshape(1, -1)
        expected = np.full(FRAME, 400, dtype=np.int16)
    else:
        packed = left.reshape(1, -1)
        expected = left
    frame = av.AudioFrame.from_ndarray(packed, format="s16", layout=layout)
    frame.sample_rate = 48_000
    pcm = mono_pcm(frame)
    assert pcm.dtype == np.int16
    assert np.array_equal(pcm, expected)


async def test_the_receive_buffer_of_an_aiortc_audio_receiver_can_be_shortened() -> None:
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("audio").receiver
        assert shorten_receive_buffer(receiver, 1)
        buffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        assert buffer._prefetch == 1
    finally:
        await pc.close()
