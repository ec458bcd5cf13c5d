"""Telephone audio with the real service: G.711 over the realtime WebSocket, and a phone call
over Twilio's Media Streams protocol (this test plays Twilio, on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import websockets

from benchmarks.harness.service import ServiceProcess
from tokenizer.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

TURN_TIMEOUT_S = 30.0
RATE = 8_000
FRAME = 160  # 20 ms at 8 kHz, as Twilio sends


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


async def receive_until(ws: Any, wanted: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    async with asyncio.timeout(TURN_TIMEOUT_S):
        while True:
            event = json.loads(await ws.recv())
            events.append(event)
            if event["type"] == "error":
                raise AssertionError(f"server error: {event}")
            if event["type"] == wanted:
                return event


@pytest.mark.parametrize(
    ("format_type", "encode", "decode"),
    [("audio/pcmu", ulaw_encode, ulaw_decode), ("audio/pcma", alaw_encode, alaw_decode)],
)
async def test_a_g711_turn_over_the_realtime_websocket_gets_g711_reply_audio(  # type: ignore[no-untyped-def]
    echo_service: ServiceProcess, say, format_type: str, encode, decode
) -> None:
    speech = say("Good morning, this is a telephone call.", RATE)
    audio = encode(np.concatenate([speech, np.zeros(RATE * 3 // 2, np.int16)]))
    g711 = {"type": format_type}
    events: list[dict[str, Any]] = []
    async with websockets.connect(echo_service.ws_url, max_size=None) as ws:
        await receive_until(ws, "session.created", events)
        update = {"audio": {"input": {"format": g711}, "output": {"format": g711}}}
        await ws.send(json.dumps({"type": "session.update", "session": update}))
        updated = await receive_until(ws, "session.updated", events)
        assert updated["session"]["audio"]["output"]["format"] == g711
        for start in range(0, len(audio), 800):  # 100 ms of G.711 bytes per append
            payload = base64.b64encode(audio[start : start + 800]).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": payload}))
        done = await receive_until(ws, "response.done", events)
    assert done["response"]["status"] == "completed"
    assert done["response"]["audio"]["output"]["format"] == g711
    deltas = [e["delta"] for e in events if e["type"] == "response.output_audio.delta"]
    reply_bytes = b"".join(base64.b64decode(d) for d in deltas)
    reply = decode(reply_bytes)
    assert len(reply) > RATE // 2, "one byte per 8 kHz sample: at least half a second"
    assert rms(reply) > 300, "the reply should be audible speech"
    # The input was read as 8 kHz G.711: the VAD puts the end of speech where it is.
    # (pocketsphinx hears narrowband espeak too poorly to check the words.)
    stopped = next(e for e in events if e["type"] == "input_audio_buffer.speech_stopped")
    assert abs(stopped["audio_end_ms"] - len(speech) * 1000 / RATE) < 400


# -- Twilio Media Streams ---------------------------------------------------------------------

# Every reply several seconds long, whatever pocketsphinx makes of narrowband speech, so that
# the caller can talk over it.
LONG_REPLY = (
    "You said: {transcript}. Let me read the whole list back to you, item by item, slowly,"
    " from the very top, so that nothing is missed along the way."
)


@pytest.fixture(scope="module")
def phone_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("phone") / "serve.log"
    with ServiceProcess("--echo-reply", LONG_REPLY, log_path=log) as service:
        yield service


@dataclass
class FakeTwilio:
    """Twilio's side of a Media Streams call: streams the caller's line in real time, 20 ms
    frames without a gap (silence when no one speaks, as Twilio does: the server's echo
    canceller places the reply on that timeline), "plays" the reply in real time and echoes
    each mark once the audio before it has played (at once on clear)."""

    ws: Any
    stream_sid: str = "MZ0123456789abcdef0123456789abcdef"
    received: list[dict[str, Any]] = field(default_factory=list)
    reply_audio: list[np.ndarray] = field(default_factory=list)
    echoed_marks: list[str] = field(default_factory=list)
    playout_end: float = 0.0
    _mark_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _sequence: int = 0
    _line: list[np.ndarray] = field(default_factory=list)  # speech waiting to be streamed
    _streamed: int = 0  # frames sent
    _line_sent: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, message: dict[str, Any]) -> None:
        self._sequence += 1
        message = {"sequenceNumber": str(self._sequence), **message}
        await self.ws.send(json.dumps(message))

    async def start_call(self) -> None:
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self.send(
            {
                "event": "start",
                "streamSid": self.stream_sid,
                "start": {
                    "accountSid": "AC0",
                    "streamSid": self.stream_sid,
                    "callSid": "CA0",
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": {},
                },
            }
        )

    async def stream_line(self) -> None:
        """The caller's line, one frame every 20 ms for the whole call."""
        started = time.monotonic()
        while True:
            frame = self._line.pop(0) if self._line else np.zeros(FRAME, np.int16)
            payload = base64.b64encode(ulaw_encode(frame)).decode()
            media = {"track": "inbound", "chunk": str(self._streamed),
                     "timestamp": str(self._streamed * 20), "payload": payload}  # fmt: skip
            await self.send({"event": "media", "streamSid": self.stream_sid, "media": media})
            self._streamed += 1
            if not self._line:
                self._line_sent.set()
            await asyncio.sleep(max(0.0, started + self._streamed * 0.02 - time.monotonic()))

    async def speak(self, pcm: np.ndarray) -> None:
        """Says ``pcm`` on the line; returns once it has been streamed."""
        padded = np.concatenate([pcm, np.zeros(-len(pcm) % FRAME, np.int16)])
        self._line_sent.clear()
        self._line.extend(np.split(padded, len(padded) // FRAME))
        await self._line_sent.wait()

    async def listen(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            self.received.append(message)
            self._changed.set()
            assert message.get("streamSid") == self.stream_sid
            kind = message["event"]
            now = time.monotonic()
            if kind == "media":
                pcm = ulaw_decode(base64.b64decode(message["media"]["payload"]))
                self.reply_audio.append(pcm)
                self.playout_end = max(self.playout_end, now) + len(pcm) / RATE
            elif kind == "mark":
                name = message["mark"]["name"]
                self._mark_tasks.append(asyncio.create_task(self._echo(name, self.playout_end)))
            elif kind == "clear":
                self.playout_end = now
                for task in self._mark_tasks:
                    task.cancel()

    async def _echo(self, name: str, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        self.echoed_marks.append(name)
        self._changed.set()
        await self.send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m["event"] == kind]

    async def wait_for(self, predicate: Any, within_s: float = TURN_TIMEOUT_S) -> None:
        async with asyncio.timeout(within_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


async def test_a_phone_call_over_twilio_media_streams_replies_marks_and_clears_on_barge_in(  # type: ignore[no-untyped-def]
    phone_service: ServiceProcess, say
) -> None:
    url = f"ws://127.0.0.1:{phone_service.port}/v1/twilio/media-stream"
    first = say("Hello, I am calling about my order.", RATE)
    second = say("Could you read me the whole list of the items in my order please?", RATE)
    interruption = say("No, stop, stop that, I want to speak to a person.", RATE)
    pause = np.zeros(RATE * 3 // 2, np.int16)
    async with websockets.connect(url) as ws:
        twilio = FakeTwilio(ws)
        listener = asyncio.create_task(twilio.listen())
        line: asyncio.Task[None] | None = None
        try:
            await ws.send("this is not JSON")  # ignored; the call goes on
            await twilio.start_call()
            line = asyncio.create_task(twilio.stream_line())

            # Turn 1: the reply is played in full, marked along the way and at its end, and
            # every mark comes back.
            def end_marks() -> list[str]:
                names = [m["mark"]["name"] for m in twilio.events("mark")]
                return [name for name in names if name.endswith(".end")]

            await twilio.speak(np.concatenate([first, pause]))
            await twilio.wait_for(end_marks)
            media_before_mark = len(twilio.events("media"))
            assert media_before_mark > 25, "at least half a second of reply audio"
            assert len(twilio.events("mark")) > 2, "marks along the reply, not only at its end"
            reply = np.concatenate(twilio.reply_audio)
            assert rms(reply) > 300
            await twilio.wait_for(lambda: end_marks()[0] in twilio.echoed_marks)
            assert not twilio.events("clear")

            # Turn 2: the caller talks over the reply; Twilio is told to drop what it holds.
            await twilio.speak(np.concatenate([second, pause]))
            await twilio.wait_for(lambda: len(twilio.events("media")) > media_before_mark + 10)
            await twilio.speak(np.concatenate([interruption, pause]))
            await twilio.wait_for(lambda: twilio.events("clear"), within_s=10)
            marks = [m["mark"]["name"] for m in twilio.events("mark")]
            assert len(marks) == len(set(marks)), "every mark is told apart"
            assert len(end_marks()) == 1, "the cut reply never reached its end mark"

            # The call goes on after the barge-in: the interruption itself gets a reply.
            after_clear = len(twilio.received)
            await twilio.wait_for(
                lambda: any(m["event"] == "media" for m in twilio.received[after_clear:])
            )
            line.cancel()
            stop = {"event": "stop", "streamSid": twilio.stream_sid, "stop": {"callSid": "CA0"}}
            await twilio.send(stop)
            async with asyncio.timeout(10):
                await listener  # the server hangs up after "stop"
        finally:
            tasks = [listener, *twilio._mark_tasks, *([line] if line is not None else [])]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
