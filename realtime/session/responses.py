"""A session's responses: create one, run it, and end it completed or cancelled, on the wire.

At most one response is active. It stays active until its ``response.done`` has left the
outbox (after its last audio frame), so a barge-in can cut it for as long as it plays.
Cancelling is immediate: the outbox drops its queued and future audio, its task is
cancelled, and its history item keeps only the words whose audio was sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from realtime.conversation import AssistantItem
from realtime.engines.base import EngineSession
from realtime.protocol import client_events as ce
from realtime.protocol import server_events as ev
from realtime.protocol.errors import ProtocolError
from realtime.protocol.session_config import SessionConfig
from realtime.session.conversation_log import ConversationLog
from realtime.session.outbox import Outbox
from realtime.session.responder import Responder, ResponseOutcome, ResponsePlan
from realtime.session.services import SessionServices
from realtime.session.timings import TurnTimings
from realtime.speaking.base import SpeakingParams

log = logging.getLogger(__name__)

CancelReason = Literal["turn_detected", "client_cancelled"]
ItemStatus = Literal["completed", "incomplete", "in_progress"]


@dataclass
class ActiveResponse:
    plan: ResponsePlan
    responder: Responder
    timings: TurnTimings
    policy: str
    metadata: dict[str, str] | None
    task: asyncio.Task[None] | None = None
    speech_started_at: float | None = None


class ResponseManager:
    def __init__(
        self,
        services: SessionServices,
        outbox: Outbox,
        conversation: ConversationLog,
        engine: EngineSession,
        config: Callable[[], SessionConfig],
    ) -> None:
        self._services = services
        self._settings = services.settings
        self._outbox = outbox
        self._conversation = conversation
        self._engine = engine
        self._config = config
        self.active: ActiveResponse | None = None
        self._sent_audio_ms: dict[str, float] = {}

    def sent_audio_ms(self, item_id: str) -> float:
        """How much reply audio of ``item_id`` left the outbox before its response ended."""
        return self._sent_audio_ms.get(item_id, 0.0)

    # -- creating --------------------------------------------------------------------------

    def create(
        self, params: ce.ResponseParams | None, timings: TurnTimings, *, event_id: str | None
    ) -> None:
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
        plan = self._plan(params, config, speaks=modalities == ["audio"])
        timings.mark("response_created")
        responder = Responder(
            plan,
            engine=self._engine,
            policy=policy,
            tts=self._services.tts,
            outbox=self._outbox,
            timings=timings,
            on_transcription=self._conversation.add_transcription,
        )
        active = ActiveResponse(plan, responder, timings, policy.name, params.metadata)
        self.active = active
        previous = self._conversation.append_reply(plan.item)
        rid, item_id = plan.response_id, plan.item.id
        self._outbox.send_now(ev.response_created(self._response_object(active, "in_progress")))
        wire_item = _wire_item(active, "in_progress", "")
        self._outbox.send_now(ev.item_added(wire_item, previous))
        self._outbox.send_now(ev.output_item_added(rid, wire_item))
        self._outbox.send_now(ev.content_part_added(rid, item_id, _part(active, "")))
        active.task = asyncio.create_task(self._run(active), name=rid)

    def _plan(
        self, params: ce.ResponseParams, config: SessionConfig, *, speaks: bool
    ) -> ResponsePlan:
        settings = self._settings
        max_output = params.max_output_tokens or config.max_output_tokens
        effort = (params.reasoning.effort if params.reasoning else None) or config.reasoning.effort
        budget = (
            settings.default_reasoning_budget
            if effort is None
            else settings.reasoning_budgets.get(effort)
        )
        request = self._conversation.engine_request(
            config.instructions if params.instructions is None else params.instructions,
            max_tokens=None if max_output == "inf" else int(max_output),
            reasoning_budget=budget,
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
            frame_ms=settings.frame_ms,
            max_buffered_ms=max_buffered_ms,
            voice=config.audio.output.voice,
            speed=config.audio.output.speed,
            speaking=speaking,
        )

    # -- running and ending ------------------------------------------------------------------

    async def _run(self, active: ActiveResponse) -> None:
        try:
            outcome = await active.responder.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("response %s crashed", active.plan.response_id)
            outcome = ResponseOutcome("failed", "internal_error", f"internal error: {exc}")
        if self.active is not active:
            return
        if outcome.status == "failed":
            code = outcome.error_code or "error"
            self._services.metrics.errors_total.labels(code=code).inc()
            self._outbox.send_now(ev.server_error(code, outcome.error_message or "failed"))
            self.cancel(None, error_code=outcome.error_code)
            return
        self._finish(active)

    def _finish(self, active: ActiveResponse) -> None:
        """The reply is fully produced: queue its closing events behind its audio."""
        plan = active.plan
        item = plan.item
        item.text = active.responder.reply_text()
        item.reasoning = active.responder.reasoning
        item.status = "completed"
        previous = self._conversation.item_before(item.id)
        rid = plan.response_id
        wire_item = _wire_item(active, "completed", item.text)
        self._outbox.enqueue(rid, ev.content_part_done(rid, item.id, _part(active, item.text)))
        self._outbox.enqueue(rid, ev.output_item_done(rid, wire_item))
        self._outbox.enqueue(rid, ev.item_done(wire_item, previous))

        def response_done() -> dict[str, Any]:
            if self.active is active:
                self.active = None
            active.timings.mark("response_done")
            self._observe(active, "completed")
            return ev.response_done(self._response_object(active, "completed", [wire_item]))

        self._outbox.enqueue_built_on_send(rid, response_done)

    def cancel(self, reason: CancelReason | None, *, error_code: str | None = None) -> None:
        """Stop the active response now (a no-op when there is none)."""
        active = self.active
        if active is None:
            return
        self.active = None
        plan = active.plan
        delivery = self._outbox.cancel(plan.response_id)
        if active.task is not None:
            active.task.cancel()
        item = plan.item
        item.text = active.responder.heard_text()
        item.reasoning = active.responder.reasoning
        item.status = "incomplete"
        if reason == "turn_detected":
            metrics = self._services.metrics
            metrics.barge_ins_total.inc()
            if active.speech_started_at is not None:
                last = delivery.last_audio_sent_at or active.speech_started_at
                metrics.barge_in_stop_seconds.observe(max(0.0, last - active.speech_started_at))
        active.timings.mark("response_done")
        self._observe(active, "cancelled")
        wire_item = _wire_item(active, "incomplete", item.text)
        details: dict[str, Any] = {"type": "cancelled", "reason": reason}
        if error_code is not None:
            details["error"] = {"type": "server_error", "code": error_code}
        self._outbox.send_now(ev.output_item_done(plan.response_id, wire_item))
        self._outbox.send_now(ev.item_done(wire_item, self._conversation.item_before(item.id)))
        self._outbox.send_now(
            ev.response_done(
                self._response_object(active, "cancelled", [wire_item], status_details=details)
            )
        )

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
        metrics.observe_turn(active.timings)
        self._sent_audio_ms[active.plan.item.id] = delivery.sent_ms
        self._outbox.forget(active.plan.response_id)

    def _response_object(
        self,
        active: ActiveResponse,
        status: ev.ResponseStatus,
        output: list[dict[str, Any]] | None = None,
        status_details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        plan = active.plan
        info = self._services.engine.info
        usage = active.responder.usage
        wire_usage = None
        if usage is not None:
            wire_usage = {
                "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                "input_tokens": usage.prompt_tokens,
                "output_tokens": usage.completion_tokens,
                "input_token_details": {"cached_tokens": usage.cached_prompt_tokens},
                "output_token_details": {"text_tokens": usage.completion_tokens},
            }
        x_turn = {
            "engine": info.name,
            "model": info.model,
            "simulated": info.simulated,
            "policy": active.policy,
            "timings": active.timings.report(),
        }
        return ev.response_object(
            plan.response_id,
            status,
            output_modalities=["audio"] if plan.speaks else ["text"],
            output=output,
            status_details=status_details,
            usage=wire_usage,
            metadata=active.metadata,
            output_format={"type": "audio/pcm", "rate": plan.output_rate},
            voice=plan.voice,
            extensions={"x_turn": x_turn} if status != "in_progress" else None,
        )


def _part(active: ActiveResponse, text: str) -> dict[str, Any]:
    if active.plan.speaks:
        return {"type": "audio", "transcript": text}
    return {"type": "text", "text": text}


def _wire_item(active: ActiveResponse, status: ItemStatus, text: str) -> dict[str, Any]:
    content = (
        [{"type": "output_audio", "transcript": text}]
        if active.plan.speaks
        else [{"type": "output_text", "text": text}]
    )
    return ev.message_item(active.plan.item.id, "assistant", content, status)
