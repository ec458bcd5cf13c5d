"""A seeded fuzzer on one WebSocket connection of the real service: 10,000 events, valid-shaped
and malformed. Every malformed event gets an ``error`` event, the connection survives, the
service stays healthy, and a normal spoken turn works on the same connection afterwards."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect

from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import synthesize
from tokenizer.pcm import pcm16_to_base64

SEED = 20261202
EVENTS = 10_000
BATCH = 250
MAX_EVENT_MB = 1


@dataclass(frozen=True)
class Fuzz:
    message: str | bytes
    invalid: bool
    event_id: str | None  # set when the server can tell which event its error is about


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("fuzz") / "serve.log"
    # The rate limits are lifted: the fuzzer sends far faster than a client may, and an event
    # refused for rate is refused unread, so its error could not name the event it is about.
    with ServiceProcess(
        "--max-event-mb",
        str(MAX_EVENT_MB),
        "--max-events-per-s",
        "100000",
        "--max-mb-per-s",
        "100000",
        "--max-audio-speed",
        "1000",
        "--turn-detection",
        "server_vad",
        log_path=log,
    ) as running:
        yield running


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = {"a": [value]}
    return value


class EventFuzzer:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.count = 0

    def _id(self) -> str:
        self.count += 1
        return f"evt_fuzz_{self.count}"

    def _json(self, event: dict[str, Any], invalid: bool) -> Fuzz:
        event_id = self._id()
        return Fuzz(json.dumps({**event, "event_id": event_id}), invalid, event_id)

    def _audio(self, samples: int) -> str:
        pcm = self.rng.randbytes(2 * samples)
        return base64.b64encode(pcm).decode()

    # -- valid-shaped ---------------------------------------------------------------------

    def valid(self) -> Fuzz:
        rng = self.rng
        makers: list[Callable[[], dict[str, Any]]] = [
            lambda: {
                "type": "input_audio_buffer.append",
                "audio": self._audio(rng.randint(1, 480)),
            },
            lambda: {"type": "input_audio_buffer.clear"},
            lambda: {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "instructions": "".join(rng.choices("abc xyz", k=40)),
                    "audio": {
                        "input": {
                            "turn_detection": rng.choice(
                                [
                                    None,
                                    {
                                        "type": "server_vad",
                                        "threshold": rng.uniform(0.1, 0.9),
                                        "silence_duration_ms": rng.randint(200, 1500),
                                    },
                                ]
                            )
                        }
                    },
                },
            },
            lambda: {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "".join(rng.choices("hello ", k=20))}
                    ],
                },
            },
            lambda: {"type": "output_audio_buffer.clear"},
        ]
        return self._json(rng.choice(makers)(), invalid=False)

    # -- malformed ------------------------------------------------------------------------

    def invalid(self) -> Fuzz:
        rng = self.rng
        kind = rng.randrange(14)
        if kind == 0:  # not JSON at all
            return Fuzz(rng.choice(["{", "nope", "[1,2", '{"type":']), True, None)
        if kind == 1:  # deeply nested, past what a JSON parser recurses into
            depth = rng.randint(2000, 20000)
            return Fuzz("[" * depth + "]" * depth, True, None)
        if kind == 2:  # nested inside a valid-looking event
            return self._json(
                {"type": "session.update", "session": nested(rng.randint(150, 450))}, True
            )
        if kind == 3:  # binary frame of random bytes, invalid UTF-8
            return Fuzz(b"\xff\xfe" + rng.randbytes(rng.randint(0, 64)), True, None)
        if kind == 4:  # unknown type
            return self._json({"type": f"x.{rng.randint(0, 9999)}"}, True)
        if kind == 5:  # wrong type of type
            return self._json({"type": rng.choice([7, None, [], {}])}, True)
        if kind == 6:  # bad base64
            return self._json(
                {
                    "type": "input_audio_buffer.append",
                    "audio": rng.choice(["!!!!", "abc", "====", "a" * 5]),
                },
                True,
            )
        if kind == 7:  # an odd number of bytes
            odd = base64.b64encode(rng.randbytes(2 * rng.randint(1, 100) + 1)).decode()
            return self._json({"type": "input_audio_buffer.append", "audio": odd}, True)
        if kind == 8:  # huge: past --max-event-mb, refused unread (its id unknown)
            huge = {
                "type": "input_audio_buffer.append",
                "event_id": self._id(),
                "audio": "A" * (MAX_EVENT_MB * 1024 * 1024 + 4),
            }
            return Fuzz(json.dumps(huge), True, None)
        if kind == 9:  # wrong value types
            return self._json(
                rng.choice(
                    [
                        {"type": "session.update", "session": rng.choice([5, "x", [], None])},
                        {
                            "type": "input_audio_buffer.append",
                            "audio": rng.choice([1, None, [], {}]),
                        },
                        {
                            "type": "conversation.item.create",
                            "item": rng.choice([1, "x", {"type": 3}]),
                        },
                        {"type": "response.create", "response": rng.choice([1, "x", []])},
                        {
                            "type": "conversation.item.truncate",
                            "item_id": 5,
                            "content_index": "x",
                            "audio_end_ms": -1,
                        },
                    ]
                ),
                True,
            )
        if kind == 10:  # missing required fields
            return self._json(
                rng.choice(
                    [
                        {"type": "input_audio_buffer.append"},
                        {"type": "conversation.item.delete"},
                        {"type": "conversation.item.truncate"},
                    ]
                ),
                True,
            )
        if kind == 11:  # a JSON value that is not an object
            return Fuzz(json.dumps(rng.choice([[], 1, "s", None, [{"type": "x"}]])), True, None)
        # Session fields with out-of-range or wrongly typed values.
        bad_sessions: list[dict[str, Any]] = [
            {"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 5}}}},
            {
                "audio": {
                    "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": -1}}
                }
            },
            {"audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "x"}}}},
            {"audio": {"input": {"turn_detection": {"type": "warp_drive"}}}},
            {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 12345}}}},
            {"audio": {"input": {"format": {"type": "audio/mp3"}}}},
            {"audio": {"output": {"voice": 42}}},
            {"audio": {"output": {"speed": "fast"}}},
            {"instructions": ["not", "a", "string"]},
            {"max_output_tokens": -5},
            {"output_modalities": ["smell"]},
            {"type": "nonsense"},
            {"tools": "all of them"},
            {"unknown_field_" + str(rng.randint(0, 99)): 1},
        ]
        return self._json(
            {"type": "session.update", "session": {"type": "realtime", **rng.choice(bad_sessions)}},
            True,
        )

    def events(self, count: int) -> Iterator[Fuzz]:
        for _ in range(count):
            yield self.invalid() if self.rng.random() < 0.5 else self.valid()


async def drain_until(
    ws: ClientConnection,
    done: Callable[[list[dict[str, Any]]], bool],
    events: list[dict[str, Any]],
    timeout_s: float,
) -> None:
    async with asyncio.timeout(timeout_s):
        while not done(events):
            events.append(json.loads(await ws.recv()))


async def test_ten_thousand_fuzzed_events_leave_the_connection_working(
    service: ServiceProcess,
) -> None:
    fuzzer = EventFuzzer(SEED)
    async with connect(service.ws_url, max_size=None) as ws:
        received: list[dict[str, Any]] = [json.loads(await ws.recv())]
        assert received[0]["type"] == "session.created"
        sent = list(fuzzer.events(EVENTS))
        invalid_ids = {f.event_id for f in sent if f.invalid and f.event_id is not None}
        anonymous_invalid = sum(1 for f in sent if f.invalid and f.event_id is None)
        assert len(invalid_ids) > 3000 and anonymous_invalid > 1000

        def errors_seen(events: list[dict[str, Any]]) -> tuple[set[str], int]:
            errors = [e["error"] for e in events if e["type"] == "error"]
            ids = {e["event_id"] for e in errors if e.get("event_id")}
            return ids, sum(1 for e in errors if not e.get("event_id"))

        for start in range(0, EVENTS, BATCH):
            batch = sent[start : start + BATCH]
            for fuzz in batch:
                await ws.send(fuzz.message)
            wanted_ids = {
                f.event_id for f in sent[: start + BATCH] if f.invalid and f.event_id is not None
            }
            wanted_anonymous = sum(
                1 for f in sent[: start + BATCH] if f.invalid and f.event_id is None
            )

            def caught_up(events: list[dict[str, Any]]) -> bool:
                ids, anonymous = errors_seen(events)
                return wanted_ids <= ids and anonymous >= wanted_anonymous  # noqa: B023

            try:
                await drain_until(ws, caught_up, received, timeout_s=60)
            except TimeoutError:
                ids, anonymous = errors_seen(received)
                missing = [
                    f.message[:300] for f in sent[: start + BATCH] if f.event_id in wanted_ids - ids
                ]
                pytest.fail(
                    f"no error for {missing[:5]} ({len(missing)} in all); "
                    f"{anonymous} of {wanted_anonymous} unnamed errors"
                )

        ids, anonymous = errors_seen(received)
        assert invalid_ids <= ids
        assert anonymous == anonymous_invalid  # no error without a cause
        assert not [
            e for e in received if e["type"] == "error" and e["error"]["type"] == "server_error"
        ], "no internal errors"

        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"{service.http_url}/healthz")).status_code == 200

        # A normal spoken turn on the same connection, hands-free at real-time pace (the
        # fuzzer toggled turn detection while it appended audio).
        received.clear()
        setup = {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {
                    "input": {
                        "turn_detection": None,
                        "format": {"type": "audio/pcm", "rate": 24000},
                    }
                },
            },
        }
        await ws.send(json.dumps(setup))
        await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        await ws.send(
            json.dumps(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "message",
                        "role": "system",
                        "content": [{"type": "input_text", "text": "A new topic."}],
                    },
                }
            )
        )
        hands_free = {"type": "session.update", "session": {"type": "realtime", "audio": {
            "input": {"turn_detection": {"type": "server_vad"}}}}}  # fmt: skip
        await ws.send(json.dumps(hands_free))
        speech = np.concatenate(
            [synthesize("What is the weather like in Paris?", 24_000), np.zeros(24_000, np.int16)]
        )
        loop = asyncio.get_running_loop()
        began = loop.time()
        for start in range(0, len(speech), 480):
            chunk = pcm16_to_base64(speech[start : start + 480])
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
            await asyncio.sleep(max(0.0, began + (start + 480) / 24_000 - loop.time()))
        await drain_until(
            ws,
            lambda events: any(e["type"] == "response.done" for e in events),
            received,
            timeout_s=60,
        )
        assert any(e["type"] == "input_audio_buffer.speech_started" for e in received)
        done = next(e for e in received if e["type"] == "response.done")
        assert done["response"]["status"] == "completed"
        audio = b"".join(
            base64.b64decode(e["delta"])
            for e in received
            if e["type"] == "response.output_audio.delta"
        )
        pcm = np.frombuffer(audio, dtype=np.int16)
        assert len(pcm) > 24_000 * 0.5 and float(np.abs(pcm).mean()) > 100
        assert not [e for e in received if e["type"] == "error"]
