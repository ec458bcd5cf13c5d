"""A client session: client events and audio in, turns and responses out through the outbox.

Where a frame of input audio goes: ``append_audio`` resamples it to 16 kHz and appends it
to the input buffer, then hands it to the VAD loop, which runs silero (batched with every
other session by the app's ``VadBatcher``) and the turn detector. Speech start may barge in
on the response being played; while the user speaks, the turn is cut into chunks that the
engine prefills (listen while thinking); speech stop commits the turn and creates a
response, which a ``Responder`` runs until its audio is in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from realtime.conversation import (
    AssistantItem,
    Conversation,
    ConversationItem,
    SystemTextItem,
    UserAudioItem,
    UserTextItem,
)
from realtime.engines.base import EngineRequest, InputTranscription
from realtime.protocol import client_events as ce
from realtime.protocol import server_events as ev
from realtime.protocol.errors import ProtocolError
from realtime.protocol.session_config import SessionConfig, apply_session_update
from realtime.session.input_buffer import InputAudioBuffer, InputBufferFull
from realtime.session.listening import TurnInProgress, audio_item_from_pcm
from realtime.session.outbox import Outbox, OutboxClosed
from realtime.session.responder import Responder, ResponseOutcome, ResponsePlan
from realtime.session.services import SessionServices, TransportSink
from realtime.session.timings import TurnTimings
from realtime.speaking.base import SpeakingParams
from realtime.turns.turn_detector import (
    SpeechStarted,
    SpeechStopped,
    TurnDetectionParams,
    TurnDetector,
)
from tokenizer import ENGINE_SAMPLE_RATE
from tokenizer.chunking import MAX_ENGINE_CHUNK_S
from tokenizer.pcm import AudioFormatError, pcm16_from_base64
from tokenizer.resample import StreamResampler

log = logging.getLogger(__name__)

_MIN_COMMIT_MS = 100
_SAMPLES_PER_MS = ENGINE_SAMPLE_RATE // 1000


@dataclass
class _ActiveResponse:
    plan: ResponsePlan
    responder: Responder
    timings: TurnTimings
    policy: str
    metadata: dict[str, str] | None
    task: asyncio.Task[None] | None = None
    speech_started_at: float | None = None


class Session:
    def __init__(
        self,
        services: SessionServices,
        sink: TransportSink,
        *,
        config: SessionConfig | None = None,
    ) -> None:
        self._services = services
        self._settings = services.settings
        self._sink = sink
        base = config or self._settings.default_config
        self.config = base.model_copy(
            update={
                "id": ev.new_id("sess"),
                "model": base.model or services.engine.info.model,
                "expires_at": int(time.time()) + 3600,
            },
            deep=True,
        )
        self.outbox = Outbox(self.config.output_rate, lead_ms=self._settings.audio_lead_ms)
        self.items: list[ConversationItem] = []
        self._buffer = InputAudioBuffer(int(self._settings.max_input_buffer_s * ENGINE_SAMPLE_RATE))
        self._resampler: StreamResampler | None = None
        self._vad_stream = services.vad.open_stream()
        self._detector = TurnDetector(self._turn_params(), ENGINE_SAMPLE_RATE)
        self._vad_queue: asyncio.Queue[np.ndarray] = asyncio.Queue()
        self._vad_ignore_before = 0
        self._vad_done_until = 0
        self._speech_item_id: str | None = None
        self._speech_started_at: float | None = None
        self._turn: TurnInProgress | None = None
        self._engine = services.engine.open_session()
        self._active: _ActiveResponse | None = None
        self._prefill_task: asyncio.Task[None] | None = None
        self._prefill_again = False
        self._sent_audio_ms: dict[str, float] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._services.metrics.sessions_total.labels(transport=self._sink.name).inc()
        self._services.metrics.sessions_active.labels(transport=self._sink.name).inc()
        self._tasks = [
            asyncio.create_task(self._send_loop(), name=f"{self.config.id}-send"),
            asyncio.create_task(self._vad_loop(), name=f"{self.config.id}-vad"),
        ]
        self.outbox.send_now(ev.session_created(self.config.wire()))

    async def wait_closed(self) -> None:
        """Returns when the sender stops (the transport is gone)."""
        await asyncio.gather(self._tasks[0], return_exceptions=True)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._services.metrics.sessions_active.labels(transport=self._sink.name).dec()
        if self._active is not None:
            self.outbox.cancel(self._active.plan.response_id)
            if self._active.task is not None:
                self._active.task.cancel()
        self._abandon_turn()
        self.outbox.close()
        self._vad_stream.close()
        pending = [t for t in (*self._tasks, self._active and self._active.task) if t]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._engine.aclose()

    # -- input -------------------------------------------------------------------------

    async def handle_message(self, raw: str | bytes) -> None:
        """One client event from the transport. Bad events get an ``error`` event, nothing else."""
        try:
            event = ce.parse_client_event(raw, self._settings.max_event_bytes)
            self._dispatch(event)
        except ProtocolError as err:
            self._report(err)

    def append_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        """Input audio from any transport: mono int16 at ``sample_rate``."""
        if self._resampler is None or self._resampler.in_rate != sample_rate:
            # soxr's LQ keeps 6 ms back where HQ keeps 21 ms (in 40 ms bursts), and still
            # passes everything up to 7.3 kHz: ample for speech going to VAD, ASR and engine.
            self._resampler = StreamResampler(sample_rate, ENGINE_SAMPLE_RATE, quality="LQ")
        pcm16k = self._resampler.process(pcm)
        try:
            self._buffer.append(pcm16k)
        except InputBufferFull:
            raise ProtocolError(
                "input_audio_buffer_full",
                f"the input audio buffer holds at most {self._settings.max_input_buffer_s:.0f} s;"
                " commit or clear it before appending more",
                "audio",
            ) from None
        if self.config.audio.input.turn_detection is not None and len(pcm16k):
            self._vad_queue.put_nowait(pcm16k)

    def _dispatch(self, event: ce.ClientEvent) -> None:
        match event:
            case ce.InputAudioBufferAppend(audio=audio, event_id=event_id):
                try:
                    pcm = pcm16_from_base64(audio)
                except AudioFormatError as exc:
                    raise ProtocolError("invalid_audio", str(exc), "audio", event_id) from None
                try:
                    self.append_audio(pcm, self.config.input_rate)
                except ProtocolError as err:
                    err.event_id = event_id
                    raise
            case ce.SessionUpdate(session=patch, event_id=event_id):
                self._update_session(patch, event_id)
            case ce.InputAudioBufferCommit(event_id=event_id):
                self._commit_buffer(event_id)
            case ce.InputAudioBufferClear():
                self._abandon_turn()
                self._skip_vad_until(self._buffer.end)
                self._buffer.clear()
                self.outbox.send_now(ev.cleared())
            case ce.ConversationItemCreate():
                self._create_item(event)
            case ce.ConversationItemDelete(item_id=item_id, event_id=event_id):
                self._delete_item(item_id, event_id)
            case ce.ConversationItemTruncate():
                self._truncate_item(event)
            case ce.ResponseCreate(response=params, event_id=event_id):
                self._create_response(params, TurnTimings(), event_id=event_id)
            case ce.ResponseCancel(response_id=response_id, event_id=event_id):
                active = self._active
                if active is None or (response_id and response_id != active.plan.response_id):
                    raise ProtocolError(
                        "response_cancel_not_active",
                        "there is no active response to cancel"
                        + (f" with id {response_id}" if response_id else ""),
                        "response_id",
                        event_id,
                    )
                self._cancel_response("client_cancelled")
            case ce.OutputAudioBufferClear():
                if self._active is not None:
                    self._cancel_response("client_cancelled")

    def _report(self, err: ProtocolError) -> None:
        self._services.metrics.errors_total.labels(code=err.code).inc()
        self.outbox.send_now(ev.error(err))

    # -- session configuration -----------------------------------------------------------

    def _update_session(self, patch: dict[str, Any], event_id: str | None) -> None:
        updated = apply_session_update(self.config, patch, event_id)
        vad_was_on = self.config.audio.input.turn_detection is not None
        self.config = updated
        self.outbox.sample_rate = updated.output_rate
        self._detector.params = self._turn_params()
        if vad_was_on and updated.audio.input.turn_detection is None:
            self._abandon_turn()
            self._detector.reset()
            self._skip_vad_until(self._buffer.end)
        self.outbox.send_now(ev.session_updated(updated.wire()))

    def _turn_params(self) -> TurnDetectionParams:
        vad = self.config.audio.input.turn_detection
        if vad is None:
            return TurnDetectionParams()
        return TurnDetectionParams(
            threshold=vad.threshold,
            prefix_padding_ms=vad.prefix_padding_ms,
            silence_duration_ms=vad.silence_duration_ms,
        )

    # -- VAD and turns -----------------------------------------------------------------

    async def _vad_loop(self) -> None:
        while True:
            pcm = await self._vad_queue.get()
            try:
                results = await self._vad_stream.process(pcm)
            except Exception:
                if self._closed:
                    return
                raise
            for result in results:
                self._vad_done_until = result.end_sample
                if result.end_sample <= self._vad_ignore_before:
                    continue
                if self.config.audio.input.turn_detection is None:
                    continue
                for turn_event in self._detector.update(result):
                    if isinstance(turn_event, SpeechStarted):
                        self._on_speech_started(turn_event)
                    else:
                        self._on_speech_stopped(turn_event)
                if self._turn is not None and self._turn.feed(self._buffer, result.end_sample):
                    self._schedule_prefill()
            if self._turn is None:
                keep = self._turn_params().prefix_padding_ms * _SAMPLES_PER_MS
                self._buffer.drop_before(self._vad_done_until - keep)

    def _skip_vad_until(self, sample: int) -> None:
        self._vad_ignore_before = sample
        self._detector.reset()

    def _on_speech_started(self, started: SpeechStarted) -> None:
        params = self._turn_params()
        start = max(
            started.start_sample - params.prefix_padding_ms * _SAMPLES_PER_MS,
            self._buffer.start,
            self._vad_ignore_before,
        )
        item_id = ev.new_id("item")
        self._speech_item_id = item_id
        self._speech_started_at = time.monotonic()
        self.outbox.send_now(ev.speech_started(start // _SAMPLES_PER_MS, item_id))
        vad = self.config.audio.input.turn_detection
        if self._active is not None and vad is not None and vad.interrupt_response:
            self._active.speech_started_at = self._speech_started_at
            self._cancel_response("turn_detected")
        self._turn = TurnInProgress(item_id, start, self._settings.prefill_chunk_s)

    def _on_speech_stopped(self, stopped: SpeechStopped) -> None:
        turn = self._turn
        if turn is None:
            return
        timings = TurnTimings()
        timings.mark("speech_stopped")
        params = self._turn_params()
        timings.silence_window_ms = float(params.silence_duration_ms)
        timings.speech_end_audio_ms = stopped.end_sample / _SAMPLES_PER_MS
        end = min(stopped.end_sample + self._settings.speech_pad_ms * _SAMPLES_PER_MS,
                  self._buffer.end)  # fmt: skip
        self.outbox.send_now(ev.speech_stopped(stopped.end_sample // _SAMPLES_PER_MS, turn.item.id))
        item = turn.finish(self._buffer, end)
        self._turn = None
        self._buffer.drop_before(end)
        self._services.metrics.turns_total.labels(source="server_vad").inc()
        self._commit_item(item)
        vad = self.config.audio.input.turn_detection
        if vad is not None and vad.create_response:
            if self._active is None:
                self._create_response(None, timings, event_id=None)
            else:
                log.info("speech stopped while a response is active; not creating another")

    def _abandon_turn(self) -> None:
        self._turn = None
        if self._prefill_task is not None:
            self._prefill_task.cancel()
            self._prefill_task = None

    # -- listen while thinking -----------------------------------------------------------

    def _schedule_prefill(self) -> None:
        if not self._settings.incremental_prefill:
            return
        if self._prefill_task is not None and not self._prefill_task.done():
            self._prefill_again = True
            return
        self._prefill_task = asyncio.create_task(self._prefill_loop())

    async def _prefill_loop(self) -> None:
        while self._turn is not None:
            self._prefill_again = False
            request = self._engine_request(extra=self._turn.snapshot(), max_tokens=1)
            try:
                await self._engine.prefill(request)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("prefill failed (the final request will do the work): %s", exc)
                return
            if not self._prefill_again:
                return

    # -- conversation ------------------------------------------------------------------

    def _commit_buffer(self, event_id: str | None) -> None:
        """``input_audio_buffer.commit``: the buffered audio becomes a user item. During a
        turn the VAD is following, the turn's chunks are kept as they are, so the engine's
        listen-while-thinking prefills still match the final request."""
        turn = self._turn
        held = self._buffer.end - (turn.start_sample if turn else self._buffer.start)
        if held < _MIN_COMMIT_MS * _SAMPLES_PER_MS:
            raise ProtocolError(
                "input_audio_buffer_commit_empty",
                f"buffer too small: expected at least {_MIN_COMMIT_MS} ms of audio, "
                f"but it holds {held / _SAMPLES_PER_MS:.0f} ms",
                None,
                event_id,
            )
        if turn is not None:
            item = turn.finish(self._buffer, self._buffer.end)
            self._turn = None
        else:
            audio = self._buffer.slice(self._buffer.start, self._buffer.end)
            item = audio_item_from_pcm(ev.new_id("item"), audio, MAX_ENGINE_CHUNK_S)
        self._abandon_turn()
        self._skip_vad_until(self._buffer.end)
        self._buffer.clear()
        self._services.metrics.turns_total.labels(source="commit").inc()
        self._commit_item(item)

    def _previous_item_id(self) -> str | None:
        return self.items[-1].id if self.items else None

    def _commit_item(self, item: UserAudioItem) -> None:
        previous = self._previous_item_id()
        self.items.append(item)
        wire = ev.message_item(item.id, "user", [{"type": "input_audio", "transcript": None}])
        self.outbox.send_now(ev.committed(item.id, previous))
        self.outbox.send_now(ev.item_added(wire, previous))
        self.outbox.send_now(ev.item_done(wire, previous))

    def _create_item(self, event: ce.ConversationItemCreate) -> None:
        spec = event.item
        item_id = spec.id or ev.new_id("item")
        if any(existing.id == item_id for existing in self.items):
            raise ProtocolError(
                "item_already_exists", f"an item with id {item_id} exists", "item.id",
                event.event_id,
            )  # fmt: skip
        item = self._item_from_spec(spec, item_id, event.event_id)
        previous = self._previous_item_id()
        if event.previous_item_id is not None and event.previous_item_id != previous:
            raise ProtocolError(
                "invalid_value",
                "previous_item_id must be the id of the last item (inserting is not supported)",
                "previous_item_id",
                event.event_id,
            )
        self.items.append(item)
        wire = spec.model_dump(mode="json", exclude_none=True) | {
            "id": item_id,
            "object": "realtime.item",
            "status": "completed",
        }
        for part in wire["content"]:
            part.pop("audio", None)
        self.outbox.send_now(ev.item_added(wire, previous))
        self.outbox.send_now(ev.item_done(wire, previous))

    def _item_from_spec(
        self, spec: ce.MessageItem, item_id: str, event_id: str | None
    ) -> ConversationItem:
        texts = [p.text for p in spec.content if p.text is not None]
        audios = [p.audio for p in spec.content if p.audio is not None]
        allowed = {
            "user": {"input_text", "input_audio"},
            "system": {"input_text", "text"},
            "assistant": {"output_text", "text", "output_audio"},
        }[spec.role]
        for index, part in enumerate(spec.content):
            if part.type not in allowed:
                raise ProtocolError(
                    "invalid_value",
                    f"a {spec.role} message cannot hold '{part.type}' content",
                    f"item.content[{index}].type",
                    event_id,
                )
        if spec.role == "system":
            return SystemTextItem(item_id, "".join(texts))
        if spec.role == "assistant":
            transcripts = [p.transcript for p in spec.content if p.transcript]
            return AssistantItem(item_id, "".join(texts + transcripts), status="completed")
        if audios:
            try:
                pcm = np.concatenate([pcm16_from_base64(a) for a in audios])
            except AudioFormatError as exc:
                raise ProtocolError("invalid_audio", str(exc), "item.content", event_id) from None
            resampler = StreamResampler(self.config.input_rate, ENGINE_SAMPLE_RATE)
            pcm16k = np.concatenate([resampler.process(pcm), resampler.flush()])
            return audio_item_from_pcm(item_id, pcm16k, MAX_ENGINE_CHUNK_S)
        if not texts:
            raise ProtocolError(
                "missing_required_parameter", "a user message needs text or audio",
                "item.content", event_id,
            )  # fmt: skip
        return UserTextItem(item_id, "".join(texts))

    def _delete_item(self, item_id: str, event_id: str | None) -> None:
        if self._active is not None and self._active.plan.item.id == item_id:
            raise ProtocolError(
                "invalid_value", "cannot delete the item of the active response", "item_id",
                event_id,
            )  # fmt: skip
        for index, item in enumerate(self.items):
            if item.id == item_id:
                del self.items[index]
                self.outbox.send_now(ev.item_deleted(item_id))
                return
        raise ProtocolError("item_not_found", f"no item with id {item_id}", "item_id", event_id)

    def _truncate_item(self, event: ce.ConversationItemTruncate) -> None:
        item = next((i for i in self.items if i.id == event.item_id), None)
        if not isinstance(item, AssistantItem):
            raise ProtocolError(
                "item_not_found", f"no assistant item with id {event.item_id}", "item_id",
                event.event_id,
            )  # fmt: skip
        active = self._active
        if active is not None and active.plan.item.id == item.id:
            self._cancel_response("client_cancelled")
        delivery_ms = self._sent_audio_ms.get(item.id, 0.0)
        if delivery_ms > 0 and event.audio_end_ms < delivery_ms:
            words = item.text.split()
            item.text = " ".join(words[: int(len(words) * event.audio_end_ms / delivery_ms)])
            item.status = "incomplete"
        self.outbox.send_now(ev.item_truncated(item.id, event.content_index, event.audio_end_ms))

    def _on_transcription(self, transcription: InputTranscription) -> None:
        for item in self.items:
            if item.id == transcription.item_id and isinstance(item, UserAudioItem):
                item.transcript = transcription.text
                self.outbox.send_now(
                    ev.transcription_completed(item.id, transcription.text, item.duration_s)
                )
                return

    # -- responses -----------------------------------------------------------------------

    def _engine_request(
        self,
        *,
        extra: ConversationItem | None = None,
        instructions: str | None = None,
        max_tokens: int | None = None,
        reasoning_budget: int | None = None,
    ) -> EngineRequest:
        history = tuple(
            item
            for item in self.items
            if not (isinstance(item, AssistantItem) and item.status == "in_progress")
        )
        if extra is not None:
            history = (*history, extra)
        conversation = Conversation(
            instructions=self.config.instructions if instructions is None else instructions,
            items=history,
        )
        return EngineRequest(
            conversation=conversation, max_tokens=max_tokens, reasoning_budget=reasoning_budget
        )

    def _reasoning_budget(self, effort: str | None) -> int | None:
        if effort is None:
            return self._settings.default_reasoning_budget
        return self._settings.reasoning_budgets.get(effort)

    def _create_response(
        self, params: ce.ResponseParams | None, timings: TurnTimings, *, event_id: str | None
    ) -> None:
        if self._active is not None:
            raise ProtocolError(
                "conversation_already_has_active_response",
                f"response {self._active.plan.response_id} is still in progress; "
                "cancel it or wait for response.done",
                None,
                event_id,
            )
        params = params or ce.ResponseParams()
        config = self.config
        modalities = params.output_modalities or config.output_modalities
        if len(modalities) != 1:
            raise ProtocolError(
                "invalid_value", "output_modalities must be ['audio'] or ['text']",
                "response.output_modalities", event_id,
            )  # fmt: skip
        max_output = params.max_output_tokens or config.max_output_tokens
        effort = (params.reasoning.effort if params.reasoning else None) or config.reasoning.effort
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
        request = self._engine_request(
            instructions=params.instructions,
            max_tokens=None if max_output == "inf" else int(max_output),
            reasoning_budget=self._reasoning_budget(effort),
        )
        response_id = ev.new_id("resp")
        item = AssistantItem(ev.new_id("item"))
        speaks = modalities == ["audio"]
        max_buffered_ms = float(
            config.speaking.max_buffered_audio_ms or self._settings.max_buffered_reply_ms
        )
        speaking = SpeakingParams(
            formulation_tokens=config.speaking.formulation_tokens
            or self._settings.formulation_tokens,
            articulation_tokens=config.speaking.articulation_tokens
            or self._settings.articulation_tokens,
            max_buffered_audio_ms=max_buffered_ms,
            first_formulation_tokens=self._settings.first_formulation_tokens,
        )
        plan = ResponsePlan(
            response_id=response_id,
            item=item,
            request=request,
            speaks=speaks,
            output_rate=config.output_rate,
            frame_ms=self._settings.frame_ms,
            max_buffered_ms=max_buffered_ms,
            voice=config.audio.output.voice,
            speed=config.audio.output.speed,
            speaking=speaking,
        )
        timings.mark("response_created")
        responder = Responder(
            plan,
            engine=self._engine,
            policy=policy,
            tts=self._services.tts,
            outbox=self.outbox,
            timings=timings,
            on_transcription=self._on_transcription,
        )
        active = _ActiveResponse(plan, responder, timings, policy.name, params.metadata)
        self._active = active
        previous = self._previous_item_id()
        self.items.append(item)
        self.outbox.send_now(ev.response_created(self._response_object(active, "in_progress")))
        wire_item = self._wire_assistant_item(active, "in_progress", "")
        self.outbox.send_now(ev.item_added(wire_item, previous))
        self.outbox.send_now(ev.output_item_added(response_id, wire_item))
        self.outbox.send_now(ev.content_part_added(response_id, item.id, self._part(active, "")))
        active.task = asyncio.create_task(self._run_response(active), name=response_id)

    async def _run_response(self, active: _ActiveResponse) -> None:
        try:
            outcome = await active.responder.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("response %s crashed", active.plan.response_id)
            outcome = ResponseOutcome("failed", "internal_error", f"internal error: {exc}")
        if self._active is not active:
            return
        if outcome.status == "failed":
            self._services.metrics.errors_total.labels(code=outcome.error_code or "error").inc()
            self.outbox.send_now(
                ev.server_error(outcome.error_code or "error", outcome.error_message or "failed")
            )
            self._cancel_response(None, error_code=outcome.error_code)
            return
        self._finish_response(active)

    def _finish_response(self, active: _ActiveResponse) -> None:
        """The reply is fully produced; it stays the active response (a barge-in can still
        cut it) until its last audio frame and ``response.done`` have left the outbox."""
        plan = active.plan
        item = plan.item
        item.text = active.responder.reply_text()
        item.reasoning = active.responder.reasoning
        item.status = "completed"
        previous = self._item_before(item.id)
        rid = plan.response_id
        wire_item = self._wire_assistant_item(active, "completed", item.text)
        self.outbox.enqueue(rid, ev.content_part_done(rid, item.id, self._part(active, item.text)))
        self.outbox.enqueue(rid, ev.output_item_done(rid, wire_item))
        self.outbox.enqueue(rid, ev.item_done(wire_item, previous))

        def response_done() -> dict[str, Any]:
            if self._active is active:
                self._active = None
            active.timings.mark("response_done")
            self._observe(active, "completed")
            return ev.response_done(self._response_object(active, "completed", [wire_item]))

        self.outbox.enqueue_built_on_send(rid, response_done)

    def _cancel_response(
        self,
        reason: Literal["turn_detected", "client_cancelled"] | None,
        *,
        error_code: str | None = None,
    ) -> None:
        """Stop the active response now: its audio stops in the outbox, its tasks are
        cancelled, and its history item keeps only what was sent."""
        active = self._active
        if active is None:
            return
        self._active = None
        plan = active.plan
        delivery = self.outbox.cancel(plan.response_id)
        if active.task is not None:
            active.task.cancel()
        item = plan.item
        item.text = active.responder.heard_text()
        item.reasoning = active.responder.reasoning
        item.status = "incomplete"
        if reason == "turn_detected":
            self._services.metrics.barge_ins_total.inc()
            if active.speech_started_at is not None:
                last = delivery.last_audio_sent_at or active.speech_started_at
                self._services.metrics.barge_in_stop_seconds.observe(
                    max(0.0, last - active.speech_started_at)
                )
        active.timings.mark("response_done")
        self._observe(active, "cancelled")
        wire_item = self._wire_assistant_item(active, "incomplete", item.text)
        details: dict[str, Any] = {"type": "cancelled", "reason": reason}
        if error_code is not None:
            details["error"] = {"type": "server_error", "code": error_code}
        self.outbox.send_now(ev.output_item_done(plan.response_id, wire_item))
        self.outbox.send_now(ev.item_done(wire_item, self._item_before(item.id)))
        self.outbox.send_now(
            ev.response_done(
                self._response_object(active, "cancelled", [wire_item], status_details=details)
            )
        )

    def _observe(self, active: _ActiveResponse, status: str) -> None:
        delivery = self.outbox.delivery(active.plan.response_id)
        if delivery.first_audio_sent_at is not None:
            active.timings.mark("first_audio_sent", delivery.first_audio_sent_at)
        metrics = self._services.metrics
        metrics.responses_total.labels(status=status).inc()
        metrics.observe_turn(active.timings)
        self._sent_audio_ms[active.plan.item.id] = delivery.sent_ms
        self.outbox.forget(active.plan.response_id)

    def _item_before(self, item_id: str) -> str | None:
        for index, item in enumerate(self.items):
            if item.id == item_id:
                return self.items[index - 1].id if index else None
        return None

    def _part(self, active: _ActiveResponse, text: str) -> dict[str, Any]:
        if active.plan.speaks:
            return {"type": "audio", "transcript": text}
        return {"type": "text", "text": text}

    def _wire_assistant_item(
        self, active: _ActiveResponse, status: Literal["completed", "incomplete", "in_progress"],
        text: str,
    ) -> dict[str, Any]:  # fmt: skip
        content = (
            [{"type": "output_audio", "transcript": text}]
            if active.plan.speaks
            else [{"type": "output_text", "text": text}]
        )
        return ev.message_item(active.plan.item.id, "assistant", content, status)

    def _response_object(
        self,
        active: _ActiveResponse,
        status: ev.ResponseStatus,
        output: list[dict[str, Any]] | None = None,
        status_details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        plan = active.plan
        info = self._services.engine.info
        usage = active.responder.usage
        extensions: dict[str, Any] = {
            "x_turn": {
                "engine": info.name,
                "model": info.model,
                "simulated": info.simulated,
                "policy": active.policy,
                "timings": active.timings.report(),
            }
        }
        wire_usage = None
        if usage is not None:
            wire_usage = {
                "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                "input_tokens": usage.prompt_tokens,
                "output_tokens": usage.completion_tokens,
                "input_token_details": {"cached_tokens": usage.cached_prompt_tokens},
                "output_token_details": {"text_tokens": usage.completion_tokens},
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
            extensions=extensions if status != "in_progress" else None,
        )

    # -- output --------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        with contextlib.suppress(OutboxClosed):
            while True:
                item = await self.outbox.get()
                await self._sink.deliver(item)
