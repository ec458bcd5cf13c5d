"""The speaking-policy interface: turn an engine's streams into reasoning text and reply text."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

from realtime.engines.base import EngineRequest, EngineSession, EngineUsage, InputTranscription
from realtime.session.timings import TurnTimings


@dataclass(frozen=True)
class ReasoningText:
    text: str


@dataclass(frozen=True)
class ReplyText:
    """Text to speak, in order. Policies never take back reply text once yielded."""

    text: str


SpeakEvent = ReasoningText | ReplyText | InputTranscription | EngineUsage


class PlaybackGauge(Protocol):
    """How much reply audio is queued ahead of playback, so policies can pace themselves."""

    def buffered_ms(self) -> float: ...

    async def wait_buffered_below(self, ms: float) -> None: ...


class SpeakingPolicy(Protocol):
    name: str

    def run(
        self,
        engine: EngineSession,
        request: EngineRequest,
        timings: TurnTimings,
        playback: PlaybackGauge,
    ) -> AsyncGenerator[SpeakEvent, None]:
        """Yield the turn's reasoning and reply text. Closing the generator cancels every
        engine stream the policy opened."""
        ...
