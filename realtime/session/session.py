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
from typing import Any

import numpy as np

from realtime.protocol import client_events as ce
from realtime.protocol import server_events as ev
from realtime.protocol.errors import ProtocolError
from realtime.protocol.session_config import SessionConfig, apply_session_update
from realtime.session.conversation_log import ConversationLog
from realtime.session.input_buffer import InputAudioBuffer, InputBufferFull
from realtime.session.listening import TurnInProgress, audio_item_from_pcm
from realtime.session.outbox import Outbox, OutboxClosed
from realtime.session.responses import ResponseManager
from realtime.session.services import SessionServices, TransportSink
from realtime.session.timings import TurnTimings
from realtime.turns.turn_detector import (
    SpeechStarted,
    SpeechStopped,
    TurnDetectionParams,
    TurnDetector,
)
from realtime.turns.vad import levels_db
from tokenizer import ENGINE_SAMPLE_RATE
from tokenizer.chunking import MAX_ENGINE_CHUNK_S
from tokenizer.pcm import AudioFormatError, pcm16_from_base64
from tokenizer.resample import StreamResampler

log = logging.getLogger(__name__)

_MIN_COMMIT_MS = 100
_SAMPLES_PER_MS = ENGINE_SAMPLE_RATE // 1000
_LEVEL_PART_SAMPLES = 32  # 2 ms, as the VAD's per-chunk levels


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
        self.conversation = ConversationLog(self.outbox)
        self._buffer = InputAudioBuffer(int(self._settings.max_input_buffer_s * ENGINE_SAMPLE_RATE))
        self._resampler: StreamResampler | None = None
        self._vad_stream = services.vad.open_stream()
        self._detector = TurnDetector(self._turn_params(), ENGINE_SAMPLE_RATE)
        self._vad_queue: asyncio.Queue[np.ndarray] = asyncio.Queue()
        self._vad_ignore_before = 0
        self._vad_done_until = 0
        self._speech_started_at: float | None = None
        self._turn: TurnInProgress | None = None
        self._engine = services.engine.open_session()
        self.responses = ResponseManager(
            services, self.outbox, self.conversation, self._engine, lambda: self.config
        )
        self._prefill_task: asyncio.Task[None] | None = None
        self._prefill_again = False
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

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._services.metrics.sessions_active.labels(transport=self._sink.name).dec()
        self._abandon_turn()
        await self.responses.aclose()
        self.outbox.close()
        self._vad_stream.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
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
            # soxr's LQ holds back about 11 ms (a sawtooth up to 20 ms) where MQ and HQ hold
            # about 21 ms, and still passes everything up to 7.3 kHz: ample for speech going
            # to VAD, ASR and engine.
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
                self.conversation.create(event, self.config.input_rate)
            case ce.ConversationItemDelete(item_id=item_id, event_id=event_id):
                active = self.responses.active
                protected = active.plan.item.id if active is not None else None
                self.conversation.delete(item_id, event_id, protected_id=protected)
            case ce.ConversationItemTruncate(item_id=item_id, event_id=event_id):
                self.conversation.assistant_item(item_id, event_id)  # exists, or an error
                active = self.responses.active
                if active is not None and active.plan.item.id == item_id:
                    self.responses.cancel("client_cancelled")
                self.conversation.truncate(event, self.responses.sent_audio_ms(item_id))
            case ce.ResponseCreate(response=params, event_id=event_id):
                self.responses.create(params, TurnTimings(), event_id=event_id)
            case ce.ResponseCancel(response_id=response_id, event_id=event_id):
                active = self.responses.active
                if active is None or (response_id and response_id != active.plan.response_id):
                    raise ProtocolError(
                        "response_cancel_not_active",
                        "there is no active response to cancel"
                        + (f" with id {response_id}" if response_id else ""),
                        "response_id",
                        event_id,
                    )
                self.responses.cancel("client_cancelled")
            case ce.OutputAudioBufferClear():
                self.responses.cancel("client_cancelled")

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
            if self._turn is not None and self._vad_queue.empty():
                self._check_quiet_tail()
            if self._turn is None:
                keep = self._turn_params().prefix_padding_ms * _SAMPLES_PER_MS
                self._buffer.drop_before(self._vad_done_until - keep)

    def _check_quiet_tail(self) -> None:
        """Let the silence window end inside the VAD chunk still being received.

        The tail is everything received after the last scored chunk: the 16 kHz audio not yet
        scored, then the input the resampler still holds back (about 11 ms on average for
        soxr's LQ, in a sawtooth up to 20 ms), judged at its own rate.
        """
        tail_start = max(self._vad_done_until, self._buffer.start)
        tail = self._buffer.slice(tail_start, self._buffer.end)
        levels = levels_db(tail, _LEVEL_PART_SAMPLES)
        tail_end = self._buffer.end
        resampler = self._resampler
        if resampler is not None and len(held := resampler.held_input()):
            levels += levels_db(held, len(held))
            tail_end += round(len(held) * ENGINE_SAMPLE_RATE / resampler.in_rate)
        if not levels:
            return
        for turn_event in self._detector.update_tail(tail_end, levels):
            if isinstance(turn_event, SpeechStopped):
                self._on_speech_stopped(turn_event)

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
        self._speech_started_at = time.monotonic()
        self.outbox.send_now(ev.speech_started(start // _SAMPLES_PER_MS, item_id))
        vad = self.config.audio.input.turn_detection
        active = self.responses.active
        if active is not None and vad is not None and vad.interrupt_response:
            active.speech_started_at = self._speech_started_at
            self.responses.cancel("turn_detected")
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
        self.conversation.commit_user_audio(item)
        vad = self.config.audio.input.turn_detection
        if vad is not None and vad.create_response:
            if self.responses.active is None:
                self.responses.create(None, timings, event_id=None)
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
            request = self.conversation.engine_request(
                self.config.instructions, extra=self._turn.snapshot(), max_tokens=1
            )
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
        self.conversation.commit_user_audio(item)

    # -- output --------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        with contextlib.suppress(OutboxClosed):
            while True:
                item = await self.outbox.get()
                await self._sink.deliver(item)
