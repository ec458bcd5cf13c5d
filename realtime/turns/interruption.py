"""The interruption rule: speech over a reply pauses it, and only real speech cuts it.

A cough, a click or a backchannel ("mm-hmm", "yeah", "okay") is short: when the user falls
silent again before ``min_speech_ms`` of speech, the reply resumes where it paused. Speech
that lasts ``min_speech_ms`` is a barge-in, and so is any speech that starts right after the
user's own turn ended (``continuation_ms``): they had not finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class InterruptionParams:
    min_speech_ms: int = 600
    """Speech over a reply at least this long (from its start to now, or to where it paused)
    is a barge-in. espeak-ng says "okay" in about 450 ms and "stop, that is enough" in 1.3 s;
    people's backchannels are mostly under half a second."""
    resume_after_silence_ms: int = 300
    """A pause this long before ``min_speech_ms`` ends a suspected interruption: the reply
    resumes."""
    continuation_ms: int = 1500
    """Speech starting this soon after the user's last turn ended is that user going on (the
    reply came too early, in a pause), however short: a barge-in at once. ("We could take
    the car" … "to the beach." must not be taken for a backchannel.)"""


class Verdict(Enum):
    UNDECIDED = "undecided"
    BARGE_IN = "barge_in"
    FALSE_ALARM = "false_alarm"


class SuspectedInterruption:
    """Speech that started at ``start_sample`` while a reply was playing, not yet judged."""

    def __init__(self, start_sample: int, params: InterruptionParams, sample_rate: int) -> None:
        self.start_sample = start_sample
        self._min_speech = params.min_speech_ms * sample_rate // 1000
        self._resume_after = params.resume_after_silence_ms * sample_rate // 1000

    def judge(self, now_sample: int, pause_start: int | None) -> Verdict:
        """``pause_start``: where the voice ended if the user is silent now, else None."""
        voiced_until = now_sample if pause_start is None else pause_start
        if voiced_until - self.start_sample >= self._min_speech:
            return Verdict.BARGE_IN
        if pause_start is not None and now_sample - pause_start >= self._resume_after:
            return Verdict.FALSE_ALARM
        return Verdict.UNDECIDED
