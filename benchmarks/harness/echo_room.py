"""A speakerphone in a simulated room, talking to a real in-process session (simulated
acoustics, real everything else): for the echo cancellation test and benchmark.

The device plays the reply frames the session sends as they arrive (after what it still
has queued), and its microphone hears them again through the room (a delay, a decaying
impulse response, an echo level below the reply's), plus the user's own speech when a
scenario says so. The microphone sends a 20 ms frame every 20 ms of wall time, so the
session's real VAD, interruption rule, outbox pacing and echo canceller all run in real
time. Like an OpenAI client, the device stops playing what it holds when the server says
the user started speaking.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from benchmarks.harness.recording_engine import RecordingEngine, RecordingEngineSession
from benchmarks.harness.speech import energy_spans, synthesize
from realtime import events as ev
from realtime.protocol.session_config import (
    AudioConfig,
    EchoCancellation,
    InputAudio,
    OutputAudio,
    PcmFormat,
    ServerVad,
    SessionConfig,
)
from realtime.session.outbox import AudioFrame, EventMessage, Outgoing
from realtime.session.services import SessionServices, SessionSettings
from realtime.session.session import Session
from realtime.speaking.after_think import AfterThinkPolicy
from realtime.telemetry.metrics import ServiceMetrics
from realtime.transports.client_input import hand_over
from realtime.turns.echo import ECHO_CANCELLATION_STAGE, EchoCancellationStage
from realtime.turns.input import ReplyPaused, TurnEvent
from realtime.turns.silero import SileroVadModel
from realtime.turns.vad import VadBatcher
from tts.espeak import EspeakTts

RATE = 16_000
FRAME = RATE // 50  # the microphone's 20 ms frames

REPLY_TEXT = (
    "Here is the forecast for the week. Monday starts cloudy with a light breeze from the "
    "west, and the afternoon brings a few short showers. Tuesday is brighter, with sunshine "
    "until the evening and a high of twenty one degrees. On Wednesday the wind picks up, so "
    "take a jacket if you go out early. Thursday and Friday stay mild and dry, and the "
    "weekend looks warm enough for a picnic in the park."
)

USER_TEXT = "Excuse me but could you tell me more about the rain on Tuesday"


NO_ECHO_DB = -100.0
"""A room this quiet is the baseline: the user alone, no echo to speak of."""


@dataclass(frozen=True)
class Room:
    """How the loudspeaker reaches the microphone: ``delay_ms`` to the direct path, a tail
    decaying by 60 dB in ``rt60_ms``, and the echo ``gain_db`` below the reply as played."""

    delay_ms: float
    gain_db: float
    rt60_ms: float = 250.0
    seed: int = 0

    def impulse_response(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        taps = round(self.rt60_ms * RATE / 1000)
        t = np.arange(taps) / RATE
        tail = rng.standard_normal(taps) * np.exp(-6.91 * t / (self.rt60_ms / 1000)) * 0.4
        tail[0] = 1.0
        tail *= 10 ** (self.gain_db / 20) / np.sqrt(np.sum(tail**2))
        return np.concatenate([np.zeros(round(self.delay_ms * RATE / 1000)), tail])

    def label(self) -> str:
        if self.gain_db <= NO_ECHO_DB:
            return "no echo"
        return f"{self.delay_ms:.0f} ms, {self.gain_db:+.0f} dB"


def speech_level_db(pcm: np.ndarray) -> float:
    """The level of a voice while it speaks: the mean power of its 10 ms frames within 30 dB
    of the loudest (dB re full scale), so pauses and leading silence do not count."""
    usable = len(pcm) // 160 * 160
    power = np.mean((pcm[:usable].astype(np.float64).reshape(-1, 160) / 32768.0) ** 2, axis=1)
    loud = power[power >= power.max() * 1e-3]
    return float(10 * np.log10(np.mean(loud) + 1e-12))


def at_level_of(voice: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``voice`` scaled so that it speaks at ``reference``'s level (int16, clipped)."""
    gain = 10 ** ((speech_level_db(reference) - speech_level_db(voice)) / 20)
    return np.clip(np.round(voice.astype(np.float64) * gain), -32768, 32767).astype(np.int16)


@contextlib.asynccontextmanager
async def room_services() -> AsyncIterator[SessionServices]:
    """Real silero VAD and espeak-ng TTS around an engine that answers ``REPLY_TEXT``."""
    vad = VadBatcher(SileroVadModel())
    await vad.start()
    tts = EspeakTts()
    try:
        yield SessionServices(
            engine=RecordingEngine(
                RecordingEngineSession(answer=tuple(f"{w} " for w in REPLY_TEXT.split(" ")))
            ),
            tts=tts,
            vad=vad,
            policies={"after-think": AfterThinkPolicy()},
            metrics=ServiceMetrics("scripted", simulated=False),
            settings=SessionSettings(),
        )
    finally:
        await tts.aclose()
        await vad.aclose()


def speakerphone_config(echo_cancellation: bool) -> SessionConfig:
    """PCM16 at 16 kHz both ways, server_vad's defaults (a turn heard in the echo gets a
    reply of its own, as it would in a real session)."""
    return SessionConfig(
        audio=AudioConfig(
            input=InputAudio(
                format=PcmFormat(rate=RATE),
                turn_detection=ServerVad(),
                x_echo_cancellation=EchoCancellation() if echo_cancellation else None,
            ),
            output=OutputAudio(format=PcmFormat(rate=RATE)),
        )
    )


@dataclass
class BargeIn:
    onset_at: float
    """When the microphone frame holding the first of the user's voice reached the session."""
    detected: bool = False
    stopped_after_ms: float | None = None
    """From the onset to the end of the last reply frame the server sent (negative: its
    echo had already stopped the reply)."""
    paused_after_ms: float | None = None
    """From the onset to the session pausing the reply (the VAD heard speech over it)."""


@dataclass
class RoomResult:
    room: Room
    echo_cancellation: bool
    reply_s: float = 0.0
    """Reply audio played while only the echo was in the microphone."""
    false_barge_ins: int = 0
    """Replies cut (``turn_detected``) with no one speaking."""
    false_turns: int = 0
    """``speech_started`` with no one speaking (a barge-in, or a turn started in the echo)."""
    false_pauses: int = 0
    """Replies paused (speech heard over them, then judged) with no one speaking."""
    erle_db: float | None = None
    """Echo return loss enhancement over the echo-only stretch (the stage's in / out)."""
    barge_ins: list[BargeIn] = field(default_factory=list)

    @property
    def false_barge_ins_per_min(self) -> float:
        return 60.0 * self.false_barge_ins / self.reply_s if self.reply_s else 0.0


class _WatchedSession(Session):
    """The real session, noting when it paused a reply (speech over it): that is not on the
    wire."""

    pauses: list[float]

    def on_turn_event(self, event: TurnEvent) -> None:
        if isinstance(event, ReplyPaused):
            self.pauses.append(time.monotonic())
        super().on_turn_event(event)


class Speakerphone:
    """The session's ``TransportSink`` and the device's microphone, in one room."""

    name = "speakerphone"

    def __init__(self, room: Room, max_s: float) -> None:
        self._ir = room.impulse_response().astype(np.float32)
        size = round(max_s * RATE) + len(self._ir) + RATE
        self._speaker = np.zeros(size, dtype=np.float32)
        self._speaker_end = 0  # the device has queued audio up to here
        self._user = np.zeros(size, dtype=np.float32)
        self._noise = np.random.default_rng(room.seed + 1).normal(0, 10, size).astype(np.float32)
        self._t0 = 0.0
        self._sent = 0  # microphone samples sent
        self.events: list[ev.ServerEvent] = []
        self.audio_frames: list[tuple[float, str, float]] = []  # (at, response id, seconds)
        self.onsets: list[tuple[int, float | None]] = []  # (user onset sample, when it was sent)

    # -- the sink ---------------------------------------------------------------------------

    async def deliver(self, item: Outgoing) -> None:
        now = time.monotonic()
        if isinstance(item, AudioFrame):
            pcm = item.pcm.astype(np.float32)
            start = max(self._sample_at(now), self._speaker_end)
            end = min(start + len(pcm), len(self._speaker))
            self._speaker[start:end] = pcm[: end - start]
            self._speaker_end = end
            self.audio_frames.append((now, item.response_id, len(pcm) / RATE))
            return
        assert isinstance(item, EventMessage)
        self.events.append(item.event)
        if isinstance(item.event, ev.SpeechStarted):
            self.stop_playing()

    def stop_playing(self) -> None:
        """Drop what the device still holds, as a client does when the user starts speaking
        or when it cancels the reply itself."""
        playing = self._sample_at(time.monotonic())
        self._speaker[playing : self._speaker_end] = 0
        self._speaker_end = min(self._speaker_end, playing)

    async def close(self, code: int, reason: str) -> None:
        pass

    # -- the microphone ---------------------------------------------------------------------

    def _sample_at(self, at: float) -> int:
        return max(0, round((at - self._t0) * RATE))

    def say(self, at_sample: int, voice: np.ndarray) -> None:
        """The user says ``voice`` from ``at_sample`` of the microphone's timeline (its first
        sound lands at ``at_sample`` + the clip's own leading silence)."""
        end = min(at_sample + len(voice), len(self._user))
        self._user[at_sample:end] += voice[: end - at_sample].astype(np.float32)
        self.onsets.append((at_sample + energy_spans(voice)[0].start_sample, None))

    @property
    def mic_position(self) -> int:
        return self._sent

    def _frame(self, start: int) -> np.ndarray:
        taps = len(self._ir)
        lo = start - taps + 1
        played = self._speaker[max(lo, 0) : start + FRAME]
        if lo < 0:
            played = np.concatenate([np.zeros(-lo, dtype=np.float32), played])
        echo = np.convolve(played, self._ir, mode="valid")
        mic = echo + self._user[start : start + FRAME] + self._noise[start : start + FRAME]
        return np.clip(np.round(mic), -32768, 32767).astype(np.int16)

    async def run_microphone(self, session: Session, until_s: float) -> None:
        """Send a frame every 20 ms (catching up after a late wake-up) until ``until_s``."""
        self._t0 = time.monotonic()
        while self._sent + FRAME <= until_s * RATE:
            due = self._t0 + (self._sent + FRAME) / RATE
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            frame = self._frame(self._sent)
            session.append_audio(frame, RATE)
            self._sent += FRAME
            self.onsets = [
                (onset, sent if sent is not None or onset >= self._sent else time.monotonic())
                for onset, sent in self.onsets
            ]

    def reply_s_between(self, start: float, end: float) -> float:
        return sum(seconds for at, _, seconds in self.audio_frames if start <= at < end)


def _cancelled_by_turn(event: ev.ServerEvent, response_id: str | None = None) -> bool:
    """``event`` ends a reply (``response_id``'s, if given) cut by the user's turn."""
    if not isinstance(event, ev.ReplyEnded):
        return False
    if response_id is not None and event.reply.id != response_id:
        return False
    details = event.reply.status_details
    return details is not None and (details.type, details.reason) == ("cancelled", "turn_detected")


async def _reply(session: Session) -> None:
    hand_over(session, '{"type": "response.create"}')


async def run_room(
    services: SessionServices,
    room: Room,
    *,
    echo_cancellation: bool,
    echo_only_s: float,
    barge_ins: int,
    voices: Sequence[np.ndarray] | None = None,
) -> RoomResult:
    """``echo_only_s`` of replies with only their echo in the microphone, then ``barge_ins``
    replies the user talks over, 2.5 s into each, saying ``voices`` in turn (default: an
    espeak-ng voice, for tests; benchmarks pass people's recordings)."""
    voices = list(voices) if voices else [synthesize(USER_TEXT, RATE)]
    said = [voices[i % len(voices)] for i in range(barge_ins)]
    total_s = echo_only_s + 5.0 + sum(2 * _trial_s(voice) + 3.0 for voice in said)
    phone = Speakerphone(room, total_s)
    session = _WatchedSession(services, phone, config=speakerphone_config(echo_cancellation))
    session.pauses = []
    result = RoomResult(room, echo_cancellation)
    await session.start()
    mic = asyncio.create_task(phone.run_microphone(session, total_s))
    try:
        await _echo_only(session, phone, result, echo_only_s)
        for voice in said:
            result.barge_ins.append(await _barge_in(session, phone, voice))
        mic.cancel()
    finally:
        mic.cancel()
        await asyncio.gather(mic, return_exceptions=True)
        await session.close()
    return result


async def _echo_only(
    session: _WatchedSession, phone: Speakerphone, result: RoomResult, seconds: float
) -> None:
    start = time.monotonic()
    stage = session.input.stage(ECHO_CANCELLATION_STAGE)
    energy_before = _energies(stage)
    while time.monotonic() - start < seconds:
        if not session.replying:
            await _reply(session)
        await asyncio.sleep(0.05)
    end = time.monotonic()
    events = phone.events
    result.false_barge_ins = sum(_cancelled_by_turn(e) for e in events)
    result.false_turns = sum(isinstance(e, ev.SpeechStarted) for e in events)
    result.reply_s = phone.reply_s_between(start, end)
    result.false_pauses = sum(start <= at < end for at in session.pauses)
    energy_after = _energies(stage)
    if energy_before is not None and energy_after is not None:
        into = energy_after[0] - energy_before[0]
        out = energy_after[1] - energy_before[1]
        result.erle_db = float(10 * np.log10((into + 1e-9) / (out + 1e-9)))
    await _quiet(session, phone)


def _energies(stage: object) -> tuple[float, float] | None:
    if isinstance(stage, EchoCancellationStage):
        return stage.input_energy, stage.output_energy
    return None


def _client_cancels(session: Session, phone: Speakerphone) -> None:
    """The device cancels the active reply (``response.cancel``) and drops what it holds."""
    session.responses.cancel("client_cancelled")
    phone.stop_playing()


async def _quiet(session: Session, phone: Speakerphone, timeout_s: float = 15.0) -> None:
    """Stop any reply (one made for the user's turn too), wait until the user's turn is over
    (the VAD's speech stopped) and nothing has happened for a while, and start afresh: a
    trial's reply must not be cut by the end of the previous trial's turn."""
    deadline = time.monotonic() + timeout_s
    calm_since = time.monotonic()
    while time.monotonic() - calm_since < 1.2 and time.monotonic() < deadline:
        speaking = sum(isinstance(e, ev.SpeechStarted) for e in phone.events) > sum(
            isinstance(e, ev.SpeechStopped) for e in phone.events
        )
        if session.responses.active is not None:
            _client_cancels(session, phone)
            calm_since = time.monotonic()
        elif speaking:
            calm_since = time.monotonic()
        await asyncio.sleep(0.1)
    session.input.clear()
    phone.events.clear()


def _trial_s(voice: np.ndarray) -> float:
    """The longest a barge-in with ``voice`` may take to be detected."""
    return 2.5 + len(voice) / RATE + 2.0


async def _barge_in(session: _WatchedSession, phone: Speakerphone, voice: np.ndarray) -> BargeIn:
    events_before = len(phone.events)
    await _reply(session)
    # The trial's reply by its id: a late frame of a reply cancelled before may still arrive.
    deadline = time.monotonic() + 10.0
    reply_id: str | None = None
    while reply_id is None or not any(rid == reply_id for _, rid, _ in phone.audio_frames):
        if time.monotonic() > deadline:
            raise TimeoutError("the reply never started")
        await asyncio.sleep(0.02)
        created = [e for e in phone.events[events_before:] if isinstance(e, ev.ReplyCreated)]
        reply_id = created[0].reply.id if created else None
    await asyncio.sleep(2.5)
    phone.say(phone.mic_position + FRAME, voice)
    onset_index = len(phone.onsets) - 1
    started = time.monotonic()
    while time.monotonic() - started < _trial_s(voice) - 2.5:
        if any(_cancelled_by_turn(e, reply_id) for e in phone.events):
            break
        await asyncio.sleep(0.02)
    onset_at = phone.onsets[onset_index][1]
    trial = BargeIn(onset_at=onset_at if onset_at is not None else started)
    trial.detected = any(_cancelled_by_turn(e, reply_id) for e in phone.events)
    after = [at + s for at, rid, s in phone.audio_frames if rid == reply_id]
    if after:
        trial.stopped_after_ms = 1000.0 * (max(after) - trial.onset_at)
    paused = [at for at in session.pauses if at >= started - 0.1]
    if paused:
        trial.paused_after_ms = 1000.0 * (paused[0] - trial.onset_at)
    if session.responses.active is not None:
        _client_cancels(session, phone)
    await asyncio.sleep(len(voice) / RATE + 0.8)  # the user finishes; the turn ends
    await _quiet(session, phone)
    return trial
