"""An engine that records its requests and answers each with fixed deltas: the session tests'
and the echo room's stand-in for a language model."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import ClassVar

from realtime.engines.base import (
    AnswerDelta,
    EngineCapabilities,
    EngineEvent,
    EngineInfo,
    EngineRequest,
)


@dataclass
class RecordingEngineSession:
    """Records every request and answers each with the deltas of ``answer``."""

    prefills: list[EngineRequest] = field(default_factory=list)
    streams: list[EngineRequest] = field(default_factory=list)
    answer: tuple[str, ...] = ("Okay.",)

    async def prefill(self, request: EngineRequest) -> None:
        self.prefills.append(request)

    async def stream(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        self.streams.append(request)
        for delta in self.answer:
            yield AnswerDelta(delta)

    async def aclose(self) -> None:
        pass


@dataclass
class RecordingEngine:
    session: RecordingEngineSession = field(default_factory=RecordingEngineSession)
    capabilities: ClassVar[EngineCapabilities] = EngineCapabilities()
    info: EngineInfo = field(default_factory=lambda: EngineInfo("recording", "recording"))

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def admission_problem(self) -> str | None:
        return None

    def load_report(self) -> dict[str, dict[str, float]]:
        return {}

    def open_session(self) -> RecordingEngineSession:
        return self.session
