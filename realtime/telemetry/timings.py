"""Per-turn stage timestamps, reported in ``response.done`` and observed into metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# The stages in the order a turn passes them. ``prefill_sent`` and ``prefill_done`` are when
# the first listen-while-thinking prefill of the turn's audio was sent, and when the last one
# finished, before the end of the turn was decided; ``speculative_start`` is
# when a speculative reply began at a candidate end of the turn (before the turn was final);
# ``speech_stopped``
# is when the end of the turn was decided; ``first_audio_sent`` is when the first reply frame
# left the outbox.
STAGES = (
    "prefill_sent",
    "prefill_done",
    "speculative_start",
    "speech_stopped",
    "response_created",
    "engine_request_sent",
    "first_reasoning_token",
    "first_answer_token",
    "first_reply_text",
    "first_tts_audio",
    "first_audio_sent",
    "response_done",
)


@dataclass
class TurnTimings:
    """Monotonic timestamps of one turn's stages; the first mark of each stage wins."""

    clock: Callable[[], float] = time.monotonic
    marks: dict[str, float] = field(default_factory=dict)
    silence_window_ms: float | None = None
    speech_end_audio_ms: float | None = None
    engine_retries: int = 0
    """Engine requests tried again after failing before their first token."""

    def mark(self, stage: str, at: float | None = None) -> None:
        if stage not in self.marks:
            self.marks[stage] = self.clock() if at is None else at

    def since(self, stage: str, origin: str) -> float | None:
        if stage in self.marks and origin in self.marks:
            return 1000.0 * (self.marks[stage] - self.marks[origin])
        return None

    def origin(self) -> str:
        return "speech_stopped" if "speech_stopped" in self.marks else "response_created"

    def report(self) -> dict[str, Any]:
        """Milliseconds from the turn's origin to each stage reached, as sent on the wire."""
        origin = self.origin()
        stages = {
            stage: round(delta, 2)
            for stage in STAGES
            if (delta := self.since(stage, origin)) is not None
        }
        return {
            "origin": origin,
            "stages_ms": stages,
            "silence_window_ms": self.silence_window_ms,
            "speech_end_audio_ms": self.speech_end_audio_ms,
            "engine_retries": self.engine_retries,
        }
