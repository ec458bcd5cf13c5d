"""English transcription with pocketsphinx for the echo engine, in a worker process.

pocketsphinx holds the GIL while it decodes (about 0.3 s of CPU per second of speech here),
so decoding in a thread of the serving process stalls the event loop and the VAD; with many
sessions it starves them. Decoding therefore runs in a separate process at a lower CPU
priority, and the service's own latency holds up when the echo engine is overloaded (its
replies are then late, which is the engine's time, not the gateway's).

Audio handed to ``Utterance.feed`` is decoded in pieces, each as a whole utterance
(``full_utt``: pocketsphinx normalises a piece's cepstra over the piece itself, which
recognises a new speaker better than its running estimate). A piece is sent for decoding as
soon as at least ``MIN_PIECE_SAMPLES`` are pending and the audio fed so far ends in a pause,
so the session's listen-while-thinking chunks (cut at quiet moments) are decoded while the
user is still talking, and 20 ms frames are never cut mid-word. The transcript is the
pieces' transcripts in order; pieces with no sound louder than ``SILENCE_DBFS`` are not
decoded at all (a full-utterance decode of silence invents a word).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

import numpy as np
import numpy.typing as npt

_T = TypeVar("_T")

SAMPLE_RATE = 16_000
MIN_PIECE_SAMPLES = SAMPLE_RATE // 2
"""Shorter pending audio waits for more: a decode of a few frames recognises nothing."""
LEVEL_FRAME = SAMPLE_RATE // 50  # 20 ms
PAUSE_BELOW_PEAK_DB = 30.0
SILENCE_DBFS = -50.0


def _frame_levels_db(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    usable = len(pcm) // LEVEL_FRAME * LEVEL_FRAME
    if not usable:
        return np.full(1, -120.0)
    frames = pcm[:usable].astype(np.float64).reshape(-1, LEVEL_FRAME) / 32768.0
    return 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)


# The worker process's decoder, created by ``_load_decoder`` when the process starts.
# It is state of that worker process only; the service's own process never sets it.
_worker_decoder = None


def _load_decoder(niceness: int) -> None:
    global _worker_decoder
    import pocketsphinx

    with contextlib.suppress(OSError):
        os.nice(niceness)
    _worker_decoder = pocketsphinx.Decoder(samprate=SAMPLE_RATE, logfn=os.devnull)


def _decode_piece(pcm: bytes) -> str:
    decoder = _worker_decoder
    if decoder is None:
        raise RuntimeError("pocketsphinx worker has no decoder")
    decoder.start_utt()
    decoder.process_raw(pcm, no_search=False, full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr.strip() if hypothesis is not None else ""


def _worker_pid() -> int:
    return os.getpid()


class TranscriberClosedError(RuntimeError):
    """The transcriber or the utterance is closed."""


class TranscriptionError(RuntimeError):
    """The worker process failed."""


class PocketsphinxTranscriber:
    """Decodes audio in ``workers`` processes, shared by every session of the service."""

    def __init__(self, workers: int = 1, niceness: int = 5) -> None:
        self._workers = workers
        self._niceness = niceness
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._closed = False

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._closed:
            raise TranscriberClosedError("the transcriber is closed")
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_load_decoder,
                initargs=(self._niceness,),
            )
        return self._pool

    async def warm_up(self) -> int:
        """Start the worker and load its model; returns the worker's pid."""
        return await self._run(_worker_pid)

    def open_utterance(self) -> Utterance:
        self._executor()
        return Utterance(self)

    async def _run(self, job: Callable[..., _T], *args: object) -> _T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), job, *args)
        except BrokenProcessPool as exc:
            # The worker died (killed, out of memory): start a fresh one for the next job.
            broken, self._pool = self._pool, None
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            raise TranscriptionError(f"the pocketsphinx worker process died: {exc}") from exc

    async def aclose(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)


class Utterance:
    """One user turn: pieces of audio in, one transcript out."""

    def __init__(self, transcriber: PocketsphinxTranscriber) -> None:
        self._transcriber = transcriber
        self._pending: list[npt.NDArray[np.int16]] = []
        self._pending_samples = 0
        self._decodes: list[asyncio.Task[str]] = []
        self._done = False

    @property
    def pieces_submitted(self) -> int:
        return len(self._decodes)

    async def feed(self, pcm16k: npt.NDArray[np.int16]) -> None:
        """Queue audio; decoding of each piece of at least half a second starts at once."""
        if self._done:
            raise TranscriberClosedError("utterance already finished or aborted")
        samples = np.asarray(pcm16k)
        if samples.dtype != np.int16:
            samples = np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)
        if len(samples):
            self._pending.append(samples)
            self._pending_samples += len(samples)
        if self._pending_samples >= MIN_PIECE_SAMPLES:
            pending = np.concatenate(self._pending)
            levels = _frame_levels_db(pending)
            if levels[-1] < levels.max() - PAUSE_BELOW_PEAK_DB:
                self._submit()

    def _submit(self) -> None:
        if not self._pending_samples:
            return
        piece = np.concatenate(self._pending)
        self._pending, self._pending_samples = [], 0
        if _frame_levels_db(piece).max() < SILENCE_DBFS:
            return
        decode = self._transcriber._run(_decode_piece, piece.tobytes())
        self._decodes.append(asyncio.ensure_future(decode))

    async def finish(self) -> str:
        """Decode what is left and return the whole transcript ('' if no words)."""
        if self._done:
            raise TranscriberClosedError("utterance already finished or aborted")
        self._done = True
        self._submit()
        texts = await asyncio.gather(*self._decodes)
        return " ".join(text for text in texts if text)

    async def abort(self) -> None:
        """Drop the utterance; decodes already running finish in the worker and are ignored."""
        self._done = True
        for decode in self._decodes:
            decode.cancel()
        await asyncio.gather(*self._decodes, return_exceptions=True)
