"""The load plan: what it accepts, and the deadline that keeps a level from hanging."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from realtime.bench.audio_set import Utterance
from realtime.bench.metrics import TurnSample
from realtime.bench.results import LevelResult
from realtime.bench.runner import LoadPlan, LoadRunner
from realtime.bench.scenarios import TurnSettings
from realtime.bench.transports import ServiceEndpoints, service_endpoints
from realtime.client.connection import RealtimeConnection
from realtime.client.events import ServerEvent

ENDPOINTS = service_endpoints("ws://127.0.0.1:8080/v1/realtime")
TURN = TurnSettings(timeout_s=30.0, trailing_silence_ms=10_000.0, barge_in_after_ms=300.0)


def _plan(**changes: object) -> LoadPlan:
    fields: dict[str, object] = {
        "endpoints": ENDPOINTS,
        "session_levels": (1, 10),
        "turns": 3,
        "duration_s": None,
        "ramp_up_s": 2.0,
        "open_timeout_s": 10.0,
        "turn": TURN,
        "pause_s": 0.5,
    }
    fields.update(changes)
    return LoadPlan(**fields)  # type: ignore[arg-type]


def test_a_plan_needs_turns_or_a_duration() -> None:
    with pytest.raises(ValueError, match="turns per session, a duration"):
        _plan(turns=None, duration_s=None)


def test_a_plan_needs_at_least_one_session_per_level() -> None:
    with pytest.raises(ValueError, match="at least one session"):
        _plan(session_levels=(1, 0))


def test_the_level_deadline_covers_ramp_up_connection_and_every_turn() -> None:
    plan = _plan()
    per_turn = 4.0 + 30.0 + 0.5  # longest utterance + turn timeout + pause

    assert plan.level_deadline_s(4.0) == pytest.approx(2.0 + 10.0 + 3 * per_turn + 10.0)


def test_a_barge_in_turn_gets_time_for_both_of_its_replies() -> None:
    plain = _plan().level_deadline_s(4.0)
    barge_in = _plan(barge_in=True).level_deadline_s(4.0)

    # per turn: the interruption's utterance, its reply's timeout, the wait before it
    assert barge_in - plain == pytest.approx(3 * (4.0 + 30.0 + 0.3))


def test_with_a_duration_the_deadline_allows_one_turn_past_it() -> None:
    plan = _plan(turns=None, duration_s=60.0)

    assert plan.level_deadline_s(4.0) == pytest.approx(2.0 + 10.0 + 60.0 + 34.5 + 10.0)


class StalledConnection:
    """A session that opened and then stopped taking audio: every send hangs."""

    url = "ws://127.0.0.1:9/v1/realtime"
    input_rate = 24_000
    output_rate = 24_000

    def __init__(self) -> None:
        self.closed = False

    async def next_event(self, timeout: float | None = None) -> ServerEvent:  # noqa: ASYNC109
        await asyncio.sleep(timeout if timeout is not None else 3600.0)
        raise TimeoutError("no server event")

    async def send(self, event: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    async def stream_audio(
        self,
        pcm: npt.NDArray[np.int16],
        *,
        sample_rate: int,
        chunk_ms: float = 20.0,
        realtime: bool = True,
        stop: asyncio.Event | None = None,
    ) -> float:
        await asyncio.Event().wait()  # ignores stop: a stuck socket
        return 0.0

    def describe_recent(self) -> str:
        return "no events received"

    async def close(self) -> None:
        self.closed = True


class StalledTransport:
    name = "stalled"

    def __init__(self) -> None:
        self.connections: list[StalledConnection] = []

    async def open(
        self,
        endpoints: ServiceEndpoints,
        *,
        session: dict[str, Any] | None,
        open_timeout: float,
    ) -> RealtimeConnection:
        connection = StalledConnection()
        self.connections.append(connection)
        return connection


class Recorder:
    def __init__(self) -> None:
        self.samples: list[TurnSample] = []
        self.finished: list[LevelResult] = []

    def level_started(self, sessions: int, expected_turns: int | None) -> None:
        pass

    def turn_recorded(self, sample: TurnSample) -> None:
        self.samples.append(sample)

    def level_finished(self, result: LevelResult) -> None:
        self.finished.append(result)


async def test_turns_still_running_at_the_level_deadline_count_as_timeouts() -> None:
    plan = _plan(
        session_levels=(2,),
        turns=1,
        ramp_up_s=0.0,
        open_timeout_s=0.1,
        turn=TurnSettings(timeout_s=0.1, trailing_silence_ms=100.0),
        pause_s=0.0,
        deadline_margin_s=0.2,
    )
    utterance = Utterance("tone", (np.sin(np.arange(2_400) / 5.0) * 8_000).astype(np.int16), 24_000)
    transport, recorder = StalledTransport(), Recorder()
    runner = LoadRunner(plan, transport, [utterance], recorder)
    deadline = plan.level_deadline_s(utterance.duration_s)

    async with asyncio.timeout(deadline + 5.0):
        (result,) = await runner.run()

    assert result.deadline_hit
    assert [sample.status for sample in result.samples] == ["timeout", "timeout"]
    assert all("level deadline" in (sample.error or "") for sample in result.samples)
    assert result.summary.counts.timeouts == 2
    assert recorder.finished == [result] and len(recorder.samples) == 2
    assert [connection.closed for connection in transport.connections] == [True, True]
