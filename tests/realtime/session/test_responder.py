"""The Responder on its own: a scripted engine, a segment-per-delta TTS and a real outbox whose
output is recorded; the typed events it emits are the specification."""

from __future__ import annotations

from realtime import events as ev
from realtime.conversation import AssistantItem, Conversation
from realtime.engines.base import (
    AnswerDelta,
    EngineError,
    EngineRequest,
    EngineUsage,
    ReasoningDelta,
    ToolCall,
    ToolSpec,
)
from realtime.session.outbox import AudioFrame, Outbox
from realtime.session.responder import Responder, ResponsePlan
from realtime.speaking.after_think import AfterThinkPolicy
from realtime.telemetry.timings import TurnTimings
from tests.realtime.session.fakes import (
    SEGMENT_MS,
    TTS_RATE,
    ScriptedEngineSession,
    SegmentTts,
    drained,
    until,
)

RID, ITEM = "resp_1", "item_1"


def plan(*, speaks: bool, tools: tuple[ToolSpec, ...] = ()) -> ResponsePlan:
    request = EngineRequest(Conversation("be brief", ()), tools=tools)
    return ResponsePlan(
        response_id=RID,
        item=AssistantItem(ITEM),
        request=request,
        speaks=speaks,
        output_rate=TTS_RATE,
        frame_ms=20,
        max_buffered_ms=10_000,
    )


def responder(
    engine: ScriptedEngineSession, outbox: Outbox, *, speaks: bool, tts: SegmentTts | None = None,
    tools: tuple[ToolSpec, ...] = (),
) -> tuple[Responder, list[str]]:  # fmt: skip
    opened: list[str] = []
    made = Responder(
        plan(speaks=speaks, tools=tools),
        engine=engine,
        policy=AfterThinkPolicy(),
        tts=tts or SegmentTts(),
        outbox=outbox,
        timings=TurnTimings(),
        on_transcription=lambda transcription: None,
        open_message=lambda: opened.append("opened"),
    )
    return made, opened


async def test_a_written_reply_streams_text_deltas_then_its_full_text() -> None:
    engine = ScriptedEngineSession(
        [ReasoningDelta("Think"), ReasoningDelta("ing."), AnswerDelta("Hello"),
         AnswerDelta(" there."), EngineUsage(prompt_tokens=12, completion_tokens=5)]
    )  # fmt: skip
    outbox = Outbox(TTS_RATE, lead_ms=60_000)
    async with drained(outbox) as sent:
        reply, opened = responder(engine, outbox, speaks=False)
        outcome = await reply.run()
        await until(lambda: any(isinstance(e, ev.TextDone) for e in sent.events))

    assert outcome.status == "completed"
    assert outcome.usage == EngineUsage(prompt_tokens=12, completion_tokens=5)
    assert opened == ["opened"]
    assert sent.of(ev.ReasoningDelta) == [
        ev.ReasoningDelta(RID, ITEM, "Think"), ev.ReasoningDelta(RID, ITEM, "ing.")
    ]  # fmt: skip
    assert sent.of(ev.ReasoningDone) == [ev.ReasoningDone(RID, ITEM, "Thinking.")]
    assert "".join(delta.delta for delta in sent.of(ev.TextDelta)) == "Hello there."
    assert sent.events[-1] == ev.TextDone(RID, ITEM, "Hello there.")
    assert sent.of(AudioFrame) == []


async def test_a_spoken_reply_sends_each_segments_transcript_before_its_audio() -> None:
    engine = ScriptedEngineSession([AnswerDelta("Hello there. "), AnswerDelta("How are you?")])
    outbox = Outbox(TTS_RATE, lead_ms=60_000)
    async with drained(outbox) as sent:
        reply, _ = responder(engine, outbox, speaks=True)
        await reply.run()
        await until(lambda: any(isinstance(e, ev.AudioTranscriptDone) for e in sent.events))

    kinds = sent.kinds()
    first_delta = kinds.index("AudioTranscriptDelta")
    assert first_delta < kinds.index("AudioFrame")
    assert kinds[-2:] == ["AudioDone", "AudioTranscriptDone"]
    transcript = "".join(delta.delta for delta in sent.of(ev.AudioTranscriptDelta))
    assert transcript == sent.events[-1].transcript == reply.reply_text()
    frames = sent.of(AudioFrame)
    assert sum(len(frame.pcm) for frame in frames) >= 2 * TTS_RATE * SEGMENT_MS // 1000
    assert {frame.response_id for frame in frames} == {RID}


async def test_a_failed_tts_is_reported_and_the_rest_of_the_text_still_arrives() -> None:
    engine = ScriptedEngineSession([AnswerDelta("First part. "), AnswerDelta("Second part.")])
    outbox = Outbox(TTS_RATE, lead_ms=60_000)
    async with drained(outbox) as sent:
        reply, _ = responder(engine, outbox, speaks=True, tts=SegmentTts(fail_after=1))
        outcome = await reply.run()
        await until(lambda: any(isinstance(e, ev.AudioTranscriptDone) for e in sent.events))

    assert outcome.status == "completed"
    [error] = sent.of(ev.ErrorReported)
    assert (error.type, error.code) == ("server_error", "tts_error")
    transcript = "".join(delta.delta for delta in sent.of(ev.AudioTranscriptDelta))
    assert transcript.split() == "First part. Second part.".split()


async def test_an_engine_failure_ends_the_run_failed() -> None:
    engine = ScriptedEngineSession([AnswerDelta("Half")], failure=EngineError("replica lost"))
    outbox = Outbox(TTS_RATE, lead_ms=60_000)
    reply, _ = responder(engine, outbox, speaks=False)

    outcome = await reply.run()

    assert (outcome.status, outcome.error_code) == ("failed", "engine_error")
    assert outcome.error_message == "replica lost"


async def test_a_call_of_a_tool_not_offered_is_refused_with_an_error_and_not_made() -> None:
    weather = ToolSpec("get_weather")
    engine = ScriptedEngineSession(
        [ToolCall("get_weather", '{"city": "Paris"}'), ToolCall("launch", "{}")]
    )
    outbox = Outbox(TTS_RATE, lead_ms=60_000)
    async with drained(outbox) as sent:
        reply, opened = responder(engine, outbox, speaks=False, tools=(weather,))
        await reply.run()
        await until(lambda: bool(sent.of(ev.ErrorReported)))

    assert [call.name for call in reply.calls] == ["get_weather"]
    [error] = sent.of(ev.ErrorReported)
    assert error.code == "invalid_tool_call" and "'launch'" in error.message
    assert opened == [] and not reply.has_message  # only a call: no message
