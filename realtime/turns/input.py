"""A session's input side: audio frames in, turn events out.

Where a frame goes: ``ResampleStage`` (client rate → 16 kHz) → the 16 kHz ``AudioStage``
chain (echo cancellation, noise suppression) → the ``InputAudioBuffer`` → the
VAD loop: silero (batched with every other session by the app's ``VadBatcher``) → the
``TurnDetector`` (speech start, pauses, the silence window) → the end-of-turn decision
(``end_of_turn``: a candidate pause, Smart Turn's score for semantic_vad, the longest
silence) and, while a reply plays, the interruption rule (``interruption``). While the user
speaks, the turn is cut into chunks the engine can prefill (listen while thinking).

The session learns what happened from ``TurnEvent`` objects, delivered in order to its
``TurnListener``; it never reaches into this object's state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from realtime.conversation import UserAudioItem
from realtime.events import new_id
from realtime.protocol.session_config import SemanticVad, ServerVad, TurnDetection
from realtime.turns.audio_buffer import InputAudioBuffer
from realtime.turns.end_of_turn import EndOfTurnTiming, TurnScorer, end_of_turn_timing
from realtime.turns.interruption import InterruptionParams, SuspectedInterruption, Verdict
from realtime.turns.stages import AudioStage, ResampleStage, stage_rank
from realtime.turns.turn_audio import DEFAULT_PREFILL_CHUNK_S, TurnInProgress, audio_item_from_pcm
from realtime.turns.turn_detector import (
    SpeechStarted,
    SpeechStopped,
    TurnDetectionParams,
    TurnDetector,
)
from realtime.turns.vad import VadBatcher, VadChunkResult, levels_db
from tokenizer import ENGINE_SAMPLE_RATE
from tokenizer.chunking import MAX_ENGINE_CHUNK_S
from tokenizer.turn_features import SMART_TURN_WINDOW_SAMPLES

log = logging.getLogger(__name__)

_SAMPLES_PER_MS = ENGINE_SAMPLE_RATE // 1000
_LEVEL_PART_SAMPLES = 32  # 2 ms, as the VAD's per-chunk levels

EndReason = Literal["silence", "semantic", "max_silence"]


@dataclass(frozen=True)
class TurnSettings:
    """Server-side knobs of every session's input side."""

    speech_pad_ms: int = 100
    """Audio kept after the end of speech in the committed turn."""
    prefill_chunk_s: float = DEFAULT_PREFILL_CHUNK_S
    """Listen while thinking: close a chunk for the engine every this many seconds of speech."""
    interruption: InterruptionParams = field(default_factory=InterruptionParams)
    speculative_start: bool = True
    """Announce candidate ends (``TurnMayEnd``) so that a reply may start before the turn is
    final."""


# -- events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserSpeechStarted:
    """A turn began at ``audio_start_ms`` (prefix padding included). ``interrupting``: it was
    speech over a reply, now judged a barge-in."""

    item_id: str
    audio_start_ms: int
    interrupting: bool = False


@dataclass(frozen=True)
class ReplyPaused:
    """Speech started over a reply: hold the reply's audio until the speech is judged."""


@dataclass(frozen=True)
class ReplyResumed:
    """The speech over the reply was a cough, a click or a backchannel: play on."""


@dataclass(frozen=True)
class TurnChunkClosed:
    """Another chunk of the turn is ready for the engine to prefill."""

    snapshot: UserAudioItem


@dataclass(frozen=True)
class TurnMayEnd:
    """A candidate end: ``item`` is the turn exactly as it will be committed if it ends here."""

    item: UserAudioItem


@dataclass(frozen=True)
class TurnContinues:
    """The user spoke again after a candidate end: the turn goes on."""


@dataclass(frozen=True)
class TurnEnded:
    item: UserAudioItem
    speech_end_ms: float
    """Where the voice ended, in the session's input audio."""
    reason: EndReason
    silence_ms: float
    """How much silence there was when the turn ended (the rule's, plus any model time)."""
    rule_silence_ms: float
    """The silence the rule asked for: server_vad's window, semantic_vad's candidate pause
    or its longest silence."""
    completion_probability: float | None = None


@dataclass(frozen=True)
class IdleTimeout:
    """No speech for ``idle_timeout_ms`` after the last reply: ``item`` holds that audio."""

    item: UserAudioItem
    audio_start_ms: int
    audio_end_ms: int


TurnEvent = (
    UserSpeechStarted
    | ReplyPaused
    | ReplyResumed
    | TurnChunkClosed
    | TurnMayEnd
    | TurnContinues
    | TurnEnded
    | IdleTimeout
)


class TurnListener(Protocol):
    def on_turn_event(self, event: TurnEvent) -> None: ...


@dataclass
class _Candidate:
    """A pause long enough to be a candidate end, and Smart Turn's scores of it so far (asked
    at each of the timing's ``score_at_ms`` points as the silence grows)."""

    end_sample: int  # where the voice ended
    scores: dict[int, float] = field(default_factory=dict)  # by scoring point
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def probability(self) -> float | None:
        return self.scores[max(self.scores)] if self.scores else None


@dataclass(frozen=True)
class _EarlierAudio:
    """The audio of a turn that ended just before the user went on: the context Smart Turn
    hears before the turn ``turn_id``."""

    turn_id: str
    pcm: np.ndarray


class TurnInput:
    """One session's input side. ``append`` takes audio; events go to ``listener``."""

    def __init__(
        self,
        vad: VadBatcher,
        listener: TurnListener,
        *,
        settings: TurnSettings,
        capacity_samples: int,
        scorer: TurnScorer | None = None,
        stages: Sequence[AudioStage] = (),
        observe_lag: Callable[[float], None] | None = None,
    ) -> None:
        """``observe_lag`` gets, for each appended frame, the seconds from its ``append`` to
        the moment the VAD's results for it were acted on (the input side's lateness)."""
        self.settings = settings
        self.buffer = InputAudioBuffer(capacity_samples)
        self._listener = listener
        self._scorer = scorer
        self._resample = ResampleStage()
        self._stages = tuple(stages)
        self._vad_stream = vad.open_stream()
        self._detection: TurnDetection | None = None
        self._timing: EndOfTurnTiming | None = None
        self._detector = TurnDetector(TurnDetectionParams(), ENGINE_SAMPLE_RATE)
        # (index of the first sample in the buffer, 16 kHz audio, when it was appended)
        self._queue: asyncio.Queue[tuple[int, np.ndarray, float]] = asyncio.Queue()
        self._observe_lag = observe_lag
        self._ignore_before = 0
        self._vad_done_until = 0
        self._turn: TurnInProgress | None = None
        self._candidate: _Candidate | None = None
        self._suspected: SuspectedInterruption | None = None
        self._reply_active = False
        self._idle_from: int | None = None
        self._last_turn_end: int | None = None  # where the voice of the last turn ended
        self._last_turn_audio: np.ndarray | None = None  # its last 8 s
        self._reply_started_at: int | None = None  # input sample when the last reply started
        self._context: _EarlierAudio | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- public state ------------------------------------------------------------------------

    @property
    def caught_up(self) -> bool:
        """Every appended sample reached the VAD, every whole chunk was scored, and the
        results were acted on."""
        return (
            self._queue.empty()
            and self._vad_stream.position == self.buffer.end
            and self._vad_done_until == self._vad_stream.chunked_until
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, name: str) -> asyncio.Task[None]:
        """Start following the audio; the task is the caller's to supervise."""
        self._task = asyncio.create_task(self._vad_loop(), name=f"{name}-vad")
        return self._task

    async def aclose(self) -> None:
        self._closed = True
        self._abandon_turn()
        self._vad_stream.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def configure(self, detection: TurnDetection | None) -> None:
        """Apply the session's ``turn_detection`` (None: no VAD; turns are committed by hand)."""
        was_on = self._detection is not None
        self._detection = detection
        self._timing = end_of_turn_timing(detection) if detection is not None else None
        params = TurnDetectionParams()
        if isinstance(detection, ServerVad):
            params = TurnDetectionParams(
                threshold=detection.threshold,
                prefix_padding_ms=detection.prefix_padding_ms,
                silence_duration_ms=detection.silence_duration_ms,
            )
        elif isinstance(detection, SemanticVad) and self._timing is not None:
            params = TurnDetectionParams(silence_duration_ms=self._timing.max_silence_ms)
        self._detector.params = params
        if was_on and detection is None:
            self._abandon_turn()
            self._skip_vad_until(self.buffer.end)

    def set_stage(self, name: str, stage: AudioStage | None) -> None:
        """Put ``stage`` in place of the 16 kHz stage called ``name`` (in its place in
        ``STAGE_ORDER`` if there is none); None removes it."""
        kept = [s if s.name != name else stage for s in self._stages]
        if stage is not None and all(s.name != name for s in self._stages):
            kept.append(stage)
        self._stages = tuple(
            sorted((s for s in kept if s is not None), key=lambda s: stage_rank(s.name))
        )

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The 16 kHz stages, in the order a frame passes them."""
        return tuple(s.name for s in self._stages)

    def stage(self, name: str) -> AudioStage | None:
        """The 16 kHz stage called ``name``, if the chain has one."""
        return next((s for s in self._stages if s.name == name), None)

    # -- input -------------------------------------------------------------------------------

    def append(self, pcm: np.ndarray, sample_rate: int) -> None:
        """Mono int16 at ``sample_rate``. Raises ``InputBufferFull`` (nothing appended)."""
        pcm16k = self._resample.process(pcm, sample_rate)
        for stage in self._stages:
            pcm16k = stage.process(pcm16k)
        start = self.buffer.end
        self.buffer.append(pcm16k)
        if self._detection is not None and len(pcm16k):
            self._queue.put_nowait((start, pcm16k, time.monotonic()))

    def held_samples(self) -> int:
        """What a commit now would hold: the turn so far, or the whole buffer."""
        start = self._turn.start_sample if self._turn is not None else self.buffer.start
        return self.buffer.end - start

    def commit(self) -> UserAudioItem:
        """``input_audio_buffer.commit``: the buffered audio becomes a user item. During a turn
        the VAD is following, the turn's chunks are kept as they are, so the engine's
        listen-while-thinking prefills still match the final request."""
        turn = self._turn
        if turn is not None:
            item = turn.finish(self.buffer, self.buffer.end)
        else:
            audio = self.buffer.slice(self.buffer.start, self.buffer.end)
            item = audio_item_from_pcm(new_id("item"), audio, MAX_ENGINE_CHUNK_S)
        self.clear()
        return item

    def clear(self) -> None:
        self._abandon_turn()
        self._skip_vad_until(self.buffer.end)
        self.buffer.clear()

    # -- what the session tells us -----------------------------------------------------------

    def reply_started(self) -> None:
        self._reply_active = True
        self._reply_started_at = self.buffer.end
        self._idle_from = None

    def reply_ended(self, *, completed: bool) -> None:
        """The reply is over; ``completed``: all its audio went out (idle time counts from
        here)."""
        self._reply_active = False
        if self._suspected is not None:
            self._confirm_interruption()
        if completed and self._turn is None:
            self._idle_from = self.buffer.end

    # -- the VAD loop ------------------------------------------------------------------------

    async def _vad_loop(self) -> None:
        while True:
            start, pcm, appended_at = await self._queue.get()
            if start != self._vad_stream.position:
                self._follow_from(start)
            try:
                results = await self._vad_stream.process(pcm)
            except Exception:
                if self._closed:
                    return
                raise
            for result in results:
                self._vad_done_until = result.end_sample
                if result.end_sample <= self._ignore_before or self._detection is None:
                    continue
                self._on_vad_result(result)
            if self._turn is not None and self._queue.empty():
                self._check_quiet_tail()
            if self._turn is None:
                keep = self._detector.params.prefix_padding_ms * _SAMPLES_PER_MS
                self.buffer.drop_before(self._vad_done_until - keep)
            if self._observe_lag is not None:
                self._observe_lag(time.monotonic() - appended_at)

    def _follow_from(self, start: int) -> None:
        """The VAD did not hear the audio before ``start`` (it came while turn detection was
        off): start it afresh there, so its sample positions stay the buffer's. Were it to go
        on counting from where it stopped, every position it reported would lag the buffer by
        the audio it missed: speech would fall before the point a clear skipped to, and the
        session would never hear a turn again."""
        self._vad_stream.reset(start)
        self._vad_done_until = start
        self._detector.reset()

    def _on_vad_result(self, result: VadChunkResult) -> None:
        for event in self._detector.update(result):
            if isinstance(event, SpeechStarted):
                self._on_speech_started(event)
            else:
                self._on_speech_stopped(event)
        now = result.end_sample
        if self._turn is not None and self._turn.feed(self.buffer, self._feed_limit(now)):
            self._emit(TurnChunkClosed(self._turn.snapshot()))
        if self._turn is not None:
            if self._suspected is not None:
                self._judge_interruption(now)
            else:
                self._follow_pause(now)
        self._check_idle(now)

    def _feed_limit(self, now: int) -> int:
        """How far the turn's chunker may be fed: while a candidate end is pending, no further
        than the turn's end there, so that the turn committed at that pause is exactly the
        one previewed for the speculative reply (its chunks included)."""
        if self._candidate is None:
            return now
        return min(now, self._turn_end(self._candidate.end_sample))

    def _check_quiet_tail(self) -> None:
        """Let the silence window end inside the VAD chunk still being received.

        The tail is everything received after the last scored chunk: the 16 kHz audio not yet
        scored, then the input the resampler still holds back (about 11 ms on average for
        soxr's LQ, in a sawtooth up to 20 ms), judged at its own rate.
        """
        tail_start = max(self._vad_done_until, self.buffer.start)
        levels = levels_db(self.buffer.slice(tail_start, self.buffer.end), _LEVEL_PART_SAMPLES)
        tail_end = self.buffer.end
        held = self._resample.held_input()
        in_rate = self._resample.in_rate
        if in_rate is not None and len(held):
            levels += levels_db(held, len(held))
            tail_end += round(len(held) * ENGINE_SAMPLE_RATE / in_rate)
        if not levels:
            return
        for event in self._detector.update_tail(tail_end, levels):
            if isinstance(event, SpeechStopped):
                self._on_speech_stopped(event)

    # -- speech start and interruptions ------------------------------------------------------

    def _on_speech_started(self, started: SpeechStarted) -> None:
        params = self._detector.params
        start = max(
            started.start_sample - params.prefix_padding_ms * _SAMPLES_PER_MS,
            self.buffer.start,
            self._ignore_before,
        )
        self._idle_from = None
        self._turn = TurnInProgress(new_id("item"), start, self.settings.prefill_chunk_s)
        going_on = self._goes_on(started.start_sample)
        self._context = None
        if going_on and self._last_turn_audio is not None:
            self._context = _EarlierAudio(self._turn.item.id, self._last_turn_audio)
        detection = self._detection
        interrupts = self._reply_active and detection is not None and detection.interrupt_response
        if interrupts and going_on:
            self._emit(UserSpeechStarted(self._turn.item.id, start // _SAMPLES_PER_MS, True))
            return
        if interrupts:
            self._suspected = SuspectedInterruption(
                started.start_sample, self.settings.interruption, ENGINE_SAMPLE_RATE
            )
            self._emit(ReplyPaused())
            return
        self._emit(UserSpeechStarted(self._turn.item.id, start // _SAMPLES_PER_MS))

    def _goes_on(self, speech_start: int) -> bool:
        """Speech starting this soon after the user's last turn ended, or after the reply to
        it started (which was then inside the user's own pause), is that user going on."""
        if self._last_turn_end is None:
            return False
        window = self.settings.interruption.continuation_ms * _SAMPLES_PER_MS
        since = self._last_turn_end
        if self._reply_started_at is not None and self._reply_started_at > since:
            since = self._reply_started_at
        return speech_start - since < window

    def _judge_interruption(self, now: int) -> None:
        suspected = self._suspected
        assert suspected is not None
        verdict = suspected.judge(now, self._detector.pause_start)
        if verdict is Verdict.BARGE_IN:
            self._confirm_interruption()
        elif verdict is Verdict.FALSE_ALARM:
            self._dismiss_interruption()

    def _dismiss_interruption(self) -> None:
        self._abandon_turn()
        self._detector.reset()
        self._emit(ReplyResumed())

    def _confirm_interruption(self) -> None:
        self._suspected = None
        turn = self._turn
        if turn is not None:
            self._emit(UserSpeechStarted(turn.item.id, turn.start_sample // _SAMPLES_PER_MS, True))

    # -- pauses and the end of the turn ------------------------------------------------------

    def _follow_pause(self, now: int) -> None:
        timing = self._timing
        pause_start = self._detector.pause_start
        candidate = self._candidate
        if pause_start is None or timing is None:
            if candidate is not None:
                self._drop_candidate()
                self._emit(TurnContinues())
            return
        if candidate is not None and candidate.end_sample != pause_start:
            self._drop_candidate()  # a new pause after speech the VAD barely registered
            self._emit(TurnContinues())
            candidate = None
        silence = now - pause_start
        if candidate is None:
            if silence < timing.candidate_ms * _SAMPLES_PER_MS:
                return
            candidate = self._candidate = _Candidate(end_sample=pause_start)
            if self.settings.speculative_start:
                self._emit(TurnMayEnd(self._preview(pause_start)))
        if self._scorer is None or timing.completion_threshold is None:
            return
        # Each point is asked as soon as the silence reaches it, even while an earlier score
        # is still being computed: the scores of one pause are batched, not queued.
        point = len(candidate.tasks)
        if (
            point < len(timing.score_at_ms)
            and silence >= timing.score_at_ms[point] * _SAMPLES_PER_MS
        ):
            candidate.tasks.append(asyncio.create_task(self._score(candidate, point, now)))

    async def _score(self, candidate: _Candidate, point: int, now: int) -> None:
        """Smart Turn's score of the turn up to ``now`` (its trailing silence included), as
        the ``point``-th score of this pause; the turn ends once the mean of ``average_scores``
        consecutive scores reaches the threshold."""
        turn, scorer, timing = self._turn, self._scorer, self._timing
        assert turn is not None and scorer is not None and timing is not None
        audio = self._scoring_window(turn, now)
        try:
            probability = await scorer.score(audio)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("turn-completion model failed; this pause ends at the longest silence")
            return
        if self._candidate is not candidate or self._turn is not turn:
            return
        candidate.scores[point] = probability
        if timing.decides(candidate.scores):
            self._end_turn(candidate.end_sample, self.buffer.end, "semantic", probability)
            self._detector.reset()

    def _scoring_window(self, turn: TurnInProgress, now: int) -> np.ndarray:
        """The last 8 s of the turn up to ``now``. When the turn is the user going on right
        after a turn of theirs that ended too early, that turn's audio comes first: scored
        alone, the next clause would sound like a complete turn."""
        window_start = max(turn.start_sample, now - SMART_TURN_WINDOW_SAMPLES)
        audio = self.buffer.slice(window_start, now)
        context = self._context
        if context is None or context.turn_id != turn.item.id:
            return audio
        room = SMART_TURN_WINDOW_SAMPLES - len(audio)
        if room <= 0:
            return audio
        return np.concatenate([context.pcm[-room:], audio])

    def _on_speech_stopped(self, stopped: SpeechStopped) -> None:
        if self._turn is None:
            return
        suspected = self._suspected
        if suspected is not None:
            if suspected.judge(stopped.detected_sample, stopped.end_sample) is Verdict.BARGE_IN:
                self._confirm_interruption()
            else:  # it stopped before it was long enough to be a barge-in
                self._dismiss_interruption()
                return
        reason: EndReason = "silence" if isinstance(self._detection, ServerVad) else "max_silence"
        probability = self._candidate.probability if self._candidate is not None else None
        self._end_turn(stopped.end_sample, stopped.detected_sample, reason, probability)

    def _end_turn(
        self, voice_end: int, detected: int, reason: EndReason, probability: float | None
    ) -> None:
        turn = self._turn
        assert turn is not None
        end = self._turn_end(voice_end)
        item = turn.finish(self.buffer, end)
        timing = self._timing
        rule_ms = (
            float(self._detector.params.silence_duration_ms)
            if timing is None or reason == "silence"
            else float(timing.candidate_ms if reason == "semantic" else timing.max_silence_ms)
        )
        self._turn = None
        self._last_turn_end = voice_end
        self._reply_started_at = None
        earlier = self._context.pcm if self._context is not None else np.zeros(0, np.int16)
        pcm = np.concatenate([earlier, *item.chunks])
        self._last_turn_audio = pcm[-SMART_TURN_WINDOW_SAMPLES:]
        self._context = None
        self._drop_candidate()
        self.buffer.drop_before(end)
        self._emit(
            TurnEnded(
                item,
                speech_end_ms=voice_end / _SAMPLES_PER_MS,
                reason=reason,
                silence_ms=(detected - voice_end) / _SAMPLES_PER_MS,
                rule_silence_ms=rule_ms,
                completion_probability=probability,
            )
        )

    def _turn_end(self, voice_end: int) -> int:
        return min(voice_end + self.settings.speech_pad_ms * _SAMPLES_PER_MS, self.buffer.end)

    def _preview(self, voice_end: int) -> UserAudioItem:
        """The item ``_end_turn(voice_end)`` would commit, leaving the turn as it is."""
        turn = self._turn
        assert turn is not None
        return turn.preview(self.buffer, self._turn_end(voice_end))

    def _drop_candidate(self) -> None:
        candidate, self._candidate = self._candidate, None
        if candidate is not None:
            for task in candidate.tasks:
                task.cancel()

    def _abandon_turn(self) -> None:
        self._turn = None
        self._suspected = None
        self._drop_candidate()

    def _skip_vad_until(self, sample: int) -> None:
        self._ignore_before = sample
        self._detector.reset()

    # -- idle timeout ------------------------------------------------------------------------

    def _check_idle(self, now: int) -> None:
        detection = self._detection
        if (
            self._idle_from is None
            or self._turn is not None
            or self._reply_active
            or not isinstance(detection, ServerVad)
            or detection.idle_timeout_ms is None
        ):
            return
        start = self._idle_from
        if now - start < detection.idle_timeout_ms * _SAMPLES_PER_MS:
            return
        self._idle_from = None
        audio = self.buffer.slice(start, now)
        item = audio_item_from_pcm(new_id("item"), audio, MAX_ENGINE_CHUNK_S)
        self.buffer.drop_before(now)
        self._emit(IdleTimeout(item, start // _SAMPLES_PER_MS, now // _SAMPLES_PER_MS))

    def _emit(self, event: TurnEvent) -> None:
        self._listener.on_turn_event(event)
