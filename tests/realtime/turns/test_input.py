"""The input side as a whole: espeak-ng speech through the real silero VAD into turn events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from benchmarks.harness.speech import silence, synthesize
from realtime.protocol.session_config import SemanticVad, ServerVad
from realtime.turns.end_of_turn import end_of_turn_timing
from realtime.turns.input import (
    IdleTimeout,
    ReplyPaused,
    ReplyResumed,
    TurnContinues,
    TurnEnded,
    TurnEvent,
    TurnInput,
    TurnMayEnd,
    TurnSettings,
    UserSpeechStarted,
)
from realtime.turns.vad import VadBatcher
from tests.realtime.session.support import until

FRAME = 320  # 20 ms at 16 kHz


class Recorder:
    def __init__(self) -> None:
        self.events: list[TurnEvent] = []

    def on_turn_event(self, event: TurnEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[TurnEvent]:
        return [e for e in self.events if isinstance(e, kind)]


class ScriptedScorer:
    """Answers each score with ``decide(seconds of audio scored)``."""

    def __init__(self, decide: Callable[[float], float]) -> None:
        self.decide = decide
        self.calls: list[float] = []

    async def score(self, pcm16k: np.ndarray) -> float:
        self.calls.append(len(pcm16k) / 16_000)
        return self.decide(len(pcm16k) / 16_000)


class _RepliesAtTurnEnd(Recorder):
    """Starts a reply at every turn end, as the session does."""

    replies_to: TurnInput | None = None

    def on_turn_event(self, event: TurnEvent) -> None:
        super().on_turn_event(event)
        if isinstance(event, TurnEnded) and self.replies_to is not None:
            self.replies_to.reply_started()


@pytest.fixture
async def make_input(
    batcher: VadBatcher,
) -> AsyncIterator[Callable[..., tuple[TurnInput, Recorder]]]:
    opened: list[TurnInput] = []

    def make(
        detection: ServerVad | SemanticVad, recorder: Recorder | None = None, **kwargs: object
    ) -> tuple[TurnInput, Recorder]:
        recorder = recorder or Recorder()
        settings = kwargs.pop("settings", TurnSettings())
        turn_input = TurnInput(
            batcher,
            recorder,
            settings=settings,
            capacity_samples=60 * 16_000,
            **kwargs,  # type: ignore[arg-type]
        )
        turn_input.configure(detection)
        turn_input.start("test")
        opened.append(turn_input)
        return turn_input, recorder

    yield make
    for turn_input in opened:
        await turn_input.aclose()


async def stream(turn_input: TurnInput, pcm: np.ndarray) -> None:
    """Feed 16 kHz audio in 20 ms frames, letting the VAD act on each before the next."""
    for start in range(0, len(pcm), FRAME):
        turn_input.append(pcm[start : start + FRAME], 16_000)
        await until(lambda: turn_input.caught_up, timeout_s=10.0, poll_s=0.001)


@pytest.fixture(scope="module")
def paused_turn() -> tuple[np.ndarray, int]:
    """ "I was thinking that maybe" (800 ms pause) "we could go to the park"; and where the
    second clause starts."""
    first = synthesize("I was thinking that maybe", 16_000)
    second = synthesize("we could go to the park.", 16_000)
    head = np.concatenate([silence(0.3, 16_000), first, silence(0.8, 16_000)])
    return np.concatenate([head, second, silence(1.5, 16_000)]), len(head)


async def test_semantic_vad_holds_the_turn_through_a_pause_the_model_calls_unfinished(
    make_input: Callable[..., tuple[TurnInput, Recorder]], paused_turn: tuple[np.ndarray, int]
) -> None:
    audio, second_clause = paused_turn
    # The model says "unfinished" for anything shorter than the whole sentence.
    scorer = ScriptedScorer(lambda seconds: 0.9 if seconds * 16_000 > second_clause else 0.1)
    turn_input, recorder = make_input(SemanticVad(eagerness="low"), scorer=scorer)

    await stream(turn_input, audio)

    kinds = [type(e) for e in recorder.events if not type(e).__name__.startswith("TurnChunk")]
    assert kinds == [UserSpeechStarted, TurnMayEnd, TurnContinues, TurnMayEnd, TurnEnded]
    (ended,) = recorder.of(TurnEnded)
    assert isinstance(ended, TurnEnded)
    assert ended.reason == "semantic" and ended.completion_probability == 0.9
    assert ended.speech_end_ms * 16 > second_clause
    # The end came at the first pause after the real end, once the model had been asked at
    # each of its points, not after the 2 s a doubtful pause may wait.
    timing = end_of_turn_timing(SemanticVad(eagerness="low"))
    assert timing.score_at_ms[-1] <= ended.silence_ms < timing.score_at_ms[-1] + 300
    (may_end, *_) = recorder.of(TurnMayEnd)
    assert isinstance(may_end, TurnMayEnd)


async def test_semantic_vad_ends_a_doubtful_turn_at_the_longest_pause(
    make_input: Callable[..., tuple[TurnInput, Recorder]],
) -> None:
    scorer = ScriptedScorer(lambda seconds: 0.2)
    turn_input, recorder = make_input(SemanticVad(eagerness="high"), scorer=scorer)
    speech = synthesize("So I went to the shop and", 16_000)

    await stream(turn_input, np.concatenate([silence(0.3, 16_000), speech, silence(1.3, 16_000)]))

    (ended,) = recorder.of(TurnEnded)
    timing = end_of_turn_timing(SemanticVad(eagerness="high"))
    assert isinstance(ended, TurnEnded) and ended.reason == "max_silence"
    assert timing.max_silence_ms <= ended.silence_ms < timing.max_silence_ms + 20
    # Asked at each of its points of the pause, then no more.
    assert len(scorer.calls) == len(timing.score_at_ms)


async def test_the_item_announced_at_a_candidate_end_is_the_item_committed(
    make_input: Callable[..., tuple[TurnInput, Recorder]],
) -> None:
    turn_input, recorder = make_input(ServerVad(silence_duration_ms=500))
    speech = synthesize("What is the weather like in Paris?", 16_000)

    await stream(turn_input, np.concatenate([silence(0.3, 16_000), speech, silence(1.0, 16_000)]))

    (may_end,) = recorder.of(TurnMayEnd)
    (ended,) = recorder.of(TurnEnded)
    assert isinstance(may_end, TurnMayEnd) and isinstance(ended, TurnEnded)
    assert ended.reason == "silence"
    assert may_end.item.id == ended.item.id
    assert [len(c) for c in may_end.item.chunks] == [len(c) for c in ended.item.chunks]
    assert all(
        np.array_equal(a, b) for a, b in zip(may_end.item.chunks, ended.item.chunks, strict=True)
    )


async def test_a_short_burst_over_a_reply_pauses_and_resumes_it(
    make_input: Callable[..., tuple[TurnInput, Recorder]],
) -> None:
    turn_input, recorder = make_input(ServerVad())
    turn_input.reply_started()

    await stream(turn_input, np.concatenate([silence(0.3, 16_000), synthesize("yeah", 16_000),
                                             silence(1.0, 16_000)]))  # fmt: skip

    assert [type(e) for e in recorder.events] == [ReplyPaused, ReplyResumed]


async def test_long_speech_over_a_reply_is_a_barge_in_from_its_start(
    make_input: Callable[..., tuple[TurnInput, Recorder]],
) -> None:
    turn_input, recorder = make_input(ServerVad())
    turn_input.reply_started()
    speech = synthesize("Stop, that is enough, thank you.", 16_000)

    await stream(turn_input, np.concatenate([silence(0.3, 16_000), speech, silence(1.0, 16_000)]))

    kinds = [type(e) for e in recorder.events if not type(e).__name__.startswith("TurnChunk")]
    assert kinds[:2] == [ReplyPaused, UserSpeechStarted]
    started = recorder.of(UserSpeechStarted)[0]
    assert isinstance(started, UserSpeechStarted) and started.interrupting
    assert started.audio_start_ms <= 300  # the turn keeps its own start (with padding)
    assert TurnEnded in kinds and ReplyResumed not in kinds


async def test_without_interrupt_response_speech_over_a_reply_is_just_a_turn(
    make_input: Callable[..., tuple[TurnInput, Recorder]],
) -> None:
    turn_input, recorder = make_input(ServerVad(interrupt_response=False))
    turn_input.reply_started()

    await stream(turn_input, np.concatenate([silence(0.3, 16_000), synthesize("yeah", 16_000),
                                             silence(1.0, 16_000)]))  # fmt: skip

    kinds = [type(e) for e in recorder.events]
    assert ReplyPaused not in kinds
    assert kinds[0] is UserSpeechStarted and kinds[-1] is TurnEnded


async def test_idle_timeout_fires_once_after_the_reply_ends(
    make_input: Callable[..., tuple[TurnInput, Recorder]],
) -> None:
    turn_input, recorder = make_input(ServerVad(idle_timeout_ms=1_000))
    await stream(turn_input, silence(1.5, 16_000))
    assert recorder.events == []  # no reply has ended yet: nothing to time from
    turn_input.reply_started()
    turn_input.reply_ended(completed=True)

    await stream(turn_input, silence(3.0, 16_000))

    (idle,) = recorder.events
    assert isinstance(idle, IdleTimeout)
    assert 1_000 <= idle.audio_end_ms - idle.audio_start_ms < 1_040


@pytest.mark.parametrize(
    ("window_ms", "first", "gap_s", "rest"),
    [
        # Right after the turn ended (the reply came in a pause): "to the beach." is the rest.
        (500, "We could either take the car or ride our bikes,", 1.0, "to the beach."),
        # "Ever tried. Ever failed." ... the reply starts in the pause; "No." comes more than
        # 1.5 s after the voice ended but soon after the reply started: not a backchannel.
        (1_000, "Ever tried. Ever failed.", 1.8, "No."),
    ],
    ids=["soon_after_the_turn_ended", "soon_after_the_reply_began_in_the_users_pause"],
)
async def test_a_short_phrase_right_after_a_premature_reply_is_the_user_going_on(
    make_input: Callable[..., tuple[TurnInput, Recorder]],
    window_ms: int,
    first: str,
    gap_s: float,
    rest: str,
) -> None:
    recorder = _RepliesAtTurnEnd()
    turn_input, _ = make_input(ServerVad(silence_duration_ms=window_ms), recorder)
    recorder.replies_to = turn_input
    said = synthesize(first, 16_000)
    going_on = synthesize(rest, 16_000)  # shorter than a barge-in needs

    await stream(turn_input, np.concatenate([silence(0.3, 16_000), said, silence(gap_s, 16_000),
                                             going_on, silence(1.5, 16_000)]))  # fmt: skip

    kinds = [type(e) for e in recorder.events if not type(e).__name__.startswith("TurnChunk")]
    assert ReplyPaused not in kinds and ReplyResumed not in kinds
    assert kinds.count(TurnEnded) == 2
    second = recorder.of(UserSpeechStarted)[1]
    assert isinstance(second, UserSpeechStarted) and second.interrupting


async def test_one_noisy_high_score_does_not_end_the_turn_the_mean_of_two_does_not_reach(
    make_input: Callable[..., tuple[TurnInput, Recorder]],
) -> None:
    timing = end_of_turn_timing(SemanticVad(eagerness="auto"))
    assert timing.average_scores == 2 and timing.completion_threshold is not None
    high, low = 0.95, 2 * timing.completion_threshold - 0.95 - 0.05  # mean just under
    answers = iter([high, low])
    scorer = ScriptedScorer(lambda seconds: next(answers))
    turn_input, recorder = make_input(SemanticVad(eagerness="auto"), scorer=scorer)
    speech = synthesize("What time does the museum open tomorrow?", 16_000)

    await stream(turn_input, np.concatenate([silence(0.3, 16_000), speech, silence(1.5, 16_000)]))

    (ended,) = recorder.of(TurnEnded)
    assert isinstance(ended, TurnEnded) and ended.reason == "max_silence"
    # Asked at each scoring point of the one pause, each time with more trailing silence.
    assert len(scorer.calls) == len(timing.score_at_ms)
    assert scorer.calls[1] - scorer.calls[0] >= 0.09


async def test_semantic_vad_ends_the_turn_when_the_mean_of_the_scores_reaches_the_threshold(
    make_input: Callable[..., tuple[TurnInput, Recorder]],
) -> None:
    timing = end_of_turn_timing(SemanticVad(eagerness="auto"))
    assert timing.completion_threshold is not None
    scorer = ScriptedScorer(lambda seconds: timing.completion_threshold + 0.05)  # type: ignore[operator]
    turn_input, recorder = make_input(SemanticVad(eagerness="auto"), scorer=scorer)
    speech = synthesize("What time does the museum open tomorrow?", 16_000)

    await stream(turn_input, np.concatenate([silence(0.3, 16_000), speech, silence(1.5, 16_000)]))

    (ended,) = recorder.of(TurnEnded)
    assert isinstance(ended, TurnEnded) and ended.reason == "semantic"
    assert len(scorer.calls) == timing.average_scores
    last_point = timing.score_at_ms[timing.average_scores - 1]
    assert last_point <= ended.silence_ms < timing.max_silence_ms


async def test_the_turn_committed_at_a_pause_is_the_one_previewed_however_long_the_wait(
    make_input: Callable[..., tuple[TurnInput, Recorder]],
) -> None:
    # A long turn ended by a long silence window: the chunker must not close another chunk
    # in the trailing silence after the candidate point, or the speculative reply (made for
    # the previewed item) would be thrown away.
    turn_input, recorder = make_input(ServerVad(silence_duration_ms=1_500))
    speech = synthesize(
        "I would like to book a table for four people on Saturday evening at eight", 16_000
    )

    await stream(turn_input, np.concatenate([silence(0.3, 16_000), speech, silence(2.0, 16_000)]))

    (may_end,) = recorder.of(TurnMayEnd)
    (ended,) = recorder.of(TurnEnded)
    assert isinstance(may_end, TurnMayEnd) and isinstance(ended, TurnEnded)
    assert len(ended.item.chunks) >= 2  # listen while thinking did cut the turn
    assert [len(c) for c in may_end.item.chunks] == [len(c) for c in ended.item.chunks]
    assert all(
        np.array_equal(a, b) for a, b in zip(may_end.item.chunks, ended.item.chunks, strict=True)
    )


async def test_a_turn_going_on_after_a_premature_end_is_scored_with_the_earlier_audio(
    make_input: Callable[..., tuple[TurnInput, Recorder]],
) -> None:
    # The first clause ends the turn too early (the model says complete); the user goes on
    # at once. Smart Turn must hear the second clause after the first, not alone.
    scorer = ScriptedScorer(lambda seconds: 0.99)
    recorder = _RepliesAtTurnEnd()
    turn_input, _ = make_input(SemanticVad(eagerness="high"), recorder, scorer=scorer)
    recorder.replies_to = turn_input
    first = synthesize("I was thinking that maybe", 16_000)
    second = synthesize("we could go to the park.", 16_000)

    await stream(turn_input, np.concatenate([silence(0.3, 16_000), first, silence(1.2, 16_000),
                                             second, silence(1.5, 16_000)]))  # fmt: skip

    ended = recorder.of(TurnEnded)
    assert len(ended) == 2
    second_turn = ended[1]
    assert isinstance(second_turn, TurnEnded)
    own_seconds = sum(len(c) for c in second_turn.item.chunks) / 16_000
    first_seconds = len(first) / 16_000
    # The scores of the second turn covered its own audio and the first clause before it.
    assert scorer.calls[-1] >= own_seconds + first_seconds - 0.2


async def test_the_scores_of_one_pause_are_asked_without_waiting_for_each_other(
    make_input: Callable[..., tuple[TurnInput, Recorder]],
) -> None:
    class SlowScorer:
        """Takes 400 ms of wall time per score: longer than the gap between two points."""

        def __init__(self) -> None:
            self.running = 0
            self.most_at_once = 0

        async def score(self, pcm16k: np.ndarray) -> float:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            await asyncio.sleep(0.4)
            self.running -= 1
            return 0.99

    scorer = SlowScorer()
    turn_input, recorder = make_input(SemanticVad(eagerness="auto"), scorer=scorer)
    speech = synthesize("What time does the museum open tomorrow?", 16_000)

    await stream(turn_input, np.concatenate([silence(0.3, 16_000), speech, silence(0.6, 16_000)]))
    await until(lambda: bool(recorder.of(TurnEnded)), timeout_s=5.0, poll_s=0.01)

    assert scorer.most_at_once == 2
    (ended,) = recorder.of(TurnEnded)
    assert isinstance(ended, TurnEnded) and ended.reason == "semantic"
