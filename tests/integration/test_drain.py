"""SIGTERM drains the real service: the reply being spoken finishes, every client is told, and
the process exits 0; meanwhile it refuses new sessions and says it is draining."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import synthesize
from tokenizer.pcm import pcm16_to_base64

DRAIN_TIMEOUT_S = 20


async def next_event(ws: ClientConnection, timeout_s: float = 20) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout_s))


async def until_event(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    seen = []
    while True:
        event = await next_event(ws)
        seen.append(event)
        if event["type"] == kind:
            return seen


async def events_until_closed(ws: ClientConnection) -> list[dict[str, Any]]:
    seen = []
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_S + 10):
            async for message in ws:
                seen.append(json.loads(message))
    except ConnectionClosed:
        pass
    return seen


async def test_sigterm_lets_the_reply_finish_tells_every_client_and_exits_0(
    tmp_path: Path,
) -> None:
    service = ServiceProcess("--drain-timeout-s", str(DRAIN_TIMEOUT_S),
                             log_path=tmp_path / "serve.log")  # fmt: skip
    with service:
        async with connect(service.ws_url) as speaking, connect(service.ws_url) as idle:
            for ws in (speaking, idle):
                await until_event(ws, "session.created")
            manual = {"type": "session.update", "session": {"type": "realtime", "audio": {
                "input": {"turn_detection": None}}}}  # fmt: skip
            await speaking.send(json.dumps(manual))
            await until_event(speaking, "session.updated")
            audio = pcm16_to_base64(synthesize("Please tell me about the weather.", 24_000))
            await speaking.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
            await speaking.send(json.dumps({"type": "input_audio_buffer.commit"}))
            await speaking.send(json.dumps({"type": "response.create"}))
            await until_event(speaking, "response.output_audio.delta")

            service.send_signal(signal.SIGTERM)
            idle_events = await events_until_closed(idle)
            assert idle.close_code == 1001
            assert [e["error"]["code"] for e in idle_events if e["type"] == "error"] == [
                "server_shutting_down"
            ]
            async with httpx.AsyncClient(timeout=5) as http:
                health = await http.get(f"{service.http_url}/healthz")
            assert health.status_code == 503 and health.json()["status"] == "draining"
            with pytest.raises(InvalidStatus) as refused:
                async with connect(service.ws_url):
                    pass
            assert refused.value.response.status_code == 503
            assert "Retry-After" in refused.value.response.headers

            speaking_events = await events_until_closed(speaking)
            kinds = [e["type"] for e in speaking_events]
            done = next(e for e in speaking_events if e["type"] == "response.done")
            assert done["response"]["status"] == "completed"
            assert kinds[-1] == "error" and speaking_events[-1]["error"]["code"] == (
                "server_shutting_down"
            )
            assert speaking.close_code == 1001
        assert service.wait(DRAIN_TIMEOUT_S) == 0  # raises if it has not exited by then
