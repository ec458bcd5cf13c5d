"""A stand-in for CosyVoice's bundled gRPC server on 127.0.0.1, built from the same proto.

Like upstream's ``runtime/python/grpc/server.py`` (FunAudioLLM/CosyVoice ace7c47f) it is a
synchronous ``grpc.server`` on a thread pool whose ``Inference`` dispatches on the request's
oneof, reads ``prompt_audio`` as int16 PCM, and yields one ``Response`` of raw int16 PCM
per piece; an exception while yielding ends the call with status ``UNKNOWN``. The audio
spells the text (``speech_code``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from types import TracebackType

import grpc
import numpy as np

from tests.tts.speech_code import SAMPLES_PER_CHAR, encode_text
from tts.cosyvoice_proto import cosyvoice_pb2, cosyvoice_pb2_grpc


@dataclass
class GrpcBehaviour:
    speakers: set[str] = field(default_factory=lambda: {"英文女"})
    piece_bytes: int = 4800
    piece_delay_s: float = 0.0
    fail_request: set[int] = field(default_factory=set)
    fail_after_bytes: int = 1920
    endless: bool = False


class FakeCosyVoiceGrpcServer(cosyvoice_pb2_grpc.CosyVoiceServicer):
    """``with FakeCosyVoiceGrpcServer() as server:`` serves on ``server.target``."""

    def __init__(self, behaviour: GrpcBehaviour | None = None) -> None:
        self.behaviour = behaviour or GrpcBehaviour()
        self.requests: list[cosyvoice_pb2.Request] = []
        self.prompt_audio: list[np.ndarray] = []
        self.stream_events: list[tuple[str, int]] = []
        self.cancelled: list[int] = []
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        cosyvoice_pb2_grpc.add_CosyVoiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> FakeCosyVoiceGrpcServer:
        self._server.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.stop(grace=0).wait(10)

    def Inference(
        self, request: cosyvoice_pb2.Request, context: grpc.ServicerContext
    ) -> Iterator[cosyvoice_pb2.Response]:
        with self._lock:
            number = len(self.requests)
            self.requests.append(request)
        context.add_callback(lambda: self._on_done(number, context))
        self.stream_events.append(("start", number))
        try:
            yield from self._respond(number, request, context)
        finally:
            self.stream_events.append(("end", number))

    def _on_done(self, number: int, context: grpc.ServicerContext) -> None:
        if not context.is_active() and context.code() is None:
            self.cancelled.append(number)

    def _respond(
        self, number: int, request: cosyvoice_pb2.Request, context: grpc.ServicerContext
    ) -> Iterator[cosyvoice_pb2.Response]:
        behaviour = self.behaviour
        if request.HasField("sft_request"):
            text = request.sft_request.tts_text
            if request.sft_request.spk_id not in behaviour.speakers:
                raise KeyError(request.sft_request.spk_id)
        elif request.HasField("zero_shot_request"):
            text = request.zero_shot_request.tts_text
            self.prompt_audio.append(
                np.frombuffer(request.zero_shot_request.prompt_audio, dtype=np.int16)
            )
        elif request.HasField("cross_lingual_request"):
            text = request.cross_lingual_request.tts_text
            self.prompt_audio.append(
                np.frombuffer(request.cross_lingual_request.prompt_audio, dtype=np.int16)
            )
        else:
            text = request.instruct_request.tts_text
        if behaviour.endless:
            deadline = time.monotonic() + 30
            while context.is_active() and time.monotonic() < deadline:
                yield cosyvoice_pb2.Response(
                    tts_audio=encode_text(" " * 10, SAMPLES_PER_CHAR).tobytes()
                )
                time.sleep(0.01)
            return
        audio = encode_text(text).tobytes()
        if number in behaviour.fail_request:
            yield cosyvoice_pb2.Response(tts_audio=audio[: behaviour.fail_after_bytes])
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        for start in range(0, len(audio), behaviour.piece_bytes):
            yield cosyvoice_pb2.Response(tts_audio=audio[start : start + behaviour.piece_bytes])
            if behaviour.piece_delay_s:
                time.sleep(behaviour.piece_delay_s)
