"""What both SDK clients share (``RealtimeSessionClient``), over a transport that keeps what is
sent and is fed what the server says: no sockets, no peer connection."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from realtime.client.errors import RealtimeConnectionClosed, RealtimeServerError
from realtime.client.session_client import RealtimeSessionClient

SESSION = {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}},
                     "output": {"format": {"type": "audio/pcm", "rate": 16000}}}}  # fmt: skip


class RecordingClient(RealtimeSessionClient):
    """Sends into a list, streams audio into another; ``hear`` feeds a server message."""

    def __init__(self) -> None:
        super().__init__("memory://session")
        self.sent: list[str | bytes] = []
        self.streamed: list[npt.NDArray[np.int16]] = []
        self.ended = False
        self.answer: dict[str, Any] | None = None

    async def _send_message(self, message: str | bytes, doing: str) -> None:
        if self.ended:
            raise self._closed_error(doing)
        self.sent.append(message)
        if self.answer is not None:
            event_id = json.loads(message).get("event_id")
            self.hear({**self.answer, "event_id": "event_server"}, about=event_id)

    def _closed_error(self, doing: str) -> RealtimeConnectionClosed:
        return RealtimeConnectionClosed(f"ended {doing}; {self.describe_recent()}")

    async def close(self) -> None:
        self.ended = True
        self._inbox.end()

    @property
    def closed(self) -> bool:
        return self.ended

    @property
    def input_rate(self) -> int:
        return 24_000

    async def stream_audio(self, pcm: npt.NDArray[np.int16], *, sample_rate: int,
                           chunk_ms: float = 20.0, realtime: bool = True,
                           stop: asyncio.Event | None = None) -> float:  # fmt: skip
        self.streamed.append(pcm)
        return 0.0

    def hear(self, event: dict[str, Any], about: str | None = None) -> None:
        if about is not None and event["type"] == "error":
            event = {**event, "error": {**event["error"], "event_id": about}}
        self._receive(json.dumps(event), 1.0)


def sent_events(client: RecordingClient) -> list[dict[str, Any]]:
    return [json.loads(message) for message in client.sent]


async def test_session_events_set_the_session_and_its_output_rate() -> None:
    client = RecordingClient()

    client.hear({"type": "session.created", "event_id": "e1", "session": SESSION})

    assert client.session == SESSION
    assert client.output_rate == 16_000
    assert (await client.next_event(1.0)).type == "session.created"
    assert client.recent_event_types == ["session.created"]


async def test_a_message_that_is_not_an_event_is_skipped_and_the_next_one_read() -> None:
    client = RecordingClient()

    client._receive("not json", 1.0)
    client.hear({"type": "input_audio_buffer.cleared", "event_id": "e2"})

    assert (await client.next_event(1.0)).type == "input_audio_buffer.cleared"


async def test_update_session_returns_the_confirmed_session() -> None:
    client = RecordingClient()
    client.answer = {"type": "session.updated", "session": SESSION}

    confirmed = await client.update_session({"instructions": "Be brief."}, timeout=1.0)

    assert confirmed == SESSION
    [update] = sent_events(client)
    assert update["type"] == "session.update"
    assert update["session"] == {"instructions": "Be brief."}


async def test_an_error_about_the_update_raises_with_the_servers_message() -> None:
    client = RecordingClient()
    error = {"type": "invalid_request_error", "code": "bad", "message": "no such voice"}
    client.answer = {"type": "error", "error": error}

    with pytest.raises(RealtimeServerError, match="no such voice"):
        await client.update_session({"voice": "nobody"}, timeout=1.0)


async def test_commands_have_the_openai_shapes() -> None:
    client = RecordingClient()

    await client.commit()
    await client.clear()
    await client.create_response(instructions="Say hi.")
    await client.cancel_response("resp_1")

    assert sent_events(client) == [
        {"type": "input_audio_buffer.commit"},
        {"type": "input_audio_buffer.clear"},
        {"type": "response.create", "response": {"instructions": "Say hi."}},
        {"type": "response.cancel", "response_id": "resp_1"},
    ]


async def test_silence_is_streamed_as_zeros_at_the_input_rate() -> None:
    client = RecordingClient()

    await client.send_silence(250)

    [silence] = client.streamed
    assert len(silence) == 6_000 and not silence.any()


async def test_sending_after_the_end_names_what_was_being_sent() -> None:
    client = RecordingClient()
    async with client:
        pass

    with pytest.raises(RealtimeConnectionClosed, match=r"response\.create"):
        await client.create_response()
    with pytest.raises(RealtimeConnectionClosed):
        await client.next_event(1.0)
