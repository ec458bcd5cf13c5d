"""The speaking-policy interface: turn an engine's streams into reasoning text and reply text."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal, Protocol

from realtime.engines.base import (
    EngineRequest,
    EngineSession,
    EngineUsage,
    InputTranscription,
    InvalidToolCall,
    ToolCall,
)
from realtime.telemetry.timings import TurnTimings


@dataclass(frozen=True)
class ReasoningText:
    text: str


ReplyPhase = Literal["commentary", "final_answer"]


@dataclass(frozen=True)
class ReplyText:
    """Text to speak, in order. Policies never take back reply text once yielded."""

    text: str
    phase: ReplyPhase = "final_answer"
    """``commentary``: written before the reasoning was over (speak-first and Mind-Paced
    Speaking's early articulations); ``final_answer``: with all of the reasoning in view."""


SpeakEvent = (
    ReasoningText | ReplyText | ToolCall | InvalidToolCall | InputTranscription | EngineUsage
)


@dataclass(frozen=True)
class SpeakingParams:
    """One response's pacing knobs: the session's ``speaking`` config, else the server's.

    ``formulation_tokens`` (Tc) reasoning tokens separate two articulation requests, the first
    one after ``first_formulation_tokens`` (Tc by default); an articulation request writes at
    most ``articulation_tokens`` (Tr) reply tokens; ``max_buffered_audio_ms`` bounds how much
    reply audio may wait ahead of playback before the next articulation starts.
    """

    formulation_tokens: int = 80
    articulation_tokens: int = 20
    max_buffered_audio_ms: float = 2000.0
    first_formulation_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.formulation_tokens < 1 or self.articulation_tokens < 1:
            raise ValueError("formulation_tokens and articulation_tokens must be >= 1")
        if self.first_formulation_tokens is not None and self.first_formulation_tokens < 0:
            raise ValueError("first_formulation_tokens must be >= 0")
        if self.max_buffered_audio_ms <= 0:
            raise ValueError("max_buffered_audio_ms must be > 0")

    @property
    def first_segment_tokens(self) -> int:
        if self.first_formulation_tokens is None:
            return self.formulation_tokens
        return self.first_formulation_tokens


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
        params: SpeakingParams | None = None,
    ) -> AsyncGenerator[SpeakEvent, None]:
        """Yield the turn's reasoning and reply text. Closing the generator cancels every
        engine stream the policy opened. ``params`` (None: the defaults) paces policies that
        speak while reasoning; others ignore it."""
        ...
