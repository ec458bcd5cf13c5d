"""When a pause ends the user's turn: a fixed silence (server_vad) or a turn-completion model
asked at each pause (semantic_vad, Smart Turn v3.2), and when a reply may start early.

Every pause goes through the same three points, counted from where the voice ended:

- ``candidate_ms``: the pause is a *candidate* end. The reply may start speculatively (held
  back, released only if the turn is confirmed), and semantic_vad asks Smart Turn whether
  the turn sounds complete; at or above ``completion_threshold`` the turn ends here.
- ``max_silence_ms``: the turn ends, whatever the model said (server_vad: its
  ``silence_duration_ms``).
- speech before either: the pause was mid-turn; a speculative reply is dropped unseen.

Eagerness (OpenAI's semantic_vad knob) maps to those points. The candidate silence is as
short as the VAD allows while giving Smart Turn the ~200 ms of trailing silence it was
trained with (silero's probability trails the audio by about two 32 ms chunks; the voice end
is refined back from the audio's levels); with more trailing silence the model calls nearly
every turn complete, so it is asked once per pause. Lower eagerness asks the model to be
surer and waits longer for more speech. The longest waits are shorter than OpenAI's
documented maximum timeouts (low 8 s, medium 4 s, high 2 s): in a voice call a reply that
comes seconds after a finished question feels broken, and a pause a person holds longer
than a second or two is usually an invitation to speak. ``auto`` is the best trade-off
measured by ``benchmarks/turn_taking.py`` (README, "Turn-taking"): the end of turn at the
first candidate where the model is fairly sure (0.3), else after 1.5 s, past the longest
mid-sentence pause of the evaluation set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from realtime.protocol.session_config import SemanticVad, ServerVad


class TurnScorer(Protocol):
    """A turn-completion model: P(the speaker has finished) for a turn's 16 kHz audio."""

    async def score(self, pcm16k: np.ndarray) -> float: ...


@dataclass(frozen=True)
class EndOfTurnTiming:
    candidate_ms: int
    max_silence_ms: int
    completion_threshold: float | None = None
    """None: no model is asked (server_vad)."""

    def __post_init__(self) -> None:
        if not 0 < self.candidate_ms <= self.max_silence_ms:
            raise ValueError("need 0 < candidate_ms <= max_silence_ms")


_HIGH = EndOfTurnTiming(160, 1_000, completion_threshold=0.3)
_MEDIUM = EndOfTurnTiming(200, 2_000, completion_threshold=0.5)
_LOW = EndOfTurnTiming(300, 4_000, completion_threshold=0.7)
_AUTO = EndOfTurnTiming(200, 1_500, completion_threshold=0.3)
EAGERNESS: Mapping[str, EndOfTurnTiming] = {
    "high": _HIGH,
    "medium": _MEDIUM,
    "low": _LOW,
    "auto": _AUTO,
}

SPECULATIVE_CANDIDATE_MS = 200
"""server_vad: a pause this long (when shorter than the silence window) is a candidate end at
which a reply may start speculatively."""


def end_of_turn_timing(detection: ServerVad | SemanticVad) -> EndOfTurnTiming:
    if isinstance(detection, SemanticVad):
        return EAGERNESS[detection.eagerness]
    window = detection.silence_duration_ms
    return EndOfTurnTiming(
        candidate_ms=min(SPECULATIVE_CANDIDATE_MS, window), max_silence_ms=window
    )
