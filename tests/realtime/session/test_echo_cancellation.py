"""A session's ``audio.input.x_echo_cancellation``: set and cleared by session.update, on for
phone calls, fed by the outbox, and what it changes for a speakerphone in a simulated room
(real session, real silero VAD and interruption rule, in real time)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from benchmarks.harness.echo_room import Room, room_services, run_room
from realtime.protocol.session_config import (
    AudioConfig,
    EchoCancellation,
    InputAudio,
    SessionConfig,
)
from realtime.session.outbox import AudioFrame, Outbox
from realtime.session.services import SessionServices, SessionSettings
from realtime.transports.twilio import phone_config
from realtime.turns.denoise import NOISE_REDUCTION_STAGE
from realtime.turns.echo import ECHO_CANCELLATION_STAGE, EchoCancellationStage
from tests.realtime.session.support import (
    running_session,
    session_services,
    until,
    update_input_audio,
)
from tests.support.openai_events import validate_server_event


@pytest.fixture(scope="module")
async def services() -> AsyncIterator[SessionServices]:
    async with session_services(SessionSettings()) as s:
        yield s


async def test_a_session_update_turns_it_on_and_off_and_feeds_it_the_reply(
    services: SessionServices,
) -> None:
    async with running_session(services) as (session, sink):
        await until(lambda: bool(sink.events))
        created = sink.events.pop()
        assert created["session"]["audio"]["input"]["x_echo_cancellation"] is None
        validate_server_event(created)
        assert session.input.stage(ECHO_CANCELLATION_STAGE) is None

        event = await update_input_audio(
            session, sink, {"noise_reduction": {"type": "near_field"},
                            "x_echo_cancellation": {"type": "server"}},
        )  # fmt: skip
        validate_server_event(event)
        assert event["session"]["audio"]["input"]["x_echo_cancellation"] == {"type": "server"}
        stage = session.input.stage(ECHO_CANCELLATION_STAGE)
        assert isinstance(stage, EchoCancellationStage)
        assert session.outbox.observer is stage.reference
        assert session.input.stage_names == (ECHO_CANCELLATION_STAGE, NOISE_REDUCTION_STAGE), (
            "echo cancellation comes before noise suppression"
        )

        bad = await update_input_audio(session, sink, {"x_echo_cancellation": {"type": "client"}})
        assert bad["type"] == "error"
        assert bad["error"]["param"] == "session.audio.input.x_echo_cancellation.type"
        assert session.input.stage(ECHO_CANCELLATION_STAGE) is stage

        await update_input_audio(session, sink, {"x_echo_cancellation": None})
        assert session.input.stage(ECHO_CANCELLATION_STAGE) is None
        assert session.outbox.observer is None


def test_phone_calls_cancel_echo_by_default_and_the_server_may_turn_it_off() -> None:
    config = phone_config(SessionConfig(), echo_cancellation=True)
    assert config.audio.input.x_echo_cancellation is not None
    assert SessionSettings().phone_echo_cancellation is True
    off = phone_config(SessionConfig(), echo_cancellation=False)
    assert off.audio.input.x_echo_cancellation is None
    assert SessionConfig().audio.input.x_echo_cancellation is None


async def test_echo_alone_causes_no_barge_in_and_a_real_barge_in_still_cuts_the_reply() -> None:
    room = Room(delay_ms=120, gain_db=-6)
    async with room_services() as services:
        off, on = await asyncio.gather(
            *(
                run_room(services, room, echo_cancellation=cancel, echo_only_s=10.0, barge_ins=1)
                for cancel in (False, True)
            )
        )
    assert off.false_pauses + off.false_barge_ins >= 1, "without it the echo is taken for speech"
    assert on.reply_s > 8.0
    assert on.false_barge_ins == 0
    assert on.false_turns == 0
    # A pause (the reply held until the sound is judged a backchannel) is not asked to be
    # none: on a starved CPU the session reads its input late and a residue of the echo's
    # onset can slip through once; the benchmark counts them.
    assert on.false_pauses <= 1
    (barge_in,) = on.barge_ins
    assert barge_in.detected
    assert barge_in.paused_after_ms is not None


class Observer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int, float, float]] = []
        self.played: list[tuple[str, float]] = []
        self.stopped: list[tuple[str, float]] = []

    def reply_sent(
        self, response_id: str, pcm: np.ndarray, sample_rate: int, play_at: float, sent_ms: float
    ) -> None:
        self.sent.append((response_id, len(pcm), play_at, sent_ms))

    def reply_played(self, response_id: str, played_ms: float) -> None:
        self.played.append((response_id, played_ms))

    def reply_stopped(self, response_id: str, at: float) -> None:
        self.stopped.append((response_id, at))


async def test_the_outbox_tells_when_each_frame_will_play_and_what_the_far_end_played() -> None:
    now = [10.0]
    outbox = Outbox(8000, lead_ms=200.0, clock=lambda: now[0])
    observer = Observer()
    outbox.observer = observer
    for _ in range(3):
        frame = AudioFrame("resp_1", "item_1", np.zeros(160, dtype=np.int16), 0)
        assert await outbox.enqueue_audio(frame, max_buffered_ms=1000.0)
        await outbox.get()
    # Sent at once (within the lead), each plays when the one before it ends.
    assert observer.sent == [
        ("resp_1", 160, 10.0, 20.0),
        ("resp_1", 160, 10.02, 40.0),
        ("resp_1", 160, 10.04, 60.0),
    ]
    outbox.played("resp_1", 40.0)  # a Twilio mark came back
    assert observer.played == [("resp_1", 40.0)]
    now[0] = 10.03
    outbox.cancel("resp_1")  # a barge-in: the far end drops what it holds now
    outbox.cancel("resp_1")
    outbox.cancel("resp_2")  # nothing of it was sent: nothing to drop
    assert observer.stopped == [("resp_1", 10.03)]


async def test_a_webrtc_call_starts_without_it_whatever_the_server_default() -> None:
    from realtime.transports.webrtc.call import WebRtcCall
    from realtime.transports.webrtc.options import WebRtcOptions

    default = SessionConfig(
        audio=AudioConfig(input=InputAudio(x_echo_cancellation=EchoCancellation()))
    )
    async with session_services(SessionSettings(default_config=default)) as services:
        call = WebRtcCall(services, WebRtcOptions())
        try:
            assert call.session_config().audio.input.x_echo_cancellation is None
            assert (
                call.session_config().audio.input.turn_detection
                == default.audio.input.turn_detection
            )
        finally:
            await call.hang_up("test over")
    assert phone_config(default, echo_cancellation=False).audio.input.x_echo_cancellation is None
