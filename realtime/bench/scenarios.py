"""What one benchmark turn says: a plain turn, or a turn whose reply the user talks over."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import numpy as np

from realtime.bench.audio_set import Utterance
from realtime.bench.metrics import TurnKind
from realtime.client.connection import RealtimeConnection
from realtime.client.events import OutputAudioDelta, ServerEvent
from realtime.client.turn import ResponseResult, TurnResult, collect_response, speak_turn


@dataclass(frozen=True)
class TurnSettings:
    timeout_s: float  # for each reply, after its utterance has been said
    trailing_silence_ms: float  # silence after an utterance at most (stops at response.done)
    barge_in_after_ms: float = 500.0  # reply heard for this long before talking over it


@dataclass(frozen=True)
class SpokenTurn:
    """A turn that got a response, and when speech over its reply began (barge-in)."""

    kind: TurnKind
    utterance: str
    result: TurnResult
    barge_in_sent_at: float | None = None


async def plain_turn(
    connection: RealtimeConnection, utterance: Utterance, settings: TurnSettings
) -> list[SpokenTurn]:
    """Say ``utterance`` followed by silence, as a microphone would, and collect the reply."""
    result = await speak_turn(
        connection,
        utterance.pcm,
        utterance.rate,
        trailing_silence_ms=settings.trailing_silence_ms,
        timeout=settings.timeout_s,
    )
    return [SpokenTurn("turn", utterance.name, result)]


async def barge_in_turn(
    connection: RealtimeConnection,
    utterance: Utterance,
    interruption: Utterance,
    settings: TurnSettings,
) -> list[SpokenTurn]:
    """Say ``utterance``; once its reply has been heard for ``barge_in_after_ms``, say
    ``interruption`` over it; collect the interrupted reply and then the reply to the
    interruption. Both turns are returned, the first with the time its reply was talked over.
    """
    rate = connection.input_rate
    first, second = utterance.at_rate(rate), interruption.at_rate(rate)
    first_voiced, second_voiced = first.voiced_samples, second.voiced_samples
    reply_heard = asyncio.Event()
    replies_done = asyncio.Event()

    def on_event(event: ServerEvent) -> None:
        if isinstance(event, OutputAudioDelta):
            reply_heard.set()

    async def collect_both() -> tuple[ResponseResult, ResponseResult]:
        interrupted = await collect_response(
            connection,
            timeout=settings.timeout_s + first.duration_s + second.duration_s,
            on_event=on_event,
        )
        reply_heard.set()  # a reply that ended without audio: say the interruption anyway
        answer = await collect_response(connection, timeout=settings.timeout_s + second.duration_s)
        return interrupted, answer

    collector = asyncio.create_task(collect_both())

    def finished(_task: asyncio.Task[tuple[ResponseResult, ResponseResult]]) -> None:
        reply_heard.set()
        replies_done.set()

    collector.add_done_callback(finished)

    async def say(samples: np.ndarray, stop: asyncio.Event) -> float:
        return await connection.stream_audio(samples, sample_rate=rate, stop=stop)

    def silence(ms: float) -> np.ndarray:
        return np.zeros(round(rate * ms / 1000.0), dtype=np.int16)

    frame = max(1, rate // 50)  # the first 20 ms, sent alone to time the barge-in's start
    try:
        first_started = time.monotonic()
        first_last_voiced = await say(first.pcm[:first_voiced], replies_done)
        wait_ms = 1000.0 * (settings.timeout_s + first.duration_s)
        await say(np.concatenate([first.pcm[first_voiced:], silence(wait_ms)]), reply_heard)
        await say(silence(settings.barge_in_after_ms), replies_done)
        second_started = time.monotonic()
        barge_in_sent_at = await say(second.pcm[:frame], replies_done)
        second_last_voiced = await say(second.pcm[frame:second_voiced], replies_done)
        tail = np.concatenate([second.pcm[second_voiced:], silence(settings.trailing_silence_ms)])
        await say(tail, replies_done)
        interrupted, answer = await collector
    finally:
        if not collector.done():
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
        elif not collector.cancelled():
            collector.exception()  # retrieved here when a send failure is what propagates
    return [
        SpokenTurn(
            "barge_in",
            first.name,
            TurnResult(
                response=interrupted,
                input_rate=rate,
                utterance_ms=1000.0 * first.duration_s,
                voiced_ms=1000.0 * first_voiced / rate,
                stream_started_at=first_started,
                last_voiced_sent_at=first_last_voiced,
                realtime=True,
            ),
            barge_in_sent_at=barge_in_sent_at,
        ),
        SpokenTurn(
            "after_barge_in",
            second.name,
            TurnResult(
                response=answer,
                input_rate=rate,
                utterance_ms=1000.0 * second.duration_s,
                voiced_ms=1000.0 * second_voiced / rate,
                stream_started_at=second_started,
                last_voiced_sent_at=second_last_voiced,
                realtime=True,
            ),
        ),
    ]
