"""ResponseManager on its own: a scripted engine, a segment-per-delta TTS, a real conversation
log and outbox, and the typed events that leave the outbox as the specification."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from realtime import events as ev
from realtime.conversation import UserAudioItem
from realtime.engines.base import (
    AnswerDelta,
    EngineError,
    EngineEvent,
    EngineUsage,
    ReasoningDelta,
    ToolCall,
)
from realtime.protocol import client_events as ce
from realtime.protocol.session_config import SessionConfig
from realtime.session.conversation_log import ConversationLog
from realtime.session.outbox import AudioFrame, Outbox
from realtime.session.responses import ResponseManager
from realtime.session.services import SessionServices, SessionSettings
from realtime.speaking.after_think import AfterThinkPolicy
from realtime.speaking.base import ReasoningText, ReplyText, SpeakEvent, SpeakingPolicy
from realtime.telemetry.metrics import ServiceMetrics
from realtime.telemetry.timings import TurnTimings
from realtime.turns.vad import VadBatcher
from tests.realtime.session.fakes import (
    PAUSE,
    TTS_RATE,
    ScriptedEngine,
    ScriptedEngineSession,
    SegmentTts,
    Sent,
    drained,
    settle,
    until,
)

TEXT = ce.ResponseParams(output_modalities=["text"])
WEATHER_TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}


@dataclass
class Rig:
    manager: ResponseManager
    engine: ScriptedEngineSession
    conversation: ConversationLog
    sent: Sent
    active_changes: list[tuple[bool, bool]]

    def ended(self) -> list[ev.ReplyEnded]:
        return self.sent.of(ev.ReplyEnded)


@contextlib.asynccontextmanager
async def rig(
    script: Sequence[EngineEvent | str], config: SessionConfig | None = None,
    failure: Exception | None = None, policy: SpeakingPolicy | None = None,
) -> AsyncIterator[Rig]:  # fmt: skip
    engine = ScriptedEngine(session=ScriptedEngineSession(script, failure=failure))  # type: ignore[arg-type]
    settings = SessionSettings()
    services = SessionServices(
        engine=engine,
        tts=SegmentTts(),
        vad=cast(VadBatcher, None),  # the input side is not part of a response
        policies={settings.default_policy: policy or AfterThinkPolicy()},
        metrics=ServiceMetrics("scripted", simulated=False),
        settings=settings,
    )
    outbox = Outbox(TTS_RATE, lead_ms=60_000)
    conversation = ConversationLog(outbox)
    changes: list[tuple[bool, bool]] = []
    failures: list[str] = []

    def watch(task: asyncio.Task[Any], where: str) -> None:
        task.add_done_callback(
            lambda done: (
                failures.append(where) if not done.cancelled() and done.exception() else None
            )
        )

    manager = ResponseManager(
        services,
        outbox,
        conversation,
        engine.session,
        lambda: config or SessionConfig(),
        watch=watch,
        on_active_changed=lambda active, completed: changes.append((active, completed)),
    )
    async with drained(outbox) as sent:
        try:
            yield Rig(manager, engine.session, conversation, sent, changes)
        finally:
            await manager.aclose()
    assert failures == []


def runs(kinds: list[str]) -> list[str]:
    """``kinds`` with each run of one kind (a reply's deltas) as one."""
    return [kind for index, kind in enumerate(kinds) if index == 0 or kinds[index - 1] != kind]


def turn() -> UserAudioItem:
    return UserAudioItem("item_user", [np.full(1600, 300, np.int16)])


async def test_a_written_reply_opens_its_message_streams_and_ends_completed_with_usage() -> None:
    script = [
        AnswerDelta("Hi "),
        AnswerDelta("there."),
        EngineUsage(40, 3, cached_prompt_tokens=32),
    ]
    async with rig(script) as r:
        r.manager.create(TEXT, TurnTimings(), event_id=None)
        await until(lambda: bool(r.ended()))

    assert runs(r.sent.kinds()) == [
        "ReplyCreated", "ItemAdded", "OutputItemAdded", "ContentPartAdded", "TextDelta",
        "TextDone", "ContentPartDone", "OutputItemDone", "ItemDone", "ReplyEnded",
    ]  # fmt: skip
    created = r.sent.of(ev.ReplyCreated)[0].reply
    reply = r.ended()[0].reply
    assert (created.status, created.turn, created.speaks) == ("in_progress", None, False)
    assert reply.id == created.id and reply.status == "completed"
    assert reply.usage == ev.Usage(input_tokens=40, output_tokens=3, cached_tokens=32)
    assert reply.turn is not None and reply.turn.engine == "scripted"
    assert "response_done" in reply.turn.timings["stages_ms"]
    [message] = reply.output
    assert message == ev.reply_message(
        message.id, speaks=False, text="Hi there.", status="completed"
    )
    assert reply.conversation_id == r.conversation.id
    assert r.manager.active is None and r.active_changes == [(True, False), (False, True)]


async def test_a_cancelled_reply_ends_cancelled_and_nothing_of_it_follows() -> None:
    script = [AnswerDelta("One. "), PAUSE, AnswerDelta("Two. "), AnswerDelta("Three.")]
    async with rig(script) as r:
        r.manager.create(None, TurnTimings(), event_id=None)
        await until(lambda: bool(r.sent.of(AudioFrame)))

        r.manager.cancel("turn_detected")
        r.engine.go.set()
        await settle()

    kinds = r.sent.kinds()
    end = kinds.index("ReplyEnded")
    assert not {"AudioTranscriptDelta", "AudioFrame", "AudioDone"} & set(kinds[end:])
    reply = r.ended()[0].reply
    assert reply.status == "cancelled"
    assert reply.status_details == ev.StatusDetails("cancelled", "turn_detected")
    [message] = reply.output
    assert isinstance(message, ev.Message) and message.status == "incomplete"
    assert r.sent.of(ev.OutputItemDone)[0].item == message
    assert "Two" not in (message.content[0].transcript or "")
    assert r.manager.active is None and r.active_changes[-1] == (False, False)


async def test_a_speculative_reply_is_held_then_released_from_its_start() -> None:
    async with rig([ReasoningDelta("A greeting."), AnswerDelta("Sure.")]) as r:
        r.manager.create(TEXT, TurnTimings(), event_id=None, speculative_turn=turn())
        speculative = r.manager.speculative
        assert speculative is not None and speculative.task is not None
        await asyncio.wait_for(asyncio.shield(speculative.task), 5.0)
        await settle()
        assert r.sent.items == [] and r.active_changes == []

        r.manager.release_speculative(TurnTimings())
        await until(lambda: bool(r.ended()))

    kinds = r.sent.kinds()
    assert kinds[0] == "ReplyCreated" and kinds[-1] == "ReplyEnded"
    assert kinds.index("ReasoningDelta") > kinds.index("ContentPartAdded")
    assert "".join(delta.delta for delta in r.sent.of(ev.TextDelta)) == "Sure."
    assert r.ended()[0].reply.status == "completed"


async def test_a_discarded_speculative_reply_leaves_no_trace() -> None:
    async with rig([AnswerDelta("Sure. "), PAUSE, AnswerDelta("More.")]) as r:
        r.manager.create(None, TurnTimings(), event_id=None, speculative_turn=turn())
        await until(lambda: len(r.engine.requests) == 1)
        task = r.manager.active.task if r.manager.active is not None else None

        r.manager.discard_speculative()
        r.engine.go.set()
        await settle()

        assert task is not None and task.cancelled()
        assert r.manager.active is None
    assert r.sent.items == [] and r.active_changes == []


async def test_a_function_call_streams_its_arguments_and_ends_the_reply_without_a_message() -> None:
    config = SessionConfig.model_validate({"tools": [WEATHER_TOOL]})
    arguments = '{"city": "Paris"}'
    async with rig([ToolCall("get_weather", arguments)], config) as r:
        r.manager.create(TEXT, TurnTimings(), event_id=None)
        await until(lambda: bool(r.ended()))

    assert r.sent.kinds() == [
        "ReplyCreated", "OutputItemAdded", "ItemAdded", "FunctionCallArgumentsDelta",
        "FunctionCallArgumentsDone", "OutputItemDone", "ItemDone", "ReplyEnded",
    ]  # fmt: skip
    [delta] = r.sent.of(ev.FunctionCallArgumentsDelta)
    [done] = r.sent.of(ev.FunctionCallArgumentsDone)
    [call] = r.ended()[0].reply.output
    assert isinstance(call, ev.FunctionCall)
    assert (call.name, call.arguments, call.status) == ("get_weather", arguments, "completed")
    assert (delta.call_id, delta.item_id, delta.delta) == (call.call_id, call.id, arguments)
    assert (done.call_id, done.name, done.arguments) == (call.call_id, "get_weather", arguments)
    opened = r.sent.of(ev.OutputItemAdded)[0].item
    assert opened == ev.FunctionCall(call.id, call.call_id, "get_weather", "", "in_progress")
    assert r.conversation.function_call(call.call_id) is not None


async def test_an_engine_failure_is_reported_and_the_reply_ends_cancelled_with_its_code() -> None:
    async with rig([AnswerDelta("Half")], failure=EngineError("replica lost")) as r:
        r.manager.create(TEXT, TurnTimings(), event_id=None)
        await until(lambda: bool(r.ended()))

    [error] = r.sent.of(ev.ErrorReported)
    assert (error.type, error.code, error.message) == ("server_error", "engine_error",
                                                       "replica lost")  # fmt: skip
    details = r.ended()[0].reply.status_details
    assert details == ev.StatusDetails("cancelled", None, "engine_error")
    assert r.manager.active is None


class SpeakFirstScript:
    """A policy that says a few words before its reasoning, then the answer."""

    name = "scripted-speak-first"

    async def run(self, *args: object, **kwargs: object) -> AsyncGenerator[SpeakEvent, None]:
        yield ReplyText("Let me see. ", "commentary")
        yield ReasoningText("Six times seven.")
        yield ReplyText("It is forty two.", "final_answer")


async def test_words_said_before_the_reasoning_is_over_are_marked_as_commentary() -> None:
    async with rig([], policy=cast(SpeakingPolicy, SpeakFirstScript())) as r:
        r.manager.create(TEXT, TurnTimings(), event_id=None)
        await until(lambda: bool(r.ended()))

    [message] = r.ended()[0].reply.output
    assert isinstance(message, ev.Message)
    assert message.phases == (
        ev.Phase("commentary", "Let me see."), ev.Phase("final_answer", "It is forty two.")
    )  # fmt: skip
    assert r.sent.of(ev.ItemDone)[0].item == message
    assert r.sent.of(ev.OutputItemAdded)[0].item.phases == ()  # nothing said yet
