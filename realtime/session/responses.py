"""A session's responses: create one, run it, and end it completed or cancelled.

At most one response is active. It stays active until its end (``ReplyEnded``) has left the
outbox (after its last audio frame), so a barge-in can cut it for as long as it plays.
Cancelling is immediate: the outbox drops its queued and future audio, its task is
cancelled, and its history item keeps only the words whose audio was sent.

A *speculative* response starts at a candidate end of the user's turn, before the turn is
final: it runs with the turn's audio as it would be committed, but the outbox holds all of
it. ``release_speculative`` sends it once the turn is confirmed (as if it had been created
then); ``discard_speculative`` drops it without a single event if the user goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from realtime import events as ev
from realtime.conversation import AssistantItem, FunctionCallItem, UserAudioItem
from realtime.engines.base import EngineSession, InputTranscription, ToolCall, ToolChoice, ToolSpec
from realtime.protocol import client_events as ce
from realtime.protocol.errors import ProtocolError
from realtime.protocol.session_config import (
    FunctionChoice,
    FunctionTool,
    SessionConfig,
    ToolChoiceSetting,
    check_tool_choice,
)
from realtime.session.conversation_log import ConversationLog
from realtime.session.outbox import Outbox
from realtime.session.responder import Responder, ResponseOutcome, ResponsePlan
from realtime.session.services import SessionServices
from realtime.speaking.base import SpeakingParams
from realtime.telemetry.timings import TurnTimings
from realtime.telemetry.tracing import SessionTrace, TurnRecord

log = logging.getLogger(__name__)

CancelReason = Literal["turn_detected", "client_cancelled"]


@dataclass
class ActiveResponse:
    plan: ResponsePlan
    responder: Responder
    timings: TurnTimings
    policy: str
    metadata: dict[str, str] | None
    task: asyncio.Task[None] | None = None
    speech_started_at: float | None = None
    speculative_turn: UserAudioItem | None = None
    """Set while the response is speculative: the user turn it answers, not yet committed."""
    held_transcriptions: list[InputTranscription] = field(default_factory=list)
    in_conversation: bool = True
    """False for an out-of-band response (``conversation: "none"``): no history, no
    conversation item events."""
    message_announced: bool = False


class ResponseManager:
    def __init__(
        self,
        services: SessionServices,
        outbox: Outbox,
        conversation: ConversationLog,
        engine: EngineSession,
        config: Callable[[], SessionConfig],
        watch: Callable[[asyncio.Task[Any], str], None],
        on_active_changed: Callable[[bool, bool], None] = lambda active, completed: None,
        trace: SessionTrace | None = None,
    ) -> None:
        """``watch(task, where)`` reports a response task that dies of an exception; each
        finished turn goes to ``trace`` (OpenTelemetry spans)."""
        self._services = services
        self._settings = services.settings
        self._outbox = outbox
        self._conversation = conversation
        self._engine = engine
        self._config = config
        self.active: ActiveResponse | None = None
        self._sent_audio_ms: dict[str, float] = {}
        self._watch = watch
        self._trace = trace
        self._on_active_changed = on_active_changed
        """Called with (True, False) when a response goes on the wire, and with (False,
        completed) when it ends."""

    def sent_audio_ms(self, item_id: str) -> float:
        """How much of ``item_id``'s reply audio its text stands for: all that was sent, or
        what was heard if the response was cut (its text was cut to match)."""
        return self._sent_audio_ms.get(item_id, 0.0)

    # -- creating --------------------------------------------------------------------------

    def create(
        self,
        params: ce.ResponseParams | None,
        timings: TurnTimings,
        *,
        event_id: str | None,
        speculative_turn: UserAudioItem | None = None,
    ) -> None:
        """Start a response. With ``speculative_turn`` (the user's turn as it would be
        committed), it runs held back until ``release_speculative``. A new response always
        supersedes a speculative one, which is dropped unseen."""
        self.discard_speculative()
        if self.active is not None:
            raise ProtocolError(
                "conversation_already_has_active_response",
                f"response {self.active.plan.response_id} is still in progress; "
                "cancel it or wait for response.done",
                None,
                event_id,
            )
        params = params or ce.ResponseParams()
        config = self._config()
        modalities = params.output_modalities or config.output_modalities
        if len(modalities) != 1:
            raise ProtocolError(
                "invalid_value", "output_modalities must be ['audio'] or ['text']",
                "response.output_modalities", event_id,
            )  # fmt: skip
        policy_name = config.speaking.policy or self._settings.default_policy
        policy = self._services.policies.get(policy_name)
        if policy is None:
            raise ProtocolError(
                "invalid_value",
                f"speaking policy '{policy_name}' is not available on this server "
                f"(available: {', '.join(sorted(self._services.policies))})",
                "session.speaking.policy",
                event_id,
            )
        plan = self._plan(
            params,
            config,
            speaks=modalities == ["audio"],
            extra_item=speculative_turn,
            event_id=event_id,
        )
        timings.mark("response_created")
        if speculative_turn is not None:
            self._outbox.hold(plan.response_id)
        rid = plan.response_id
        responder = Responder(
            plan,
            engine=self._engine,
            policy=policy,
            tts=self._services.tts,
            outbox=self._outbox,
            timings=timings,
            on_transcription=lambda transcription: self._on_transcription(rid, transcription),
            open_message=lambda: self._open_message(active),
        )
        active = ActiveResponse(plan, responder, timings, policy.name, params.metadata)
        active.speculative_turn = speculative_turn
        active.in_conversation = params.conversation != "none"
        self.active = active
        if speculative_turn is None:
            self._announce(active)
        active.task = asyncio.create_task(self._run(active), name=rid)
        self._watch(active.task, "running a response")

    def _announce(self, active: ActiveResponse) -> None:
        """The response goes onto the wire (its message item follows with its content)."""
        self._outbox.send_now(ev.ReplyCreated(self._reply(active, "in_progress")))
        self._on_active_changed(True, False)
        if active.responder.has_message:  # it had content while speculative
            self._open_message(active)

    def _open_message(self, active: ActiveResponse) -> None:
        """The reply's message item goes into the history and its opening events onto the
        wire, just before its first text or speech. Never for a reply that is only function
        calls, which has no message, as OpenAI's has none."""
        if active.message_announced or active.speculative_turn is not None:
            return  # a speculative response's message is opened when it is released
        active.message_announced = True
        plan = active.plan
        rid, item_id = plan.response_id, plan.item.id
        message = _message(active, "in_progress", "")
        if active.in_conversation:
            previous = self._conversation.append_reply(plan.item)
            self._outbox.send_now(ev.ItemAdded(message, previous))
        self._outbox.send_now(ev.OutputItemAdded(rid, message))
        self._outbox.send_now(ev.ContentPartAdded(rid, item_id, message.content[0]))

    def _on_transcription(self, response_id: str, transcription: InputTranscription) -> None:
        active = self.active
        if (
            active is not None
            and active.plan.response_id == response_id
            and (active.speculative_turn is not None)
        ):
            active.held_transcriptions.append(transcription)
        else:
            self._conversation.add_transcription(transcription)

    @property
    def speculative(self) -> ActiveResponse | None:
        active = self.active
        return active if active is not None and active.speculative_turn is not None else None

    def release_speculative(self, timings: TurnTimings) -> None:
        """The turn it answers is committed: send the speculative response, from its start.

        Its opening events go out first, then everything it produced meanwhile, in order.
        ``timings`` carries the turn's end marks; the response's own marks are kept.
        """
        active = self.speculative
        assert active is not None
        active.speculative_turn = None
        own = active.timings
        own.marks["speculative_start"] = own.marks.pop("response_created")
        for stage, at in timings.marks.items():
            own.mark(stage, at)
        own.silence_window_ms = timings.silence_window_ms
        own.speech_end_audio_ms = timings.speech_end_audio_ms
        own.mark("response_created")
        self._announce(active)
        self._outbox.release(active.plan.response_id)
        for transcription in active.held_transcriptions:
            self._conversation.add_transcription(transcription)
        active.held_transcriptions.clear()
        self._services.metrics.speculative_responses_total.labels(outcome="released").inc()

    def discard_speculative(self) -> None:
        """The user went on: drop the speculative response; the client never hears of it."""
        active = self.speculative
        if active is None:
            return
        self.active = None
        self._outbox.cancel(active.plan.response_id)
        self._outbox.forget(active.plan.response_id)
        if active.task is not None:
            active.task.cancel()
        self._services.metrics.speculative_responses_total.labels(outcome="discarded").inc()

    def pause(self) -> None:
        """Hold the active reply's audio where it is (speech over it, not yet judged)."""
        if self.active is not None:
            self._outbox.pause(self.active.plan.response_id)

    def resume(self) -> None:
        if self.active is not None:
            self._outbox.resume(self.active.plan.response_id)

    def _plan(
        self,
        params: ce.ResponseParams,
        config: SessionConfig,
        *,
        speaks: bool,
        extra_item: UserAudioItem | None = None,
        event_id: str | None = None,
    ) -> ResponsePlan:
        settings = self._settings
        max_output = params.max_output_tokens or config.max_output_tokens
        effort = (params.reasoning.effort if params.reasoning else None) or config.reasoning.effort
        budget = (
            settings.default_reasoning_budget
            if effort is None
            else settings.reasoning_budgets.get(effort)
        )
        tools, tool_choice = self._tools(params, config)
        context = None
        if params.input is not None:
            context = self._conversation.input_context(
                params.input, config.audio.input.format, event_id
            )
        request = self._conversation.engine_request(
            config.instructions if params.instructions is None else params.instructions,
            extra=extra_item,
            max_tokens=None if max_output == "inf" else int(max_output),
            reasoning_budget=budget,
            tools=tools,
            tool_choice=tool_choice,
            context=context,
        )
        max_buffered_ms = float(
            config.speaking.max_buffered_audio_ms or settings.max_buffered_reply_ms
        )
        speaking = SpeakingParams(
            formulation_tokens=config.speaking.formulation_tokens or settings.formulation_tokens,
            articulation_tokens=config.speaking.articulation_tokens or settings.articulation_tokens,
            max_buffered_audio_ms=max_buffered_ms,
            first_formulation_tokens=settings.first_formulation_tokens,
        )
        return ResponsePlan(
            response_id=ev.new_id("resp"),
            item=AssistantItem(ev.new_id("item")),
            request=request,
            speaks=speaks,
            output_rate=config.output_rate,
            output_format=config.audio.output.format,
            frame_ms=settings.frame_ms,
            max_buffered_ms=max_buffered_ms,
            voice=config.audio.output.voice,
            speed=config.audio.output.speed,
            speaking=speaking,
            parallel_tool_calls=(
                config.parallel_tool_calls
                if params.parallel_tool_calls is None
                else params.parallel_tool_calls
            ),
        )

    def _tools(
        self, params: ce.ResponseParams, config: SessionConfig
    ) -> tuple[tuple[ToolSpec, ...], ToolChoice]:
        """The response's tools and tool choice: its own, else the session's."""
        tools = config.tools if params.tools is None else params.tools
        choice = params.tool_choice or config.tool_choice
        try:
            check_tool_choice(tools, choice)
        except ValueError as exc:
            raise ProtocolError("invalid_value", str(exc), "response.tool_choice") from None
        if not self._services.engine.capabilities.tools:
            if choice == "required" or isinstance(choice, FunctionChoice):
                raise ProtocolError(
                    "invalid_value",
                    f"the {self._services.engine.info.name} engine cannot call tools, so "
                    "tool_choice cannot require a call",
                    "response.tool_choice",
                )
            return (), ToolChoice()
        return tuple(_tool_spec(tool) for tool in tools), _tool_choice(choice)

    # -- running and ending ------------------------------------------------------------------

    async def _run(self, active: ActiveResponse) -> None:
        try:
            outcome = await active.responder.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("response %s crashed", active.plan.response_id)
            outcome = ResponseOutcome("failed", "internal_error", f"internal error: {exc}")
        try:
            self._conclude(active, outcome)
        except Exception:
            self._abandon(active)
            raise  # for the watcher to report

    def _conclude(self, active: ActiveResponse, outcome: ResponseOutcome) -> None:
        if self.active is not active:
            return
        if outcome.status == "failed" and active.speculative_turn is not None:
            log.info("speculative response failed (%s); the confirmed turn starts afresh",
                     outcome.error_message)  # fmt: skip
            self.discard_speculative()
            return
        if outcome.status == "failed":
            code = outcome.error_code or "error"
            self._services.metrics.errors_total.labels(code=code).inc()
            self._outbox.send_now(ev.ErrorReported.server(code, outcome.error_message or "failed"))
            self.cancel(None, error_code=outcome.error_code)
            return
        self._finish(active)

    def _abandon(self, active: ActiveResponse) -> None:
        """A response that could not be ended properly is cancelled (the client still gets
        its end), and in any case stops being active, so that the session can
        make new ones."""
        if self.active is not active:
            return
        try:
            self.cancel(None, error_code="internal_error")
        except Exception:
            log.exception("response %s could not be cancelled either", active.plan.response_id)
            self._outbox.cancel(active.plan.response_id)
            if self.active is active or self.active is None:
                self.active = None
                self._on_active_changed(False, False)

    def _finish(self, active: ActiveResponse) -> None:
        """The reply is fully produced: queue its closing events behind its audio."""
        plan = active.plan
        item = plan.item
        item.text = active.responder.reply_text()
        item.reasoning = active.responder.reasoning
        item.commentary_words = active.responder.commentary_words
        item.status = "completed"
        rid = plan.response_id
        output: list[ev.Item] = []
        if active.responder.has_message:
            message = _message(active, "completed", item.text)
            self._outbox.enqueue(rid, ev.ContentPartDone(rid, item.id, message.content[0]))
            self._outbox.enqueue(rid, ev.OutputItemDone(rid, message))
            if active.in_conversation:
                previous = self._conversation.item_before(item.id)
                self._outbox.enqueue(rid, ev.ItemDone(message, previous))
            output.append(message)
        for call in active.responder.calls:
            output.append(self._hand_over_call(rid, call, len(output), active.in_conversation))

        def reply_ended() -> ev.ServerEvent:
            if self.active is active:
                self.active = None
            active.timings.mark("response_done")
            self._observe(active, "completed")
            self._on_active_changed(False, True)
            return ev.ReplyEnded(self._reply(active, "completed", tuple(output)))

        self._outbox.enqueue_built_on_send(rid, reply_ended)

    def _hand_over_call(
        self, rid: str, call: ToolCall, output_index: int, in_conversation: bool
    ) -> ev.FunctionCall:
        """A function call the model made: into the history (unless the response is out of
        band), and to the client (queued behind the reply before it). Returns it as done."""
        item = FunctionCallItem(ev.new_id("item"), ev.new_id("call"), call.name, call.arguments)
        opened = ev.FunctionCall(item.id, item.call_id, item.name, "", "in_progress")
        done = ev.FunctionCall(item.id, item.call_id, item.name, item.arguments)
        events: list[ev.ServerEvent] = [
            ev.OutputItemAdded(rid, opened, output_index),
            ev.FunctionCallArgumentsDelta(rid, item.id, output_index, item.call_id,
                                          item.arguments),
            ev.FunctionCallArgumentsDone(rid, item.id, output_index, item.call_id, item.name,
                                         item.arguments),
            ev.OutputItemDone(rid, done, output_index),
        ]  # fmt: skip
        if in_conversation:
            previous = self._conversation.append_reply(item)
            events.insert(1, ev.ItemAdded(opened, previous))
            events.append(ev.ItemDone(done, previous))
        for event in events:
            self._outbox.enqueue(rid, event)
        return done

    def cancel(self, reason: CancelReason | None, *, error_code: str | None = None) -> None:
        """Stop the active response now (a no-op when there is none)."""
        active = self.active
        if active is None:
            return
        if active.speculative_turn is not None:
            self.discard_speculative()
            return
        self.active = None
        plan = active.plan
        delivery = self._outbox.cancel(plan.response_id)
        if active.task is not None:
            active.task.cancel()
        item = plan.item
        item.text = active.responder.heard_text()
        item.reasoning = active.responder.reasoning
        item.commentary_words = active.responder.commentary_words
        item.status = "incomplete"
        if reason == "turn_detected":
            metrics = self._services.metrics
            metrics.barge_ins_total.inc()
            if active.speech_started_at is not None:
                last = delivery.last_audio_sent_at or active.speech_started_at
                metrics.barge_in_stop_seconds.observe(max(0.0, last - active.speech_started_at))
        active.timings.mark("response_done")
        self._observe(active, "cancelled")
        details = ev.StatusDetails("cancelled", reason, error_code)
        output: tuple[ev.Item, ...] = ()
        if active.message_announced:
            message = _message(active, "incomplete", item.text)
            self._outbox.send_now(ev.OutputItemDone(plan.response_id, message))
            if active.in_conversation:
                previous = self._conversation.item_before(item.id)
                self._outbox.send_now(ev.ItemDone(message, previous))
            output = (message,)
        self._outbox.send_now(
            ev.ReplyEnded(self._reply(active, "cancelled", output, status_details=details))
        )
        self._on_active_changed(False, False)

    async def aclose(self) -> None:
        active, self.active = self.active, None
        if active is not None:
            self._outbox.cancel(active.plan.response_id)
            if active.task is not None:
                active.task.cancel()
                await asyncio.gather(active.task, return_exceptions=True)

    # -- reporting ---------------------------------------------------------------------------

    def _observe(self, active: ActiveResponse, status: str) -> None:
        delivery = self._outbox.delivery(active.plan.response_id)
        if delivery.first_audio_sent_at is not None:
            active.timings.mark("first_audio_sent", delivery.first_audio_sent_at)
        metrics = self._services.metrics
        metrics.responses_total.labels(status=status).inc()
        metrics.engine_retries_total.inc(active.timings.engine_retries)
        metrics.observe_turn(active.timings)
        if self._trace is not None:
            self._trace.turn(self._turn_record(active, status))
        heard = delivery.heard_ms if status == "cancelled" else delivery.sent_ms
        self._sent_audio_ms[active.plan.item.id] = heard
        self._outbox.forget(active.plan.response_id)

    def _turn_record(self, active: ActiveResponse, status: str) -> TurnRecord:
        timings = active.timings
        report = timings.report()
        info = self._services.engine.info
        return TurnRecord(
            response_id=active.plan.response_id,
            status=status,
            origin=report["origin"],
            marks=dict(timings.marks),
            stages_ms=report["stages_ms"],
            silence_window_ms=timings.silence_window_ms,
            attributes={
                "engine": info.name,
                "engine.model": info.model,
                "engine.simulated": info.simulated,
                "engine.retries": timings.engine_retries,
                "speaking.policy": active.policy,
            },
        )

    def _reply(
        self,
        active: ActiveResponse,
        status: ev.ReplyStatus,
        output: tuple[ev.Item, ...] = (),
        status_details: ev.StatusDetails | None = None,
    ) -> ev.Reply:
        plan = active.plan
        info = self._services.engine.info
        usage = active.responder.usage
        turn = None
        if status != "in_progress":
            report = active.timings.report()
            turn = ev.TurnReport(info.name, info.model, info.simulated, active.policy, report)
        return ev.Reply(
            id=plan.response_id,
            status=status,
            speaks=plan.speaks,
            output_format=plan.output_format,
            voice=plan.voice,
            conversation_id=self._conversation.id if active.in_conversation else None,
            max_output_tokens=plan.request.max_tokens,
            metadata=active.metadata,
            output=output,
            status_details=status_details,
            usage=None
            if usage is None
            else ev.Usage(usage.prompt_tokens, usage.completion_tokens, usage.cached_prompt_tokens),
            turn=turn,
        )


def _tool_spec(tool: FunctionTool) -> ToolSpec:
    return ToolSpec(tool.name, tool.description, dict(tool.parameters))


def _tool_choice(choice: ToolChoiceSetting) -> ToolChoice:
    if isinstance(choice, FunctionChoice):
        return ToolChoice("function", choice.name)
    return ToolChoice(choice)


def _message(active: ActiveResponse, status: ev.ItemStatus, text: str) -> ev.Message:
    item = active.plan.item
    return ev.reply_message(item.id, speaks=active.plan.speaks, text=text, status=status,
                            commentary_words=item.commentary_words)  # fmt: skip
