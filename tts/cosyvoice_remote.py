"""CosyVoice as a separate HTTP service (its bundled FastAPI server): one request per segment.

Contract matched: FunAudioLLM/CosyVoice at ace7c47f41bb (2026-03-16),
``runtime/python/fastapi/server.py`` and ``runtime/python/fastapi/client.py``:

- Routes, each ``GET`` or ``POST`` with form fields (multipart): ``/inference_sft``
  (``tts_text``, ``spk_id``), ``/inference_zero_shot`` (``tts_text``, ``prompt_text``,
  file ``prompt_wav``), ``/inference_cross_lingual`` (``tts_text``, file ``prompt_wav``),
  ``/inference_instruct2`` (``tts_text``, ``instruct_text``, file ``prompt_wav``). The
  prompt file is any audio file soundfile reads, at 16 kHz or more.
- Success: ``200`` and a ``StreamingResponse`` of raw int16 PCM (no header, native byte
  order, little-endian on every host it runs on) at the model's rate, which the stream
  does not say: 24000 Hz for CosyVoice 2 and 3, 22050 Hz for CosyVoice 1 (the rate
  upstream's ``client.py`` assumes). It is configured here (``sample_rate``).
- The server calls ``inference_*`` without ``stream=True``: each text paragraph arrives in
  one piece once synthesized. There is no speed field, so ``speed`` cannot be passed on.
- Errors: a missing form field is FastAPI's ``422`` with JSON ``{"detail": [...]}``; an
  exception before the stream starts is ``500 Internal Server Error``; an exception while
  streaming (most model errors: ``inference_*`` are generators, so e.g. an unknown
  ``spk_id`` fails there) closes the connection before the chunked body ends. Each
  becomes a ``TtsError`` naming the server, the status and the server's message.

Segments (``COSYVOICE_RULES``) are synthesized ahead with ``speak_segments``; closing the
generator closes the in-flight requests. Audio is yielded in chunks of ``chunk_ms`` as it
arrives; a segment's last chunk (``segment_end``) carries the rest.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncGenerator, AsyncIterable
from pathlib import Path

import httpx

from tokenizer.framing import frame_samples_for
from tts.base import SpeechChunk, TtsError
from tts.cosyvoice_segmenting import COSYVOICE_RULES
from tts.cosyvoice_voices import (
    CosyVoiceVersion,
    CosyVoiceVoice,
    PromptVoice,
    VoiceBook,
    cosyvoice_request,
)
from tts.pipeline import speak_segments
from tts.segment_framing import SegmentFramer
from tts.segmenter import SegmenterRules

_ERROR_BODY_LIMIT = 4096
FormFiles = dict[str, tuple[str, bytes, str]]


class CosyVoiceHttpTts:
    """Speech from a CosyVoice FastAPI server at ``base_url`` (e.g. ``http://cosyvoice:50000``)."""

    name = "cosyvoice-http"

    def __init__(
        self,
        base_url: str,
        voices: VoiceBook,
        *,
        sample_rate: int = 24_000,
        version: CosyVoiceVersion = 3,
        rules: SegmenterRules = COSYVOICE_RULES,
        lookahead: int = 1,
        chunk_ms: int = 40,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
    ) -> None:
        if lookahead < 0:
            raise ValueError("lookahead must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.voices = voices
        self.sample_rate = sample_rate
        self.version = version
        self.rules = rules
        self.lookahead = lookahead
        self._chunk_samples = frame_samples_for(chunk_ms, sample_rate)
        self._prompt_files = _read_prompt_files(voices)
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        )
        self._closed = False

    def speak(
        self, text: AsyncIterable[str], *, voice: str | None = None, speed: float = 1.0
    ) -> AsyncGenerator[SpeechChunk, None]:
        """Speak streamed text; ``speed`` is ignored (the server has no such field)."""
        synthesize = functools.partial(self._synthesize, voice=self.voices.resolve(voice))
        return speak_segments(text, self.rules, synthesize, lookahead=self.lookahead)

    async def aclose(self) -> None:
        self._closed = True
        await self._client.aclose()

    def request_for(
        self, voice: CosyVoiceVoice, text: str
    ) -> tuple[str, dict[str, str], FormFiles]:
        """The route, form fields and files that speak ``text`` in ``voice``."""
        request = cosyvoice_request(voice, text, self.version)
        fields = {"tts_text": request.tts_text}
        for name, value in (
            ("spk_id", request.speaker_id),
            ("prompt_text", request.prompt_text),
            ("instruct_text", request.instruct_text),
        ):
            if value is not None:
                fields[name] = value
        files: FormFiles = {}
        if request.prompt_wav is not None:
            data = self._prompt_files[request.prompt_wav]
            files["prompt_wav"] = ("prompt_wav", data, "application/octet-stream")
        return f"/inference_{request.mode}", fields, files

    async def _synthesize(
        self, index: int, text: str, *, voice: CosyVoiceVoice
    ) -> AsyncGenerator[SpeechChunk, None]:
        if self._closed:
            raise TtsError("the CosyVoice HTTP backend is closed")
        route, fields, files = self.request_for(voice, text)
        where = f"{self.base_url}{route}"
        framer = SegmentFramer(index, text, self._chunk_samples)
        try:
            async with self._client.stream(
                "POST", route, data=fields, files=files or None
            ) as response:
                if response.status_code != 200:
                    message = await _error_message(response)
                    status = response.status_code
                    raise TtsError(
                        f"the CosyVoice server answered HTTP {status} to {where}: {message}"
                    )
                async for data in response.aiter_bytes():
                    for chunk in framer.push_bytes(data):
                        yield chunk
        except httpx.ConnectError as error:
            raise TtsError(
                f"cannot connect to the CosyVoice server at {self.base_url}: {error}"
            ) from error
        except httpx.TimeoutException as error:
            raise TtsError(f"the CosyVoice server at {where} timed out: {error!r}") from error
        except (httpx.RemoteProtocolError, httpx.ReadError) as error:
            heard_ms = 1000 * framer.samples // self.sample_rate
            raise TtsError(
                f"the CosyVoice server at {where} cut the audio of segment {index} off after "
                f"{heard_ms} ms: {error}"
            ) from error
        except httpx.HTTPError as error:
            raise TtsError(
                f"the request to the CosyVoice server at {where} failed: {error!r}"
            ) from error
        yield framer.finish()


def _read_prompt_files(voices: VoiceBook) -> dict[Path, bytes]:
    files: dict[Path, bytes] = {}
    for voice in voices.voices:
        if isinstance(voice, PromptVoice) and voice.prompt_wav not in files:
            try:
                files[voice.prompt_wav] = voice.prompt_wav.read_bytes()
            except OSError as error:
                raise ValueError(
                    f"cannot read the prompt of voice {voice.name!r}: {error}"
                ) from error
    return files


async def _error_message(response: httpx.Response) -> str:
    body = b""
    with contextlib.suppress(httpx.HTTPError):
        async for data in response.aiter_bytes():
            body += data
            if len(body) >= _ERROR_BODY_LIMIT:
                break
    text = body[:_ERROR_BODY_LIMIT].decode(errors="replace").strip()
    try:
        detail = json.loads(text)["detail"]
    except (ValueError, KeyError, TypeError):
        return text or response.reason_phrase or "no message"
    if isinstance(detail, list):
        return "; ".join(_describe_validation_error(item) for item in detail)
    return str(detail)


def _describe_validation_error(item: object) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get("loc", []))
    return f"{where}: {item.get('msg', 'invalid')}" if where else str(item.get("msg", item))
