"""CosyVoice 2/3 in this process (GPU host): reply text streamed into the model, 40 ms chunks out.

Upstream matched: FunAudioLLM/CosyVoice at ace7c47f41bb (2026-03-16).
``cosyvoice/cli/cosyvoice.py``: ``AutoModel(model_dir=...)`` picks ``CosyVoice2`` or
``CosyVoice3`` (and downloads from ModelScope when the directory does not exist, so this
module refuses a missing directory); ``inference_sft(tts_text, spk_id, stream, speed)``,
``inference_zero_shot(tts_text, prompt_text, prompt_wav, zero_shot_spk_id, stream,
speed)``, ``add_zero_shot_spk(prompt_text, prompt_wav, zero_shot_spk_id)``,
``list_available_spks()``, ``sample_rate``. ``cosyvoice/cli/frontend.py``: a ``tts_text``
that is a generator skips text normalisation and is tokenized piece by piece (so pieces
are normalised here, with the model's own ``frontend.text_normalize``).
``cosyvoice/cli/model.py``: with ``stream=True`` the model yields ``{'tts_speech': float
tensor (1, n)}`` every ``token_hop_len`` speech tokens (25 = 1 s, doubling to 100), its
LLM running in a thread of its own that pulls the text generator; ``speed`` only acts
without streaming. ``cosyvoice/llm/llm.py``: bi-streaming needs CosyVoice 2 or 3, and
CosyVoice 3 asserts ``<|endofprompt|>`` in the prompt text.

Install: the official repository, not PyPI (the PyPI package named ``cosyvoice`` is an
unrelated repackaging): see ``deploy/cosyvoice/README.md``; it and its
``third_party/Matcha-TTS`` go on ``PYTHONPATH``, with torch and its requirements.

How a reply is spoken. Reply text is cut into pieces (``STREAM_FEED_RULES``: the first
clause, then sentences). An *utterance* is one ``inference_*`` call with ``stream=True``
whose ``tts_text`` is a generator pulling pieces as they arrive, so synthesis starts on
the first clause. Each utterance runs in a worker thread of its own (the calls block); its
audio comes back to the event loop through a queue. An utterance's text is fixed when its
first audio comes out: its generator then ends after the pieces the model already took,
and later pieces go to the next utterance, which starts as soon as there is text for it
(at most ``lookahead + 1`` run at once). One utterance is one segment of the
``TextToSpeech`` interface, and its ``segment_text`` is exactly what its audio speaks,
known with its first chunk as the session needs. An utterance also ends at
``MAX_UTTERANCE_CHARS``.

Audio: each hop (1-4 s) is converted to int16, resampled only if ``output_rate`` differs
from the model's, and cut at once into ``chunk_ms`` chunks (40 ms), the segment's last
chunk carrying the rest.

Cancellation: closing the generator ends every utterance's text generator (the model
stops waiting for text) and tells the workers to close the model's generators after the
step in flight. That GPU step cannot be interrupted: the LLM finishes decoding the text it
already took, a token2wav hop finishes; their audio is dropped. Nothing on the event loop
waits for it.

Two upstream quirks are handled: ``CosyVoice2Model.tts`` grows ``token_hop_len`` on the
shared model and never resets it (upstream PR #1849), so from the third request on first
hops would be 4 s long: it is reset before each utterance. And an exception in the model's
LLM thread is not propagated (its ``tts`` then polls forever): an utterance that has all
its text but yields nothing for ``stall_timeout_s`` fails with ``TtsError``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tokenizer.framing import frame_samples_for
from tokenizer.pcm import float32_to_pcm16
from tokenizer.resample import StreamResampler
from tts.base import SpeechChunk, TtsError
from tts.cosyvoice_segmenting import MAX_UTTERANCE_CHARS, STREAM_FEED_RULES
from tts.cosyvoice_voices import (
    CosyVoiceVersion,
    CosyVoiceVoice,
    PromptVoice,
    SpeakerVoice,
    VoiceBook,
    cosyvoice_request,
)
from tts.segment_framing import SegmentFramer
from tts.segmenter import SegmenterRules, TextSegmenter

log = logging.getLogger(__name__)

ZERO_SHOT_ID_PREFIX = "step-realtime/"


class CosyVoiceModel(Protocol):
    """What this backend calls on upstream's ``CosyVoice2`` / ``CosyVoice3``."""

    sample_rate: int

    def list_available_spks(self) -> list[str]: ...

    def add_zero_shot_spk(
        self, prompt_text: str, prompt_wav: str, zero_shot_spk_id: str
    ) -> bool: ...

    def inference_sft(
        self, tts_text: Any, spk_id: str, stream: bool = False, speed: float = 1.0
    ) -> Iterator[dict[str, Any]]: ...

    def inference_zero_shot(
        self,
        tts_text: Any,
        prompt_text: str,
        prompt_wav: Any,
        zero_shot_spk_id: str = "",
        stream: bool = False,
        speed: float = 1.0,
    ) -> Iterator[dict[str, Any]]: ...


def load_cosyvoice_model(
    model_dir: Path, *, fp16: bool = False, load_trt: bool = False
) -> CosyVoiceModel:
    """Load a CosyVoice 2/3 model from a local directory with upstream's ``AutoModel``."""
    if not any((model_dir / name).is_file() for name in ("cosyvoice2.yaml", "cosyvoice3.yaml")):
        raise ValueError(
            f"{model_dir} holds no CosyVoice 2 or 3 model (no cosyvoice2.yaml or cosyvoice3.yaml); "
            "fetch one on the GPU host as deploy/cosyvoice/README.md shows"
        )
    try:
        from cosyvoice.cli.cosyvoice import AutoModel
    except ImportError as error:
        raise ValueError(
            "cannot import CosyVoice's AutoModel: clone the official repository "
            "(github.com/FunAudioLLM/CosyVoice, not the PyPI package named cosyvoice), install "
            "its requirements and put it and its third_party/Matcha-TTS on PYTHONPATH "
            f"(deploy/cosyvoice/README.md): {error}"
        ) from error
    model: CosyVoiceModel = AutoModel(model_dir=str(model_dir), fp16=fp16, load_trt=load_trt)
    return model


def model_version(model: object) -> int:
    """1, 2 or 3, from the upstream class the model is (or derives from)."""
    names = {cls.__name__ for cls in type(model).__mro__}
    for version, name in ((3, "CosyVoice3"), (2, "CosyVoice2"), (1, "CosyVoice")):
        if name in names:
            return version
    raise ValueError(f"{type(model).__name__} is not a CosyVoice model")


@dataclass(frozen=True)
class _Audio:
    pcm: np.ndarray  # int16 at the model's rate
    text: str  # the utterance's text, fixed at its first audio


@dataclass(frozen=True)
class _Done:
    text: str


class _TextSource:
    """A reply's text pieces not yet taken by a synthesis; shared across threads."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.pieces: deque[str] = deque()
        self.ended = False
        self.cancelled = False

    def put(self, piece: str) -> None:
        with self.condition:
            self.pieces.append(piece)
            self.condition.notify_all()

    def end(self) -> None:
        with self.condition:
            self.ended = True
            self.condition.notify_all()

    def cancel(self) -> None:
        with self.condition:
            self.cancelled = True
            self.condition.notify_all()

    def has_text(self) -> bool:
        with self.condition:
            return bool(self.pieces)


class _Utterance:
    """One streaming synthesis: its text generator, its audio queue, its worker's state."""

    def __init__(
        self,
        index: int,
        source: _TextSource,
        *,
        max_chars: int,
        normalize: Callable[[str], str] | None,
        notify: Callable[[], None],
    ) -> None:
        self.index = index
        self.source = source
        self.max_chars = max_chars
        self.normalize = normalize
        self.notify = notify
        self.audio: asyncio.Queue[_Audio | _Done | BaseException] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.taken: list[str] = []
        self.closed = False  # takes no more text
        self.waiting_for_text = False  # its generator waits for reply text to arrive
        self.last_progress = time.monotonic()  # when it last took text or made audio
        self.fixed_text: str | None = None

    def text(self) -> str:
        return _join(self.taken)

    def text_pieces(self) -> Generator[str, None, None]:
        """The model's ``tts_text``: pieces as they arrive, until fixed, capped or ended.

        Runs in the model's LLM thread. A piece is recorded under the lock before it is
        handed over, so the text fixed by ``fix_text`` is exactly what the model took.
        """
        source = self.source
        while True:
            with source.condition:
                while not (self.closed or source.cancelled or source.pieces or source.ended):
                    self.waiting_for_text = True
                    source.condition.wait()
                self.waiting_for_text = False
                piece = source.pieces[0] if source.pieces else None
                too_long = (
                    piece is not None
                    and self.taken
                    and len(self.text()) + 1 + len(piece) > self.max_chars
                )
                if self.closed or source.cancelled or piece is None or too_long:
                    self.closed = True
                    self.notify()
                    return
                source.pieces.popleft()
                self.last_progress = time.monotonic()
                separator = _separator(self.taken[-1], piece) if self.taken else ""
                self.taken.append(piece)
            yield separator + (self.normalize(piece) if self.normalize else piece)

    def fix_text(self) -> str:
        """The first audio is out: take no more text; return the text this utterance speaks."""
        with self.source.condition:
            self.closed = True
            self.fixed_text = self.text()
            self.source.condition.notify_all()
        self.notify()
        return self.fixed_text


class CosyVoiceInProcessTts:
    """Speech from a CosyVoice 2/3 model loaded in this process (see the module docstring)."""

    name = "cosyvoice"

    def __init__(
        self,
        model: CosyVoiceModel,
        voices: VoiceBook,
        *,
        output_rate: int | None = None,
        feed_rules: SegmenterRules = STREAM_FEED_RULES,
        max_utterance_chars: int = MAX_UTTERANCE_CHARS,
        lookahead: int = 1,
        chunk_ms: int = 40,
        stall_timeout_s: float = 30.0,
        normalize_text: bool = True,
    ) -> None:
        if lookahead < 0:
            raise ValueError("lookahead must be >= 0")
        version = model_version(model)
        if version == 1:
            raise ValueError(
                "streaming text into CosyVoice needs CosyVoice 2 or 3, not CosyVoice 1"
            )
        self.version: CosyVoiceVersion = 3 if version == 3 else 2
        self.model = model
        self.voices = voices
        self.model_rate = int(model.sample_rate)
        self.sample_rate = output_rate or self.model_rate
        self.feed_rules = feed_rules
        self.max_utterance_chars = max_utterance_chars
        self.lookahead = lookahead
        self.stall_timeout_s = stall_timeout_s
        self._chunk_samples = frame_samples_for(chunk_ms, self.sample_rate)
        frontend = getattr(model, "frontend", None)
        text_normalize = getattr(frontend, "text_normalize", None) if normalize_text else None
        self._normalize: Callable[[str], str] | None = (
            (lambda text: str(text_normalize(text, split=False, text_frontend=True)))
            if text_normalize is not None
            else None
        )
        inner = getattr(model, "model", None)
        self._first_hop: int | None = getattr(inner, "token_hop_len", None)
        self._zero_shot_ids: dict[str, str] = {}
        self._register_lock = threading.Lock()
        self._running: set[_Utterance] = set()
        self._threads: set[threading.Thread] = set()
        self._closed = False
        self._check_voices()

    def _check_voices(self) -> None:
        speakers = set(self.model.list_available_spks())
        for voice in self.voices.voices:
            if isinstance(voice, SpeakerVoice):
                if self.version == 3:
                    raise ValueError(
                        f"voice {voice.name!r}: CosyVoice 3 streams text only with a zero-shot "
                        "prompt voice (its LLM needs a prompt text with <|endofprompt|>)"
                    )
                if voice.speaker_id not in speakers:
                    known = ", ".join(sorted(speakers)) or "none"
                    raise ValueError(
                        f"voice {voice.name!r}: the model has no speaker {voice.speaker_id!r} "
                        f"(it has: {known})"
                    )
            elif voice.mode != "zero_shot":
                raise ValueError(
                    f"voice {voice.name!r}: the in-process backend speaks built-in speakers "
                    "and zero-shot voices (prompt wav and its text); use the HTTP backend "
                    "for cross-lingual or instructed voices"
                )

    def prepare(self) -> None:
        """Register every zero-shot voice with the model now (blocking; at startup)."""
        for voice in self.voices.voices:
            if isinstance(voice, PromptVoice):
                self._zero_shot_id(voice)

    def speak(
        self, text: AsyncIterable[str], *, voice: str | None = None, speed: float = 1.0
    ) -> AsyncGenerator[SpeechChunk, None]:
        """Speak streamed text. ``speed`` goes to CosyVoice, which ignores it when streaming."""
        return self._speak(text, self.voices.resolve(voice), speed)

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Stop every synthesis and wait (bounded) for the worker threads to end."""
        self._closed = True
        for utterance in list(self._running):
            utterance.source.cancel()
            utterance.cancelled.set()
        threads = list(self._threads)

        def join_all() -> None:
            for thread in threads:
                thread.join(timeout_s)

        await asyncio.to_thread(join_all)

    # -- one reply ---------------------------------------------------------------------

    async def _speak(
        self, text: AsyncIterable[str], voice: CosyVoiceVoice, speed: float
    ) -> AsyncGenerator[SpeechChunk, None]:
        if self._closed:
            raise TtsError("the CosyVoice backend is closed")
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        source = _TextSource()
        utterances: asyncio.Queue[_Utterance | BaseException | None] = asyncio.Queue()
        slots = asyncio.Semaphore(self.lookahead + 1)
        started: list[_Utterance] = []
        text_failure: list[BaseException] = []

        def notify() -> None:
            try:
                loop.call_soon_threadsafe(changed.set)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

        async def read_text() -> None:
            segmenter = TextSegmenter(self.feed_rules)
            try:
                async for delta in text:
                    for piece in segmenter.push(delta):
                        source.put(piece)
                        changed.set()
                if (rest := segmenter.flush()) is not None:
                    source.put(rest)
            except Exception as error:
                text_failure.append(error)
            finally:
                source.end()
                changed.set()

        async def start_utterances() -> None:
            index = 0
            while True:
                while True:
                    changed.clear()
                    previous_done = not started or started[-1].closed
                    if previous_done and (source.has_text() or source.ended):
                        break
                    await changed.wait()
                if not source.has_text():
                    break
                await slots.acquire()
                utterance = _Utterance(
                    index,
                    source,
                    max_chars=self.max_utterance_chars,
                    normalize=self._normalize,
                    notify=notify,
                )
                started.append(utterance)
                self._start_worker(utterance, voice, speed, loop)
                utterances.put_nowait(utterance)
                index += 1
            utterances.put_nowait(text_failure[0] if text_failure else None)

        helpers = [asyncio.create_task(read_text()), asyncio.create_task(start_utterances())]
        try:
            while isinstance(item := await utterances.get(), _Utterance):
                async for chunk in self._utterance_chunks(item):
                    yield chunk
                slots.release()
            if item is not None:
                raise item
        finally:
            source.cancel()
            for utterance in started:
                utterance.cancelled.set()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _utterance_chunks(self, utterance: _Utterance) -> AsyncGenerator[SpeechChunk, None]:
        resampler = StreamResampler(self.model_rate, self.sample_rate)
        framer: SegmentFramer | None = None
        while True:
            item = await self._next_item(utterance)
            if isinstance(item, BaseException):
                raise TtsError(f"CosyVoice failed on segment {utterance.index}: {item!r}") from item
            if framer is None:
                if isinstance(item, _Done) and not item.text:
                    return
                framer = SegmentFramer(utterance.index, item.text, self._chunk_samples)
            if isinstance(item, _Audio):
                for chunk in framer.push_samples(resampler.process(item.pcm)):
                    yield chunk
                continue
            for chunk in framer.push_samples(resampler.flush()):
                yield chunk
            yield framer.finish()
            return

    async def _next_item(self, utterance: _Utterance) -> _Audio | _Done | BaseException:
        while True:
            quiet_s = time.monotonic() - utterance.last_progress
            try:
                return await asyncio.wait_for(
                    utterance.audio.get(), max(self.stall_timeout_s - quiet_s, 0.01)
                )
            except TimeoutError:
                if utterance.waiting_for_text:
                    utterance.last_progress = time.monotonic()
                    continue  # the model waits for the reply's text, which is slow to come
                if time.monotonic() - utterance.last_progress < self.stall_timeout_s:
                    continue
                raise TtsError(
                    f"CosyVoice produced no audio for segment {utterance.index} in "
                    f"{self.stall_timeout_s:g} s; its LLM thread may have failed (see the log)"
                ) from None

    # -- the worker thread ---------------------------------------------------------------

    def _start_worker(
        self,
        utterance: _Utterance,
        voice: CosyVoiceVoice,
        speed: float,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        def post(item: _Audio | _Done | BaseException) -> None:
            try:
                loop.call_soon_threadsafe(utterance.audio.put_nowait, item)
            except RuntimeError:
                utterance.cancelled.set()  # the loop is gone

        def work() -> None:
            try:
                self._synthesize(utterance, voice, speed, post)
            except Exception as error:  # reported to the consumer, which raises TtsError
                log.warning("CosyVoice synthesis failed: %r", error)
                post(error)
            finally:
                self._running.discard(utterance)
                self._threads.discard(threading.current_thread())

        thread = threading.Thread(
            target=work, name=f"cosyvoice-utterance-{utterance.index}", daemon=True
        )
        self._running.add(utterance)
        self._threads.add(thread)
        thread.start()

    def _synthesize(
        self,
        utterance: _Utterance,
        voice: CosyVoiceVoice,
        speed: float,
        post: Callable[[_Audio | _Done | BaseException], None],
    ) -> None:
        self._reset_first_hop()
        outputs = self._inference(utterance.text_pieces(), voice, speed)
        try:
            for output in outputs:
                if utterance.cancelled.is_set():
                    return
                pcm = _to_pcm16(output["tts_speech"])
                if not len(pcm):
                    continue
                text = (
                    utterance.fixed_text
                    if utterance.fixed_text is not None
                    else utterance.fix_text()
                )
                utterance.last_progress = time.monotonic()
                post(_Audio(pcm, text))
        finally:
            close = getattr(outputs, "close", None)
            if close is not None:
                close()
        post(_Done(utterance.fixed_text if utterance.fixed_text is not None else utterance.text()))

    def _inference(
        self, text: Generator[str, None, None], voice: CosyVoiceVoice, speed: float
    ) -> Iterator[dict[str, Any]]:
        if isinstance(voice, SpeakerVoice):
            return self.model.inference_sft(text, voice.speaker_id, stream=True, speed=speed)
        return self.model.inference_zero_shot(
            text, "", "", zero_shot_spk_id=self._zero_shot_id(voice), stream=True, speed=speed
        )

    def _zero_shot_id(self, voice: PromptVoice) -> str:
        """The model's speaker id for a zero-shot voice, registered on first use."""
        with self._register_lock:
            known = self._zero_shot_ids.get(voice.name)
            if known is not None:
                return known
            speaker_id = ZERO_SHOT_ID_PREFIX + voice.name
            # Registered once with the zero-shot request's prompt; each utterance then names it.
            prompt = cosyvoice_request(voice, "", self.version).prompt_text or ""
            self.model.add_zero_shot_spk(prompt, str(voice.prompt_wav), speaker_id)
            self._zero_shot_ids[voice.name] = speaker_id
            return speaker_id

    def _reset_first_hop(self) -> None:
        inner = getattr(self.model, "model", None)
        if inner is not None and self._first_hop is not None:
            inner.token_hop_len = self._first_hop


def _to_pcm16(speech: Any) -> np.ndarray:
    """A ``tts_speech`` tensor (float in [-1, 1), shape (1, n), on the CPU) as int16 samples."""
    samples = speech.numpy() if hasattr(speech, "numpy") else speech
    return float32_to_pcm16(np.asarray(samples, dtype=np.float32).reshape(-1))


def _unspaced(char: str) -> bool:
    """Scripts written without spaces between words (Han, kana) and their punctuation."""
    code = ord(char)
    return (
        0x3000 <= code <= 0x30FF
        or 0x3400 <= code <= 0x4DBF
        or 0x4E00 <= code <= 0x9FFF
        or 0xF900 <= code <= 0xFAFF
        or 0xFF00 <= code <= 0xFFEF
    )


def _separator(before: str, after: str) -> str:
    return "" if _unspaced(before[-1]) or _unspaced(after[0]) else " "


def _join(pieces: list[str]) -> str:
    text = ""
    for piece in pieces:
        text += (_separator(text, piece) if text else "") + piece
    return text
