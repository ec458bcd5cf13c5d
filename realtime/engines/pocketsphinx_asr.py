"""Incremental speech-to-text with pocketsphinx (English), for the echo engine.

One ``PocketsphinxTranscriber`` per app owns a few ``pocketsphinx.Decoder`` objects (about
90 MB each; created on a worker thread when first needed, then reused) and the worker
threads that run them. Each user turn is an ``Utterance``: audio fed while the user speaks
is decoded at once, so only the tail is left when the turn ends.

Decoders keep pocketsphinx's live cepstral mean normalisation across utterances: the first
utterance a fresh decoder hears is recognised noticeably worse than later ones, while the
mean adapts to the channel (the mean is shared by whichever sessions the decoder serves).
When every decoder is busy with other open utterances, an utterance keeps its audio and
decodes it as soon as it gets one (at the latest in ``finish``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pocketsphinx

SAMPLE_RATE = 16_000
_GIL_SLICE_BYTES = 2 * 640  # 40 ms of 16 kHz int16 audio

_T = TypeVar("_T")


class TranscriberClosedError(RuntimeError):
    """The transcriber was closed, or an utterance used after finish/abort."""


def _as_pcm16_bytes(pcm16k: npt.ArrayLike) -> bytes:
    samples = np.asarray(pcm16k)
    if samples.ndim != 1:
        raise ValueError(f"pocketsphinx needs mono (1-D) audio, got shape {samples.shape}")
    if np.issubdtype(samples.dtype, np.floating):
        samples = np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)
    elif samples.dtype != np.int16:
        raise TypeError(f"pocketsphinx needs int16 (or float) samples, got {samples.dtype}")
    return samples.astype("<i2", copy=False).tobytes()


class _DecoderSlot:
    """A right to use one decoder; ``decoder`` is None until the worker creates it."""

    def __init__(self, decoder: pocketsphinx.Decoder | None) -> None:
        self.decoder = decoder


class _DecoderPool:
    """Loop-side accounting of at most ``limit`` decoders (idle list + waiters)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._created = 0
        self._idle: list[pocketsphinx.Decoder] = []
        self._waiters: deque[asyncio.Future[_DecoderSlot]] = deque()
        self._closed = False

    @property
    def created(self) -> int:
        return self._created

    def try_acquire(self) -> _DecoderSlot | None:
        if self._idle:
            return _DecoderSlot(self._idle.pop())
        if self._created < self._limit:
            self._created += 1
            return _DecoderSlot(None)
        return None

    async def acquire(self) -> _DecoderSlot:
        slot = self.try_acquire()
        if slot is not None:
            return slot
        waiter: asyncio.Future[_DecoderSlot] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result().decoder)
            raise

    def release(self, decoder: pocketsphinx.Decoder | None) -> None:
        """Return a decoder (None: creating it failed, so its place is free again)."""
        if self._closed:
            return  # the decoder is dropped with its last reference
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(_DecoderSlot(decoder))  # None: the waiter creates one
                return
        if decoder is None:
            self._created -= 1
        else:
            self._idle.append(decoder)

    def close(self, error: Exception) -> None:
        """Fails waiting acquires with ``error``; from now on released decoders are dropped."""
        self._closed = True
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)


class PocketsphinxTranscriber:
    """App-wide pocketsphinx: a pool of up to ``max_decoders`` decoders on ``max_workers`` threads.

    pocketsphinx holds the GIL while decoding, so more workers add little throughput; more
    decoders let more utterances decode while the user is still speaking.
    """

    def __init__(self, max_workers: int = 1, max_decoders: int = 2) -> None:
        if max_workers < 1 or max_decoders < 1:
            raise ValueError("max_workers and max_decoders must be at least 1")
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="pocketsphinx")
        self._pool = _DecoderPool(max_decoders)
        self._jobs: set[Future[Any]] = set()  # submitted, not finished (even if awaiter gave up)
        self._jobs_lock = threading.Lock()  # done-callbacks run on worker threads
        self._closed = False

    @property
    def decoders_created(self) -> int:
        return self._pool.created

    @staticmethod
    def _new_decoder() -> pocketsphinx.Decoder:
        return pocketsphinx.Decoder(samprate=SAMPLE_RATE, logfn=os.devnull)

    async def warm_up(self) -> None:
        """Loads one decoder now (about 0.3-0.5 s on a worker), so the first turn does not wait."""
        slot = self._pool.try_acquire()
        if slot is None or slot.decoder is not None:
            if slot is not None:
                self._pool.release(slot.decoder)
            return
        loop = asyncio.get_running_loop()

        def load() -> None:
            try:
                slot.decoder = self._new_decoder()
            finally:
                loop.call_soon_threadsafe(self._pool.release, slot.decoder)

        await self._submit(load)

    def open_utterance(self) -> Utterance:
        if self._closed:
            raise TranscriberClosedError("PocketsphinxTranscriber is closed")
        return Utterance(self)

    async def aclose(self) -> None:
        """Waits for running decodes, then frees the decoders; open utterances fail after this."""
        if self._closed:
            return
        self._closed = True
        self._pool.close(TranscriberClosedError("PocketsphinxTranscriber closed"))
        with self._jobs_lock:
            pending = [asyncio.wrap_future(job) for job in self._jobs]
        if pending:
            await asyncio.wait(pending)
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> PocketsphinxTranscriber:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _submit(self, job: Callable[[], _T]) -> asyncio.Future[_T]:
        if self._closed:
            raise TranscriberClosedError("PocketsphinxTranscriber is closed")
        future: Future[_T] = self._executor.submit(job)
        with self._jobs_lock:
            self._jobs.add(future)
        future.add_done_callback(self._job_done)
        return asyncio.wrap_future(future)

    def _job_done(self, future: Future[Any]) -> None:
        with self._jobs_lock:
            self._jobs.discard(future)


class Utterance:
    """One turn's incremental decoding. ``feed`` while the user speaks, then ``finish``.

    Operations on one utterance run strictly in call order, one at a time, even if calls
    overlap or a caller is cancelled mid-decode. Always end with ``finish`` or ``abort``:
    an open utterance keeps its decoder from the others.
    """

    def __init__(self, transcriber: PocketsphinxTranscriber) -> None:
        self._transcriber = transcriber
        self._pool = transcriber._pool
        self._order = asyncio.Lock()  # call order (FIFO) between this utterance's operations
        self._exclusive = threading.Lock()  # the decoder, even if an awaiting caller gave up
        self._slot: _DecoderSlot | None = None
        self._started = False  # start_utt called on the slot's decoder
        self._backlog: list[bytes] = []  # audio not yet handed to a worker
        self._samples_fed = 0
        self._done = False

    @property
    def samples_fed(self) -> int:
        return self._samples_fed

    async def feed(self, pcm16k: npt.ArrayLike) -> None:
        """Decodes mono 16 kHz audio (int16, or float in [-1, 1]) on a worker thread."""
        data = _as_pcm16_bytes(pcm16k)
        async with self._order:
            self._check_open()
            self._samples_fed += len(data) // 2
            self._backlog.append(data)
            if self._slot is None:
                self._slot = self._pool.try_acquire()
            if self._slot is None:
                return  # every decoder is busy: keep the audio for later
            await self._run(self._decode, self._take_backlog(), False)

    async def finish(self) -> str:
        """Ends the utterance and returns its transcript ('' if nothing was recognised)."""
        async with self._order:
            self._check_open()
            self._done = True
            if self._slot is None and not self._backlog:
                return ""
            if self._slot is None:
                self._slot = await self._pool.acquire()
            return await self._run(self._decode, self._take_backlog(), True)

    async def abort(self) -> None:
        """Drops the utterance and returns its decoder; safe to call more than once."""
        if self._done:
            return
        self._done = True
        self._backlog.clear()
        async with self._order:
            if self._slot is None:
                return
            loop = asyncio.get_running_loop()
            try:
                await self._transcriber._submit(lambda: self._abort(loop))
            except TranscriberClosedError:
                pass

    def _check_open(self) -> None:
        if self._done:
            raise TranscriberClosedError("utterance already finished or aborted")

    def _take_backlog(self) -> list[bytes]:
        backlog, self._backlog = self._backlog, []
        return backlog

    async def _run(self, job: Callable[..., _T], backlog: list[bytes], end: bool) -> _T:
        loop = asyncio.get_running_loop()
        return await self._transcriber._submit(lambda: job(loop, backlog, end))

    # The methods below run on a worker thread.

    def _decode(self, loop: asyncio.AbstractEventLoop, backlog: list[bytes], end: bool) -> str:
        """Decodes ``backlog``; with ``end``, ends the utterance and releases the decoder."""
        with self._exclusive:
            try:
                slot = self._slot
                assert slot is not None
                if slot.decoder is None:
                    slot.decoder = self._transcriber._new_decoder()
                if not self._started:
                    slot.decoder.start_utt()
                    self._started = True
                for data in backlog:
                    # pocketsphinx holds the GIL while it decodes: small pieces let the event
                    # loop (and the VAD) run between them instead of stalling for a whole chunk.
                    for start in range(0, len(data), _GIL_SLICE_BYTES):
                        piece = data[start : start + _GIL_SLICE_BYTES]
                        slot.decoder.process_raw(piece, no_search=False, full_utt=False)
                if not end:
                    return ""
                slot.decoder.end_utt()
                self._started = False
                hypothesis = slot.decoder.hyp()
                return hypothesis.hypstr.strip() if hypothesis is not None else ""
            finally:
                if end:
                    self._release(loop)

    def _abort(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._exclusive:
            try:
                if self._started and self._slot is not None and self._slot.decoder is not None:
                    with contextlib.suppress(RuntimeError):  # the decoder is reusable anyway
                        self._slot.decoder.end_utt()
            finally:
                self._release(loop)

    def _release(self, loop: asyncio.AbstractEventLoop) -> None:
        slot, self._slot = self._slot, None
        self._started = False
        if slot is not None:
            loop.call_soon_threadsafe(self._pool.release, slot.decoder)
