"""espeak-ng speech backend: one espeak-ng subprocess per text segment, its WAV stdout streamed.

espeak-ng is GPL, so it is only ever run as a separate program, never linked.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import struct
from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass

import numpy as np

from tts.base import SpeechChunk, TtsError
from tts.pipeline import speak_segments
from tts.segmenter import DEFAULT_RULES, SegmenterRules

_READ_SIZE = 65536
_STDOUT_LIMIT = 64 * 1024 * 1024
"""How much of a segment's audio may wait unread (about 25 minutes of speech). The lookahead
segment is synthesized while the current one is yielded; with asyncio's default 64 KiB limit
its pipe stopped being read once 128 KiB waited, so a process killed then (``aclose``) never
had its pipe seen closed, and waiting for it hung."""
_NO_AUDIO_SERVER = "unix:/dev/null/no-pulseaudio"  # under a file, so it can never exist


def espeak_environment() -> dict[str, str]:
    """The environment to run espeak-ng in: ours, with PulseAudio pointed at no server.

    espeak-ng only writes WAV here, yet its audio library probes PulseAudio when it starts.
    On a machine where libpulse has not yet made its runtime directory (a fresh ``HOME``),
    that probe makes one under a name drawn from libc's ``rand()``, the same generator the
    voice variants' breath noise (``en-us+f3``) draws from: the same text came out
    differently the first time. With no server to find, libpulse creates nothing and draws
    nothing, and there is no autospawn.
    """
    return {**os.environ, "PULSE_SERVER": _NO_AUDIO_SERVER}


@dataclass(frozen=True)
class WavFormat:
    """What a WAV header says about the PCM that follows it."""

    audio_format: int  # 1 = integer PCM
    channels: int
    sample_rate: int
    bits_per_sample: int
    data_offset: int  # where the samples start in the stream


def parse_wav_header(data: bytes | bytearray) -> WavFormat | None:
    """Parse the RIFF/WAVE header at the start of a stream; None until enough has arrived.

    The sizes in the RIFF and data chunk headers are ignored: a streaming writer such as
    ``espeak-ng --stdout`` cannot know them and writes a placeholder. (The standard
    ``wave`` module wants the whole file, which a stream does not have yet.)
    """
    if len(data) < 12:
        return None
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise TtsError("espeak-ng did not write a WAV stream")
    position = 12
    fields: tuple[int, int, int, int] | None = None
    while len(data) >= position + 8:
        chunk_id, size = struct.unpack_from("<4sI", data, position)
        body = position + 8
        if chunk_id == b"data":
            if fields is None:
                raise TtsError("espeak-ng wrote WAV data before its format")
            return WavFormat(*fields, data_offset=body)
        if len(data) < body + size:
            return None
        if chunk_id == b"fmt ":
            if size < 16:
                raise TtsError("espeak-ng wrote a truncated WAV format chunk")
            audio_format, channels, sample_rate, _, _, bits = struct.unpack_from(
                "<HHIIHH", data, body
            )
            fields = (audio_format, channels, sample_rate, bits)
        position = body + size + (size & 1)
    return None


DEFAULT_VOICE = "en-us"
DEFAULT_WORDS_PER_MINUTE = 175


class EspeakTts:
    """Speech from espeak-ng (22050 Hz mono int16), synthesized segment by segment.

    Each segment runs its own ``espeak-ng --stdout`` process; the next ``lookahead``
    segments are synthesized while the current one is yielded. Audio comes in chunks of
    ``frame_ms``; the last chunk of each segment (``segment_end=True``) carries the
    remaining 1..frame_ms of audio.
    """

    name = "espeak-ng"
    sample_rate = 22050

    def __init__(
        self,
        voice: str = DEFAULT_VOICE,
        words_per_minute: int = DEFAULT_WORDS_PER_MINUTE,
        rules: SegmenterRules | None = None,
        executable: str = "espeak-ng",
        *,
        frame_ms: int = 20,
        lookahead: int = 1,
    ) -> None:
        if frame_ms <= 0 or lookahead < 0:
            raise ValueError("need frame_ms > 0 and lookahead >= 0")
        self.voice = voice
        self.words_per_minute = words_per_minute
        self.rules = rules if rules is not None else DEFAULT_RULES
        self.executable = executable
        self.lookahead = lookahead
        self._frame_bytes = self.sample_rate * frame_ms // 1000 * 2
        self._processes: set[asyncio.subprocess.Process] = set()
        self._starting = 0
        self._no_process_starting = asyncio.Event()
        self._no_process_starting.set()
        self._closed = False
        self._installed_voices: set[str] | None = None

    def speak(
        self, text: AsyncIterable[str], *, voice: str | None = None, speed: float = 1.0
    ) -> AsyncGenerator[SpeechChunk, None]:
        """Speak streamed text; closing the iterator kills its espeak-ng processes.

        ``voice`` is used when it names an installed espeak-ng language or variant
        (``en-gb``, ``fr``, ``en-us+f3``); other names (OpenAI's ``alloy`` ...) fall back to
        the configured voice.
        """
        return self._speak(text, voice, speed)

    async def _speak(
        self, text: AsyncIterable[str], voice: str | None, speed: float
    ) -> AsyncGenerator[SpeechChunk, None]:
        chosen = self.voice
        if voice is not None and await self._is_installed_voice(voice):
            chosen = voice
        words_per_minute = max(80, min(450, round(self.words_per_minute * speed)))
        synthesize = functools.partial(self._synthesize, voice=chosen, wpm=words_per_minute)
        async with contextlib.aclosing(
            speak_segments(text, self.rules, synthesize, lookahead=self.lookahead)
        ) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _is_installed_voice(self, voice: str) -> bool:
        if self._installed_voices is None:
            self._installed_voices = await self._list_voices()
        language, _, variant = voice.partition("+")
        known_variant = not variant or variant.lower() in self._installed_voices
        return language.lower() in self._installed_voices and known_variant

    async def _list_voices(self) -> set[str]:
        names: set[str] = set()
        for listing in ("--voices", "--voices=variant"):
            try:
                process = await asyncio.create_subprocess_exec(
                    self.executable, listing,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
                    env=espeak_environment(),
                )  # fmt: skip
            except OSError:
                return names
            output, _ = await process.communicate()
            for line in output.decode(errors="replace").splitlines()[1:]:
                fields = line.split()
                if len(fields) >= 5:
                    names.add(fields[1].lower())
                    names.add(fields[4].rsplit("/", 1)[-1].lower())
        return names

    async def aclose(self) -> None:
        """Kill every running synthesis; later calls to ``speak`` fail with TtsError."""
        self._closed = True
        # A process being started now is registered once its start returns: wait for that.
        await self._no_process_starting.wait()
        processes = list(self._processes)
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await asyncio.gather(*(process.wait() for process in processes))

    async def _synthesize(
        self, index: int, text: str, *, voice: str, wpm: int
    ) -> AsyncGenerator[SpeechChunk, None]:
        process = await self._start(voice, wpm)
        try:
            assert process.stdin is not None
            process.stdin.write(text.encode())
            # If espeak-ng exits early (a bad voice) the pipe breaks; its exit status says why.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await process.stdin.drain()
            process.stdin.close()
            stream = bytearray()
            header: WavFormat | None = None
            assert process.stdout is not None
            while data := await process.stdout.read(_READ_SIZE):
                stream += data
                if header is None:
                    header = parse_wav_header(stream)
                    if header is None:
                        continue
                    self._check_format(header)
                    del stream[: header.data_offset]
                # Keep at least one frame back so that the segment's last chunk has audio.
                while len(stream) > self._frame_bytes:
                    yield self._chunk(stream[: self._frame_bytes], index, text)
                    del stream[: self._frame_bytes]
            await self._check_exit(process)
            if header is None:
                raise TtsError("espeak-ng wrote no WAV header")
            yield self._chunk(stream[: len(stream) - len(stream) % 2], index, text, end=True)
        finally:
            self._processes.discard(process)
            await _stop(process)

    async def _start(self, voice: str, wpm: int) -> asyncio.subprocess.Process:
        if self._closed:
            raise TtsError("the espeak-ng backend is closed")
        command = [self.executable, "--stdout", "--stdin", "-v", voice, "-s", str(wpm)]
        self._starting += 1
        self._no_process_starting.clear()
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=espeak_environment(),
                limit=_STDOUT_LIMIT,
            )
            self._processes.add(process)
        except FileNotFoundError as error:
            message = f"{self.executable} is not installed: apt-get install espeak-ng"
            raise TtsError(message) from error
        except OSError as error:
            raise TtsError(f"cannot run {self.executable}: {error}") from error
        finally:
            self._starting -= 1
            if not self._starting:
                self._no_process_starting.set()
        return process

    async def _check_exit(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        stderr = await process.stderr.read()
        code = await process.wait()
        if self._closed:
            raise TtsError("the espeak-ng backend was closed while speaking")
        if code != 0:
            message = stderr.decode(errors="replace").strip() or "no error message"
            raise TtsError(f"espeak-ng failed (exit status {code}): {message}")

    def _check_format(self, header: WavFormat) -> None:
        if (header.audio_format, header.channels, header.bits_per_sample) != (1, 1, 16):
            raise TtsError(f"espeak-ng wrote unexpected audio: {header}")
        if header.sample_rate != self.sample_rate:
            raise TtsError(
                f"espeak-ng wrote {header.sample_rate} Hz audio, expected {self.sample_rate} Hz"
            )

    @staticmethod
    def _chunk(pcm: bytearray, index: int, text: str, *, end: bool = False) -> SpeechChunk:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
        return SpeechChunk(pcm=samples, segment_index=index, segment_text=text, segment_end=end)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Kill the process if it still runs, drain its pipes and reap it."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    # communicate() reads what is left in the pipes, so their transports close too.
    await process.communicate()
