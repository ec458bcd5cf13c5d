"""A stand-in for vLLM's OpenAI-compatible server on 127.0.0.1, for the engine's unit tests.

It speaks the parts of vLLM's contract the engine uses: ``GET /health`` (200, or the
status a test sets), ``GET /metrics`` (vLLM's load gauges, as a test sets them),
``POST /v1/chat/completions`` streaming server-sent events (a role
chunk, one chunk per token with ``token_ids`` and continuous usage, a final chunk with
``finish_reason``, a usage chunk, ``[DONE]``) or answering one JSON completion when
``stream`` is false, OpenAI-style error bodies, and ``data: {"error": ...}`` inside a
stream. Each request is answered by the next ``Script`` a test queued (else the default),
which can also fail, stall, or cut the connection mid-stream.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

STARTUP_S = 20.0
DEFAULT_DELTAS = ("Let me", " think", ".", "\n", "</think>", "\n\n", "Hello", " there", ".")


@dataclass
class Script:
    """How the fake answers one chat request."""

    deltas: tuple[str, ...] = DEFAULT_DELTAS
    status: int = 200
    error_message: str = "the engine is broken"
    first_chunk_delay_s: float = 0.0
    delta_interval_s: float = 0.0
    cut_after: int | None = None  # drop the connection after this many deltas
    error_after: int | None = None  # send an error chunk after this many deltas
    stall_after: int | None = None  # stop sending (without closing) after this many deltas
    prompt_tokens: int = 40
    cached_tokens: int = 0


@dataclass
class Recorded:
    body: dict[str, Any]
    headers: dict[str, str]
    finished: bool = False
    abandoned: bool = False


class FakeVllmServer:
    """``async with FakeVllmServer() as server:`` serves on ``server.api_url``."""

    def __init__(self) -> None:
        self.health_status = 200
        self.scripts: list[Script] = []
        self.default = Script()
        self.requests: list[Recorded] = []
        self.health_checks = 0
        self.running = 0.0
        self.waiting = 0.0
        self.kv_usage = 0.0
        routes = [
            Route("/health", self._health, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
        ]
        self._app = Starlette(routes=routes)
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self.streams_open = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def bodies(self) -> list[dict[str, Any]]:
        return [recorded.body for recorded in self.requests]

    async def __aenter__(self) -> FakeVllmServer:
        config = uvicorn.Config(self._app, lifespan="off", log_level="critical")
        self._server = uvicorn.Server(config)
        self._serving = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        async with asyncio.timeout(STARTUP_S):
            while not self._server.started:
                if self._serving.done():
                    self._serving.result()
                await asyncio.sleep(0.01)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None and self._serving is not None
        self._server.should_exit = True
        self._server.force_exit = True
        await asyncio.wait_for(self._serving, STARTUP_S)
        self._socket.close()

    async def _health(self, request: Request) -> Response:
        self.health_checks += 1
        return Response(status_code=self.health_status)

    async def _metrics(self, request: Request) -> Response:
        labels = '{engine="0",model_name="Step-Audio-R1"}'
        lines = []
        for name, value in (
            ("vllm:num_requests_running", self.running),
            ("vllm:num_requests_waiting", self.waiting),
            ("vllm:kv_cache_usage_perc", self.kv_usage),
        ):
            lines += [f"# HELP {name} {name}", f"# TYPE {name} gauge", f"{name}{labels} {value}"]
        return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    async def _chat(self, request: Request) -> Response:
        body = json.loads(await request.body())
        recorded = Recorded(body, dict(request.headers))
        self.requests.append(recorded)
        script = self.scripts.pop(0) if self.scripts else self.default
        if script.status != 200:
            error = {"message": script.error_message, "type": "Error", "code": script.status}
            return JSONResponse({"error": error}, status_code=script.status)
        if not body.get("stream"):
            usage = {"prompt_tokens": script.prompt_tokens, "completion_tokens": 1}
            choice = {"index": 0, "message": {"role": "assistant", "content": "x"}}
            return JSONResponse({"choices": [choice], "usage": usage})
        return StreamingResponse(self._stream(script, recorded), media_type="text/event-stream")

    async def _stream(self, script: Script, recorded: Recorded) -> AsyncIterator[str]:
        self.streams_open += 1

        def event(payload: dict[str, Any]) -> str:
            return f"data: {json.dumps(payload)}\n\n"

        def usage(completion: int) -> dict[str, Any]:
            return {
                "prompt_tokens": script.prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": script.prompt_tokens + completion,
                "prompt_tokens_details": {"cached_tokens": script.cached_tokens},
            }

        try:
            if script.first_chunk_delay_s:
                await asyncio.sleep(script.first_chunk_delay_s)
            role = {"index": 0, "delta": {"role": "assistant", "content": ""}}
            yield event({"choices": [role], "usage": usage(0)})
            for index, text in enumerate(script.deltas):
                if index == script.cut_after:
                    await asyncio.sleep(0.05)  # let the bytes so far leave first
                    raise RuntimeError("engine died")
                if index == script.error_after:
                    error = {"message": script.error_message, "type": "Error", "code": 500}
                    yield event({"error": error})
                    yield "data: [DONE]\n\n"
                    return
                if index == script.stall_after:
                    await asyncio.sleep(3600)
                choice = {"index": 0, "delta": {"content": text}, "token_ids": [index + 7]}
                yield event({"choices": [choice], "usage": usage(index + 1)})
                if script.delta_interval_s:
                    await asyncio.sleep(script.delta_interval_s)
            done = len(script.deltas)
            last = {"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}
            yield event({"choices": [last], "usage": usage(done)})
            yield event({"choices": [], "usage": usage(done)})
            yield "data: [DONE]\n\n"
            recorded.finished = True
        finally:
            self.streams_open -= 1
            recorded.abandoned = not recorded.finished
