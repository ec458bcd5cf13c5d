"""The real service with ``--otel-endpoint``: a spoken turn's spans reach an OTLP/HTTP
collector (a small receiver on 127.0.0.1 decoding OTLP's protobuf), flushed on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from websockets.asyncio.client import connect

from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import silence, synthesize
from tokenizer.pcm import pcm16_to_base64

RATE = 24_000


class Collector:
    """Spans received on POST /v1/traces: (name, attributes, span id, parent span id)."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, dict[str, Any], bytes, bytes]] = []
        self.paths: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                collector.paths.append(self.path)
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            attributes = {a.key: _value(a.value) for a in span.attributes}
                            collector.spans.append(
                                (span.name, attributes, span.span_id, span.parent_span_id)
                            )
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind is not None else None


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector()
    thread = threading.Thread(target=found.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        found.server.shutdown()
        found.server.server_close()
        thread.join(5)


async def test_a_turn_is_traced_to_the_otlp_endpoint(collector: Collector, tmp_path: Path) -> None:
    service = ServiceProcess(
        "--otel-endpoint", collector.url, "--turn-detection", "server_vad",
        log_path=tmp_path / "serve.log",
    )  # fmt: skip
    pcm = np.concatenate([silence(0.3, RATE), synthesize("Hello there", RATE), silence(1.2, RATE)])
    with service:
        async with connect(service.ws_url) as ws:
            for start in range(0, len(pcm), 4800):
                chunk = pcm16_to_base64(pcm[start : start + 4800])
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
            async with asyncio.timeout(60):
                while True:
                    event = json.loads(await ws.recv())
                    if event["type"] == "response.done":
                        break
        await asyncio.sleep(0.5)  # the session closes on the server
        service.stop(timeout_s=30)  # SIGTERM: the service flushes its spans on the way out
    assert set(collector.paths) == {"/v1/traces"}
    by_name = {name: (attributes, span_id, parent) for name, attributes, span_id, parent
               in collector.spans}  # fmt: skip
    assert {"realtime.session", "realtime.turn", "end_of_turn", "engine_request",
            "first_audio_sent"} <= set(by_name), service.log()  # fmt: skip
    session_attributes, session_id, _ = by_name["realtime.session"]
    turn_attributes, turn_id, turn_parent = by_name["realtime.turn"]
    assert session_attributes["session.transport"] == "websocket"
    assert turn_parent == session_id
    assert turn_attributes["response.id"] == event["response"]["id"]
    stages = event["response"]["x_turn"]["timings"]["stages_ms"]
    assert turn_attributes["x_turn.stages_ms.first_audio_sent"] == stages["first_audio_sent"]
    assert by_name["end_of_turn"][2] == turn_id
