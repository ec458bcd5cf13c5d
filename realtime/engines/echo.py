"""The ``echo`` engine, the embedded default: a loopback for trying the service, not a model.

It transcribes the user's audio with pocketsphinx and answers "You said: <transcript>".
Audio chunks handed to ``prefill`` while the user speaks are decoded right away, so at the
end of a turn only the last chunk is left to decode (listen while thinking, in miniature).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from realtime.conversation import UserAudioItem, UserTextItem
from realtime.engines.base import (
    AnswerDelta,
    EngineCapabilities,
    EngineEvent,
    EngineInfo,
    EngineRequest,
    EngineUsage,
    InputTranscription,
    TranscriptionHints,
)
from realtime.engines.pocketsphinx_asr import PocketsphinxTranscriber, Utterance

DEFAULT_REPLY = "You said: {transcript}"
DEFAULT_EMPTY_REPLY = "I did not catch any words."
_KEPT_TRANSCRIPTS = 8


@dataclass
class _Decoding:
    utterance: Utterance
    chunks_fed: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _audio_key(item: UserAudioItem) -> tuple[str, int, int]:
    """A turn's audio as decoded: a speculative reply sees a snapshot of the turn so far,
    under the id the whole turn keeps, so the id alone does not say which audio it was."""
    return item.id, len(item.chunks), sum(len(chunk) for chunk in item.chunks)


class EchoSession:
    def __init__(self, engine: EchoEngine) -> None:
        self._engine = engine
        self._decodings: dict[str, _Decoding] = {}
        # Each turn's audio is decoded once, for the reply and for the transcription alike.
        self._transcripts: dict[tuple[str, int, int], asyncio.Future[str]] = {}

    async def prefill(self, request: EngineRequest) -> None:
        item = request.conversation.last_user_item()
        if isinstance(item, UserAudioItem) and item.transcript is None:
            await self._feed(item)

    async def stream(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        item = request.conversation.last_user_item()
        heard = ""
        if isinstance(item, UserAudioItem):
            heard = item.transcript if item.transcript is not None else await self._transcribe(item)
            if item.transcript is None:
                yield InputTranscription(item.id, heard)
        elif isinstance(item, UserTextItem):
            heard = item.text
        reply = self._engine.reply_for(heard)
        words = re.findall(r"\S+\s*", reply)
        for word in words[: request.max_tokens or None]:
            yield AnswerDelta(word)
        yield EngineUsage(prompt_tokens=len(heard.split()), completion_tokens=len(words))

    async def _feed(self, item: UserAudioItem) -> _Decoding:
        decoding = self._decodings.get(item.id)
        if decoding is None:
            decoding = self._decodings[item.id] = _Decoding(
                self._engine.transcriber.open_utterance()
            )
        async with decoding.lock:
            for chunk in item.chunks[decoding.chunks_fed :]:
                await decoding.utterance.feed(chunk)
                decoding.chunks_fed += 1
        return decoding

    async def transcribe(
        self, item: UserAudioItem, hints: TranscriptionHints
    ) -> AsyncGenerator[str, None]:
        """pocketsphinx's transcript, in one piece (it has no partial results to give)."""
        yield await self._transcribe(item)

    async def _transcribe(self, item: UserAudioItem) -> str:
        key = _audio_key(item)
        pending = self._transcripts.get(key)
        if pending is None:
            pending = self._transcripts[key] = asyncio.ensure_future(self._decode(item))
            while len(self._transcripts) > _KEPT_TRANSCRIPTS:
                self._transcripts.pop(next(iter(self._transcripts)))
        return await asyncio.shield(pending)

    async def _decode(self, item: UserAudioItem) -> str:
        decoding = await self._feed(item)
        async with decoding.lock:
            self._decodings.pop(item.id, None)
            return (await decoding.utterance.finish()).strip()

    async def aclose(self) -> None:
        for pending in self._transcripts.values():
            pending.cancel()
        decodings, self._decodings = list(self._decodings.values()), {}
        for decoding in decodings:
            await decoding.utterance.abort()


class EchoEngine:
    # A loopback: it ignores continuations (it would repeat its reply) and calls no tools;
    # it transcribes (pocketsphinx), which its replies need anyway.
    capabilities: ClassVar[EngineCapabilities] = EngineCapabilities(transcription=True)

    def __init__(
        self,
        transcriber: PocketsphinxTranscriber,
        *,
        reply: str = DEFAULT_REPLY,
        empty_reply: str = DEFAULT_EMPTY_REPLY,
    ) -> None:
        if "{transcript}" not in reply:
            raise ValueError("the echo reply must contain '{transcript}'")
        self.info = EngineInfo(name="echo", model="echo-pocketsphinx")
        self.transcriber = transcriber
        self._reply = reply
        self._empty_reply = empty_reply

    def reply_for(self, transcript: str) -> str:
        if not transcript.strip():
            return self._empty_reply
        return self._reply.replace("{transcript}", transcript.strip())

    async def start(self) -> None:
        await self.transcriber.warm_up()

    async def aclose(self) -> None:
        await self.transcriber.aclose()

    def open_session(self) -> EchoSession:
        return EchoSession(self)

    def admission_problem(self) -> str | None:
        return None  # in-process: no server to saturate

    def load_report(self) -> Mapping[str, Mapping[str, float]]:
        return {}
