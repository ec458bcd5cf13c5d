"""Reply audio received over WebRTC, cut back into per-response audio delta events."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from realtime.client.events import OutputAudioDelta, ServerEvent, parse_server_event
from realtime.client.webrtc_audio import ReplyAudioDemux

FRAME = 960  # 20 ms at 48 kHz
SILENT = np.zeros(FRAME, dtype=np.int16)


def voiced(level: int = 3000) -> np.ndarray:
    t = np.arange(FRAME) / 48_000
    return (level * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def event(data: dict[str, Any]) -> ServerEvent:
    return parse_server_event(data, 0.0)


def created(response_id: str, rate: int = 24_000) -> ServerEvent:
    return event(
        {
            "type": "response.created",
            "response": {
                "id": response_id,
                "audio": {"output": {"format": {"type": "audio/pcm", "rate": rate}}},
            },
        }
    )


def item_added(response_id: str, item_id: str, item_type: str = "message") -> ServerEvent:
    return event(
        {
            "type": "response.output_item.added",
            "response_id": response_id,
            "item": {"id": item_id, "type": item_type},
        }
    )


def playback(kind: str, response_id: str) -> ServerEvent:
    return event({"type": f"output_audio_buffer.{kind}", "response_id": response_id})


def done(response_id: str) -> ServerEvent:
    return event({"type": "response.done", "response": {"id": response_id, "status": "completed"}})


class Collected:
    def __init__(self) -> None:
        self.events: list[ServerEvent] = []

    def __call__(self, item: ServerEvent) -> None:
        self.events.append(item)

    def types(self) -> list[str]:
        return [item.type for item in self.events]

    def audio(self) -> list[OutputAudioDelta]:
        return [item for item in self.events if isinstance(item, OutputAudioDelta)]


async def test_reply_audio_starts_at_the_first_sound_after_started_and_ends_after_stopped() -> None:
    out = Collected()
    demux = ReplyAudioDemux(out)
    for item in (
        created("resp_a"),
        item_added("resp_a", "item_a"),
        item_added("resp_a", "item_call", "function_call"),  # the audio is not the call's
    ):
        demux.on_event(item)
    demux.on_audio(voiced(), 1.0)  # sound before the announcement belongs to no response
    demux.on_event(playback("started", "resp_a"))
    demux.on_audio(SILENT, 2.0)  # still the silence before the reply
    demux.on_audio(voiced(), 3.0)
    demux.on_audio(voiced(), 3.02)
    demux.on_event(playback("stopped", "resp_a"))
    demux.on_event(done("resp_a"))
    assert "response.done" not in out.types(), "held until the reply's audio has arrived"
    demux.on_audio(voiced(), 3.04)
    demux.on_audio(SILENT, 3.06)  # the end of the reply
    demux.on_audio(voiced(), 4.0)  # nothing announced: not part of any response

    deltas = out.audio()
    assert out.types()[-1] == "response.done"
    assert {(d.response_id, d.item_id) for d in deltas} == {("resp_a", "item_a")}
    assert deltas[0].received_at == 3.0
    samples = sum(len(d.pcm()) for d in deltas)
    assert abs(samples - 3 * FRAME // 2) <= 2, "three 20 ms frames at the response's 24 kHz"


async def test_a_cleared_reply_ends_at_once() -> None:
    out = Collected()
    demux = ReplyAudioDemux(out)
    demux.on_event(created("resp_a"))
    demux.on_event(playback("started", "resp_a"))
    demux.on_audio(voiced(), 1.0)
    demux.on_event(playback("cleared", "resp_a"))
    demux.on_audio(voiced(), 1.02)
    demux.on_event(done("resp_a"))
    assert out.types()[-1] == "response.done"
    deltas = out.audio()
    assert deltas and all(d.received_at == 1.0 for d in deltas), "nothing after the cut"
    assert sum(len(d.pcm()) for d in deltas) <= FRAME // 2 + 2


async def test_a_response_without_audio_is_not_held() -> None:
    out = Collected()
    demux = ReplyAudioDemux(out)
    demux.on_event(created("resp_text"))
    demux.on_event(done("resp_text"))
    assert out.types() == ["response.created", "response.done"]


async def test_a_held_response_done_is_released_when_its_audio_never_comes() -> None:
    out = Collected()
    demux = ReplyAudioDemux(out, done_grace_s=0.05)
    demux.on_event(created("resp_a"))
    demux.on_event(playback("started", "resp_a"))
    demux.on_event(done("resp_a"))
    assert "response.done" not in out.types()
    await asyncio.sleep(0.2)
    assert out.types()[-1] == "response.done"
