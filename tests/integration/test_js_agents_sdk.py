"""OpenAI's JavaScript Agents SDK (``@openai/agents-realtime``, installed from npm into
``tests/js/`` by ``scripts/install.sh --test``) holds a spoken turn with the service over its
WebSocket transport, with the SDK's default session config: reply audio, zero error events;
and with a registered tool, which the model (the ``sim`` engine, scripted to call it) calls,
the SDK runs, and the answer follows."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import silence, synthesize

JS_DIR = Path(__file__).resolve().parents[1] / "js"
RATE = 24_000


@pytest.fixture(scope="module")
def node() -> str:
    node = shutil.which("node")
    sdk = JS_DIR / "node_modules" / "@openai" / "agents-realtime"
    if node is None or not sdk.is_dir():
        pytest.fail("node and tests/js/node_modules are needed (bash scripts/install.sh --test)")
    return node


@pytest.fixture(scope="module")
def tool_calling_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("js-tools") / "serve.log"
    with ServiceProcess("--engine", "sim", "--tts", "simulated", "--sim-tool-calls",
                        "first-turn", "--sim-reasoning-tokens", "20", "--policy", "speak-first",
                        log_path=log) as service:  # fmt: skip
        yield service


def spoken_turn(node: str, url: str, tmp_path: Path, *flags: str) -> dict[str, Any]:
    speech = tmp_path / "speech.pcm"
    pcm = synthesize("Hello there, how are you doing today?", RATE)
    speech.write_bytes(silence(0.3, RATE).tobytes() + pcm.tobytes())
    result = subprocess.run(
        [node, "spoken_turn.mjs", url, str(speech), "unused", *flags],
        cwd=JS_DIR, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_a_spoken_turn_through_the_js_agents_sdk_has_audio_and_no_errors(
    node: str, echo_service: ServiceProcess, tmp_path: Path
) -> None:
    report = spoken_turn(node, echo_service.ws_url, tmp_path)
    assert report["errors"] == []
    assert report["audioBytes"] > RATE * 2 * 0.5  # at least half a second of reply audio
    assert {"session.created", "input_audio_buffer.speech_stopped", "response.done"} <= set(
        report["types"]
    )


def test_a_tool_registered_with_the_js_agents_sdk_is_called_and_answered(
    node: str, tool_calling_service: ServiceProcess, tmp_path: Path
) -> None:
    report = spoken_turn(node, tool_calling_service.ws_url, tmp_path, "--with-tool")
    assert report["errors"] == []
    assert len(report["toolCalls"]) == 1
    assert {"response.function_call_arguments.done", "response.done"} <= set(report["types"])
    assert report["audioBytes"] > RATE * 2 * 0.2
