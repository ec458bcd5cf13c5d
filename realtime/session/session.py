"""A client session: protocol dispatch and the wiring between its parts.

Where a frame of input audio goes: ``append_audio`` hands it to the session's ``TurnInput``
(``realtime/turns/``: resampling, the VAD, the end of the turn, interruptions), which tells
the session what happened through turn events. The session turns those into typed events
(``realtime.events``, which the transport renders for its wire) and actions: a barge-in
cancels the response being played, a short burst of speech over it only pauses it, a
candidate end of the turn may start a speculative reply, and the end of a turn commits it
and creates a response, which a ``Responder`` runs until its audio is in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import numpy as np

from realtime import events as ev
from realtime.conversation import UserAudioItem
from realtime.engines.base import EngineError, InputTranscription, TranscriptionHints
from realtime.protocol import client_events as ce
from realtime.protocol.audio_codec import decode_audio
from realtime.protocol.errors import ProtocolError
from realtime.protocol.session_config import InputTranscription as InputTranscriptionSettings
from realtime.protocol.session_config import SessionConfig, apply_session_update
from realtime.session.conversation_log import ConversationLog
from realtime.session.outbox import Closing, Outbox, OutboxClosed
from realtime.session.rate_limits import SessionRateLimits
from realtime.session.responses import ResponseManager
from realtime.session.services import SessionServices, TransportClosed, TransportSink
from realtime.session.supervision import Supervisor
from realtime.telemetry.timings import TurnTimings
from realtime.turns.audio_buffer import InputBufferFull
from realtime.turns.denoise import NOISE_REDUCTION_STAGE, noise_reduction_stage
from realtime.turns.echo import ECHO_CANCELLATION_STAGE, echo_cancellation_stage
from realtime.turns.input import (
    IdleTimeout,
    ReplyPaused,
    ReplyResumed,
    TurnChunkClosed,
    TurnContinues,
    TurnEnded,
    TurnEvent,
    TurnInput,
    TurnMayEnd,
    UserSpeechStarted,
)
from tokenizer import ENGINE_SAMPLE_RATE
from tokenizer.pcm import AudioFormatError

log = logging.getLogger(__name__)

_MIN_COMMIT_MS = 100
_SAMPLES_PER_MS = ENGINE_SAMPLE_RATE // 1000


class Session:
    """One client's conversation over one transport (WebSocket or WebRTC)."""

    def __init__(
        self,
        services: SessionServices,
        sink: TransportSink,
        *,
        config: SessionConfig | None = None,
    ) -> None:
        self._services = services
        self.metrics = services.metrics
        self._settings = services.settings
        self._sink = sink
        base = config or self._settings.default_config
        self.config = base.model_copy(
            update={
                "id": ev.new_id("sess"),
                "model": base.model or services.engine.info.model,
                "expires_at": int(time.time() + self._settings.max_session_s),
            },
            deep=True,
        )
        self.outbox = Outbox(self.config.output_rate, lead_ms=self._settings.audio_lead_ms)
        self.conversation = ConversationLog(self.outbox, self._settings.max_history_bytes)
        self._rate_limits = SessionRateLimits(
            self._settings.rate_limits,
            lambda limit: services.metrics.rate_limited_total.labels(limit=limit).inc(),
        )
        self.input = TurnInput(
            services.vad,
            self,
            settings=self._settings.turns,
            capacity_samples=int(self._settings.max_input_buffer_s * ENGINE_SAMPLE_RATE),
            scorer=services.turn_scorer,
            observe_lag=services.metrics.input_lag_seconds.observe,
        )
        self.input.configure(self.config.audio.input.turn_detection)
        self._configure_input_stages(None)
        self._engine = services.engine.open_session()
        self.supervisor = Supervisor(
            self.config.id, services.metrics, self.outbox.send_now, self.end
        )
        self.trace = services.tracing.session(self.config.id, sink.name)
        self.responses = ResponseManager(
            services,
            self.outbox,
            self.conversation,
            self._engine,
            lambda: self.config,
            watch=lambda task, where: self.supervisor.watch(task, where, vital=False),
            on_active_changed=self._on_response_active_changed,
            trace=self.trace,
        )
        self._speech_started_at: float | None = None
        self._prefill_task: asyncio.Task[None] | None = None
        self._prefill_again = False
        self._pending_snapshot: UserAudioItem | None = None
        # When this turn's first prefill was sent and its last one finished (x_turn's stages).
        self._prefill_sent_at: float | None = None
        self._prefill_done_at: float | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._send_task: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._closed = False
        self._finished = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._services.metrics.sessions_total.labels(transport=self._sink.name).inc()
        self._services.metrics.sessions_active.labels(transport=self._sink.name).inc()
        send = asyncio.create_task(self._send_loop(), name=f"{self.config.id}-send")
        self._send_task = send
        self._tasks = [send]
        self.supervisor.watch(send, "sending events", vital=True)
        self.supervisor.watch(self.input.start(self.config.id), "voice activity detection",
                              vital=True)  # fmt: skip
        self.outbox.send_now(ev.SessionCreated(self.config))
        self._expiry = asyncio.get_running_loop().call_later(
            self._settings.max_session_s, self._expire
        )

    def _expire(self) -> None:
        minutes = self._settings.max_session_s / 60
        self._services.metrics.sessions_ended_total.labels(reason="expired").inc()
        message = f"Your session hit the maximum duration of {minutes:g} minutes."
        self.end(1000, "session expired", ProtocolError("session_expired", message))

    def end(self, code: int, reason: str, error: ProtocolError | None = None) -> bool:
        """End the session from the server's side: cancel the reply in progress, send
        ``error`` if given, then close the transport with ``code``. The transport then calls
        ``close``. False if it was already ending."""
        if self._closed or self.outbox.finishing:
            return False
        self._stop_prefill()
        self.responses.cancel(None)
        if error is not None:
            self._report(error)
        self.outbox.finish(code, reason)
        if self._send_task is None or self._send_task.done():
            # Nothing left to deliver the close: close the transport directly.
            task = asyncio.create_task(self._close_sink(code, reason))
            self._tasks.append(task)
        return True

    @property
    def finished(self) -> bool:
        """The server ended the session and closed its transport (``end``)."""
        return self._finished.is_set()

    async def wait_finished(self) -> None:
        await self._finished.wait()

    @property
    def replying(self) -> bool:
        """A reply is being produced or its audio is still leaving."""
        return self.responses.active is not None or not self.outbox.idle

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._expiry is not None:
            self._expiry.cancel()
        self._services.metrics.sessions_active.labels(transport=self._sink.name).dec()
        self._stop_prefill()
        await self.input.aclose()
        await self.responses.aclose()
        self.trace.end()
        self.outbox.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._engine.aclose()

    # -- input -------------------------------------------------------------------------

    @property
    def max_event_bytes(self) -> int:
        """The largest client event the transport may hand over."""
        return self._settings.max_event_bytes

    def admit_event(self, size: int) -> None:
        """Count a raw client event of ``size`` bytes against the session's rate limits (the
        transport asks before it parses); ``ProtocolError`` past them."""
        self._rate_limits.admit_event(size)

    def handle_event(self, event: ce.ClientEvent | ProtocolError) -> None:
        """One client event as the transport parsed it, or why it could not. Bad events get an
        ``error`` event, nothing else; an unexpected exception is the supervisor's (reported,
        and the session goes on)."""
        if isinstance(event, ProtocolError):
            self._report(event)
            return
        try:
            self._dispatch(event)
        except ProtocolError as err:
            self._report(err)
        except Exception as exc:
            self.supervisor.failed(exc, f"handling {event.type}", event_id=event.event_id)

    def append_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        """Input audio from any transport: mono int16 at ``sample_rate``."""
        self._rate_limits.admit_audio(len(pcm) / sample_rate)
        try:
            self.input.append(pcm, sample_rate)
        except InputBufferFull:
            raise ProtocolError(
                "input_audio_buffer_full",
                f"the input audio buffer holds at most {self._settings.max_input_buffer_s:.0f} s;"
                " commit or clear it before appending more",
                "audio",
            ) from None

    def _dispatch(self, event: ce.ClientEvent) -> None:
        match event:
            case ce.InputAudioBufferAppend(audio=audio, event_id=event_id):
                try:
                    pcm = decode_audio(audio, self.config.audio.input.format)
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
                self._stop_prefill()
                self.responses.discard_speculative()
                self.input.clear()
                self.outbox.send_now(ev.BufferCleared())
            case ce.ConversationItemCreate():
                self.responses.discard_speculative()  # it was made for the history before
                self.conversation.create(event, self.config.audio.input.format)
            case ce.ConversationItemDelete(item_id=item_id, event_id=event_id):
                self.responses.discard_speculative()
                active = self.responses.active
                protected = active.plan.item.id if active is not None else None
                self.conversation.delete(item_id, event_id, protected_id=protected)
            case ce.ConversationItemRetrieve(item_id=item_id, event_id=event_id):
                self.conversation.retrieve(item_id, event_id, self.config.audio.input.format)
            case ce.ConversationItemTruncate(item_id=item_id, event_id=event_id):
                self.conversation.assistant_item(item_id, event_id)  # exists, or an error
                active = self.responses.active
                if active is not None and active.plan.item.id == item_id:
                    self.responses.cancel("client_cancelled")
                self.conversation.truncate(event, self.responses.sent_audio_ms(item_id))
            case ce.ResponseCreate(response=params, event_id=event_id):
                if self.config.transcribes_only:
                    raise ProtocolError(
                        "invalid_request_error", "a transcription session makes no responses",
                        None, event_id,
                    )  # fmt: skip
                self.responses.create(params, TurnTimings(), event_id=event_id)
            case ce.ResponseCancel(response_id=response_id, event_id=event_id):
                active = self.responses.active
                if (
                    active is None
                    or active.speculative_turn is not None
                    or (response_id and response_id != active.plan.response_id)
                ):
                    raise ProtocolError(
                        "response_cancel_not_active",
                        "there is no active response to cancel"
                        + (f" with id {response_id}" if response_id else ""),
                        "response_id",
                        event_id,
                    )
                self.responses.cancel("client_cancelled")
            case ce.OutputAudioBufferClear():
                if self.responses.speculative is None:
                    self.responses.cancel("client_cancelled")

    def _report(self, err: ProtocolError) -> None:
        self._services.metrics.errors_total.labels(code=err.code).inc()
        self.outbox.send_now(err.event())

    # -- session configuration -----------------------------------------------------------

    def _update_session(self, patch: dict[str, Any], event_id: str | None) -> None:
        updated = apply_session_update(self.config, patch, event_id)
        if updated.transcribes_only and not self._services.engine.capabilities.transcription:
            raise ProtocolError(
                "invalid_value", f"the {self._services.engine.info.name} engine does not "
                "transcribe: no transcription sessions on this server", "session.type", event_id,
            )  # fmt: skip
        previous, self.config = self.config, updated
        self._configure_input_stages(previous)
        self.outbox.sample_rate = updated.output_rate
        self.input.configure(updated.audio.input.turn_detection)
        if updated.audio.input.turn_detection is None:
            self._stop_prefill()
            self.responses.discard_speculative()
        self.outbox.send_now(ev.SessionUpdated(updated))

    def _configure_input_stages(self, previous: SessionConfig | None) -> None:
        wanted = self.config.audio.input
        before = previous.audio.input if previous is not None else None
        if before is None or before.noise_reduction != wanted.noise_reduction:
            denoise = noise_reduction_stage(wanted.noise_reduction)
            self.input.set_stage(NOISE_REDUCTION_STAGE, denoise)
        if before is None or before.x_echo_cancellation != wanted.x_echo_cancellation:
            echo = echo_cancellation_stage(wanted.x_echo_cancellation)
            self.input.set_stage(ECHO_CANCELLATION_STAGE, echo)
            # The reply audio leaving the outbox is the canceller's far-end reference.
            self.outbox.observer = echo.reference if echo is not None else None

    # -- turn events ---------------------------------------------------------------------

    def on_turn_event(self, event: TurnEvent) -> None:
        """What the input side decided; called in order from its VAD loop."""
        match event:
            case UserSpeechStarted():
                self._on_speech_started(event)
            case ReplyPaused():
                self._speech_started_at = time.monotonic()
                self.responses.pause()
            case ReplyResumed():
                self._services.metrics.false_interruptions_total.inc()
                self.responses.resume()
            case TurnChunkClosed(snapshot=snapshot):
                self._schedule_prefill(snapshot)
            case TurnMayEnd(item=item):
                self._start_speculative(item)
            case TurnContinues():
                self.responses.discard_speculative()
            case TurnEnded():
                self._on_turn_ended(event)
            case IdleTimeout():
                self._on_idle_timeout(event)

    def _on_response_active_changed(self, active: bool, completed: bool) -> None:
        if active:
            self.input.reply_started()
        else:
            self.input.reply_ended(completed=completed)

    def _on_speech_started(self, started: UserSpeechStarted) -> None:
        if not started.interrupting:
            self._speech_started_at = time.monotonic()
        self.responses.discard_speculative()
        self.outbox.send_now(ev.SpeechStarted(started.audio_start_ms, started.item_id))
        active = self.responses.active
        if started.interrupting and active is not None:
            active.speech_started_at = self._speech_started_at
            self.responses.cancel("turn_detected")

    def _on_turn_ended(self, ended: TurnEnded) -> None:
        prefill_sent_at, prefill_done_at = self._prefill_sent_at, self._prefill_done_at
        self._stop_prefill()
        timings = TurnTimings()
        timings.mark("speech_stopped")
        if prefill_sent_at is not None:
            timings.mark("prefill_sent", prefill_sent_at)
        if prefill_done_at is not None:
            timings.mark("prefill_done", prefill_done_at)
        timings.silence_window_ms = ended.rule_silence_ms
        timings.speech_end_audio_ms = ended.speech_end_ms
        item = ended.item
        self.outbox.send_now(ev.SpeechStopped(int(ended.speech_end_ms), item.id))
        self._commit_turn(item, ended.reason)
        self._respond(item, timings)

    def _on_idle_timeout(self, idle: IdleTimeout) -> None:
        self._stop_prefill()
        item = idle.item
        self.outbox.send_now(ev.IdleTimedOut(idle.audio_start_ms, idle.audio_end_ms, item.id))
        self._commit_turn(item, "idle_timeout")
        self._respond(item, TurnTimings())

    def _commit_turn(self, item: UserAudioItem, source: str) -> None:
        self._services.metrics.turns_total.labels(source=source).inc()
        self.conversation.commit_user_audio(item)
        self._start_transcription(item)

    # -- input transcription ---------------------------------------------------------------

    def _start_transcription(self, item: UserAudioItem) -> None:
        """``audio.input.transcription``: the engine transcribes the committed turn beside the
        reply (never before it)."""
        settings = self.config.audio.input.transcription
        if settings is None and self.config.transcribes_only:
            settings = InputTranscriptionSettings()
        if settings is None or not self._services.engine.capabilities.transcription:
            return
        hints = TranscriptionHints(settings.language, settings.prompt)
        task = asyncio.create_task(
            self._transcribe(item, hints), name=f"{self.config.id}-transcribe"
        )
        self._tasks = [t for t in self._tasks if not t.done()] + [task]
        self.supervisor.watch(task, "transcribing a turn", vital=False)

    async def _transcribe(self, item: UserAudioItem, hints: TranscriptionHints) -> None:
        parts: list[str] = []
        try:
            async for delta in self._engine.transcribe(item, hints):
                if item.transcript is not None:
                    return  # the engine's reply already reported it (echo)
                parts.append(delta)
                self.outbox.send_now(ev.TranscriptionDelta(item.id, delta))
        except EngineError as exc:
            self.outbox.send_now(ev.TranscriptionFailed(item.id, str(exc)))
            return
        self.conversation.add_transcription(InputTranscription(item.id, "".join(parts).strip()))

    def _respond(self, item: UserAudioItem, timings: TurnTimings) -> None:
        """After a committed turn: release the speculative reply made for exactly this turn,
        or create one."""
        speculative = self.responses.speculative
        if speculative is not None:
            if speculative.speculative_turn is not None and _same_audio(
                speculative.speculative_turn, item
            ):
                self.responses.release_speculative(timings)
                return
            self.responses.discard_speculative()
        vad = self.config.audio.input.turn_detection
        if vad is None or not vad.create_response or self.config.transcribes_only:
            return
        if self.responses.active is None:
            try:
                self.responses.create(None, timings, event_id=None)
            except ProtocolError as err:  # e.g. a tool_choice this engine cannot honour
                self._report(err)
        else:
            log.info("turn ended while a response is active; not creating another")

    def _start_speculative(self, item: UserAudioItem) -> None:
        vad = self.config.audio.input.turn_detection
        if (
            vad is None
            or not vad.create_response
            or self.config.transcribes_only
            or self.responses.active is not None
        ):
            return
        try:
            self.responses.create(None, TurnTimings(), event_id=None, speculative_turn=item)
        except ProtocolError as err:
            log.info("no speculative reply: %s", err.message)

    # -- listen while thinking -----------------------------------------------------------

    def _schedule_prefill(self, snapshot: UserAudioItem) -> None:
        if not self._settings.incremental_prefill:
            return
        self._pending_snapshot = snapshot
        if self._prefill_task is not None and not self._prefill_task.done():
            self._prefill_again = True
            return
        self._prefill_task = asyncio.create_task(self._prefill_loop())
        self.supervisor.watch(self._prefill_task, "prefilling a turn", vital=False)

    async def _prefill_loop(self) -> None:
        while True:
            self._prefill_again = False
            request = self.conversation.engine_request(
                self.config.instructions, extra=self._pending_snapshot, max_tokens=1
            )
            if self._prefill_sent_at is None:
                self._prefill_sent_at = time.monotonic()
            try:
                await self._engine.prefill(request)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("prefill failed (the final request will do the work): %s", exc)
                return
            self._prefill_done_at = time.monotonic()
            if not self._prefill_again:
                return

    def _stop_prefill(self) -> None:
        if self._prefill_task is not None:
            self._prefill_task.cancel()
            self._prefill_task = None
        self._prefill_sent_at = self._prefill_done_at = None

    # -- conversation ------------------------------------------------------------------

    def _commit_buffer(self, event_id: str | None) -> None:
        """``input_audio_buffer.commit``: the buffered audio (or the turn in progress) becomes
        a user item."""
        held = self.input.held_samples()
        if held < _MIN_COMMIT_MS * _SAMPLES_PER_MS:
            raise ProtocolError(
                "input_audio_buffer_commit_empty",
                f"buffer too small: expected at least {_MIN_COMMIT_MS} ms of audio, "
                f"but it holds {held / _SAMPLES_PER_MS:.0f} ms",
                None,
                event_id,
            )
        self._stop_prefill()
        self.responses.discard_speculative()
        self._commit_turn(self.input.commit(), "commit")

    # -- output --------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        with contextlib.suppress(OutboxClosed, TransportClosed):
            while True:
                item = await self.outbox.get()
                if isinstance(item, Closing):
                    await self._close_sink(item.code, item.reason)
                    return
                await self._sink.deliver(item)

    async def _close_sink(self, code: int, reason: str) -> None:
        try:
            await self._sink.close(code, reason)
        finally:
            self._finished.set()


def _same_audio(a: UserAudioItem, b: UserAudioItem) -> bool:
    return len(a.chunks) == len(b.chunks) and all(
        np.array_equal(x, y) for x, y in zip(a.chunks, b.chunks, strict=True)
    )
