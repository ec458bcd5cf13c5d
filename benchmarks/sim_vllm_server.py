"""A SIMULATED vLLM server: the parts of vLLM's OpenAI-compatible API the gateway uses, with
vLLM's scheduling limits, for fleet benchmarks on a machine without GPUs. No model runs.

- ``POST /v1/chat/completions``: at most ``--max-num-seqs`` requests run at once; the rest
  wait in arrival order (``vllm:num_requests_waiting``). A running stream's first token
  comes after the simulated prefill of the prompt tokens not cached for its session (the
  ``x-session-id`` header; a session's last prompt stays cached), then one token per
  ``SimParams.token_interval_s(running)``: reasoning words, ``</think>``, reply words. A
  non-streaming request (a listen-while-thinking prefill) only prefills.
- ``GET /metrics``: ``vllm:num_requests_running``, ``vllm:num_requests_waiting``,
  ``vllm:kv_cache_usage_perc`` (the tokens held by running requests over ``--kv-tokens``).
- ``GET /health``: 200.

Timings come from ``realtime.engines.sim.SimParams`` (see its sources). Prompt tokens are
estimated: 12.7 per second of 16 kHz audio (Step-Audio's encoder), one per 4 bytes of text.

    .venv/bin/python benchmarks/sim_vllm_server.py --port 9101 --max-num-seqs 16
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realtime.engines.sim import SimParams

AUDIO_TOKENS_PER_S = 12.7
WAV_BYTES_PER_S = 32_000
MAX_CACHED_SESSIONS = 4096


def prompt_tokens(body: dict[str, Any]) -> int:
    tokens = 0
    for message in body.get("messages", []):
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
        for part in parts:
            if part.get("type") == "input_audio":
                wav = len(base64.b64decode(part["input_audio"]["data"]))
                tokens += int(wav / WAV_BYTES_PER_S * AUDIO_TOKENS_PER_S)
            elif isinstance(part.get("text"), str):
                tokens += len(part["text"]) // 4
    return max(1, tokens)


class SimulatedVllm:
    def __init__(self, params: SimParams, max_num_seqs: int, kv_tokens: int) -> None:
        self.params = params
        self.max_num_seqs = max_num_seqs
        self.kv_tokens = kv_tokens
        self.running: dict[int, int] = {}  # request -> tokens it holds
        self.waiting = 0
        self._slots = asyncio.Semaphore(max_num_seqs)
        self._cached: OrderedDict[str, int] = OrderedDict()
        self._next_id = 0

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/health", lambda request: Response(status_code=200), methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
        ])  # fmt: skip

    async def _metrics(self, request: Request) -> Response:
        held = sum(self.running.values())
        labels = '{engine="0",model_name="Step-Audio-R1"}'
        lines = []
        for name, value in (
            ("vllm:num_requests_running", len(self.running)),
            ("vllm:num_requests_waiting", self.waiting),
            ("vllm:kv_cache_usage_perc", min(1.0, held / self.kv_tokens)),
        ):
            lines += [f"# TYPE {name} gauge", f"{name}{labels} {value}"]
        return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    def _uncached(self, session: str | None, tokens: int) -> int:
        cached = self._cached.get(session, 0) if session else 0
        if session:
            self._cached[session] = tokens
            self._cached.move_to_end(session)
            while len(self._cached) > MAX_CACHED_SESSIONS:
                self._cached.popitem(last=False)
        return tokens - min(cached, tokens)

    async def _chat(self, request: Request) -> Response:
        body = json.loads(await request.body())
        tokens = prompt_tokens(body)
        uncached = self._uncached(request.headers.get("x-session-id"), tokens)
        if not body.get("stream"):
            await self._run(tokens, uncached, None)
            usage = {"prompt_tokens": tokens, "completion_tokens": 1}
            choice = {"index": 0, "message": {"role": "assistant", "content": "x"}}
            return JSONResponse({"choices": [choice], "usage": usage})
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        task = asyncio.create_task(self._run(tokens, uncached, queue, body.get("max_tokens")))

        async def events() -> AsyncIterator[str]:
            try:
                while (text := await queue.get()) is not None:
                    yield text
            finally:
                task.cancel()

        return StreamingResponse(events(), media_type="text/event-stream")

    async def _run(self, tokens: int, uncached: int, queue: asyncio.Queue[str | None] | None,
                   max_tokens: int | None = None) -> None:  # fmt: skip
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        request = self._next_id
        self._next_id += 1
        self.running[request] = tokens
        try:
            await asyncio.sleep(self.params.first_token_s(uncached))
            if queue is None:
                return
            words = [f" thought{i}" for i in range(self.params.reasoning_tokens)]
            words += ["\n</think>\n\n"] + [f" word{i}" for i in range(self.params.answer_tokens)]
            if max_tokens is not None:
                words = words[:max_tokens]
            for index, word in enumerate(words):
                chunk = {"choices": [{"index": 0, "delta": {"content": word},
                                      "token_ids": [index]}]}  # fmt: skip
                queue.put_nowait(f"data: {json.dumps(chunk)}\n\n")
                self.running[request] += 1
                await asyncio.sleep(self.params.token_interval_s(len(self.running)))
            usage = {"prompt_tokens": tokens, "completion_tokens": len(words)}
            end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
            queue.put_nowait(f"data: {json.dumps(end)}\n\n")
            queue.put_nowait("data: [DONE]\n\n")
            queue.put_nowait(None)
        finally:
            del self.running[request]
            self._slots.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-num-seqs", type=int, default=16)
    parser.add_argument("--kv-tokens", type=int, default=60_000)
    parser.add_argument("--reasoning-tokens", type=int, default=100)
    parser.add_argument("--answer-tokens", type=int, default=30)
    args = parser.parse_args()
    params = SimParams(reasoning_tokens=args.reasoning_tokens, answer_tokens=args.answer_tokens)
    server = SimulatedVllm(params, args.max_num_seqs, args.kv_tokens)
    print(f"SIMULATED vLLM on :{args.port} ({params.describe()}; {args.max_num_seqs} seqs)",
          flush=True)  # fmt: skip
    uvicorn.run(server.app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
