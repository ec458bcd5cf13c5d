"""Turn results and bench results built from real SDK objects, for the unit tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from realtime.bench.context import ClientInfo, RunContext, ServerInfo
from realtime.bench.metrics import sample_from_turn, summarize
from realtime.bench.results import BenchResults, LevelResult
from realtime.client.events import ResponseDone, parse_server_event
from realtime.client.turn import ResponseResult, TurnResult
from realtime.telemetry.timings import STAGES

STAGES_MS = {
    "speech_stopped": 0.0,
    "response_created": 2.0,
    "engine_request_sent": 5.0,
    "first_answer_token": 305.0,
    "first_reply_text": 305.0,
    "first_tts_audio": 385.0,
    "first_audio_sent": 390.0,
    "response_done": 2400.0,
}


def response_done(status: str, stages: dict[str, float]) -> dict[str, Any]:
    return {
        "type": "response.done",
        "response": {
            "id": "resp_1",
            "status": status,
            "x_turn": {
                "engine": "echo",
                "model": "echo-pocketsphinx",
                "simulated": False,
                "policy": "after-think",
                "timings": {
                    "origin": "speech_stopped",
                    "stages_ms": stages,
                    "silence_window_ms": 500.0,
                    "speech_end_audio_ms": 1200.0,
                },
            },
        },
    }


def turn_result(
    status: str = "completed",
    *,
    first_audio_at: float | None = 101.0,
    last_audio_at: float | None = 103.0,
    stages: dict[str, float] | None = None,
) -> TurnResult:
    """A turn whose last voiced sample left at t = 100.0 s and whose end arrived at 100.6 s."""
    done = parse_server_event(response_done(status, STAGES_MS if stages is None else stages), 103.1)
    assert isinstance(done, ResponseDone)
    stopped = parse_server_event({"type": "input_audio_buffer.speech_stopped"}, 100.6)
    response = ResponseResult(
        response_id="resp_1",
        done=done,
        sample_rate=24_000,
        audio=np.zeros(24_000 * 2, dtype=np.int16),
        transcript="You said: hello",
        text="",
        reasoning="",
        user_transcript="hello",
        first_audio_at=first_audio_at,
        last_audio_at=last_audio_at,
        events=[stopped, done],
        errors=[],
    )
    return TurnResult(
        response=response,
        input_rate=24_000,
        utterance_ms=1300.0,
        voiced_ms=1200.0,
        stream_started_at=98.8,
        last_voiced_sent_at=100.0,
        realtime=True,
    )


def bench_results(*, simulated: bool, levels: tuple[int, ...] = (1, 2)) -> BenchResults:
    """A run with one completed turn per session at each level."""
    level_results = []
    for sessions in levels:
        samples = [
            sample_from_turn(
                turn_result(),
                sessions=sessions,
                session=session,
                turn=0,
                kind="turn",
                utterance="hello",
                level_started_at=98.0,
            )
            for session in range(sessions)
        ]
        for sample in samples:
            sample.simulated = simulated
        level_results.append(
            LevelResult(
                sessions=sessions, wall_s=5.0, summary=summarize(samples, STAGES), samples=samples
            )
        )
    context = RunContext(
        url="ws://127.0.0.1:8080/v1/realtime",
        transport="websocket",
        server=ServerInfo(
            healthz_url="http://127.0.0.1:8080/healthz",
            engine="sim" if simulated else "echo",
            model="step-audio-r1-sim" if simulated else "echo-pocketsphinx",
            simulated=simulated,
            tts="espeak-ng",
        ),
        policies=["after-think"],
        simulated=simulated,
        client=ClientInfo(host="here", platform="linux", python="3.11", cpus=2, load_average=None),
        git_revision="unknown",
        started_at="2026-01-01T00:00:00+00:00",
        session_levels=list(levels),
        turns_per_session=1,
        duration_s=None,
        ramp_up_s=0.0,
        barge_in=False,
        audio="built-in",
        utterances=["hello"],
        options={},
    )
    return BenchResults(context=context, levels=level_results)
