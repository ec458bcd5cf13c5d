"""Mind-Paced Speaking through the real service: sim engine, silero VAD, espeak-ng, the SDK."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import synthesize
from realtime.client import (
    OutputAudioDelta,
    OutputAudioTranscriptDelta,
    RealtimeClient,
    ReasoningDelta,
    speak_turn,
)

pytestmark = pytest.mark.slow  # starts the real service

RATE = 24_000
TURN_TIMEOUT_S = 60.0
SIM_ARGS = (
    "--engine", "sim", "--policy", "mps", "--tts", "espeak",
    "--sim-itl-ms", "8", "--sim-reasoning-tokens", "250", "--sim-answer-tokens", "12",
    "--sim-length-jitter", "0", "--formulation-tokens", "40", "--articulation-tokens", "8",
)  # fmt: skip


@pytest.fixture(scope="module")
def sim_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("sim-service") / "serve.log"
    with ServiceProcess(*SIM_ARGS, log_path=log) as service:
        yield service


async def test_mps_speaks_while_the_simulated_engine_is_still_reasoning(
    sim_service: ServiceProcess,
) -> None:
    session = {
        "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}
    }
    async with RealtimeClient.connect(sim_service.ws_url, session=session) as client:
        turn = await speak_turn(
            client, synthesize("What should I cook tonight?", RATE), RATE, timeout=TURN_TIMEOUT_S
        )
    response = turn.response
    events = response.events
    reasoning = [e for e in events if isinstance(e, ReasoningDelta)]
    transcript = [e for e in events if isinstance(e, OutputAudioTranscriptDelta)]
    audio = [e for e in events if isinstance(e, OutputAudioDelta)]

    assert response.status == "completed"
    assert (
        len(reasoning) == 250
        and response.reasoning.split() == "".join(e.delta for e in reasoning).split()
    )
    assert transcript and response.transcript.strip()
    assert audio
    x_turn = response.x_turn
    assert x_turn is not None
    assert x_turn.policy == "mps" and x_turn.engine == "sim" and x_turn.simulated is True
    assert audio[0].received_at < reasoning[-1].received_at  # spoke before reasoning was done
    stages = x_turn.timings.stages_ms if x_turn.timings else {}
    assert stages["first_reasoning_token"] < stages["first_answer_token"]
    assert stages["first_answer_token"] <= stages["first_tts_audio"] <= stages["first_audio_sent"]


def test_the_service_reports_its_engine_as_simulated(sim_service: ServiceProcess) -> None:
    health = httpx.get(f"{sim_service.http_url}/healthz", timeout=5.0).json()
    assert health["engine"] == "sim" and health["simulated"] is True
    assert 'step_realtime_engine_info{engine="sim",simulated="true"} 1.0' in sim_service.metrics()
    assert "SIMULATED" in sim_service.log()
