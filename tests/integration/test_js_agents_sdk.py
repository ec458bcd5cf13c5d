"""OpenAI's JavaScript Agents SDK (``@openai/agents-realtime``, installed from npm into
``tests/js/`` by ``scripts/install.sh --test``) holds a spoken turn with the service over its
WebSocket transport, with the SDK's default session config: reply audio, zero error events."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.service import ServiceProcess
from tests.support.speech import silence, synthesize

JS_DIR = Path(__file__).resolve().parents[1] / "js"
RATE = 24_000


@pytest.fixture(scope="module")
def node() -> str:
    node = shutil.which("node")
    sdk = JS_DIR / "node_modules" / "@openai" / "agents-realtime"
    if node is None or not sdk.is_dir():
        pytest.fail("node and tests/js/node_modules are needed (bash scripts/install.sh --test)")
    return node


def test_a_spoken_turn_through_the_js_agents_sdk_has_audio_and_no_errors(
    node: str, echo_service: ServiceProcess, tmp_path: Path
) -> None:
    speech = tmp_path / "speech.pcm"
    pcm = synthesize("Hello there, how are you doing today?", RATE)
    speech.write_bytes(silence(0.3, RATE).tobytes() + pcm.tobytes())
    result = subprocess.run(
        [node, "spoken_turn.mjs", echo_service.ws_url, str(speech), "unused"],
        cwd=JS_DIR, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == []
    assert report["audioBytes"] > RATE * 2 * 0.5  # at least half a second of reply audio
    assert {"session.created", "input_audio_buffer.speech_stopped", "response.done"} <= set(
        report["types"]
    )
