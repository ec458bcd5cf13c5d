"""When a pause ends the user's turn: a fixed silence (server_vad) or a turn-completion model
asked as the pause grows (semantic_vad, Smart Turn v3.2), and when a reply may start early.

Every pause goes through the same points, counted from where the voice ended:

- ``candidate_ms``: the pause is a *candidate* end. The reply may start speculatively (held
  back, released only if the turn is confirmed), so waiting for the decision costs engine
  time, not latency.
- ``score_at_ms`` (semantic_vad): Smart Turn scores the turn, its trailing silence included,
  at each of these points; once the mean of the latest ``average_scores`` scores reaches
  ``completion_threshold`` the turn ends.
- ``max_silence_ms``: the turn ends, whatever the model said (server_vad: its
  ``silence_duration_ms``).
- speech before the end: the pause was mid-turn; a speculative reply is dropped unseen.

The mapping of eagerness was chosen on real human speech (``benchmarks/end_of_turn_scores.py``
on ``benchmarks/real_speech_set.py``: 110 turns of telephone prompts and LibriVox read
speech, 149 pauses labelled by their text), never on espeak-ng speech, which the model judges
near chance. What the measurements say, and why the mapping is what it is:

- Smart Turn separates turn ends from mid-sentence pauses best early in a pause and worse as
  the silence grows (area under the ROC curve 0.74 at 200 ms, 0.70 at 400 ms, 0.59 at 1 s):
  with more trailing silence than it was trained with (~200 ms) it calls nearly everything
  complete. So it is asked early, at 200 and 300 ms, not late.
- One score is noisy: ±1 LSB of input noise moves it by up to 0.2 (p90). The decision is on
  the mean of two scores 100 ms apart (three for ``low``), which removed three quarters of
  the premature ends a single score at 200 ms makes on this set, for 100 ms more latency.
- The threshold trades the two errors: at 0.8 (``medium``) about 40% of mid-sentence pauses
  held 600-800 ms end the turn (a 500 ms window ends all of them) and 81% of real turn ends
  are decided by the model, the rest waiting for ``max_silence_ms``; ``low`` (0.9, mean of
  three) cuts a third of such pauses and decides 64% of turn ends; ``high`` (0.6) 49%, 88%.
- ``max_silence_ms`` bounds the wait when the model doubts a real end: past a second of
  silence a caller expects an answer (``low`` waits two).

``auto`` is ``medium``, as in OpenAI's API.
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
    score_at_ms: tuple[int, ...] = ()
    """Silences at which the model is asked, in order (each after ``candidate_ms``)."""
    average_scores: int = 1
    """The decision is on the mean of this many latest scores."""

    def __post_init__(self) -> None:
        if not 0 < self.candidate_ms <= self.max_silence_ms:
            raise ValueError("need 0 < candidate_ms <= max_silence_ms")
        if self.completion_threshold is None:
            return
        points = self.score_at_ms
        if not points or list(points) != sorted(set(points)) or points[0] < self.candidate_ms:
            raise ValueError("score_at_ms must rise, from candidate_ms on")
        if not 1 <= self.average_scores <= len(points):
            raise ValueError("average_scores must be between 1 and len(score_at_ms)")

    def decides(self, scores: Mapping[int, float]) -> bool:
        """Whether a pause's scores so far (keyed by their point's index in ``score_at_ms``)
        end the turn: the mean of ``average_scores`` consecutive ones reaches the threshold."""
        threshold, count = self.completion_threshold, self.average_scores
        if threshold is None:
            return False
        for last in range(count - 1, len(self.score_at_ms)):
            window = [scores[i] for i in range(last - count + 1, last + 1) if i in scores]
            if len(window) == count and sum(window) / count >= threshold:
                return True
        return False


_HIGH = EndOfTurnTiming(200, 800, 0.6, score_at_ms=(200, 300), average_scores=2)
_MEDIUM = EndOfTurnTiming(200, 1_000, 0.8, score_at_ms=(200, 300), average_scores=2)
_LOW = EndOfTurnTiming(200, 2_000, 0.9, score_at_ms=(200, 300, 400), average_scores=3)
EAGERNESS: Mapping[str, EndOfTurnTiming] = {
    "high": _HIGH,
    "medium": _MEDIUM,
    "low": _LOW,
    "auto": _MEDIUM,
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
