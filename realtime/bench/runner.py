"""Load generation: concurrent sessions per level, ramp-up, turns or duration, deadlines, sweep."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from realtime.bench.audio_set import Utterance
from realtime.bench.metrics import (
    TurnKind,
    TurnSample,
    failed_sample,
    sample_from_turn,
    summarize,
)
from realtime.bench.results import LevelResult
from realtime.bench.scenarios import SpokenTurn, TurnSettings, barge_in_turn, plain_turn
from realtime.bench.transports import ServiceEndpoints, Transport
from realtime.client.connection import RealtimeConnection
from realtime.client.errors import (
    RealtimeConnectionClosed,
    RealtimeConnectionError,
    RealtimeServerError,
)
from realtime.telemetry.timings import STAGES


@dataclass(frozen=True)
class LoadPlan:
    """What to run: the levels of concurrency and what each session does."""

    endpoints: ServiceEndpoints
    session_levels: tuple[int, ...]
    turns: int | None  # per session; None: as many as fit in duration_s
    duration_s: float | None  # no new turn starts after this long into a level
    ramp_up_s: float  # session k of n starts at k * ramp_up_s / n
    open_timeout_s: float
    turn: TurnSettings
    barge_in: bool = False
    pause_s: float = 0.5  # between a session's turns
    settle_s: float = 1.0  # between levels
    session_update: dict[str, Any] | None = None
    deadline_margin_s: float = 10.0  # added to what a level's turns may take at most

    def __post_init__(self) -> None:
        if self.turns is None and self.duration_s is None:
            raise ValueError("a load plan needs turns per session, a duration, or both")
        if not self.session_levels or min(self.session_levels) < 1:
            raise ValueError("every level needs at least one session")

    def level_deadline_s(self, longest_utterance_s: float) -> float:
        """The most a level may take before its unfinished turns count as timed out."""
        per_turn = longest_utterance_s + self.turn.timeout_s + self.pause_s
        if self.barge_in:
            per_turn += longest_utterance_s + self.turn.timeout_s
            per_turn += self.turn.barge_in_after_ms / 1000.0
        if self.duration_s is not None:
            turns_s = self.duration_s + per_turn
            if self.turns is not None:
                turns_s = min(turns_s, self.turns * per_turn)
        else:
            turns_s = (self.turns or 1) * per_turn
        return self.ramp_up_s + self.open_timeout_s + turns_s + self.deadline_margin_s


class LoadObserver(Protocol):
    """Told about progress as it happens (the live display)."""

    def level_started(self, sessions: int, expected_turns: int | None) -> None: ...

    def turn_recorded(self, sample: TurnSample) -> None: ...

    def level_finished(self, result: LevelResult) -> None: ...


@dataclass
class _InFlight:
    turn: int
    kind: TurnKind
    utterance: str
    started_at: float


@dataclass
class _Level:
    """The running state of one level."""

    sessions: int
    started_at: float
    deadline_s: float
    plan: LoadPlan
    observer: LoadObserver
    samples: list[TurnSample] = field(default_factory=list)

    def elapsed(self, at: float | None = None) -> float:
        return (time.monotonic() if at is None else at) - self.started_at

    def wants_turn(self, turn: int) -> bool:
        if self.plan.turns is not None and turn >= self.plan.turns:
            return False
        return self.plan.duration_s is None or self.elapsed() < self.plan.duration_s

    def record(self, sample: TurnSample) -> None:
        self.samples.append(sample)
        self.observer.turn_recorded(sample)

    def record_failure(
        self,
        session: int,
        flight: _InFlight,
        status: Literal["timeout", "error"],
        error: BaseException | str,
    ) -> None:
        message = error if isinstance(error, str) else (str(error) or type(error).__name__)
        self.record(
            failed_sample(
                sessions=self.sessions,
                session=session,
                turn=flight.turn,
                kind=flight.kind,
                utterance=flight.utterance,
                started_s=self.elapsed(flight.started_at),
                status=status,
                error=message,
            )
        )


class LoadRunner:
    """Runs a ``LoadPlan`` over one transport with a fixed set of utterances."""

    def __init__(
        self,
        plan: LoadPlan,
        transport: Transport,
        utterances: list[Utterance],
        observer: LoadObserver,
    ) -> None:
        if not utterances:
            raise ValueError("the benchmark needs at least one utterance")
        self.plan = plan
        self.transport = transport
        self.utterances = utterances
        self.observer = observer
        self._prepared: dict[int, list[Utterance]] = {}
        self._preparing = asyncio.Lock()

    async def run(self) -> list[LevelResult]:
        """Every level in turn, with a pause between them. A level in which no session
        could connect ends the run: the next, larger ones would only fail the same way."""
        results = []
        for index, sessions in enumerate(self.plan.session_levels):
            if index:
                await asyncio.sleep(self.plan.settle_s)
            result = await self.run_level(sessions)
            results.append(result)
            counts = result.summary.counts
            if counts.turns == 0 and counts.connect_errors:
                break
        return results

    def _expected_turns(self, sessions: int) -> int | None:
        if self.plan.turns is None:
            return None
        return sessions * self.plan.turns * (2 if self.plan.barge_in else 1)

    async def run_level(self, sessions: int) -> LevelResult:
        """``sessions`` concurrent sessions, each taking its turns; bounded by a deadline."""
        longest = max(utterance.duration_s for utterance in self.utterances)
        deadline = self.plan.level_deadline_s(longest)
        level = _Level(sessions, time.monotonic(), deadline, self.plan, self.observer)
        self.observer.level_started(sessions, self._expected_turns(sessions))
        tasks = [
            asyncio.create_task(self._session(level, index), name=f"bench session {index}")
            for index in range(sessions)
        ]
        _, pending = await asyncio.wait(tasks, timeout=deadline)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error  # a bug in the benchmark itself, not a failed turn
        samples = sorted(level.samples, key=lambda sample: (sample.session, sample.turn))
        result = LevelResult(
            sessions=sessions,
            wall_s=level.elapsed(),
            deadline_hit=bool(pending),
            summary=summarize(samples, STAGES),
            samples=samples,
        )
        self.observer.level_finished(result)
        return result

    async def _utterances_at(self, rate: int) -> list[Utterance]:
        """The utterances resampled to a session's input rate (once per rate, off the loop)."""
        async with self._preparing:
            if rate not in self._prepared:
                self._prepared[rate] = await asyncio.to_thread(
                    lambda: [utterance.at_rate(rate) for utterance in self.utterances]
                )
            return self._prepared[rate]

    async def _session(self, level: _Level, index: int) -> None:
        """One simulated user: their turns, over a new connection after a failed turn (whose
        connection is in an unknown state), so that the level keeps its concurrency."""
        await asyncio.sleep(self.plan.ramp_up_s * index / level.sessions)
        turn = 0
        while level.wants_turn(turn):
            opened_at = time.monotonic()
            try:
                connection = await self.transport.open(
                    self.plan.endpoints,
                    session=self.plan.session_update,
                    open_timeout=self.plan.open_timeout_s,
                )
            except (RealtimeConnectionError, RealtimeServerError) as exc:
                level.record(
                    failed_sample(
                        sessions=level.sessions,
                        session=index,
                        turn=turn,
                        kind="connect",
                        utterance="",
                        started_s=level.elapsed(opened_at),
                        status="connect_error",
                        error=str(exc),
                    )
                )
                return  # no reconnection storm against a service that refuses sessions
            try:
                turn = await self._take_turns(level, index, connection, turn)
            finally:
                await connection.close()

    async def _take_turns(
        self, level: _Level, index: int, connection: RealtimeConnection, turn: int
    ) -> int:
        """Turns from ``turn`` on, until the level wants no more or one fails in a way that
        leaves the connection unusable; returns the next turn's index."""
        utterances = await self._utterances_at(connection.input_rate)
        while level.wants_turn(turn):
            utterance = utterances[(index + turn) % len(utterances)]
            kind: TurnKind = "barge_in" if self.plan.barge_in else "turn"
            flight = _InFlight(turn, kind, utterance.name, time.monotonic())
            try:
                if self.plan.barge_in:
                    interruption = utterances[(index + turn + 1) % len(utterances)]
                    spoken = await barge_in_turn(
                        connection, utterance, interruption, self.plan.turn
                    )
                else:
                    spoken = await plain_turn(connection, utterance, self.plan.turn)
            except TimeoutError as exc:
                level.record_failure(index, flight, "timeout", exc)
                return turn + 1  # the session's state is unknown now: start a new one
            except RealtimeConnectionClosed as exc:
                level.record_failure(index, flight, "error", exc)
                return turn + 1
            except RealtimeServerError as exc:
                level.record_failure(index, flight, "error", exc)
                turn += 1
                continue
            except asyncio.CancelledError:
                deadline = f"level deadline of {level.deadline_s:.0f} s reached"
                level.record_failure(index, flight, "timeout", deadline)
                raise
            for spoken_turn in spoken:
                level.record(_sample(level, index, turn, spoken_turn))
            turn += 1
            if self.plan.pause_s > 0 and level.wants_turn(turn):
                await asyncio.sleep(self.plan.pause_s)
        return turn


def _sample(level: _Level, session: int, turn: int, spoken: SpokenTurn) -> TurnSample:
    return sample_from_turn(
        spoken.result,
        sessions=level.sessions,
        session=session,
        turn=turn,
        kind=spoken.kind,
        utterance=spoken.utterance,
        level_started_at=level.started_at,
        barge_in_sent_at=spoken.barge_in_sent_at,
    )
