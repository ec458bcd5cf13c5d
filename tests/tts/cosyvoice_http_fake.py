"""A stand-in for CosyVoice's bundled FastAPI server on 127.0.0.1, speaking its exact contract.

Matched to FunAudioLLM/CosyVoice ace7c47f ``runtime/python/fastapi/server.py``: the same
routes (``GET`` and ``POST``), the same form fields (multipart, the prompt as an uploaded
file named ``prompt_wav``), a 200 ``StreamingResponse`` of raw int16 PCM with no media
type, FastAPI's 422 ``{"detail": [...]}`` for a missing field, and model errors raised
inside the stream (an unknown ``spk_id`` is a ``KeyError`` there), which cut the
connection before the chunked body ends. The audio spells the text (``speech_code``).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.tts.speech_code import SAMPLES_PER_CHAR, encode_text

ROUTE_FIELDS: dict[str, tuple[str, ...]] = {
    "/inference_sft": ("tts_text", "spk_id"),
    "/inference_zero_shot": ("tts_text", "prompt_text", "prompt_wav"),
    "/inference_cross_lingual": ("tts_text", "prompt_wav"),
    "/inference_instruct": ("tts_text", "spk_id", "instruct_text"),
    "/inference_instruct2": ("tts_text", "instruct_text", "prompt_wav"),
}
FILE_FIELDS = {"prompt_wav"}
STARTUP_S = 20.0


@dataclass
class RecordedRequest:
    method: str
    route: str
    fields: dict[str, str]
    files: dict[str, bytes]


@dataclass
class FakeBehaviour:
    """What the fake does; tests change it between requests."""

    speakers: set[str] = field(default_factory=lambda: {"英文女", "中文女"})
    piece_bytes: int = 4800  # bytes per write (odd sizes split samples across writes)
    piece_delay_s: float = 0.0
    first_byte_delay_s: float = 0.0
    fail_request: set[int] = field(default_factory=set)  # request numbers that break mid-stream
    fail_after_bytes: int = 2400
    status_for_request: dict[int, int] = field(default_factory=dict)  # e.g. {0: 500}
    endless: bool = False  # stream silence-coded audio until the client goes away


class FakeCosyVoiceHttpServer:
    """``async with FakeCosyVoiceHttpServer() as server:`` serves on ``server.url``."""

    def __init__(self, behaviour: FakeBehaviour | None = None) -> None:
        self.behaviour = behaviour or FakeBehaviour()
        self.requests: list[RecordedRequest] = []
        self.started_streams: list[int] = []
        self.finished_streams: list[int] = []
        self.abandoned_streams: list[int] = []  # the client went away before the end
        self.stream_events: list[tuple[str, int]] = []  # ("start" | "end", request number)
        routes = [Route(path, self._handle, methods=["GET", "POST"]) for path in ROUTE_FIELDS]
        self._app = Starlette(routes=routes)
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeCosyVoiceHttpServer:
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
        await asyncio.wait_for(self._serving, STARTUP_S)
        self._socket.close()

    async def _handle(self, request: Request) -> Response:
        route = request.url.path
        form = await request.form()
        fields: dict[str, str] = {}
        files: dict[str, bytes] = {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                files[name] = await value.read()
            else:
                fields[name] = value
        number = len(self.requests)
        self.requests.append(RecordedRequest(request.method, route, fields, files))
        missing = [
            name
            for name in ROUTE_FIELDS[route]
            if (name in FILE_FIELDS and name not in files)
            or (name not in FILE_FIELDS and name not in fields)
        ]
        if missing:
            detail = [
                {"type": "missing", "loc": ["body", name], "msg": "Field required", "input": None}
                for name in missing
            ]
            return JSONResponse({"detail": detail}, status_code=422)
        status = self.behaviour.status_for_request.get(number)
        if status == 422:
            detail = [{"type": "missing", "loc": ["body", "prompt_text"], "msg": "Field required"}]
            return JSONResponse({"detail": detail}, status_code=422)
        if status is not None:
            return Response("Internal Server Error", status_code=status, media_type="text/plain")
        return StreamingResponse(self._stream(number, route, fields))

    async def _stream(
        self, number: int, route: str, fields: dict[str, str]
    ) -> AsyncIterator[bytes]:
        behaviour = self.behaviour
        self.started_streams.append(number)
        self.stream_events.append(("start", number))
        finished = False
        try:
            if route in ("/inference_sft", "/inference_instruct"):
                if fields["spk_id"] not in behaviour.speakers:
                    raise KeyError(fields["spk_id"])
            if behaviour.first_byte_delay_s:
                await asyncio.sleep(behaviour.first_byte_delay_s)
            if behaviour.endless:
                while True:
                    yield encode_text(" " * 10, SAMPLES_PER_CHAR).tobytes()
                    await asyncio.sleep(0.01)
            audio = encode_text(fields["tts_text"]).tobytes()
            if number in behaviour.fail_request:
                yield audio[: behaviour.fail_after_bytes]
                await asyncio.sleep(0.05)  # let the bytes leave before the connection is cut
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            for start in range(0, len(audio), behaviour.piece_bytes):
                yield audio[start : start + behaviour.piece_bytes]
                if behaviour.piece_delay_s:
                    await asyncio.sleep(behaviour.piece_delay_s)
            finished = True
        finally:
            self.stream_events.append(("end", number))
            (self.finished_streams if finished else self.abandoned_streams).append(number)
